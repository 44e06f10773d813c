//! Class 1, data loss: `clean` and every command that opens a work dir or cache deletes only
//! in a directory carrying pistemcell's marker, and never in `/`, `$HOME` or a system
//! directory, whatever it holds.

use std::path::Path;
use std::process::{Command, Output};

use super::common::Case;

const WORK_MARKER: &str = ".pistemcell-work-dir";
const CACHE_MARKER: &str = ".pistemcell-cache";

/// A directory of someone's files.
fn precious(dir: &Path) {
    std::fs::create_dir_all(dir.join("thesis")).unwrap();
    std::fs::write(dir.join("thesis/chapter1.tex"), "years of work").unwrap();
    std::fs::write(dir.join(".bashrc"), "alias ll='ls -l'").unwrap();
}

#[track_caller]
fn intact(dir: &Path) {
    assert_eq!(
        std::fs::read_to_string(dir.join("thesis/chapter1.tex")).unwrap(),
        "years of work"
    );
    assert!(dir.join(".bashrc").exists());
    // Not even a lock file or a marker was left in it.
    assert!(!dir.join(".lock").exists());
    assert!(!dir.join(WORK_MARKER).exists() && !dir.join(CACHE_MARKER).exists());
}

/// `pistemcell ARGS` with the given environment and working directory, nothing else set.
fn raw(args: &[&str], env: &[(&str, &Path)], cwd: &Path) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pistemcell"));
    c.args(args)
        .current_dir(cwd)
        .env_remove("PISTEMCELL_WORK_DIR")
        .env_remove("PISTEMCELL_CACHE_DIR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[track_caller]
fn refused(o: &Output, needles: &[&str]) {
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    for n in needles {
        assert!(e.contains(n), "stderr lacks `{n}`: {e}");
    }
}

#[test]
fn clean_refuses_a_work_dir_without_the_marker() {
    let c = Case::new();
    let docs = c.input("docs");
    precious(&docs);
    let r = c.run(
        &["clean", "--work-dir", docs.to_str().unwrap()],
        std::time::Duration::from_secs(30),
    );
    r.fails_with(&[
        "docs",
        "no .pistemcell-work-dir marker",
        "nothing in it was touched",
    ]);
    intact(&docs);
}

#[test]
fn clean_refuses_the_current_directory_given_as_dot() {
    let c = Case::new();
    let docs = c.input("project");
    precious(&docs);
    let o = raw(&["clean", "--work-dir", "."], &[], &docs);
    refused(&o, &["project", WORK_MARKER]);
    intact(&docs);
}

#[test]
fn clean_refuses_home_from_the_environment_even_with_a_marker() {
    let c = Case::new();
    let home = c.input("home");
    precious(&home);
    // Someone once ran a build there: the marker alone does not make $HOME ours.
    std::fs::write(home.join(WORK_MARKER), "").unwrap();
    let o = raw(
        &["clean"],
        &[("HOME", &home), ("PISTEMCELL_WORK_DIR", &home)],
        c.root(),
    );
    refused(&o, &["your home directory", "--work-dir"]);
    assert!(home.join("thesis/chapter1.tex").exists() && home.join(".bashrc").exists());
    // A parent of $HOME is refused the same way.
    let o = raw(
        &["clean", "--work-dir", c.root().join("in").to_str().unwrap()],
        &[("HOME", &home)],
        c.root(),
    );
    refused(&o, &["holding your home directory"]);
}

#[test]
fn clean_refuses_the_root_and_system_directories() {
    let c = Case::new();
    for dir in ["/", "/usr", "/etc", "/var/tmp"] {
        let o = raw(&["clean", "--work-dir", dir], &[], c.root());
        refused(&o, &["refused, it is"]);
        let o = raw(&["clean", "--cache", "--cache-dir", dir], &[], c.root());
        refused(&o, &["refused, it is"]);
    }
}

#[test]
fn clean_cache_refuses_an_unmarked_cache_before_touching_the_work_dir() {
    let c = Case::new();
    let work = c.root().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join(WORK_MARKER), "").unwrap();
    std::fs::write(work.join("old-log"), "x").unwrap();
    let cache = c.root().join("cache");
    precious(&cache);
    let r = c.run(&["clean", "--cache"], std::time::Duration::from_secs(30));
    r.fails_with(&["cache", "no .pistemcell-cache marker"]);
    intact(&cache);
    // Both are checked before either is emptied.
    assert!(work.join("old-log").exists());
    // `--keep N` evicts from the cache: refused the same way.
    let r = c.run(
        &["clean", "--keep", "1"],
        std::time::Duration::from_secs(30),
    );
    r.fails_with(&["no .pistemcell-cache marker"]);
    intact(&cache);
}

#[test]
fn a_marker_that_is_not_a_regular_file_does_not_count() {
    let c = Case::new();
    let docs = c.input("docs");
    precious(&docs);
    std::os::unix::fs::symlink("/etc/hostname", docs.join(WORK_MARKER)).unwrap();
    let r = c.run(
        &["clean", "--work-dir", docs.to_str().unwrap()],
        std::time::Duration::from_secs(30),
    );
    r.fails_with(&["no .pistemcell-work-dir marker"]);
    assert!(docs.join("thesis/chapter1.tex").exists());
}

#[test]
fn a_build_refuses_a_work_dir_or_cache_that_is_not_ours_before_writing_anything() {
    let c = Case::new();
    let docs = c.input("docs");
    precious(&docs);
    let r = c.run(
        &["bootstrap", "--work-dir", docs.to_str().unwrap()],
        std::time::Duration::from_secs(30),
    );
    r.fails_with(&["work dir", "no .pistemcell-work-dir marker"]);
    intact(&docs);
}

#[test]
fn clean_empties_a_marked_work_dir_and_keeps_the_marker() {
    let c = Case::new();
    let work = c.root().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join(WORK_MARKER), "").unwrap();
    std::fs::create_dir_all(work.join("rootfs/etc")).unwrap();
    std::fs::write(work.join("rootfs/etc/passwd"), "root:x:0:0").unwrap();
    let r = c.run(&["clean"], std::time::Duration::from_secs(30));
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let left: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock")
        .collect();
    assert_eq!(left, [WORK_MARKER]);
    // A new, empty directory becomes a work dir: the marker is written.
    let fresh = c.root().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let r = c.run(
        &["clean", "--work-dir", fresh.to_str().unwrap()],
        std::time::Duration::from_secs(30),
    );
    // Cleaning an unmarked empty directory is refused too (it was never ours).
    r.fails_with(&["exists, with no .pistemcell-work-dir marker"]);
}
