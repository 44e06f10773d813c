//! Class 6: a Ctrl-C while the main work is blocked (here: opening a spec FIFO nobody writes,
//! which `<(...)` specs rely on being readable) still ends the run within the grace period,
//! saying so; a second Ctrl-C ends it at once.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::common::Case;

use super::common::mkfifo;

fn blocked(c: &Case) -> std::process::Child {
    let fifo = c.input("spec.yml");
    mkfifo(&fifo);
    let child = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .arg("--work-dir")
        .arg(c.root().join("work"))
        .arg("--cache-dir")
        .arg(c.root().join("cache"))
        .args(["stages", fifo.to_str().unwrap()])
        .env("TMPDIR", c.tmp())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it reach the blocking open.
    std::thread::sleep(Duration::from_millis(500));
    child
}

fn interrupt(child: &std::process::Child) {
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

#[test]
fn an_interrupt_ends_a_blocked_run_after_the_grace_period() {
    let c = Case::new();
    let mut child = blocked(&c);
    let t = Instant::now();
    interrupt(&child);
    let out = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("still running 30 s after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = t.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(out.code(), Some(130), "{err}");
    assert!(err.contains("interrupted, cleaning up"), "{err}");
    assert!(err.contains("still busy 10 s after the interrupt"), "{err}");
    assert!(took >= Duration::from_secs(9), "{took:?}");
}

#[test]
fn a_second_interrupt_ends_a_blocked_run_at_once() {
    let c = Case::new();
    let mut child = blocked(&c);
    interrupt(&child);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    interrupt(&child);
    let out = child.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(out.code(), Some(130));
}
