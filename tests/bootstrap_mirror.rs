//! End-to-end: `pistemcell bootstrap` against a real Debian mirror installs exactly what
//! `debootstrap --variant=minbase` installs (name, version, architecture, state `ii`), the
//! rootfs runs `/bin/true`, and `apt-get update` works inside it.
//!
//! Needs root, a reachable mirror (`PISTEMCELL_TEST_MIRROR`, else the host's apt sources),
//! debootstrap and qemu-user-static; each missing piece skips the test with the reason.
//! `PISTEMCELL_SKIP_MIRROR_TESTS=1` skips it on purpose (it takes several minutes).

mod support;

use std::path::Path;
use std::process::Command;

use pistemcell::rootfs::mounts::ChrootMounts;

fn skip(reason: &str) {
    eprintln!("SKIPPED bootstrap_mirror: {reason}");
}

/// `name version arch state` for every package in a rootfs's dpkg database.
fn installed(root: &Path) -> Vec<String> {
    let out = support::sh(
        Command::new("dpkg-query")
            .arg(format!("--admindir={}/var/lib/dpkg", root.display()))
            .args([
                "-W",
                "-f",
                "${Package} ${Version} ${Architecture} ${db:Status-Abbrev}\n",
            ]),
    );
    let mut v: Vec<String> = out.lines().map(|l| l.trim_end().to_string()).collect();
    v.sort();
    v
}

#[test]
fn bootstrap_matches_debootstrap_minbase_for_armhf_and_arm64() {
    let Some(mirror) = support::mirror_for_e2e("bootstrap_mirror") else {
        return;
    };
    if !pistemcell::cmd::on_path("debootstrap") {
        return skip("debootstrap is not installed (apt-get install debootstrap)");
    }
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // The download cache survives between test runs (it is content-addressed and verified).
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mirror-cache");
    let host_log = || std::fs::metadata("/var/log/dpkg.log").map(|m| m.len()).ok();
    for arch in ["armhf", "arm64"] {
        let ours = tmp.path().join(format!("ours-{arch}"));
        let host_log_before = host_log();
        let out = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
            .arg("--work-dir")
            .arg(tmp.path().join("work"))
            .arg("--cache-dir")
            .arg(&cache)
            .args([
                "--mirror",
                &mirror,
                "--set",
                &format!("architecture={arch}"),
                "bootstrap",
                "--output",
            ])
            .arg(&ours)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pistemcell bootstrap {arch} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );

        assert_eq!(
            host_log(),
            host_log_before,
            "the host's dpkg log must not record the target's packages"
        );
        assert!(
            ours.join("var/log/dpkg.log").is_file(),
            "the rootfs keeps its own dpkg log"
        );

        let theirs = tmp.path().join(format!("debootstrap-{arch}"));
        support::sh(
            Command::new("debootstrap")
                .args(["--variant=minbase", &format!("--arch={arch}"), "bookworm"])
                .arg(&theirs)
                .arg(&mirror),
        );
        let (a, b) = (installed(&ours), installed(&theirs));
        let only_ours: Vec<_> = a.iter().filter(|x| !b.contains(x)).collect();
        let only_theirs: Vec<_> = b.iter().filter(|x| !a.contains(x)).collect();
        assert!(
            only_ours.is_empty() && only_theirs.is_empty(),
            "{arch}: only pistemcell: {only_ours:?}\nonly debootstrap: {only_theirs:?}"
        );
        assert!(a.iter().all(|l| l.ends_with(" ii")), "{arch}: {a:?}");
        assert!(a.len() > 50, "{arch}: a minbase has more than 50 packages");

        support::sh(Command::new("chroot").arg(&ours).arg("/bin/true"));

        // apt inside the image works against the same mirror.
        let sources = std::fs::read_to_string(ours.join("etc/apt/sources.list")).unwrap();
        assert!(
            sources.starts_with("deb ") && sources.contains(" bookworm main"),
            "{sources}"
        );
        std::fs::write(
            ours.join("etc/apt/sources.list"),
            format!("deb {mirror} bookworm main\n"),
        )
        .unwrap();
        std::fs::copy("/etc/resolv.conf", ours.join("etc/resolv.conf")).unwrap();
        {
            let _m = ChrootMounts::setup(&ours).unwrap();
            support::sh(
                Command::new("chroot")
                    .arg(&ours)
                    .args(["apt-get", "-q", "update"]),
            );
        }
        assert!(
            pistemcell::rootfs::mounts::mounts_under(tmp.path()).is_empty(),
            "nothing left mounted"
        );
        let lists = std::fs::read_dir(ours.join("var/lib/apt/lists"))
            .unwrap()
            .count();
        assert!(lists > 2, "apt-get update fetched the indices");
        if arch == "armhf" {
            interrupted_runs_leave_nothing_and_the_next_run_recovers(
                &mirror,
                &cache,
                tmp.path(),
                &a,
            );
        }
    }
}

/// Starts a bootstrap in its own process group and waits until dpkg runs (mounts appear).
fn start_and_wait_for_mounts(
    mirror: &str,
    cache: &Path,
    work: &Path,
    log: &Path,
) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let child = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .arg("--work-dir")
        .arg(work)
        .arg("--cache-dir")
        .arg(cache)
        .args(["--mirror", mirror, "bootstrap"])
        .stderr(std::fs::File::create(log).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while pistemcell::rootfs::mounts::mounts_under(work).is_empty() {
        assert!(
            start.elapsed().as_secs() < 300,
            "dpkg never started: {}",
            std::fs::read_to_string(log).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    child
}

fn partials(work: &Path) -> Vec<String> {
    std::fs::read_dir(work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect()
}

fn interrupted_runs_leave_nothing_and_the_next_run_recovers(
    mirror: &str,
    cache: &Path,
    tmp: &Path,
    expected: &[String],
) {
    let work = tmp.join("work-interrupted");
    let log = tmp.join("interrupted.log");

    // Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during configuration.
    let mut child = start_and_wait_for_mounts(mirror, cache, &work, &log);
    // SAFETY: signalling the child's own process group.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        pistemcell::rootfs::mounts::mounts_under(&work).is_empty(),
        "Ctrl-C left mounts"
    );
    assert!(partials(&work).is_empty(), "Ctrl-C left a partial tree");
    assert!(!work.join("rootfs").exists());

    // kill -9 of everything: mounts and the partial tree stay behind...
    let mut child = start_and_wait_for_mounts(mirror, cache, &work, &log);
    // SAFETY: signalling the child's own process group.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    child.wait().unwrap();
    assert!(!pistemcell::rootfs::mounts::mounts_under(&work).is_empty());
    assert!(!partials(&work).is_empty());

    // ...and the next run sweeps them and produces the same rootfs.
    let out = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .arg("--work-dir")
        .arg(&work)
        .arg("--cache-dir")
        .arg(cache)
        .args(["--mirror", mirror, "bootstrap"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("removed what an interrupted run left"),
        "{stderr}"
    );
    assert!(pistemcell::rootfs::mounts::mounts_under(&work).is_empty());
    assert!(partials(&work).is_empty());
    assert_eq!(installed(&work.join("rootfs")), expected);
}
