//! Class 8, `pack`'s edge cases: an output inside the tree, a file as the tree, absurd
//! thread counts.

use std::time::Duration;

use super::common::Case;

#[test]
fn an_output_inside_the_tree_is_refused_and_the_tree_is_untouched() {
    let c = Case::new();
    let t = c.input("tree");
    std::fs::create_dir_all(t.join("sub")).unwrap();
    std::fs::write(t.join("f"), "x").unwrap();
    for out in [t.join("out.tgz"), t.join("sub/out.tgz")] {
        let r = c.run(
            &["pack", t.to_str().unwrap(), "-o", out.to_str().unwrap()],
            Duration::from_secs(30),
        );
        r.fails_with(&["inside", "the output would pack itself"]);
        assert!(!out.exists());
    }
    let mut names: Vec<_> = std::fs::read_dir(&t)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["f", "sub"]);
    // Through a symlinked parent too.
    let alias = c.input("alias");
    std::os::unix::fs::symlink(&t, &alias).unwrap();
    let r = c.run(
        &[
            "pack",
            t.to_str().unwrap(),
            "-o",
            alias.join("out.tgz").to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    r.fails_with(&["the output would pack itself"]);
}

#[test]
fn a_file_or_nothing_as_rootfs_is_refused() {
    let c = Case::new();
    let f = c.input("rootfs.tgz");
    std::fs::write(&f, "not a tree").unwrap();
    let out = c.root().join("out/x.tgz");
    for (rootfs, needle) in [
        (f.to_str().unwrap(), "is a regular file, not a directory"),
        ("/dev/zero", "is a character device, not a directory"),
        ("/nonexistent/tree", "No such file"),
    ] {
        for cmd in ["pack", "image"] {
            let r = c.run(
                &[cmd, rootfs, "-o", out.to_str().unwrap()],
                Duration::from_secs(30),
            );
            r.fails_with(&[needle, "ROOTFS"]);
            assert!(!out.exists());
        }
    }
}

#[test]
fn absurd_thread_counts_are_refused_not_panics() {
    let c = Case::new();
    let t = c.input("tree");
    std::fs::create_dir(&t).unwrap();
    let out = c.root().join("out/x.tgz");
    for n in ["0", "100000", "18446744073709551615", "-1", "many"] {
        let r = c.run(
            &[
                "pack",
                t.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--threads",
                n,
            ],
            Duration::from_secs(30),
        );
        let e = r.stderr();
        // clap's usage error (exit 2) naming the option; never a panic.
        assert_eq!(r.code(), 2, "{e}");
        assert!(
            (e.contains("--threads") || e.contains("'-1'")) && !e.contains("panicked"),
            "{e}"
        );
        assert!(!out.exists());
    }
    let r = c.run(
        &[
            "pack",
            t.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--threads",
            "256",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
}
