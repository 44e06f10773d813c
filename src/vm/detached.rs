//! A VM that outlives the call that started it (the CPI's): qemu daemonizes itself once the
//! VM is set up (`-daemonize`), writing its pid to a file in the VM's directory
//! (`-pidfile`). Later calls find it by that file, and trust a pid only while the process
//! with it is a qemu whose command line names that same pidfile: a pid reused by another
//! process is never signalled.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::qemu::{command, VmConfig};
use super::VmError;

/// The pidfile's name in the VM's directory.
pub const PIDFILE: &str = "qemu.pid";

/// Starts the VM in the background; returns once qemu has daemonized (its setup errors, such
/// as a missing disk or a port in use, are returned with qemu's own message).
pub fn start(c: &VmConfig) -> Result<u32, VmError> {
    let pidfile = c.dir.join(PIDFILE);
    let mut cmd = command(c)?;
    cmd.arg("-daemonize")
        .arg("-pidfile")
        .arg(&pidfile)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let argv = crate::cmd::argv_of(&cmd);
    let out = cmd.output().map_err(|source| crate::cmd::CmdError::Spawn {
        argv: argv.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(VmError::Vm(format!(
            "{argv}: {} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        )));
    }
    running(&c.dir).ok_or_else(|| {
        VmError::Vm(format!(
            "qemu daemonized but {} names no running qemu",
            pidfile.display()
        ))
    })
}

/// The pid of the VM whose directory is `dir`, if it runs.
pub fn running(dir: &Path) -> Option<u32> {
    let pidfile = dir.join(PIDFILE);
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let names_pidfile = args
        .windows(2)
        .any(|w| w[0] == b"-pidfile" && w[1] == pidfile.as_os_str().as_encoded_bytes());
    let is_qemu = args
        .first()
        .and_then(|a| a.rsplit(|b| *b == b'/').next())
        .is_some_and(|exe| exe.starts_with(b"qemu-system-"));
    // A zombie (exited, not yet reaped by its parent) is not running.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let zombie = state
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    (names_pidfile && is_qemu && !zombie).then_some(pid)
}

/// Stops the VM whose directory is `dir`: SIGTERM (qemu flushes its disk images; the guest
/// sees a power cut), then SIGKILL after `grace`. Returns whether a VM was running.
pub fn stop(dir: &Path, grace: Duration) -> Result<bool, VmError> {
    let Some(pid) = running(dir) else {
        return Ok(false);
    };
    // SAFETY: kill(2) on a pid just checked to be our qemu.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let until = Instant::now() + grace;
    while Instant::now() < until && running(dir) == Some(pid) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if running(dir) == Some(pid) {
        // SAFETY: as above.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until && running(dir) == Some(pid) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    match running(dir) {
        Some(p) => Err(VmError::Vm(format!(
            "qemu (pid {p}) of {} did not stop",
            dir.display()
        ))),
        None => Ok(true),
    }
}

/// The pidfile of the VM in `dir`.
pub fn pidfile(dir: &Path) -> PathBuf {
    dir.join(PIDFILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfile_naming_another_process_is_not_a_vm() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(running(dir.path()), None);
        // Our own pid: alive, but not a qemu with this pidfile.
        std::fs::write(pidfile(dir.path()), std::process::id().to_string()).unwrap();
        assert_eq!(running(dir.path()), None);
        assert!(!stop(dir.path(), Duration::from_millis(10)).unwrap());
        std::fs::write(pidfile(dir.path()), "not a pid").unwrap();
        assert_eq!(running(dir.path()), None);
    }
}
