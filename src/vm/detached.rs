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

/// The console's input socket in a VM's directory (see [`power_off_cleanly`]).
pub const CONSOLE_SOCKET: &str = "console.sock";

/// Powers the VM in `dir` off as cleanly as a guest without a power-button handler allows:
/// Magic SysRq over its serial console (a telnet BREAK, then a key): `s` writes every dirty
/// buffer, `u` remounts every filesystem read-only, `o` powers off, and qemu (`-no-reboot`)
/// exits. What the guest wrote is on its disks; no journal needs replaying. Needs the VM to
/// have been started with `console_input` at [`CONSOLE_SOCKET`], and the guest's
/// `kernel.sysrq` to allow sync, remount and power-off (Debian's default, 438). Waits up to
/// `grace` (each step up to 10 s: a guest that does not answer is given up on); returns
/// whether qemu exited.
pub fn power_off_cleanly(dir: &Path, grace: Duration) -> bool {
    use std::io::{Read, Write};
    let Some(pid) = running(dir) else {
        return true;
    };
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(dir.join(CONSOLE_SOCKET)) else {
        return false;
    };
    if s.set_read_timeout(Some(Duration::from_millis(200)))
        .is_err()
    {
        return false;
    }
    let until = Instant::now() + grace;
    // The console's output is read as it comes (qemu stops taking input from a client that
    // does not read), and each step waits for the kernel to say it is done.
    let mut seen = Vec::new();
    for (key, done) in [
        (b's', "Emergency Sync complete"),
        (b'u', "Emergency Remount complete"),
        (b'o', "reboot: Power down"),
    ] {
        // Telnet's IAC BRK is a serial BREAK to the guest; the key must follow within 5 s.
        let sent = s.write_all(&[0xff, 0xf3]).and_then(|_| {
            std::thread::sleep(Duration::from_millis(200));
            s.write_all(&[key])
        });
        if sent.is_err() {
            break;
        }
        let step = Instant::now() + Duration::from_secs(10);
        seen.clear();
        while Instant::now() < step.min(until) && running(dir) == Some(pid) {
            let mut buf = [0u8; 4096];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if seen.windows(done.len()).any(|w| w == done.as_bytes()) {
                break;
            }
        }
        // A guest that does not answer (not booted yet, SysRq off) is not waited for.
        if !seen.windows(done.len()).any(|w| w == done.as_bytes()) && key != b'o' {
            return running(dir) != Some(pid);
        }
    }
    while Instant::now() < until && running(dir) == Some(pid) {
        std::thread::sleep(Duration::from_millis(100));
    }
    running(dir) != Some(pid)
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
