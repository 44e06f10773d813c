use super::*;
use crate::deb::build;
use crate::deb::build::{ar_bytes, DebBuilder, Kind, Packing, TestEntry};
use crate::deb::DebError;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};

/// A scratch area: `base/root` is the rootfs; `base/sentinel` and `base/etc/shadow` stand for
/// the host and must never change. The .debs live in a separate directory.
struct Fixture {
    base: tempfile::TempDir,
    debs: tempfile::TempDir,
    root: PathBuf,
    n: std::cell::Cell<u32>,
}

const SENTINEL: &str = "host sentinel: must not change\n";
const SHADOW: &str = "root:!:19000:0:99999:7:::\n";

impl Fixture {
    fn new() -> Fixture {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::write(base.path().join("sentinel"), SENTINEL).unwrap();
        fs::create_dir(base.path().join("etc")).unwrap();
        fs::write(base.path().join("etc/shadow"), SHADOW).unwrap();
        Fixture {
            base,
            debs: tempfile::tempdir().unwrap(),
            root,
            n: std::cell::Cell::new(0),
        }
    }

    fn base(&self) -> &Path {
        self.base.path()
    }

    fn deb(&self, b: &DebBuilder) -> Deb {
        self.n.set(self.n.get() + 1);
        let path = self.debs.path().join(format!("pkg{}.deb", self.n.get()));
        b.write(&path).unwrap();
        Deb::open(&path).unwrap()
    }

    fn extract(&self, b: &DebBuilder) -> Result<ExtractStats, ExtractError> {
        extract_deb(&self.deb(b), &self.root)
    }

    /// The "host" around the rootfs is exactly as created, and no temp file is left.
    fn assert_host_untouched(&self) {
        let mut top: Vec<String> = fs::read_dir(self.base())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        assert_eq!(top, ["etc", "root", "sentinel"]);
        let etc: Vec<_> = fs::read_dir(self.base().join("etc")).unwrap().collect();
        assert_eq!(etc.len(), 1);
        assert_eq!(
            fs::read_to_string(self.base().join("sentinel")).unwrap(),
            SENTINEL
        );
        assert_eq!(
            fs::read_to_string(self.base().join("etc/shadow")).unwrap(),
            SHADOW
        );
        assert_no_temp(&self.root);
    }
}

fn assert_no_temp(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".pistemcell-new"),
            "temp left: {}",
            e.path().display()
        );
        if e.file_type().unwrap().is_dir() {
            assert_no_temp(&e.path());
        }
    }
}

fn pkg() -> DebBuilder {
    let mut b = DebBuilder::new("t", "1", "all");
    b.dir("./", 0o755);
    b
}

fn lstat(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap()
}

fn assert_unsafe(r: Result<ExtractStats, ExtractError>, entry: &str) {
    let e = r.unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            ExtractError::Unsafe { .. } | ExtractError::HardLink { .. }
        ),
        "{msg}"
    );
    assert!(msg.contains(&format!("`{entry}`")), "{msg}");
    assert!(msg.contains(".deb"), "{msg}");
}

#[test]
fn dotdot_entries_are_rejected() {
    let f = Fixture::new();
    for name in ["../sentinel", "./usr/../../sentinel", "./a/..", ".."] {
        let mut b = pkg();
        b.dir("./usr/", 0o755).file(name, b"pwned", 0o644);
        assert_unsafe(f.extract(&b), name);
        f.assert_host_untouched();
    }
    let mut b = pkg();
    b.symlink("./ok", "x").hardlink("./hl", "../sentinel");
    assert_unsafe(f.extract(&b), "./hl");
    f.assert_host_untouched();
}

#[test]
fn absolute_entries_are_rejected() {
    let f = Fixture::new();
    let abs = f.base().join("sentinel").display().to_string();
    let mut b = pkg();
    b.file(&abs, b"pwned", 0o644);
    assert_unsafe(f.extract(&b), &abs);
    let mut b = pkg();
    b.dir("/", 0o777);
    assert_unsafe(f.extract(&b), "/");
    f.assert_host_untouched();
}

