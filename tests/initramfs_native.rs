//! The initramfs built with the host's tools equals the one built emulated.
//!
//! `PISTEMCELL_TEST_KERNEL_ROOTFS=DIR` names a rootfs from a real build, past its kernel stage
//! (for instance a work dir's `rootfs`), whose `/boot/initrd.img-*` was built emulated. The test
//! copies it, deletes the initramfs, builds it again with the host toolbox and compares the
//! files byte for byte. Where strace is installed it then deletes them again and builds once
//! more: the image is reused (nothing it was made from changed) and still the same bytes.
//! Unset, the test is skipped (a kernel rootfs takes a real build).

mod support;

use std::path::Path;
use std::process::Command;

#[test]
fn host_built_initramfs_equals_the_emulated_one() {
    let Ok(given) = std::env::var("PISTEMCELL_TEST_KERNEL_ROOTFS") else {
        eprintln!("skipped: PISTEMCELL_TEST_KERNEL_ROOTFS is unset (a rootfs with a kernel and its emulated initramfs)");
        return;
    };
    assert!(support::is_root(), "needs root (chroot)");
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("rootfs");
    support::sh(Command::new("cp").arg("-a").arg(&given).arg(&root));
    let boot = root.join("boot");
    let mut before = Vec::new();
    for e in std::fs::read_dir(&boot).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("initrd.img-") {
            before.push((name, std::fs::read(e.path()).unwrap()));
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    assert!(!before.is_empty(), "{given} has no /boot/initrd.img-*");
    let tree_before = listing(&root);
    let log = t.path().join("initramfs.log");
    let cache = t.path().join("cache");
    let started = std::time::Instant::now();
    build(&root, &log, &cache, before.len());
    eprintln!("built in {:.1} s", started.elapsed().as_secs_f64());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("host tools in"), "{text}");
    let same = |round: &str| {
        for (name, old) in &before {
            let new = std::fs::read(boot.join(name)).unwrap();
            assert!(
                new == *old,
                "{round}: {name} differs from the emulated build ({} vs {} bytes)",
                new.len(),
                old.len()
            );
        }
    };
    same("built");
    if pistemcell::rootfs::trace::available() {
        assert!(text.contains("paths it was made from, for reuse"), "{text}");
        for (name, _) in &before {
            std::fs::remove_file(boot.join(name)).unwrap();
        }
        let started = std::time::Instant::now();
        build(&root, &log, &cache, before.len());
        eprintln!("reused in {:.1} s", started.elapsed().as_secs_f64());
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("reusing "), "{text}");
        same("reused");
    }
    // The toolbox left nothing behind.
    let mut tree_after = listing(&root);
    tree_after.retain(|p| !p.starts_with("boot/") && !p.starts_with("var/lib/initramfs-tools"));
    let mut tree_before = tree_before;
    tree_before.retain(|p| !p.starts_with("boot/") && !p.starts_with("var/lib/initramfs-tools"));
    assert_eq!(tree_before, tree_after);
}

/// Builds every missing initramfs in `root` with the host toolbox, reusing and recording
/// under `cache`.
fn build(root: &Path, log: &Path, cache: &Path, expected: usize) {
    let _mounts = pistemcell::rootfs::mounts::ChrootMounts::setup(root).unwrap();
    let tools = pistemcell::rootfs::host_tools::HostTools::install(root).unwrap();
    let built = pistemcell::rootfs::initramfs::build_missing(
        root,
        Some(&tools),
        log,
        &pistemcell::progress::Reporter::new(pistemcell::progress::Verbosity::Quiet),
        Some(cache),
    )
    .unwrap();
    assert_eq!(built.len(), expected);
    tools.remove().unwrap();
}

fn listing(root: &Path) -> Vec<String> {
    let out = support::sh(Command::new("find").arg(".").arg("-xdev").current_dir(root));
    let mut v: Vec<String> = out
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .collect();
    v.sort();
    v
}
