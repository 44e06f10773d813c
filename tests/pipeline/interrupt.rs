//! Ctrl-C that reaches only pistemcell (not its process group) while a stage's script runs
//! quietly: the read of the script's output never returns on its own, so after the grace
//! period the run stops its child processes, cleans up (no partial tree, no mounts) and ends
//! with the interrupt error, well before the script would have finished.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pistemcell::pipeline::RunOptions;
use pistemcell::spec::Infrastructure;

use super::{build_in, partials, Env, HOST};

/// The child half: installs the Ctrl-C handler and builds; exit 3 when interrupted.
#[test]
fn interrupt_child() {
    let Some(dir) = std::env::var_os("PISTEMCELL_TEST_INTERRUPT_CHILD") else {
        return;
    };
    pistemcell::interrupt::install();
    let dir = PathBuf::from(dir);
    let opts = RunOptions {
        output: dir.join("work/rootfs"),
        ..Default::default()
    };
    match build_in(&dir, Infrastructure::Bakery, opts, false) {
        Err(e) if e.to_string().contains("interrupted") => std::process::exit(3),
        other => {
            eprintln!("not interrupted: {other:?}");
            std::process::exit(4)
        }
    }
}

#[test]
fn an_interrupt_during_a_quiet_script_stops_it_and_cleans_up() {
    let e = Env::new();
    e.stage("10-a", HOST, "echo a > \"$ROOTFS/a\"\n");
    // Quiet for two minutes: nothing for the run's read of its output to return.
    e.stage(
        "20-quiet",
        HOST,
        "touch \"$ROOTFS/../started\"\nsleep 120\n",
    );
    let log = fs::File::create(e.path("child.log")).unwrap();
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "interrupt::interrupt_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PISTEMCELL_TEST_INTERRUPT_CHILD", e.dir.path())
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
            "never reached 20-quiet"
        );
        if let Ok(Some(s)) = child.try_wait() {
            panic!(
                "ended early ({s}): {}",
                fs::read_to_string(e.path("child.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Only the build process gets it, as when `kill -INT` names its pid.
    let t = Instant::now();
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(60) {
            // SAFETY: kill(2) on the child's process group, which we created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            panic!("still running 60 s after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = fs::read_to_string(e.path("child.log")).unwrap_or_default();
    assert_eq!(status.code(), Some(3), "{text}");
    assert!(
        text.contains("child processes so it can clean up"),
        "{text}"
    );
    assert!(partials(&e.path("work")).is_empty(), "{text}");
    assert!(!e.path("work/rootfs").exists());
}
