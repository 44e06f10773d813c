//! Resume after kill -9: a build killed in the middle of a stage (in a child process, its
//! whole process group) resumes with the next build and ends with the same tree.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pistemcell::pipeline::{Outcome, RunOptions};
use pistemcell::spec::Infrastructure;
use pistemcell::tarwrite::tree::{tree_manifest, Mtimes};

use super::{build_in, outcomes, partials, Env, HOST};

/// The child half of the kill -9 test: builds when asked to through the environment.
#[test]
fn resume_child() {
    let Some(dir) = std::env::var_os("PISTEMCELL_TEST_RESUME_CHILD") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let opts = RunOptions {
        output: dir.join("work/rootfs"),
        ..Default::default()
    };
    build_in(&dir, Infrastructure::Bakery, opts, false).unwrap();
}

fn resume_stages(e: &Env) {
    e.stage(
        "10-a",
        HOST,
        "mkdir -p \"$ROOTFS/usr/share/a\"\necho a > \"$ROOTFS/usr/share/a/x\"\n",
    );
    e.stage(
        "20-slow",
        HOST,
        "echo partial > \"$ROOTFS/half\"\n\
         if [ -e \"$ROOTFS/../slow-marker\" ]; then touch \"$ROOTFS/../started\"; sleep 60; fi\n\
         echo done > \"$ROOTFS/half\"\nln \"$ROOTFS/half\" \"$ROOTFS/half-link\"\n",
    );
    e.stage(
        "30-c",
        HOST,
        "ln -s half \"$ROOTFS/c\"\nchmod 4711 \"$ROOTFS/half\"\n",
    );
}

#[test]
fn a_build_killed_mid_stage_resumes_and_gives_the_same_tree() {
    // The reference: an uninterrupted build.
    let reference = Env::new();
    resume_stages(&reference);
    reference
        .build(Infrastructure::Bakery, reference.opts())
        .unwrap();

    let e = Env::new();
    resume_stages(&e);
    fs::create_dir_all(e.path("work")).unwrap();
    fs::write(e.path("work/slow-marker"), "").unwrap();
    let log = fs::File::create(e.path("child.log")).unwrap();
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "resume::resume_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PISTEMCELL_TEST_RESUME_CHILD", e.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let t = Instant::now();
    while !e.path("work/started").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the child build never reached 20-slow: {}",
            fs::read_to_string(e.path("child.log")).unwrap_or_default()
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the child build ended early ({status}): {}",
                fs::read_to_string(e.path("child.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the child's process group, which we created.
    assert_eq!(
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) },
        0
    );
    child.wait().unwrap();
    let left = partials(&e.path("work"));
    let tree = left.iter().find(|n| n.starts_with("build."));
    assert!(
        tree.is_some_and(|t| e.path("work").join(t).join("half").exists()),
        "killed mid-stage: {left:?}"
    );
    fs::remove_file(e.path("work/slow-marker")).unwrap();

    let r = e.build(Infrastructure::Bakery, e.opts()).unwrap();
    assert_eq!(
        outcomes(&r),
        [
            ("00-base".into(), Outcome::Cached),
            ("10-a".into(), Outcome::Restored),
            ("20-slow".into(), Outcome::Ran),
            ("30-c".into(), Outcome::Ran),
        ]
    );
    assert!(partials(&e.path("work")).is_empty());
    let left: Vec<_> = fs::read_dir(e.path("cache/stages"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let got = tree_manifest(&e.path("work/rootfs"), Mtimes::Ignore).unwrap();
    let want = tree_manifest(&reference.path("work/rootfs"), Mtimes::Ignore).unwrap();
    assert_eq!(got, want);
    assert!(
        got.iter()
            .any(|l| l.starts_with("/half-link hardlink => /half")),
        "{got:?}"
    );
}
