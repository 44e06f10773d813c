//! The Bakery disk shim in the default (bakery) rootfs, and what the package stages leave in
//! the dpkg database.

use std::collections::BTreeSet;
use std::path::Path;

use super::{check, Root, D, F};

/// The disk shim Bakery's CPI drives: its packages, the init scripts and their services.
pub fn assert_bakery_disks(r: &Root, pkgs: &BTreeSet<String>) {
    for p in ["nfs-common", "kpartx", "jq", "dmsetup"] {
        check(pkgs.contains(p), format!("the Bakery disk shim needs {p}"));
    }
    r.node("/etc/init.d/open-iscsi", F, 0o755, "root", "root");
    r.script("/etc/init.d/open-iscsi");
    let shim = r.read("/etc/init.d/open-iscsi");
    for needle in [
        "/piConfig/disks.json",
        "kpartx -a -s -p -part",
        "mount -t nfs",
        "/dev/loop$n",
    ] {
        check(
            shim.contains(needle),
            format!("the disk shim lacks `{needle}`"),
        );
    }
    r.script("/etc/init.d/multipath-tools");
    r.node("/piConfig", D, 0o700, "root", "root");
    if r.systemd() {
        check(
            r.enabled("multi-user.target", "bakery-disks.service"),
            "bakery-disks.service",
        );
        check(
            r.enabled("timers.target", "bakery-disks.timer"),
            "bakery-disks.timer",
        );
    }
}

/// Every stage's packages went through the host's dpkg (the statoverride owners as the
/// rootfs's ids while it ran), and the database has its names back.
pub fn assert_host_dpkg(rootfs: &Path, stderr: &str) {
    check(
        !stderr.contains("using the target's dpkg"),
        format!("a stage fell back to the emulated dpkg:\n{stderr}"),
    );
    let overrides = std::fs::read_to_string(rootfs.join("var/lib/dpkg/statoverride")).unwrap();
    check(
        overrides.contains("_chrony")
            && !overrides
                .lines()
                .any(|l| l.starts_with('#') || l.contains(" #")),
        format!("statoverride must name its owners:\n{overrides}"),
    );
}
