//! `pistemcell boot-test` without a real image (the real boots are in `tests/os_stages.rs`):
//! a warden stemcell is refused; a bakery stemcell whose kernel cannot boot times out, the VM
//! is powered off and nothing is left behind; the stemcell is never modified, and the test's
//! settings and probe went into the overlay (read back from a kept scratch dir).
//!
//! Needs root, qemu-system-arm, qemu-img, qemu-storage-daemon, /dev/fuse and mkfs.ext4; skips
//! with the reason otherwise.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pistemcell::pack::write::write_stemcell;

/// A bakery stemcell of the fixture tree, in `dir/out`.
fn bakery_stemcell(dir: &Path) -> pistemcell::pack::stemcell::Packed {
    support::disk_stemcell(dir, "{}")
}

fn boot_test(work: &Path, stemcell: &Path, keep: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pistemcell"));
    cmd.arg("--work-dir")
        .arg(work)
        .args(["boot-test", "--json", "--timeout", "20s"])
        .arg(stemcell);
    if keep {
        cmd.env("PISTEMCELL_BOOT_TEST_KEEP", "1");
    }
    cmd.output().unwrap()
}

fn missing_tools() -> Option<String> {
    if !support::is_root() {
        return Some("needs root (loop devices, mounts)".into());
    }
    for t in [
        "qemu-system-arm",
        "qemu-img",
        "qemu-storage-daemon",
        "mkfs.ext4",
    ] {
        if !pistemcell::cmd::on_path(t) {
            return Some(format!(
                "{t} is not installed (apt-get install qemu-system-arm qemu-utils e2fsprogs)"
            ));
        }
    }
    (!Path::new("/dev/fuse").exists()).then(|| "/dev/fuse is missing".into())
}