#[test]
fn symlinks_planted_by_entries_lead_back_inside_the_root() {
    let f = Fixture::new();
    let base = f.base().display().to_string();
    let base_rel = base.trim_start_matches('/');
    let mut b = pkg();
    b.symlink("./evil", "/")
        .file("./evil/outside-file", b"a", 0o644)
        .symlink("./up", "../../../../../../..")
        .file("./up/sentinel", b"b", 0o644)
        .symlink("./abs", &base)
        .file("./abs/sentinel", b"c", 0o644)
        .dir("./abs/etc/", 0o755)
        .file("./abs/etc/shadow", b"d", 0o644)
        .symlink("./chain", "evil/up/abs")
        .file("./chain/deep", b"e", 0o644);
    let stats = f.extract(&b).unwrap();
    f.assert_host_untouched();
    assert_eq!(fs::read(f.root.join("outside-file")).unwrap(), b"a");
    assert_eq!(fs::read(f.root.join("sentinel")).unwrap(), b"b");
    let inside = f.root.join(base_rel);
    assert_eq!(fs::read(inside.join("sentinel")).unwrap(), b"c");
    assert_eq!(fs::read(inside.join("etc/shadow")).unwrap(), b"d");
    assert_eq!(fs::read(inside.join("deep")).unwrap(), b"e");
    assert_eq!(stats.symlinks, 4);
    // Symlinks are stored as is.
    assert_eq!(fs::read_link(f.root.join("abs")).unwrap(), f.base());
}

#[test]
fn symlinks_already_in_the_rootfs_are_resolved_inside_it() {
    let f = Fixture::new();
    symlink(f.base().join("etc"), f.root.join("etc")).unwrap();
    symlink("../..", f.root.join("usr")).unwrap();
    let mut b = pkg();
    b.file("./etc/shadow", b"x", 0o640)
        .file("./usr/sentinel", b"y", 0o644);
    f.extract(&b).unwrap();
    f.assert_host_untouched();
    let rel = f.base().join("etc/shadow");
    let inside = f.root.join(rel.strip_prefix("/").unwrap());
    assert_eq!(fs::read(inside).unwrap(), b"x");
    assert_eq!(fs::read(f.root.join("sentinel")).unwrap(), b"y");
}

#[test]
fn a_file_replaces_a_symlink_instead_of_following_it() {
    let f = Fixture::new();
    symlink(f.base().join("sentinel"), f.root.join("pre")).unwrap();
    let mut b = pkg();
    b.symlink("./link", &f.base().join("etc/shadow").display().to_string())
        .file("./link", b"replaced", 0o644)
        .file("./pre", b"replaced too", 0o644);
    f.extract(&b).unwrap();
    f.assert_host_untouched();
    assert!(lstat(&f.root.join("link")).is_file());
    assert_eq!(fs::read(f.root.join("link")).unwrap(), b"replaced");
    assert_eq!(fs::read(f.root.join("pre")).unwrap(), b"replaced too");
}

#[test]
fn hard_links_only_to_entries_of_the_same_archive() {
    let f = Fixture::new();
    fs::create_dir(f.root.join("etc")).unwrap();
    fs::write(f.root.join("etc/passwd"), "from another package").unwrap();
    for target in [
        "/etc/shadow",
        "../../etc/shadow",
        "./etc/passwd",
        "./later",
        "",
    ] {
        let mut b = pkg();
        b.dir("./etc/", 0o755)
            .hardlink("./etc/hl", target)
            .file("./later", b"l", 0o644);
        assert_unsafe(f.extract(&b), "./etc/hl");
        f.assert_host_untouched();
        assert!(fs::symlink_metadata(f.root.join("etc/hl")).is_err());
    }
    // A hard link through a symlink to an outside file is refused too.
    symlink(f.base().join("etc"), f.root.join("hostetc")).unwrap();
    let mut b = pkg();
    b.hardlink("./hl2", "./hostetc/shadow");
    assert_unsafe(f.extract(&b), "./hl2");
    // A directory is no hard-link target.
    let mut b = pkg();
    b.dir("./d/", 0o755).hardlink("./hl3", "./d/");
    assert_unsafe(f.extract(&b), "./hl3");
    f.assert_host_untouched();
}

