//! Snapshot round trip: every entry kind a rootfs has survives save and restore.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use pistemcell::pipeline::{self, snapshot::Store};
use pistemcell::tarwrite::tree::{tree_manifest, Mtimes};

use super::is_root;

#[test]
fn snapshot_round_trip_keeps_every_entry_kind() {
    if !is_root() {
        eprintln!("skipped: devices, owners and security.capability need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let r = |p: &str| root.join(p);
    fs::create_dir_all(r("usr/bin")).unwrap();
    fs::create_dir_all(r("empty/nested-empty")).unwrap();
    fs::create_dir_all(r("tmp")).unwrap();
    fs::set_permissions(r("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir_all(r("private")).unwrap();
    fs::set_permissions(r("private"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(r("usr/bin/su"), vec![7u8; 70_000]).unwrap();
    fs::set_permissions(r("usr/bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(r("usr/bin/wall"), "wall").unwrap();
    // (chown clears setgid: owner first, then mode.)
    std::os::unix::fs::chown(r("usr/bin/wall"), Some(0), Some(5)).unwrap();
    fs::set_permissions(r("usr/bin/wall"), fs::Permissions::from_mode(0o2755)).unwrap();
    fs::write(r("usr/bin/ping"), "ping").unwrap();
    // cap_net_raw+ep (VFS_CAP_REVISION_2).
    let cap: [u8; 20] = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    xattr::set(&r("usr/bin/ping"), "security.capability", &cap);
    xattr::set(&r("usr/bin/ping"), "user.note", b"binary\0value");
    xattr::set(&r("private"), "user.dir", b"on a directory");
    fs::write(r("owned"), "").unwrap();
    std::os::unix::fs::chown(r("owned"), Some(1234), Some(5678)).unwrap();
    fs::write(r("big-ids"), "x").unwrap();
    std::os::unix::fs::chown(r("big-ids"), Some(3_000_000), Some(4_000_000)).unwrap();
    std::os::unix::fs::symlink("/usr/bin/su", r("abs-link")).unwrap();
    std::os::unix::fs::symlink("../nowhere", r("usr/dangling")).unwrap();
    std::os::unix::fs::symlink("usr/bin", r("bin")).unwrap();
    for n in ["hard1", "usr/hard2", "usr/bin/hard3"] {
        if n == "hard1" {
            fs::write(r(n), "shared inode").unwrap();
        } else {
            fs::hard_link(r("hard1"), r(n)).unwrap();
        }
    }
    let long_dir = "d".repeat(90) + "/" + &"e".repeat(90);
    fs::create_dir_all(r(&long_dir)).unwrap();
    fs::write(r(&format!("{long_dir}/{}", "f".repeat(120))), "long").unwrap();
    std::os::unix::fs::symlink("t".repeat(150), r("long-target")).unwrap();
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"latin1-\xe9");
        fs::write(root.join(name), "not utf-8").unwrap();
    }
    // (tree_manifest leaves out /dev's contents: the nodes go elsewhere.)
    fs::create_dir_all(r("nodes")).unwrap();
    mknod(&r("nodes/null"), libc::S_IFCHR | 0o666, 1, 3);
    mknod(&r("nodes/loop9"), libc::S_IFBLK | 0o660, 7, 9);
    mknod(&r("fifo"), libc::S_IFIFO | 0o644, 0, 0);
    let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(r("owned"))
        .unwrap()
        .set_modified(old)
        .unwrap();

    let store = Store::open(&dir.path().join("cache")).unwrap();
    let m = pipeline::key::Manifest::new("10-x", Default::default());
    let saved = store.save(&root, &m).unwrap();
    assert!(store.has(&m.key));
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    store.restore(&m.key, "10-x", &out).unwrap();

    let before = tree_manifest(&root, Mtimes::Keep).unwrap();
    let after = tree_manifest(&out, Mtimes::Keep).unwrap();
    assert_eq!(before, after);
    assert_eq!(saved.tar.entries as usize, before.len());
    // The manifest does see what matters (the comparison is not vacuous).
    let has = |needle: &str| before.iter().any(|l| l.contains(needle));
    assert!(has("/usr/bin/su file size=70000"));
    assert!(has("mode=4755") && has("mode=2755") && has("mode=1777"));
    assert!(has("xattr:security.capability=0100000200200000"));
    assert!(has("owner=3000000:4000000"));
    assert!(has("/usr/hard2 hardlink => /hard1"));
    assert!(has("char 1,3") && has("block 7,9") && has(" fifo "));
    assert!(has("mtime=1000000000"));
    assert!(has(&format!("symlink -> {}", "t".repeat(150))));
    let ino = |p: &Path| fs::symlink_metadata(p).unwrap().ino();
    assert_eq!(ino(&out.join("hard1")), ino(&out.join("usr/bin/hard3")));
    assert!(pistemcell::tarwrite::tree::equal_trees(&root, &out, Mtimes::Keep).is_ok());
    // Not vacuous either: a changed mode is a difference.
    fs::set_permissions(out.join("usr/bin/su"), fs::Permissions::from_mode(0o755)).unwrap();
    let diff = pistemcell::tarwrite::tree::equal_trees(&root, &out, Mtimes::Keep).unwrap_err();
    assert!(diff.contains("/usr/bin/su"), "{diff}");
}

fn mknod(path: &Path, mode: u32, major: u32, minor: u32) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode, libc::makedev(major, minor)) };
    assert_eq!(rc, 0, "mknod {}", path.display());
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777)).unwrap();
}

mod xattr {
    use std::path::Path;
    pub fn set(path: &Path, name: &str, value: &[u8]) {
        use std::os::unix::ffi::OsStrExt;
        let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        let n = std::ffi::CString::new(name).unwrap();
        // SAFETY: NUL-terminated strings; value describes a live slice.
        let rc = unsafe {
            libc::lsetxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(rc, 0, "setxattr {name} on {}", path.display());
    }
}
