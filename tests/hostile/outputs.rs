//! Class 2, overwriting what is not ours: every writer replaces only a regular file or
//! nothing. Devices, directories, FIFOs, sockets and symlinks are refused before any work, and
//! stay what they were.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::common::Case;

/// A small tree to pack.
fn tree(c: &Case) -> PathBuf {
    let t = c.input("tree");
    std::fs::create_dir_all(t.join("etc")).unwrap();
    std::fs::write(t.join("etc/hostname"), "pi\n").unwrap();
    t
}

use super::common::mkfifo;

/// Every kind of destination that is not a regular file, made in the case (device nodes are
/// the host's own: only looked at).
fn hostile_destinations(c: &Case) -> Vec<(PathBuf, &'static str)> {
    let fifo = c.input("fifo");
    mkfifo(&fifo);
    let sock = c.input("sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::mem::forget(listener);
    let dir = c.input("a-dir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep"), "x").unwrap();
    let link = c.input("link.tgz");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    vec![
        (PathBuf::from("/dev/null"), "a character device"),
        (PathBuf::from("/dev/full"), "a character device"),
        (fifo, "a FIFO"),
        (sock, "a socket"),
        (dir, "a directory"),
        (link, "a symlink"),
    ]
}

#[track_caller]
fn unchanged(p: &Path, kind: &str) {
    let m = std::fs::symlink_metadata(p).unwrap();
    let ft = m.file_type();
    let still = match kind {
        "a character device" => ft.is_char_device(),
        "a FIFO" => ft.is_fifo(),
        "a socket" => ft.is_socket(),
        "a directory" => ft.is_dir() && p.join("keep").exists(),
        "a symlink" => ft.is_symlink(),
        _ => false,
    };
    assert!(still, "{} is no longer {kind}", p.display());
}

#[test]
fn pack_refuses_every_destination_that_is_not_a_regular_file() {
    let c = Case::new();
    let t = tree(&c);
    for (dest, kind) in hostile_destinations(&c) {
        let r = c.run(
            &["pack", t.to_str().unwrap(), "-o", dest.to_str().unwrap()],
            Duration::from_secs(30),
        );
        r.fails_with(&[dest.to_str().unwrap(), kind, "not a regular file"]);
        unchanged(&dest, kind);
    }
    // No temporary file was left beside any destination.
    let left: Vec<_> = std::fs::read_dir(c.root().join("in"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".pistemcell"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    c.tmp_is_empty();
}

#[test]
fn image_refuses_every_destination_that_is_not_a_regular_file() {
    let c = Case::new();
    let t = tree(&c);
    for (dest, kind) in hostile_destinations(&c) {
        let r = c.run(
            &[
                "image",
                t.to_str().unwrap(),
                "-o",
                dest.to_str().unwrap(),
                "--rootless",
            ],
            Duration::from_secs(60),
        );
        r.fails_with(&[dest.to_str().unwrap(), kind]);
        unchanged(&dest, kind);
    }
}

#[test]
fn pack_replaces_a_regular_file() {
    let c = Case::new();
    let t = tree(&c);
    let out = c.root().join("out/rootfs.tgz");
    std::fs::write(&out, "an older archive").unwrap();
    let r = c.run(
        &["pack", t.to_str().unwrap(), "-o", out.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(&std::fs::read(&out).unwrap()[..2], &[0x1f, 0x8b]);
}

#[test]
fn bootstrap_refuses_an_output_tree_that_is_not_ours() {
    let c = Case::new();
    let docs = c.input("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("notes.txt"), "mine").unwrap();
    let r = c.run(
        &["bootstrap", "-o", docs.to_str().unwrap()],
        Duration::from_secs(30),
    );
    r.fails_with(&["docs", "not a rootfs pistemcell made"]);
    assert_eq!(
        std::fs::read_to_string(docs.join("notes.txt")).unwrap(),
        "mine"
    );
    // Nothing was started: no work dir was made.
    assert!(!c.root().join("work").exists());
    for (dest, kind) in [
        ("/dev/null", "a character device"),
        ("/etc/hostname", "a regular file"),
    ] {
        let r = c.run(&["bootstrap", "-o", dest], Duration::from_secs(30));
        r.fails_with(&[dest, kind, "not a directory"]);
    }
}

#[test]
fn image_writes_the_trees_fstab_never_the_one_its_symlink_names() {
    let c = Case::new();
    let t = tree(&c);
    let host_fstab = c.input("host-fstab");
    std::fs::write(&host_fstab, "# the host's fstab\n").unwrap();
    std::os::unix::fs::symlink(&host_fstab, t.join("etc/fstab")).unwrap();
    let out = c.root().join("out/disk.img");
    let r = c.run(
        &[
            "image",
            t.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--rootless",
            "--root-mib",
            "16",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(
        std::fs::read_to_string(&host_fstab).unwrap(),
        "# the host's fstab\n"
    );
    let m = std::fs::symlink_metadata(t.join("etc/fstab")).unwrap();
    assert!(m.is_file(), "the tree's fstab is now its own file");
    assert!(std::fs::read_to_string(t.join("etc/fstab"))
        .unwrap()
        .contains("PARTUUID="));
}
