//! Ctrl-C handling: the first signal sets a flag that long loops check, so RAII guards
//! (mounts, temp dirs) are released on the way out; a second signal exits at once. When the
//! run has not finished within [`GRACE`] (a read blocked on a child's quiet output, or on a
//! stalled input, never reaches a check), its child processes are stopped so such a read
//! ends and the cleanup can run; if it still has not finished [`AFTER_CHILDREN`] later, or had
//! no children to stop, it exits anyway. The next run sweeps what was left.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How long the first interrupt waits for the run to wind down on its own.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long it then waits, once the run's child processes are stopped, before exiting.
pub const AFTER_CHILDREN: std::time::Duration = std::time::Duration::from_secs(20);

/// The build was interrupted by the user.
#[derive(Debug, thiserror::Error)]
#[error("interrupted (Ctrl-C); mounts and temporary files were released, run the command again to continue")]
pub struct Interrupted;

/// Installs the SIGINT/SIGTERM handler (once per process; later calls are ignored).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!(
                "pistemcell: second interrupt, exiting now; the next run sweeps what was left"
            );
            std::process::exit(130);
        }
        eprintln!("pistemcell: interrupted, cleaning up (press Ctrl-C again to exit at once)");
        // If the main work is stuck where no check is reached, leave anyway after the grace
        // period; a watchdog thread waits, so a second Ctrl-C is still handled at once.
        let _ = std::thread::Builder::new().spawn(|| {
            std::thread::sleep(GRACE);
            let stopped = stop_descendants();
            if stopped > 0 {
                eprintln!(
                    "pistemcell: still busy {} s after the interrupt: stopped its {stopped} child processes so it can clean up",
                    GRACE.as_secs()
                );
                std::thread::sleep(AFTER_CHILDREN);
            }
            eprintln!(
                "pistemcell: still busy {} s after the interrupt (a blocked read?), exiting now; the next run sweeps what was left",
                (GRACE + if stopped > 0 { AFTER_CHILDREN } else { Default::default() }).as_secs()
            );
            std::process::exit(130);
        });
    });
}

/// Kills (SIGKILL) every descendant of this process, found through /proc; returns how many.
/// Grandchildren too: a maintainer script holds its parent's output pipe open.
fn stop_descendants() -> usize {
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut parent = std::collections::HashMap::new();
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`: COMM may hold spaces and parentheses.
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            parent.insert(pid, ppid);
        }
    }
    let is_descendant = |mut pid: i32| {
        for _ in 0..64 {
            match parent.get(&pid) {
                Some(&p) if p == me => return true,
                Some(&p) if p > 1 => pid = p,
                _ => return false,
            }
        }
        false
    };
    let mut n = 0;
    for &pid in parent.keys() {
        if pid != me && is_descendant(pid) {
            // SAFETY: kill with a pid read from /proc; one gone since is ESRCH, harmless.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            n += 1;
        }
    }
    n
}

/// Whether an interrupt has been received.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Returns `Err(Interrupted)` once an interrupt has been received.
pub fn check() -> Result<(), Interrupted> {
    if requested() {
        Err(Interrupted)
    } else {
        Ok(())
    }
}
