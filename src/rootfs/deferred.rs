//! Commands maintainer scripts run more than once per dpkg run, run once after it instead.
//! `update-ca-certificates` is the one that costs: ca-certificates' postinst runs it with
//! `--fresh` and then again from its own trigger, each time forking a few processes per
//! certificate (about 30 s together under qemu-user). While dpkg runs, the command is diverted
//! (`dpkg-divert --local --rename`) and a stub records each call; afterwards the diversion is
//! removed and, if it was called, the real command runs once (`--fresh` if any call asked for
//! it), with the host's tools where the rootfs is foreign.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::dpkg::{run_captured, script_env, DpkgError, Mode};
use super::host_tools::{script_command, HostTools};

/// The commands deferred, as absolute paths inside the rootfs.
pub const COMMANDS: &[&str] = &["/usr/sbin/update-ca-certificates"];
/// Where the stubs record their calls, inside the rootfs.
const CALLS_DIR: &str = ".pistemcell-deferred";
/// The suffix the real command is renamed to while it is diverted.
const DIVERTED: &str = ".pistemcell-real";

/// The diversions in place for one dpkg run; [`Deferred::finish`] removes them and runs what
/// was asked for.
#[derive(Debug)]
pub struct Deferred {
    root: PathBuf,
    mode: Mode,
    active: bool,
    had_old_diversions: bool,
}

impl Deferred {
    /// Diverts every deferred command in `root` and puts a stub in its place.
    pub fn install(root: &Path, mode: Mode) -> Result<Deferred, DpkgError> {
        let calls = root.join(CALLS_DIR);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DpkgError::Io { path, source }
        };
        std::fs::create_dir_all(&calls).map_err(io(&calls))?;
        let d = Deferred {
            root: root.to_path_buf(),
            mode,
            active: true,
            had_old_diversions: root.join("var/lib/dpkg/diversions-old").exists(),
        };
        for c in COMMANDS {
            divert(
                root,
                mode,
                &["--add", "--divert", &format!("{c}{DIVERTED}"), c],
            )?;
            let stub = root.join(c.trim_start_matches('/'));
            let name = c.rsplit('/').next().unwrap_or(c);
            let text = format!(
                "#!/bin/sh\n# pistemcell: runs once after the packages are configured\n\
                 echo \"$*\" >> /{CALLS_DIR}/{name}\n"
            );
            write_exec(&stub, &text).map_err(io(&stub))?;
        }
        Ok(d)
    }

    /// Removes the stubs and diversions, then runs each command that was called, once, with
    /// `tools` where given. Its output is appended to `log`.
    pub fn finish(
        mut self,
        tools: Option<&HostTools>,
        log: &Path,
    ) -> Result<Vec<String>, DpkgError> {
        self.active = false;
        let mut ran = Vec::new();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| DpkgError::Io {
                path: log.to_path_buf(),
                source,
            })?;
        for c in COMMANDS {
            let stub = self.root.join(c.trim_start_matches('/'));
            let _ = std::fs::remove_file(&stub);
            divert(&self.root, self.mode, &["--remove", c])?;
            let name = c.rsplit('/').next().unwrap_or(c);
            let record = self.root.join(CALLS_DIR).join(name);
            let Ok(calls) = std::fs::read_to_string(&record) else {
                continue;
            };
            // The real command is back in its place (it may have been removed meanwhile).
            if !stub.exists() {
                continue;
            }
            let fresh = calls.split_whitespace().any(|a| a == "--fresh");
            let mut cmd = script_command(&self.root, tools, c);
            if fresh {
                cmd.arg("--fresh");
            }
            let (argv, status, text) = run_captured(&mut cmd)?;
            let _ = writeln!(
                file,
                "$ {argv}   (deferred; maintainer scripts asked {} time(s): {})\n{text}",
                calls.lines().count(),
                calls.lines().collect::<Vec<_>>().join(" | ")
            );
            if !status.success() {
                return Err(DpkgError::Failed {
                    status: format!("{argv}: {status}"),
                    log: log.to_path_buf(),
                    tail: crate::cmd::tail(&text, 25),
                });
            }
            ran.push(name.to_string());
        }
        // The diversion database is as it was: dpkg-divert leaves a backup of it.
        if !self.had_old_diversions {
            let _ = std::fs::remove_file(self.root.join("var/lib/dpkg/diversions-old"));
        }
        let calls = self.root.join(CALLS_DIR);
        std::fs::remove_dir_all(&calls).map_err(|source| DpkgError::Io {
            path: calls,
            source,
        })?;
        Ok(ran)
    }

    /// Whether any deferred command was called during the dpkg run.
    pub fn called(&self) -> bool {
        std::fs::read_dir(self.root.join(CALLS_DIR)).is_ok_and(|mut d| d.next().is_some())
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        for c in COMMANDS {
            let _ = std::fs::remove_file(self.root.join(c.trim_start_matches('/')));
            let _ = divert(&self.root, self.mode, &["--remove", c]);
        }
        let _ = std::fs::remove_dir_all(self.root.join(CALLS_DIR));
    }
}

/// Runs `dpkg-divert --local --rename ARGS` on `root`: the host's with `--root`, or the
/// target's in the chroot.
fn divert(root: &Path, mode: Mode, args: &[&str]) -> Result<(), DpkgError> {
    let mut cmd = match mode {
        Mode::Host => {
            let mut c = Command::new("dpkg-divert");
            c.arg(format!("--root={}", root.display()));
            c
        }
        Mode::Chroot => {
            let mut c = Command::new("chroot");
            c.arg(root).arg("dpkg-divert");
            c
        }
    };
    cmd.args(["--local", "--rename", "--quiet"])
        .args(args)
        .env_clear()
        .envs(script_env());
    let argv = crate::cmd::argv_of(&cmd);
    let out = cmd.output().map_err(|source| DpkgError::Spawn {
        argv: argv.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(DpkgError::Failed {
            status: format!("{argv}: {}", out.status),
            log: PathBuf::from("(none)"),
            tail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

/// Writes an executable script (mode 0755), creating its directory.
fn write_exec(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}
