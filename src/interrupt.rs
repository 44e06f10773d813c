//! Ctrl-C handling: the first signal sets a flag that long loops check, so RAII guards
//! (mounts, temp dirs) are released on the way out; a second signal exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

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
