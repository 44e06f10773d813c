//! Running the target's binaries: natively on a matching ARM host, otherwise through
//! qemu-user registered in binfmt_misc with the fix-binary (`F`) flag, so the emulator works
//! inside a chroot without being copied into it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::spec::Arch;

/// Where the kernel's binfmt_misc interface lives.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// How the host runs the target's binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The host CPU runs them natively.
    Native,
    /// qemu-user is registered, enabled and usable in a chroot.
    Emulated {
        /// The registered interpreter.
        interpreter: PathBuf,
    },
    /// binfmt_misc is not mounted.
    NotMounted,
    /// No handler is registered for the architecture.
    NotRegistered,
    /// A handler is registered but disabled.
    Disabled,
    /// A handler is registered without the fix-binary flag: it will not work in a chroot.
    NoFixBinary {
        /// The registered interpreter.
        interpreter: PathBuf,
    },
}

/// Errors making the target runnable.
#[derive(Debug, thiserror::Error)]
#[error("cannot run {arch} binaries on this {host} host: {reason}")]
pub struct BinfmtError {
    /// The target architecture.
    pub arch: String,
    /// The host architecture.
    pub host: String,
    /// What is wrong and the commands that fix it.
    pub reason: String,
}

/// Whether this host's CPU runs `arch` binaries without emulation.
pub fn native(arch: Arch) -> bool {
    matches!(
        (std::env::consts::ARCH, arch),
        ("aarch64", Arch::Arm64) | ("arm", Arch::Armhf)
    )
}

/// Reads the binfmt_misc state for `arch` under `dir` (normally [`BINFMT_DIR`]).
pub fn status_in(dir: &Path, arch: Arch) -> Status {
    if native(arch) {
        return Status::Native;
    }
    if !dir.join("register").exists() {
        return Status::NotMounted;
    }
    let Ok(text) = std::fs::read_to_string(dir.join(arch.qemu())) else {
        return Status::NotRegistered;
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let interpreter = PathBuf::from(field("interpreter ").unwrap_or_default());
    if text.lines().next() != Some("enabled") {
        Status::Disabled
    } else if !field("flags:").unwrap_or_default().contains('F') {
        Status::NoFixBinary { interpreter }
    } else {
        Status::Emulated { interpreter }
    }
}

/// The binfmt_misc state for `arch` on this host.
pub fn status(arch: Arch) -> Status {
    status_in(Path::new(BINFMT_DIR), arch)
}

/// What a user runs to make `arch` binaries runnable, for messages.
pub fn fix_hint(arch: Arch) -> String {
    format!(
        "run as root: `apt-get install qemu-user-static binfmt-support && mount -t binfmt_misc binfmt_misc {BINFMT_DIR} ; update-binfmts --enable {}` (or `pistemcell doctor`)",
        arch.qemu()
    )
}

/// Makes `arch` binaries runnable, doing the safe host fixes an installed qemu-user-static
/// would do at boot (mount binfmt_misc, enable its handler). Returns a line saying what was done.
pub fn ensure(arch: Arch) -> Result<Option<String>, BinfmtError> {
    let err = |reason: String| BinfmtError {
        arch: arch.debian().into(),
        host: std::env::consts::ARCH.into(),
        reason,
    };
    let mut did = Vec::new();
    if status(arch) == Status::NotMounted {
        sys_mount::Mount::builder()
            .fstype("binfmt_misc")
            .mount("binfmt_misc", BINFMT_DIR)
            .map_err(|e| {
                err(format!(
                    "binfmt_misc is not mounted and mounting it failed ({e}); {}",
                    fix_hint(arch)
                ))
            })?;
        did.push(format!("mounted binfmt_misc on {BINFMT_DIR}"));
    }
    if matches!(status(arch), Status::NotRegistered | Status::Disabled) {
        register(arch).map_err(|reason| err(format!("{reason}; {}", fix_hint(arch))))?;
        did.push(format!("enabled the {} binfmt handler", arch.qemu()));
    }
    match status(arch) {
        Status::Native | Status::Emulated { .. } => Ok((!did.is_empty()).then(|| did.join(", "))),
        Status::NoFixBinary { interpreter } => Err(err(format!(
            "the {} handler ({}) lacks the fix-binary flag, so it cannot run inside a chroot; install qemu-user-static (its handlers have it) instead of qemu-user",
            arch.qemu(),
            interpreter.display()
        ))),
        other => Err(err(format!("binfmt state is {other:?}; {}", fix_hint(arch)))),
    }
}

/// Registers the qemu handler from update-binfmts or the systemd binfmt.d file.
fn register(arch: Arch) -> Result<(), String> {
    let name = arch.qemu();
    if crate::cmd::on_path("update-binfmts") && Path::new("/usr/share/binfmts").join(name).exists()
    {
        return crate::cmd::run(Command::new("update-binfmts").args(["--enable", name]))
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    let conf = Path::new("/usr/lib/binfmt.d").join(format!("{name}.conf"));
    let line = std::fs::read_to_string(&conf).map_err(|_| {
        format!(
            "no {name} handler is installed (neither update-binfmts nor {})",
            conf.display()
        )
    })?;
    std::fs::write(Path::new(BINFMT_DIR).join("register"), line.trim())
        .map_err(|e| format!("registering {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_handler_state() {
        if native(Arch::Armhf) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(status_in(dir.path(), Arch::Armhf), Status::NotMounted);
        std::fs::write(dir.path().join("register"), "").unwrap();
        assert_eq!(status_in(dir.path(), Arch::Armhf), Status::NotRegistered);
        std::fs::write(
            dir.path().join("qemu-arm"),
            "disabled\ninterpreter /q\nflags: PF\n",
        )
        .unwrap();
        assert_eq!(status_in(dir.path(), Arch::Armhf), Status::Disabled);
        std::fs::write(
            dir.path().join("qemu-arm"),
            "enabled\ninterpreter /q\nflags: P\n",
        )
        .unwrap();
        assert!(matches!(
            status_in(dir.path(), Arch::Armhf),
            Status::NoFixBinary { .. }
        ));
        std::fs::write(
            dir.path().join("qemu-arm"),
            "enabled\ninterpreter /q\nflags: PF\n",
        )
        .unwrap();
        assert_eq!(
            status_in(dir.path(), Arch::Armhf),
            Status::Emulated {
                interpreter: "/q".into()
            }
        );
    }
}
