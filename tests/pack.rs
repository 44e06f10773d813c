//! The deterministic tar writer and parallel gzip: every entry type round-trips through our
//! writer and three readers (the `tar` crate via our extractor, GNU tar, bsdtar when
//! installed); the same tree packed twice, or copied at another time, gives the same bytes;
//! `gzip -t` accepts the stream.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use pistemcell::pack::tarball::{pack_tree, write_tgz};
use pistemcell::tarwrite::tree::{tree_manifest, Mtimes};

const EPOCH: u64 = 1_700_000_000;

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}

/// A tree with every kind of entry a rootfs has.
fn tree(root: &Path) {
    let long_dir = root.join("d".repeat(60)).join("e".repeat(60));
    std::fs::create_dir_all(&long_dir).unwrap();
    std::fs::write(long_dir.join("f".repeat(80)), b"a long name").unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("usr/bin/big"), &big).unwrap();
    std::fs::write(root.join("usr/bin/su"), b"setuid").unwrap();
    std::fs::set_permissions(
        root.join("usr/bin/su"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::create_dir(root.join("tmp")).unwrap();
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(root.join("usr/bin/ping"), b"capable").unwrap();
    // security.capability: cap_net_raw+ep (VFS_CAP_REVISION_2).
    let cap: [u8; 20] = [
        0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    if !set_xattr(&root.join("usr/bin/ping"), "security.capability", &cap) {
        set_xattr(&root.join("usr/bin/ping"), "user.test", b"value");
    }
    std::fs::write(root.join("usr/bin/one"), b"linked").unwrap();
    std::fs::hard_link(root.join("usr/bin/one"), root.join("usr/bin/two")).unwrap();
    std::os::unix::fs::symlink("one", root.join("usr/bin/sym")).unwrap();
    std::os::unix::fs::symlink("x/".repeat(70), root.join("usr/bin/longlink")).unwrap();
    // A sparse file (holes at the start, between and after its data), and one with 30
    // segments (more than the header's four: extension blocks).
    let sparse = std::fs::File::create(root.join("var-lastlog")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_at(b"one", 1 << 20).unwrap();
    sparse.write_at(b"two", 5 << 20).unwrap();
    let many = std::fs::File::create(root.join("many-holes")).unwrap();
    many.set_len(30 * (256 << 10)).unwrap();
    for i in 0..30u64 {
        many.write_at(format!("segment {i}").as_bytes(), i * (256 << 10) + 4096)
            .unwrap();
    }
    let fifo = std::ffi::CString::new(root.join("fifo").to_str().unwrap()).unwrap();
    unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) };
    if is_root() {
        std::fs::create_dir(root.join("nodes")).unwrap();
        for (name, kind, major, minor) in [
            ("null", libc::S_IFCHR, 1, 3),
            ("loop0", libc::S_IFBLK, 7, 0),
        ] {
            let p =
                std::ffi::CString::new(root.join("nodes").join(name).to_str().unwrap()).unwrap();
            unsafe { libc::mknod(p.as_ptr(), kind | 0o660, libc::makedev(major, minor)) };
        }
        std::os::unix::fs::lchown(root.join("usr/bin/su"), Some(0), Some(4242)).unwrap();
        std::os::unix::fs::lchown(root.join("usr/bin/sym"), Some(1000), Some(1000)).unwrap();
    }
}

fn manifest(root: &Path) -> Vec<String> {
    tree_manifest(root, Mtimes::Ignore).unwrap()
}

#[test]
fn every_entry_type_round_trips_through_three_readers() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    tree(&src);
    let tgz = dir.path().join("rootfs.tgz");
    let stats = write_tgz(&src, &tgz, EPOCH, 6, 2).unwrap();
    assert_eq!(stats.hard_links, 1);
    assert_eq!(stats.false_links, 0);
    sh(Command::new("gzip").arg("-t").arg(&tgz));
    let want = manifest(&src);

    // The tar crate's reader, through the project's extractor.
    let ours = dir.path().join("ours");
    std::fs::create_dir(&ours).unwrap();
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(&tgz).unwrap());
    pistemcell::rootfs::extract::extract_tar(tar::Archive::new(gz), &ours, "rootfs.tgz").unwrap();
    assert_eq!(manifest(&ours), want, "tar crate");
    for e in walk(&ours) {
        let m = std::fs::symlink_metadata(&e).unwrap();
        if !m.file_type().is_symlink() {
            assert_eq!(
                std::os::unix::fs::MetadataExt::mtime(&m) as u64,
                EPOCH,
                "{e:?}"
            );
        }
    }

    // GNU tar.
    let gnu = dir.path().join("gnu");
    std::fs::create_dir(&gnu).unwrap();
    sh(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpzf"])
        .arg(&tgz)
        .arg("-C")
        .arg(&gnu));
    assert_eq!(manifest(&gnu), want, "GNU tar");
    let listing = sh(Command::new("tar").arg("-tzf").arg(&tgz));
    assert_eq!(listing.lines().count(), want.len(), "{listing}");

    // bsdtar, when installed.
    if pistemcell::cmd::on_path("bsdtar") {
        let bsd = dir.path().join("bsd");
        std::fs::create_dir(&bsd).unwrap();
        sh(Command::new("bsdtar")
            .args(["--xattrs", "--numeric-owner", "-xpzf"])
            .arg(&tgz)
            .arg("-C")
            .arg(&bsd));
        assert_eq!(manifest(&bsd), want, "bsdtar");
    } else {
        eprintln!(
            "SKIPPED bsdtar round trip: bsdtar is not installed (apt-get install libarchive-tools)"
        );
    }
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn the_same_tree_gives_the_same_bytes_even_copied_at_another_time() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    std::fs::create_dir(&a).unwrap();
    tree(&a);
    let one = dir.path().join("one.tgz");
    let two = dir.path().join("two.tgz");
    write_tgz(&a, &one, EPOCH, 6, 2).unwrap();
    write_tgz(&a, &two, EPOCH, 6, 1).unwrap();
    assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(&two).unwrap());
    // A copy made later: other mtimes, atimes, ctimes and inode numbers.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = dir.path().join("b");
    sh(Command::new("cp").arg("-a").arg(&a).arg(&b));
    sh(Command::new("touch").arg(b.join("usr/bin/big")));
    let three = dir.path().join("three.tgz");
    write_tgz(&b, &three, EPOCH, 6, 2).unwrap();
    assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(&three).unwrap());
    // Another epoch is another archive.
    let four = dir.path().join("four.tgz");
    write_tgz(&b, &four, EPOCH + 1, 6, 2).unwrap();
    assert_ne!(std::fs::read(&one).unwrap(), std::fs::read(&four).unwrap());
}

