//! The second stage: configuring the extracted packages with dpkg.
//!
//! With `Host` mode the host's own dpkg unpacks natively (`--root`, `--force-architecture`)
//! and runs each maintainer script chrooted into the rootfs (emulated on a foreign host); in
//! `Chroot` mode the target's dpkg runs inside the chroot, emulated throughout. Services are
//! kept from starting by a `policy-rc.d` that exists only while dpkg runs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::progress::Reporter;

/// The environment variable (and value) that defers the initramfs during package installs
/// (see `initramfs`).
pub const DEFER_ENV: (&str, &str) = ("INITRD", "No");

/// Which dpkg runs the second stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The host's dpkg with `--root` (faster: unpacking is native).
    Host,
    /// The target's dpkg inside the chroot.
    Chroot,
}

/// Errors in the second stage.
#[derive(Debug, thiserror::Error)]
pub enum DpkgError {
    /// dpkg could not be started.
    #[error("cannot start dpkg ({argv}): {source}")]
    Spawn {
        /// The command line.
        argv: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// dpkg failed.
    #[error(
        "dpkg failed ({status}) configuring the rootfs; full log: {log}\n  last lines:\n{tail}"
    )]
    Failed {
        /// Exit status.
        status: String,
        /// Path of the full log.
        log: PathBuf,
        /// Last lines of output.
        tail: String,
    },
    /// A file in the rootfs could not be prepared.
    #[error("preparing {path} for dpkg: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `update-initramfs` failed for a kernel.
    #[error("building the initramfs of kernel {version} failed ({status}); full log: {log}\n  last lines:\n{tail}")]
    Initramfs {
        /// The kernel version.
        version: String,
        /// Exit status.
        status: String,
        /// Path of the full log.
        log: PathBuf,
        /// Last lines of output.
        tail: String,
    },
    /// A built initramfs holds what it must not, or cannot be read.
    #[error("checking the initramfs {path}: {source}; the build log of the initramfs is {log}")]
    InitramfsCheck {
        /// The initramfs.
        path: PathBuf,
        /// What is wrong.
        source: super::initramfs_scan::ScanError,
        /// Path of the full log.
        log: PathBuf,
    },
    /// The host toolbox could not be taken out of the rootfs again.
    #[error(
        "removing the host tools from {path}: {source}; delete {path} and run the command again"
    )]
    HostTools {
        /// The toolbox's directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The user pressed Ctrl-C while dpkg ran.
    #[error("interrupted (Ctrl-C) while dpkg ran; the half-configured rootfs was removed, run the command again")]
    Interrupted,
    /// Packages ended up not fully installed.
    #[error("after dpkg, these packages are not installed correctly: {0}; see the dpkg log under the work dir")]
    NotInstalled(String),
}

/// Why the host's dpkg cannot be used for `--root` installs (None when it can).
pub fn host_dpkg_unusable() -> Option<String> {
    if !crate::cmd::on_path("dpkg") {
        return Some("the host has no dpkg".into());
    }
    host_config_unusable(Path::new("/etc/dpkg"))
}

/// Why the dpkg configuration under `etc_dpkg` (`dpkg.cfg`, `dpkg.cfg.d/*`) must not be
/// applied to an image: path excludes strip files, invoke hooks run host commands.
pub fn host_config_unusable(etc_dpkg: &Path) -> Option<String> {
    let mut files = vec![etc_dpkg.join("dpkg.cfg")];
    if let Ok(rd) = std::fs::read_dir(etc_dpkg.join("dpkg.cfg.d")) {
        files.extend(rd.flatten().map(|e| e.path()));
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for l in text.lines().map(str::trim_start) {
            if l.starts_with("path-exclude") {
                return Some(format!(
                    "the host's {} excludes paths (path-exclude) and would strip the image",
                    f.display()
                ));
            }
            if l.starts_with("pre-invoke") || l.starts_with("post-invoke") {
                return Some(format!(
                    "the host's {} runs hooks around dpkg ({l}) that are not meant for the image",
                    f.display()
                ));
            }
        }
    }
    None
}

