//! Ctrl-C handling: the first signal sets a flag that long loops check, so RAII guards
//! (mounts, temp dirs) are released on the way out; a second signal exits at once, and so
//! does the first when the process has not finished within [`GRACE`] (a read blocked on a
//! slow or stalled input never reaches a check). The next run sweeps what either left.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How long the first interrupt waits for the run to wind down before exiting anyway.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

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
            eprintln!(
                "pistemcell: still busy {} s after the interrupt (a blocked read?), exiting now; the next run sweeps what was left",
                GRACE.as_secs()
            );
            std::process::exit(130);
        });
    });
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
