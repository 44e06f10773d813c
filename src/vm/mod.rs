//! The VM layer that `boot-test` (with the deploy proof) and the CPI share: a stemcell's disk
//! read into scratch (`disk`), the copy-on-write overlay a VM boots and the files written into
//! it before power-on (`overlay`), the agent's settings (`settings`), the qemu command line and the VM as a guard (`qemu`), a VM
//! that outlives the call that started it (`detached`), and following the logs a VM writes
//! (`follow`).

pub mod detached;
pub mod disk;
pub mod follow;
pub mod overlay;
pub mod qemu;
pub mod settings;

use std::path::PathBuf;

/// Why a stemcell could not be read, an overlay written, or a VM started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The stemcell cannot be read as a disk stemcell.
    #[error("stemcell {path}: {msg}")]
    Stemcell {
        /// The stemcell.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The boot partition lacks what the VM boots.
    #[error("the image's boot partition: {0}")]
    BootPartition(String),
    /// Writing files into the overlay failed.
    #[error("the overlay: {0}")]
    Overlay(String),
    /// The image or architecture is of a kind the VM layer cannot boot.
    #[error("cannot boot this image: {0}")]
    Unsupported(String),
    /// The VM could not be started or stopped.
    #[error("the VM: {0}")]
    Vm(String),
    /// An external tool failed.
    #[error(transparent)]
    Cmd(#[from] crate::cmd::CmdError),
    /// The user pressed Ctrl-C.
    #[error(transparent)]
    Interrupted(#[from] crate::interrupt::Interrupted),
}

/// `n` random bytes as hex, from the kernel's random source: VM ids, agent ids, mbus passwords.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let got = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if got < n as isize {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mixed = format!("{t:x}{:x}", std::process::id());
        return mixed.chars().rev().take(2 * n).collect();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}