/// Why the host's dpkg cannot work on this particular rootfs (None when it can). The host's
/// dpkg would look up the owners named in the rootfs's `statoverride` file in the HOST's user
/// database (and abort on a system user only the rootfs has, `_chrony`), so `install` writes
/// them as the rootfs's numeric ids while it runs (`statoverride::Numeric`); a rootfs whose
/// entries name an owner its own passwd or group lacks is configured by its own dpkg.
pub fn host_dpkg_unusable_for(root: &Path) -> Option<String> {
    super::statoverride::Numeric::check(root)
        .err()
        .map(|e| format!("its dpkg-statoverride entries cannot be given to the host's dpkg: {e}"))
}

/// The environment maintainer scripts run with: fixed, never the caller's.
pub fn script_env() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("LC_ALL", "C"),
        ("LANG", "C"),
        ("HOME", "/root"),
        ("DEBIAN_FRONTEND", "noninteractive"),
        ("DEBCONF_NONINTERACTIVE_SEEN", "true"),
        ("DEBIAN_PRIORITY", "critical"),
    ]
}

/// Runs `cmd` to its end and returns its command line, status and output (stdout, then
/// stderr).
pub fn run_captured(
    cmd: &mut Command,
) -> Result<(String, std::process::ExitStatus, String), DpkgError> {
    let argv = crate::cmd::argv_of(cmd);
    let out = cmd.output().map_err(|source| DpkgError::Spawn {
        argv: argv.clone(),
        source,
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((argv, out.status, text))
}

/// Creates an empty dpkg database in `root` (what dpkg needs before the first install).
pub fn init_database(root: &Path) -> Result<(), DpkgError> {
    let db = root.join("var/lib/dpkg");
    for d in ["info", "updates", "parts", "alternatives", "triggers"] {
        let p = db.join(d);
        std::fs::create_dir_all(&p).map_err(|source| DpkgError::Io { path: p, source })?;
    }
    for f in ["status", "available"] {
        let p = db.join(f);
        if !p.exists() {
            std::fs::write(&p, "").map_err(|source| DpkgError::Io { path: p, source })?;
        }
    }
    Ok(())
}

/// `policy-rc.d` that refuses every service start, removed again on drop.
pub struct PolicyRcD {
    path: PathBuf,
}

impl PolicyRcD {
    /// Installs `usr/sbin/policy-rc.d` (exit 101) in `root`.
    pub fn install(root: &Path) -> Result<PolicyRcD, DpkgError> {
        use std::os::unix::fs::PermissionsExt;
        let path = root.join("usr/sbin/policy-rc.d");
        let io = |source| DpkgError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(
            &path,
            "#!/bin/sh\n# installed by pistemcell while packages are configured\nexit 101\n",
        )
        .map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        Ok(PolicyRcD { path })
    }
}

impl Drop for PolicyRcD {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Installs `debs` (paths on the host, in install order) into `root` and configures them.
/// The full dpkg output goes to `log`. `script_path`, when given, is the `PATH` maintainer
/// scripts run with instead of [`script_env`]'s (the host toolbox first: `host_tools`).
pub fn install(
    root: &Path,
    debs: &[PathBuf],
    mode: Mode,
    log: &Path,
    reporter: &Reporter,
    script_path: Option<&str>,
) -> Result<(), DpkgError> {
    let mut staged = Vec::new();
    let mut cmd = match mode {
        Mode::Host => {
            let mut c = Command::new("dpkg");
            // --log: without it the host's dpkg writes the target's history into the host's
            // /var/log/dpkg.log.
            c.arg(format!("--root={}", root.display()))
                .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
                .arg("--force-architecture");
            c
        }
        Mode::Chroot => {
            // The target's dpkg sees the debs through the rootfs's apt cache directory.
            let dir = root.join("var/cache/apt/archives");
            std::fs::create_dir_all(&dir).map_err(|source| DpkgError::Io {
                path: dir.clone(),
                source,
            })?;
            for (i, d) in debs.iter().enumerate() {
                let dest = dir.join(format!("pistemcell-{i:04}.deb"));
                if std::fs::hard_link(d, &dest).is_err() {
                    std::fs::copy(d, &dest).map_err(|source| DpkgError::Io {
                        path: dest.clone(),
                        source,
                    })?;
                }
                staged.push(dest);
            }
            let mut c = Command::new("chroot");
            c.arg(root).arg("dpkg");
            c
        }
    };
    cmd.args([
        "--force-depends",
        "--force-unsafe-io",
        "--force-confdef",
        "--force-confold",
        "--install",
    ]);
    match mode {
        Mode::Host => cmd.args(debs),
        Mode::Chroot => cmd.args(
            staged
                .iter()
                .map(|p| Path::new("/").join(p.strip_prefix(root).unwrap_or(p))),
        ),
    };
    // The initramfs is built once, after dpkg: see `initramfs`.
    cmd.env_clear()
        .envs(script_env())
        .env(DEFER_ENV.0, DEFER_ENV.1);
    let mut header = String::new();
    if let Some(path) = script_path {
        header = format!("maintainer scripts' PATH: {path}\n");
        cmd.env("PATH", path);
    }
    // Maintainer scripts that honour it (py_compile, man-db, ...) write reproducible files.
    match crate::epoch::epoch_for(root) {
        0 => {}
        epoch => {
            cmd.env("SOURCE_DATE_EPOCH", epoch.to_string());
        }
    }
    // The host's dpkg reads the statoverride entries with the host's user database: numeric
    // ids (the rootfs's) while it runs, names again after.
    let numeric = match mode {
        Mode::Host => {
            Some(
                super::statoverride::Numeric::apply(root).map_err(|e| DpkgError::Io {
                    path: root.join(super::statoverride::DB),
                    source: std::io::Error::other(e.to_string()),
                })?,
            )
        }
        Mode::Chroot => None,
    };
    let mut result = run_logged(&mut cmd, log, &header, debs.len() as u64 * 2, reporter);
    if let Some(n) = numeric {
        if let Err(e) = n.restore() {
            result = result.and(Err(DpkgError::Io {
                path: root.join(super::statoverride::DB),
                source: std::io::Error::other(e.to_string()),
            }));
        }
    }
    for p in staged {
        let _ = std::fs::remove_file(p);
    }
    result
}

/// Runs dpkg with its output in `log`, counting "Unpacking"/"Setting up" lines as progress.
fn run_logged(
    cmd: &mut Command,
    log: &Path,
    header: &str,
    steps: u64,
    reporter: &Reporter,
) -> Result<(), DpkgError> {
    let argv = crate::cmd::argv_of(cmd);
    let mut file = std::fs::File::create(log).map_err(|source| DpkgError::Io {
        path: log.to_path_buf(),
        source,
    })?;
    let _ = writeln!(file, "{header}$ {argv}");
    let (reader, writer) = std::io::pipe().map_err(|source| DpkgError::Spawn {
        argv: argv.clone(),
        source,
    })?;
    let writer2 = writer.try_clone().map_err(|source| DpkgError::Spawn {
        argv: argv.clone(),
        source,
    })?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .spawn()
        .map_err(|source| DpkgError::Spawn {
            argv: argv.clone(),
            source,
        })?;
    // The Command keeps the pipe's write ends until they are replaced: drop them so the
    // reader sees end-of-file when dpkg exits.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let bar = reporter.bar("configure", steps, false);
    let started = std::time::Instant::now();
    let mut tail: Vec<String> = Vec::new();
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { break };
        if crate::interrupt::requested() {
            // Ctrl-C reaches dpkg too on a terminal; make sure it stops when only we got it.
            let _ = child.kill();
        }
        let _ = writeln!(file, "[{:>7.2}s] {line}", started.elapsed().as_secs_f64());
        if line.starts_with("Unpacking ") || line.starts_with("Setting up ") {
            bar.inc(1);
            bar.message(&line);
        }
        reporter.detail(&line);
        tail.push(line);
        if tail.len() > 25 {
            tail.remove(0);
        }
    }
    let status = child
        .wait()
        .map_err(|source| DpkgError::Spawn { argv, source })?;
    if !status.success() {
        return Err(DpkgError::Failed {
            status: status.to_string(),
            log: log.to_path_buf(),
            tail: tail.join("\n"),
        });
    }
    bar.finish("all packages configured");
    Ok(())
}

/// Reads `var/lib/dpkg/status`: package name → (version, architecture, status).
pub fn read_status(root: &Path) -> Result<BTreeMap<String, (String, String, String)>, DpkgError> {
    let p = root.join("var/lib/dpkg/status");
    // Read inside the tree, a regular file under the cap: diff reads trees from elsewhere.
    let text = match crate::inside::read_text(
        root,
        "var/lib/dpkg/status",
        crate::untrusted::DPKG_STATUS_MAX,
        "a dpkg database",
    ) {
        Ok(Some(t)) => t,
        Ok(None) => {
            let source = std::io::Error::from(std::io::ErrorKind::NotFound);
            return Err(DpkgError::Io { path: p, source });
        }
        Err(e) => {
            let source = std::io::Error::other(e.to_string());
            return Err(DpkgError::Io { path: p, source });
        }
    };
    let mut out = BTreeMap::new();
    for para in crate::archive::packages::parse_paragraphs(&text) {
        let f = |n: &str| {
            crate::archive::packages::field(&para, n)
                .unwrap_or("")
                .to_string()
        };
        out.insert(f("Package"), (f("Version"), f("Architecture"), f("Status")));
    }
    Ok(out)
}

/// Checks that exactly `expected` is installed, every package in state `install ok installed`.
pub fn verify_installed(root: &Path, expected: &BTreeSet<String>) -> Result<(), DpkgError> {
    let status = read_status(root)?;
    let mut problems = Vec::new();
    for name in expected {
        match status.get(name) {
            None => problems.push(format!("{name} (missing)")),
            Some((_, _, s)) if s != "install ok installed" => {
                problems.push(format!("{name} ({s})"))
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DpkgError::NotInstalled(problems.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_config_with_excludes_or_hooks_is_not_used_for_images() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dpkg.cfg.d")).unwrap();
        std::fs::write(dir.path().join("dpkg.cfg.d/speedup"), "force-unsafe-io\n").unwrap();
        assert_eq!(host_config_unusable(dir.path()), None);
        std::fs::write(
            dir.path().join("dpkg.cfg.d/slim"),
            "path-exclude=/usr/share/doc/*\n",
        )
        .unwrap();
        assert!(host_config_unusable(dir.path())
            .unwrap()
            .contains("path-exclude"));
        std::fs::remove_file(dir.path().join("dpkg.cfg.d/slim")).unwrap();
        std::fs::write(
            dir.path().join("dpkg.cfg"),
            "post-invoke=/usr/local/bin/notify\n",
        )
        .unwrap();
        assert!(host_config_unusable(dir.path()).unwrap().contains("hooks"));
    }

    #[test]
    fn statoverrides_naming_owners_the_rootfs_lacks_need_its_own_dpkg() {
        let root = tempfile::tempdir().unwrap();
        init_database(root.path()).unwrap();
        assert_eq!(host_dpkg_unusable_for(root.path()), None);
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "_chrony:x:101:104::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/group"), "_chrony:x:104:\n").unwrap();
        std::fs::write(
            root.path().join("var/lib/dpkg/statoverride"),
            "_chrony _chrony 750 /var/log/chrony\n",
        )
        .unwrap();
        // Owners the rootfs knows: the host's dpkg gets them as numeric ids.
        assert_eq!(host_dpkg_unusable_for(root.path()), None);
        std::fs::write(
            root.path().join("var/lib/dpkg/statoverride"),
            "_ntp _chrony 750 /var/log/chrony\n",
        )
        .unwrap();
        assert!(host_dpkg_unusable_for(root.path())
            .unwrap()
            .contains("`_ntp`"));
    }

    #[test]
    fn status_is_read_and_incomplete_packages_are_named() {
        let root = tempfile::tempdir().unwrap();
        init_database(root.path()).unwrap();
        std::fs::write(
            root.path().join("var/lib/dpkg/status"),
            "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: armhf\n\nPackage: b\nStatus: install ok half-configured\nVersion: 2\nArchitecture: all\n",
        )
        .unwrap();
        let st = read_status(root.path()).unwrap();
        assert_eq!(
            st["a"],
            ("1".into(), "armhf".into(), "install ok installed".into())
        );
        let want: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let e = verify_installed(root.path(), &want)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("b (install ok half-configured)") && e.contains("c (missing)"),
            "{e}"
        );
    }
}
