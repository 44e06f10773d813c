//! The CPI on the default stemcell: `create_stemcell` imports its image, `create_vm` boots it
//! as a daemon (the console shows the kernel mounting the root from the overlay), a persistent
//! disk attaches (the guest is synced, remounted read-only and powered off by SysRq, then boots
//! again and sees the disk) and detaches, and deleting the VM, disk and stemcell leaves no
//! process, mount, loop device or file. The agent's own answers need a real agent:
//! `tests/cpi_create_env.rs`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support;
use crate::support::cpi::{qemus_under, Cpi};

/// Waits up to `wait` for a console line containing `text`; returns the seconds it took.
fn console_shows(vm_dir: &Path, text: &str, wait: Duration) -> f64 {
    let t0 = Instant::now();
    loop {
        let log = std::fs::read_to_string(vm_dir.join("console.log")).unwrap_or_default();
        if log.contains(text) {
            return t0.elapsed().as_secs_f64();
        }
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        assert!(
            t0.elapsed() < wait,
            "the VM's console never showed `{text}` in {} s; its last lines:\n{}",
            wait.as_secs(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Boots `stemcell` (the default bakery stemcell) through the CPI.
pub fn check_default(stemcell: &Path, dir: &Path) {
    let c = Cpi::new();
    let x = dir.join("cpi-stemcell");
    std::fs::create_dir_all(&x).unwrap();
    support::sh(
        Command::new("tar")
            .arg("-xzf")
            .arg(stemcell)
            .arg("-C")
            .arg(&x)
            .arg("image"),
    );
    let cp = json!({"architecture": "armhf", "infrastructure": "bakery", "name": "default", "version": "0"});
    let t0 = Instant::now();
    let sc = c.ok("create_stemcell", json!([x.join("image"), cp]));
    std::fs::remove_dir_all(&x).unwrap();
    let imported = t0.elapsed().as_secs_f64();
    let nets = json!({"default": {"type": "dynamic", "cloud_properties": {}}});
    let r = c.ok(
        "create_vm",
        json!(["agent-0", sc, {"memory_mib": 1024}, nets, [], {}]),
    );
    let vm = r[0].as_str().unwrap().to_string();
    let vm_dir = c.state.join("vms").join(&vm);
    let root = console_shows(&vm_dir, "EXT4-fs (vda2)", Duration::from_secs(300));
    eprintln!("CPI: stemcell imported in {imported:.1} s; VM {vm}'s kernel mounted its root after {root:.0} s");

    let d = c.ok("create_disk", json!([64, {}, vm]));
    let d = d.as_str().unwrap().to_string();
    let t0 = Instant::now();
    let hint = c.ok("attach_disk", json!([vm, d]));
    assert_eq!(hint["path"], "/dev/vdc", "{hint}");
    // The guest sees the disk: the kernel names it as the hint does.
    let seen = console_shows(&vm_dir, "[vdc]", Duration::from_secs(300));
    // Before the restart the guest synced, remounted read-only and powered off (SysRq over
    // its console), so nothing it wrote was lost.
    let log = std::fs::read_to_string(vm_dir.join("console.log")).unwrap();
    for step in [
        "Emergency Sync complete",
        "Emergency Remount complete",
        "reboot: Power down",
    ] {
        assert!(
            log.contains(step),
            "no `{step}` on the console before the restart"
        );
    }
    eprintln!(
        "CPI: disk {d} attached (the VM restarted) and seen by the guest after {:.0} s",
        t0.elapsed().as_secs_f64().max(seen)
    );
    c.ok("detach_disk", json!([vm, d]));
    assert_eq!(c.ok("get_disks", json!([vm])), json!([]));
    let cmd = qemus_under(&c.state);
    assert!(cmd.len() == 1 && !cmd[0].contains(&d), "{cmd:?}");
    c.ok("delete_vm", json!([vm]));
    c.ok("delete_disk", json!([d]));
    c.ok("delete_stemcell", json!([sc]));
    support::cpi::assert_nothing_left(&c);
}