#[test]
fn nothing_is_left_when_packing_fails() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let out = dir.path().join("out.tgz");
    let e = write_tgz(&missing, &out, EPOCH, 6, 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing"), "{e}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Plain tar into memory works without gzip too.
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let (bytes, stats) = pack_tree(&src, Vec::new(), EPOCH).unwrap();
    assert_eq!(stats.entries, 2);
    assert_eq!(bytes.len() % 512, 0);
}

#[test]
fn holes_are_not_read_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    tree(&src);
    let sparse = std::fs::metadata(src.join("var-lastlog")).unwrap();
    if std::os::unix::fs::MetadataExt::blocks(&sparse) * 512 >= sparse.len() {
        eprintln!("SKIPPED: this filesystem does not keep holes");
        return;
    }
    let (bytes, _) = pack_tree(&src, Vec::new(), EPOCH).unwrap();
    // 8 MiB + 7.5 MiB of apparent size; the holes are not in the archive.
    assert!(
        bytes.len() < 4 << 20,
        "the archive is {} bytes",
        bytes.len()
    );
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut kinds = std::collections::BTreeMap::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        kinds.insert(
            e.path().unwrap().display().to_string(),
            e.header().entry_type(),
        );
    }
    assert_eq!(kinds["var-lastlog"], tar::EntryType::GNUSparse);
    assert_eq!(kinds["many-holes"], tar::EntryType::GNUSparse);
    assert_eq!(kinds["usr/bin/big"], tar::EntryType::Regular);
}