#[test]
fn merged_usr_symlinks_are_followed_and_kept() {
    let f = Fixture::new();
    fs::create_dir_all(f.root.join("usr/bin")).unwrap();
    fs::create_dir_all(f.root.join("usr/lib")).unwrap();
    symlink("usr/bin", f.root.join("bin")).unwrap();
    symlink("/usr/lib", f.root.join("lib")).unwrap();
    let mut b = pkg();
    b.dir("./bin/", 0o755)
        .file("./bin/sh", b"#!shell", 0o755)
        .dir("./lib/", 0o755)
        .dir("./lib/modules/", 0o755)
        .file("./lib/modules/m.ko", b"ko", 0o644)
        .symlink("./bin/rbash", "sh");
    let stats = f.extract(&b).unwrap();
    assert_eq!(fs::read(f.root.join("usr/bin/sh")).unwrap(), b"#!shell");
    assert_eq!(
        fs::read(f.root.join("usr/lib/modules/m.ko")).unwrap(),
        b"ko"
    );
    assert_eq!(
        fs::read_link(f.root.join("usr/bin/rbash")).unwrap(),
        Path::new("sh")
    );
    assert!(lstat(&f.root.join("bin")).file_type().is_symlink());
    assert!(lstat(&f.root.join("lib")).file_type().is_symlink());
    assert_eq!(stats.files, 2);
    assert_eq!(
        stats.paths,
        [
            "/.",
            "/bin",
            "/bin/sh",
            "/lib",
            "/lib/modules",
            "/lib/modules/m.ko",
            "/bin/rbash"
        ]
    );
    f.assert_host_untouched();
}

#[test]
fn conflicts_name_both_sides() {
    let f = Fixture::new();
    fs::write(f.root.join("etc"), "a file").unwrap();
    let mut b = pkg();
    b.dir("./etc/", 0o755);
    let e = f.extract(&b).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ExtractError::Conflict { .. }), "{msg}");
    assert!(msg.contains("`./etc/`") && msg.contains(&f.root.join("etc").display().to_string()));
    assert!(msg.contains("regular file"), "{msg}");

    let mut b = pkg();
    b.file("./etc/x", b"x", 0o644);
    let msg = f.extract(&b).unwrap_err().to_string();
    assert!(
        msg.contains("`./etc/x`") && msg.contains("non-directory parent"),
        "{msg}"
    );

    fs::create_dir_all(f.root.join("full/sub")).unwrap();
    let mut b = pkg();
    b.file("./full", b"x", 0o644);
    let msg = f.extract(&b).unwrap_err().to_string();
    assert!(msg.contains("non-empty directory"), "{msg}");
    assert!(f.root.join("full/sub").is_dir());
    f.assert_host_untouched();
}

