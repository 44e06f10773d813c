//! `pistemcell doctor`: checks the host for everything a build needs; every line that is not
//! `ok` says what to do.

use std::path::Path;

use crate::rootfs::binfmt::{self, Status};
use crate::spec::Resolved;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but slower or with a caveat.
    Warn,
    /// A build will fail until this is fixed.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Severity.
    pub level: Level,
    /// The check's name.
    pub check: &'static str,
    /// What was found and, when not ok, what to do.
    pub message: String,
}

fn finding(level: Level, check: &'static str, message: impl Into<String>) -> Finding {
    Finding {
        level,
        check,
        message: message.into(),
    }
}

/// Minimum free space under the work dir for a bootstrap (bytes).
pub const MIN_FREE: u64 = 4 << 30;

/// Host tools the build needs: (program, Debian package, required?, why).
const TOOLS: &[(&str, &str, bool, &str)] = &[
    (
        "gpgv",
        "gpgv",
        true,
        "verifies the archive's Release signature",
    ),
    ("gpg", "gpg", true, "checks the archive key's fingerprint"),
    (
        "chroot",
        "coreutils",
        true,
        "runs maintainer scripts in the rootfs",
    ),
    (
        "dpkg",
        "dpkg",
        false,
        "unpacks natively (about 1.8x faster than the target's dpkg under emulation)",
    ),
];

/// Runs every check for building `spec` with work dir `work`.
pub fn check(spec: &Resolved, work: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    out.push(if root {
        finding(Level::Ok, "root", "running as root")
    } else {
        finding(Level::Fail, "root", "not root: bootstrap mounts /proc, /sys and /dev in the rootfs and chroots; run with sudo")
    });
    for (prog, pkg, required, why) in TOOLS {
        out.push(match (crate::cmd::find_on_path(prog), required) {
            (Some(p), _) => finding(Level::Ok, "tool", format!("{prog}: {}", p.display())),
            (None, true) => finding(
                Level::Fail,
                "tool",
                format!("{prog} missing ({why}): apt-get install {pkg}"),
            ),
            (None, false) => finding(
                Level::Warn,
                "tool",
                format!("{prog} missing ({why}): apt-get install {pkg}"),
            ),
        });
    }
    if let Some(why) = crate::rootfs::dpkg::host_dpkg_unusable() {
        if crate::cmd::on_path("dpkg") {
            out.push(finding(
                Level::Warn,
                "dpkg",
                format!("{why}; the target's dpkg will run in the chroot instead (slower)"),
            ));
        }
    }
    out.extend(boot_test_check(spec.arch));
    let arch = spec.arch;
    out.push(match binfmt::status(arch) {
        Status::Native => finding(Level::Ok, "emulation", format!("{} binaries run natively on this host", arch.debian())),
        Status::Emulated { interpreter } => {
            finding(Level::Ok, "emulation", format!("{} binaries run under {} (binfmt_misc, fix-binary)", arch.debian(), interpreter.display()))
        }
        Status::NotMounted | Status::NotRegistered | Status::Disabled if qemu_installed(arch) => finding(
            Level::Warn,
            "emulation",
            format!(
                "the {} binfmt handler is not active; bootstrap activates it itself, or run: mount -t binfmt_misc binfmt_misc {} ; update-binfmts --enable {}",
                arch.qemu(),
                binfmt::BINFMT_DIR,
                arch.qemu()
            ),
        ),
        Status::NoFixBinary { interpreter } => finding(
            Level::Fail,
            "emulation",
            format!("{} is registered without the fix-binary flag and cannot run in a chroot: apt-get install qemu-user-static", interpreter.display()),
        ),
        _ => finding(Level::Fail, "emulation", format!("cannot run {} binaries: {}", arch.debian(), binfmt::fix_hint(arch))),
    });
    let key = &spec.keyring;
    if !key.starts_with("http://") && !key.starts_with("https://") {
        out.push(if Path::new(key).is_file() {
            finding(
                Level::Ok,
                "keyring",
                format!("{} archive key: {key}", spec.profile.name),
            )
        } else {
            let pkg = spec
                .profile
                .keyring
                .package
                .as_deref()
                .unwrap_or("the archive's keyring package");
            finding(
                Level::Fail,
                "keyring",
                format!("{key} is missing: apt-get install {pkg}, or set `keyring:` in the spec"),
            )
        });
    }
    if spec.profile.mirror == crate::profile::HOST_APT && spec.mirror.is_none() {
        out.push(
            match crate::mirror::from_host(Path::new("/etc/apt"), &spec.profile.distro, &spec.suite)
            {
                Some(m) => finding(
                    Level::Ok,
                    "mirror",
                    format!(
                        "{} {} from the host's apt sources: {m}",
                        spec.profile.distro, spec.suite
                    ),
                ),
                None => finding(
                    Level::Warn,
                    "mirror",
                    format!(
                        "the host's apt sources have no {} line; pass --mirror URL to bootstrap",
                        spec.suite
                    ),
                ),
            },
        );
    }
    out.extend(inputs_check(spec));
    out.push(disk_check(work));
    out
}