fn scratch_dirs(work: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(work)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(".pistemcell-boot-test-")
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_warden_stemcell_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = support::boot_rootfs(dir.path());
    let packed = write_stemcell(
        &support::spec("infrastructure: warden\n"),
        &root,
        None,
        &dir.path().join("out"),
        0,
        2,
        &[],
    )
    .unwrap();
    let work = dir.path().join("work");
    let out = boot_test(&work, &packed.path, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("root filesystem tarball (warden): only disk stemcells (bakery, raw) boot"),
        "{err}"
    );
    assert!(scratch_dirs(&work).is_empty());

    let out = boot_test(&work, &dir.path().join("nope.tgz"), false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nope.tgz"), "{err}");
}

#[test]
fn a_kernel_that_never_boots_times_out_and_nothing_is_left() {
    if let Some(why) = missing_tools() {
        eprintln!("SKIPPED boot_test: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let packed = bakery_stemcell(dir.path());
    let before = pistemcell::archive::cache::file_sha256(&packed.path).unwrap();
    let work = dir.path().join("work");

    let out = boot_test(&work, &packed.path, true);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    let r: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    assert_eq!(r["passed"], false);
    let check = |name: &str| {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(check("kernel-root")["status"], "failed", "{all}");
    let why = check("kernel-root")["detail"].as_str().unwrap().to_string();
    assert!(
        why.contains("timed out after 20 s") || why.contains("the VM stopped"),
        "{all}"
    );
    assert_eq!(check("ping")["status"], "skipped");
    assert!(
        check("ping")["detail"]
            .as_str()
            .unwrap()
            .contains("no agent binary"),
        "{all}"
    );

    // The stemcell is untouched; the VM is off; no mount, loop device or process is left.
    assert_eq!(
        pistemcell::archive::cache::file_sha256(&packed.path).unwrap(),
        before
    );
    let work = work.canonicalize().unwrap();
    assert!(pistemcell::rootfs::mounts::mounts_under(&work).is_empty());
    assert!(pistemcell::image::loopdev::attached_under(&work).is_empty());
    let kept = scratch_dirs(&work);
    assert_eq!(
        kept.len(),
        1,
        "PISTEMCELL_BOOT_TEST_KEEP keeps the scratch dir"
    );
    let kept = &kept[0];
    let ps = support::sh(Command::new("ps").args(["-eo", "args"]));
    assert!(
        !ps.contains(&kept.display().to_string()),
        "a process still runs on the scratch dir:\n{ps}"
    );

    // The extracted image is the stemcell's (its sha1 is the manifest's), and the overlay holds
    // the settings and the enabled probe.
    let sha1 = pistemcell::pack::stemcell::file_sha1(&kept.join("image")).unwrap();
    let mf = support::sh(
        Command::new("tar")
            .arg("-xzOf")
            .arg(&packed.path)
            .arg("stemcell.MF"),
    );
    assert!(mf.contains(&format!("sha1: {sha1}")), "{mf}");
    let flat = dir.path().join("overlay.raw");
    support::sh(
        Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(kept.join("overlay.qcow2"))
            .arg(&flat),
    );
    let t: serde_json::Value = serde_json::from_str(&support::sh(
        Command::new("sfdisk").arg("--json").arg(&flat),
    ))
    .unwrap();
    let p2 = &t["partitiontable"]["partitions"][1];
    let (start, size) = (
        p2["start"].as_u64().unwrap() * 512,
        p2["size"].as_u64().unwrap() * 512,
    );
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    support::sh(
        Command::new("mount")
            .arg("-o")
            .arg(format!("ro,loop,offset={start},sizelimit={size}"))
            .arg(&flat)
            .arg(&mnt),
    );
    let read = |p: &str| std::fs::read_to_string(mnt.join(p));
    let settings = read("piConfig/settings.json");
    let probe_link = std::fs::read_link(
        mnt.join("etc/systemd/system/multi-user.target.wants/pistemcell-boot-probe.service"),
    );
    let probe = read("usr/local/sbin/pistemcell-boot-probe");
    let mode = read("var/lib/pistemcell/boot-test/mode");
    support::sh(Command::new("umount").arg(&mnt));
    let s: serde_json::Value = serde_json::from_str(&settings.unwrap()).unwrap();
    assert!(
        s["mbus"].as_str().unwrap().starts_with("https://pstc:"),
        "{s}"
    );
    assert!(s["env"]["bosh"]["mbus"]["cert"]["ca"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert_eq!(s["disks"]["ephemeral"]["path"], "/dev/vdb");
    assert_eq!(
        probe_link.unwrap(),
        Path::new("/etc/systemd/system/pistemcell-boot-probe.service")
    );
    assert!(probe.unwrap().starts_with("#!/bin/bash"));
    assert_eq!(mode.unwrap(), "no-agent\n");
    // The image under the overlay has none of it.
    let count = support::sh(Command::new("sh").arg("-c").arg(format!(
        "grep -c pistemcell-boot-probe {} || true",
        kept.join("image").display()
    )));
    assert_eq!(
        count.trim(),
        "0",
        "the probe leaked into the image under the overlay"
    );

    // The next run in this work dir sweeps the kept scratch dir.
    let out = boot_test(&work, &packed.path, false);
    assert!(!out.status.success());
    assert!(
        scratch_dirs(&work).is_empty(),
        "the sweep and the run leave no scratch dir"
    );
}

#[test]
fn ctrl_c_powers_the_vm_off_and_removes_the_overlay() {
    if let Some(why) = missing_tools() {
        eprintln!("SKIPPED boot_test: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let packed = bakery_stemcell(dir.path());
    let work = dir.path().join("work");
    let child = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .arg("--work-dir")
        .arg(&work)
        .args(["boot-test", "--timeout", "5m"])
        .arg(&packed.path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the VM to be running, then interrupt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let ps = support::sh(Command::new("ps").args(["-eo", "args"]));
        if ps
            .lines()
            .any(|l| l.starts_with("qemu-system-arm") && l.contains(".pistemcell-boot-test-"))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the VM never started");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("interrupted (Ctrl-C)"), "{err}");
    let ps = support::sh(Command::new("ps").args(["-eo", "args"]));
    assert!(
        !ps.contains(&work.display().to_string()),
        "still running:\n{ps}"
    );
    assert!(
        scratch_dirs(&work).is_empty(),
        "the overlay and image must be removed"
    );
    let work = work.canonicalize().unwrap();
    assert!(pistemcell::rootfs::mounts::mounts_under(&work).is_empty());
}