#[test]
fn metadata_is_kept() {
    let f = Fixture::new();
    let root_user = is_root();
    let cap: &[u8] = &[
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut b = pkg();
    b.entry(TestEntry::new("./usr/", Kind::Dir, 0o755).mtime(1_000_000))
        .entry(TestEntry::new("./usr/bin/", Kind::Dir, 0o755))
        .entry(TestEntry::new("./usr/bin/su", Kind::File(b"su".to_vec()), 0o4755).owner(0, 0))
        .entry(TestEntry::new("./usr/bin/wall", Kind::File(b"w".to_vec()), 0o2755).owner(0, 5))
        .entry(
            TestEntry::new("./usr/bin/own", Kind::File(b"o".to_vec()), 0o640)
                .owner(1234, 5678)
                .mtime(1_234_567_890),
        )
        .entry(TestEntry::new("./tmp/", Kind::Dir, 0o1777))
        .entry(TestEntry::new("./mail/", Kind::Dir, 0o2775).owner(0, 8))
        .entry(TestEntry::new("./usr/bin/sl", Kind::Symlink(b"su".to_vec()), 0o777).owner(42, 43))
        .hardlink("./usr/bin/su2", "./usr/bin/su")
        .entry(TestEntry::new("./fifo", Kind::Fifo, 0o620))
        .entry(TestEntry::new("./null", Kind::Char(1, 3), 0o666))
        .entry(TestEntry::new("./loop0", Kind::Block(7, 0), 0o660).owner(0, 6))
        .entry(TestEntry::new("./ro/", Kind::Dir, 0o555))
        .file("./ro/inside", b"i", 0o444);
    let xattr = if root_user {
        "security.capability"
    } else {
        "user.test"
    };
    let value = if root_user { cap } else { b"v" };
    b.entry(TestEntry::new("./usr/bin/ping", Kind::File(b"p".to_vec()), 0o755).xattr(xattr, value));
    let stats = f.extract(&b).unwrap();
    let r = &f.root;
    let mode = |p: &str| lstat(&r.join(p)).mode() & 0o7777;
    assert_eq!(mode("usr/bin/su"), 0o4755);
    assert_eq!(mode("usr/bin/wall"), 0o2755);
    assert_eq!(mode("usr/bin/own"), 0o640);
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(mode("mail"), 0o2775);
    assert_eq!(mode("fifo"), 0o620);
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(mode("ro/inside"), 0o444);
    assert!(lstat(&r.join("fifo")).file_type().is_fifo());
    assert_eq!(lstat(&r.join("usr/bin/own")).mtime(), 1_234_567_890);
    assert_eq!(lstat(&r.join("usr")).mtime(), 1_000_000);
    assert_eq!(
        lstat(&r.join("usr/bin")).mtime(),
        build::FIXTURE_MTIME as i64
    );
    assert_eq!(
        lstat(&r.join("usr/bin/sl")).mtime(),
        build::FIXTURE_MTIME as i64
    );
    assert_eq!(
        fs::read_link(r.join("usr/bin/sl")).unwrap(),
        Path::new("su")
    );
    let (a, b2) = (lstat(&r.join("usr/bin/su")), lstat(&r.join("usr/bin/su2")));
    assert_eq!((a.ino(), a.dev()), (b2.ino(), b2.dev()));
    assert_eq!(a.nlink(), 2);
    assert_eq!(stats.hardlinks, 1);
    assert_eq!(stats.bytes, 2 + 1 + 1 + 1 + 1);
    assert_eq!(
        sys::lgetxattr(&r.join("usr/bin/ping"), xattr).unwrap(),
        value
    );
    if root_user {
        let own = lstat(&r.join("usr/bin/own"));
        assert_eq!((own.uid(), own.gid()), (1234, 5678));
        assert_eq!(lstat(&r.join("usr/bin/wall")).gid(), 5);
        assert_eq!(lstat(&r.join("mail")).gid(), 8);
        let sl = lstat(&r.join("usr/bin/sl"));
        assert_eq!((sl.uid(), sl.gid()), (42, 43));
        let null = lstat(&r.join("null"));
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), libc::makedev(1, 3));
        assert_eq!(null.mode() & 0o7777, 0o666);
        let lp = lstat(&r.join("loop0"));
        assert!(lp.file_type().is_block_device());
        assert_eq!((lp.rdev(), lp.gid()), (libc::makedev(7, 0), 6));
        assert_eq!(stats.nodes, 3);
        assert_eq!(stats.skipped_nodes, 0);
        assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
    } else {
        eprintln!("SKIP owner and device-node checks: not running as root");
        assert_eq!(stats.skipped_nodes, 2);
        assert!(!r.join("null").exists());
    }
    f.assert_host_untouched();
    // Let the temporary directory be removed without root.
    fs::set_permissions(r.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn existing_directories_are_kept_and_updated() {
    let f = Fixture::new();
    fs::create_dir_all(f.root.join("etc")).unwrap();
    fs::write(f.root.join("etc/keep"), "k").unwrap();
    fs::set_permissions(f.root.join("etc"), fs::Permissions::from_mode(0o700)).unwrap();
    let mut b = pkg();
    b.dir("./etc/", 0o755).file("./etc/new", b"n", 0o644);
    f.extract(&b).unwrap();
    assert_eq!(lstat(&f.root.join("etc")).mode() & 0o7777, 0o755);
    assert_eq!(fs::read(f.root.join("etc/keep")).unwrap(), b"k");
    // A second package replaces a file atomically and leaves no temp names behind.
    let mut b = pkg();
    b.dir("./etc/", 0o755).file("./etc/new", b"newer", 0o600);
    f.extract(&b).unwrap();
    assert_eq!(fs::read(f.root.join("etc/new")).unwrap(), b"newer");
    assert_eq!(lstat(&f.root.join("etc/new")).mode() & 0o7777, 0o600);
    // Missing parents are created.
    let mut b = DebBuilder::new("t", "1", "all");
    b.file("./a/b/c", b"c", 0o644);
    f.extract(&b).unwrap();
    assert_eq!(fs::read(f.root.join("a/b/c")).unwrap(), b"c");
    f.assert_host_untouched();
}

#[test]
fn every_compression_extracts() {
    for packing in [Packing::None, Packing::Gzip, Packing::Xz, Packing::Zstd] {
        let f = Fixture::new();
        let mut b = pkg();
        b.dir("./usr/", 0o755)
            .file("./usr/x", &[9u8; 70_000], 0o644)
            .compression(packing);
        let stats = f.extract(&b).unwrap();
        assert_eq!((stats.files, stats.bytes), (1, 70_000));
        assert_eq!(fs::read(f.root.join("usr/x")).unwrap(), vec![9u8; 70_000]);
    }
}

#[test]
fn corrupted_and_truncated_debs_are_clear_errors() {
    let f = Fixture::new();
    let mut b = pkg();
    let mut x: u32 = 7;
    let noise: Vec<u8> = (0..50_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    b.dir("./usr/", 0o755)
        .file("./usr/big", &noise, 0o644)
        .file("./usr/after", b"a", 0o644);

    // A data.tar cut in the middle of a file, inside a well-formed ar container.
    let tar = b.data_tar().unwrap();
    let control = b.control_tar().unwrap();
    let cut = &tar[..512 * 3 + 20_000];
    let path = f.debs.path().join("cut.deb");
    let members: [(&str, &[u8]); 3] = [
        ("debian-binary", b"2.0\n"),
        ("control.tar", &control),
        ("data.tar", cut),
    ];
    fs::write(&path, ar_bytes(&members)).unwrap();
    let deb = Deb::open(&path).unwrap();
    let e = extract_deb(&deb, &f.root).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, ExtractError::Deb(DebError::Corrupt { .. })),
        "{msg}"
    );
    assert!(
        msg.contains("cut.deb") && msg.contains("./usr/big"),
        "{msg}"
    );
    assert!(
        !f.root.join("usr/big").exists(),
        "half-written file at the final path"
    );
    f.assert_host_untouched();

    // Compressed: flipped bytes and truncation.
    b.compression(Packing::Xz);
    let bytes = b.to_bytes().unwrap();
    let p = f.debs.path().join("bad.deb");
    for i in (0..bytes.len()).step_by(bytes.len() / 60) {
        let mut bad = bytes.clone();
        bad[i] ^= 0xA5;
        fs::write(&p, &bad).unwrap();
        let res = Deb::open(&p).map_err(ExtractError::from).and_then(|d| {
            let r = tempfile::tempdir().unwrap();
            extract_deb(&d, r.path())
        });
        if let Err(e) = res {
            assert!(e.to_string().contains("bad.deb"), "{e}");
        }
        fs::write(&p, &bytes[..i]).unwrap();
        let res = Deb::open(&p).map_err(ExtractError::from).and_then(|d| {
            let r = tempfile::tempdir().unwrap();
            extract_deb(&d, r.path())
        });
        let e = res.expect_err("a truncated .deb was accepted");
        assert!(e.to_string().contains("bad.deb"), "{e}");
    }
}

#[test]
fn unsupported_entry_types_are_refused() {
    let f = Fixture::new();
    let mut h = tar::Header::new_gnu();
    h.set_path("./vol").unwrap();
    h.set_entry_type(tar::EntryType::new(b'V'));
    h.set_size(0);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    let mut b = pkg();
    b.raw_header(&h, b"");
    let e = f.extract(&b).unwrap_err();
    assert!(
        matches!(e, ExtractError::Unsupported { kind: 'V', .. }),
        "{e}"
    );
    assert!(e.to_string().contains("`vol`"), "{e}");

    // A header whose checksum does not match is a corrupt package.
    let mut bad = h.clone();
    bad.as_mut_bytes()[0] = b'X';
    let mut b = pkg();
    b.raw_header(&bad, b"");
    let e = f.extract(&b).unwrap_err();
    assert!(
        matches!(e, ExtractError::Deb(DebError::Corrupt { .. })),
        "{e}"
    );
    f.assert_host_untouched();
}