/// The monit and agent inputs: what the built-in stages will need from this host.
fn inputs_check(spec: &Resolved) -> Vec<Finding> {
    use crate::spec::{Agent, MonitFrom};
    let mut out = Vec::new();
    let m = &spec.monit;
    if let MonitFrom::Source(_) = m.from {
        out.push(match crate::steps::monit_build::check_tools(spec.arch) {
            Ok(()) => finding(
                Level::Ok,
                "monit",
                format!(
                    "monit {} from source: the cross toolchain is installed",
                    m.version
                ),
            ),
            Err(e) => finding(Level::Fail, "monit", e.to_string()),
        });
    }
    let a = m.from.artifact();
    if let Some(p) = &a.path {
        if !Path::new(p).is_file() {
            out.push(finding(
                Level::Fail,
                "monit",
                format!("monit.{}.path {p} does not exist", m.from.kind()),
            ));
        }
    }
    out.push(match &spec.agent {
        Err(e) => finding(Level::Fail, "agent", e.clone()),
        Ok(Agent::Binary(b)) => {
            finding(Level::Ok, "agent", format!("agent.binary {}", b.location()))
        }
        Ok(Agent::Source(s)) => match crate::steps::agent_build::check_source(s) {
            Ok(()) => finding(
                Level::Ok,
                "agent",
                format!("bosh-agent source {} and its Go toolchain", s.path),
            ),
            Err(e) => finding(Level::Fail, "agent", e.to_string()),
        },
    });
    out
}

/// What `boot-test` (and `build --boot-test`) needs: qemu for the whole system, qemu-img and
/// qemu-storage-daemon for the overlay, and /dev/fuse for writing the test's files into it.
fn boot_test_check(arch: crate::spec::Arch) -> Vec<Finding> {
    let system = match arch {
        crate::spec::Arch::Arm64 => "qemu-system-aarch64",
        _ => "qemu-system-arm",
    };
    let mut out = Vec::new();
    for (prog, pkg) in [
        (system, "qemu-system-arm"),
        ("qemu-img", "qemu-utils"),
        ("qemu-storage-daemon", "qemu-system-common"),
    ] {
        out.push(match crate::cmd::find_on_path(prog) {
            Some(p) => finding(Level::Ok, "boot-test", format!("{prog}: {}", p.display())),
            None => finding(
                Level::Warn,
                "boot-test",
                format!(
                    "{prog} missing (boot-test boots the stemcell with it): apt-get install {pkg}"
                ),
            ),
        });
    }
    if !Path::new("/dev/fuse").exists() {
        out.push(finding(
            Level::Warn,
            "boot-test",
            "/dev/fuse missing (boot-test writes its settings into the overlay through a FUSE export): modprobe fuse",
        ));
    }
    out
}

fn qemu_installed(arch: crate::spec::Arch) -> bool {
    Path::new("/usr/share/binfmts").join(arch.qemu()).exists()
        || Path::new("/usr/lib/binfmt.d")
            .join(format!("{}.conf", arch.qemu()))
            .exists()
}

fn disk_check(work: &Path) -> Finding {
    let mut probe = work.to_path_buf();
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p.to_path_buf(),
            None => break,
        }
    }
    match free_bytes(&probe) {
        Some(free) if free >= MIN_FREE => finding(Level::Ok, "disk", format!("{:.1} GiB free under {}", gib(free), probe.display())),
        Some(free) => finding(
            Level::Fail,
            "disk",
            format!("only {:.1} GiB free under {} (need {:.0} GiB): free space or pass --work-dir elsewhere", gib(free), probe.display(), gib(MIN_FREE)),
        ),
        None => finding(Level::Warn, "disk", format!("cannot read free space under {}", probe.display())),
    }
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

/// Free bytes on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a properly sized out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_says_what_to_do() {
        let spec = crate::spec::resolve("t".into(), Default::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let found = check(&spec, &dir.path().join("not/yet/created"));
        assert!(
            found
                .iter()
                .any(|f| f.check == "disk" && f.level == Level::Ok),
            "{found:?}"
        );
        for f in found.iter().filter(|f| f.level != Level::Ok) {
            assert!(
                f.message.contains("apt-get")
                    || f.message.contains("run")
                    || f.message.contains("--")
                    || f.message.contains("set"),
                "{f:?}"
            );
        }
    }
}
