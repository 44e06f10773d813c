//! `pistemcell cpi`, the BOSH CPI, through its executable as `bosh` calls it: one JSON request
//! on stdin, the response on stdout. Every method's contract (results, error types, argument
//! errors), the config's checks, and the lifecycle of stemcells, VMs and disks on a fixture
//! stemcell whose kernel never boots: the VM is a real qemu daemon all the same, its agent
//! settings are in its overlay, disks attach and detach by restart, and deleting leaves no
//! process, mount, loop device or file behind. A killed call's leftovers are swept by the
//! next call. (The default stemcell's VM is booted in `tests/os_stages`; the real `bosh
//! create-env` proof is `tests/cpi_create_env.rs`.)
//!
//! The lifecycle needs root, qemu-system-arm, qemu-img, qemu-storage-daemon and /dev/fuse;
//! it skips with the reason otherwise. The contract tests need only qemu-img for disks.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use support::cpi::{call, free_port, Cpi};

#[test]
fn info_and_the_error_format() {
    let c = Cpi::new();
    let r = c.call("info", json!([]));
    assert_eq!(
        r["result"],
        json!({"api_version": 2, "stemcell_formats": ["piimg", "rawdisk-gz"]})
    );
    assert!(r["error"].is_null());
    assert!(r["log"].as_str().unwrap().contains("info"));

    // Every error: a null result, a type, a message, ok_to_retry, and the log.
    for (request, kind, says) in [
        ("not json", "Bosh::Clouds::CpiError", "not JSON"),
        (
            r#"{"arguments":[]}"#,
            "Bosh::Clouds::CpiError",
            "no `method`",
        ),
        (
            r#"{"method":"fly","arguments":[]}"#,
            "Bosh::Clouds::CpiError",
            "unknown method `fly`",
        ),
        (
            r#"{"method":"info","arguments":{}}"#,
            "Bosh::Clouds::CpiError",
            "must be an array",
        ),
        (
            r#"{"method":"info","arguments":[1]}"#,
            "Bosh::Clouds::CpiError",
            "info takes 0 arguments",
        ),
        (
            r#"{"method":"snapshot_disk","arguments":["d",{}]}"#,
            "Bosh::Clouds::NotImplemented",
            "snapshot_disk is not implemented",
        ),
        (
            r#"{"method":"delete_snapshot","arguments":["s"]}"#,
            "Bosh::Clouds::NotImplemented",
            "not implemented",
        ),
        (
            r#"{"method":"has_vm","arguments":[7]}"#,
            "Bosh::Clouds::CpiError",
            "has_vm: argument 1 (vm_cid) must be a string",
        ),
    ] {
        let r = c.raw(request);
        assert!(r["result"].is_null(), "{request}: {r}");
        assert_eq!(r["error"]["type"], kind, "{request}: {r}");
        assert_eq!(r["error"]["ok_to_retry"], false, "{request}: {r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{request}: {msg}");
        assert!(r["log"].as_str().unwrap().contains(msg), "{r}");
    }

    let r = c.ok(
        "calculate_vm_cloud_properties",
        json!([{"ram": 2048, "cpu": 2, "ephemeral_disk_size": 8192}]),
    );
    assert_eq!(
        r,
        json!({"memory_mib": 2048, "cpus": 2, "ephemeral_disk_mib": 8192})
    );
    let (t, m) = c.err("calculate_vm_cloud_properties", json!([{"ram": 2048}]));
    assert_eq!(t, "Bosh::Clouds::CpiError");
    assert!(m.contains("`cpu` must be a whole number"), "{m}");
}

#[test]
fn a_config_that_cannot_be_used_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cpi.json");
    let has_vm = r#"{"method":"has_vm","arguments":["vm-00"],"api_version":2}"#;
    for (text, says) in [
        (
            r#"{"state_dir": "rel", "agent": {"mbus": "https://a:b@0.0.0.0:6868"}}"#.to_string(),
            "is not an absolute path",
        ),
        (
            r#"{"state_dir": "/x", "agent": {"mbus": "http://a"}}"#.to_string(),
            "is not an https://",
        ),
        (
            r#"{"state_dir": "/x", "agent": {"mbus": "https://a"}, "colour": 1}"#.to_string(),
            "unknown field `colour`",
        ),
        (
            r#"{"state_dir": "/x", "agent": {"mbus": "https://a"}, "vm": {"memory_mib": 16}}"#
                .to_string(),
            "under the 256 MiB",
        ),
        ("[".to_string(), "EOF"),
    ] {
        std::fs::write(&config, &text).unwrap();
        let r = call(&config, has_vm);
        assert_eq!(r["error"]["type"], "Bosh::Clouds::CpiError", "{text}: {r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&config.display().to_string()) && msg.contains(says),
            "{text}: {msg}"
        );
    }
    let r = call(&dir.path().join("none.json"), has_vm);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("none.json"),
        "{r}"
    );

    // A state dir holding someone else's files is refused and left as it was.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("keep"), "mine").unwrap();
    std::fs::write(
        &config,
        json!({"state_dir": theirs, "agent": {"mbus": "https://a:b@0.0.0.0:6868"}}).to_string(),
    )
    .unwrap();
    let r = call(&config, has_vm);
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("CPI state dir") && msg.contains("not empty"),
        "{msg}"
    );
    let left: Vec<_> = std::fs::read_dir(&theirs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["keep"]);
}

#[test]
fn unknown_and_hostile_ids_are_not_found() {
    let c = Cpi::new();
    for id in [
        "vm-0123",
        "../../etc",
        "vm-../x",
        "vm-",
        "disk-00",
        "/etc/passwd",
    ] {
        assert_eq!(c.ok("has_vm", json!([id])), json!(false), "{id}");
        assert_eq!(
            c.err("delete_vm", json!([id])).0,
            "Bosh::Clouds::VMNotFound"
        );
        assert_eq!(
            c.err("reboot_vm", json!([id])).0,
            "Bosh::Clouds::VMNotFound"
        );
        assert_eq!(
            c.err("get_disks", json!([id])).0,
            "Bosh::Clouds::VMNotFound"
        );
        assert_eq!(
            c.err("set_vm_metadata", json!([id, {}])).0,
            "Bosh::Clouds::VMNotFound"
        );
    }
    for id in ["disk-0123", "../s", "disk-x/../../y"] {
        assert_eq!(c.ok("has_disk", json!([id])), json!(false), "{id}");
        assert_eq!(
            c.err("delete_disk", json!([id])).0,
            "Bosh::Clouds::DiskNotFound"
        );
        assert_eq!(
            c.err("resize_disk", json!([id, 10])).0,
            "Bosh::Clouds::DiskNotFound"
        );
        assert_eq!(
            c.err("set_disk_metadata", json!([id, {}])).0,
            "Bosh::Clouds::DiskNotFound"
        );
    }
    assert_eq!(
        c.err("delete_stemcell", json!(["sc-00"])).0,
        "Bosh::Clouds::StemcellNotFound"
    );
    let (t, m) = c.err("create_vm", json!(["a", "sc-00", {}, {}, [], {}]));
    assert_eq!(t, "Bosh::Clouds::StemcellNotFound", "{m}");
    // Nothing was made for any of it: the kinds' directories are empty.
    for k in ["vms", "disks", "stemcells"] {
        assert_eq!(
            std::fs::read_dir(c.state.join(k)).unwrap().count(),
            0,
            "{k}"
        );
    }
}

#[test]
fn stemcells_that_are_not_ours_to_boot_are_refused() {
    let c = Cpi::new();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image");
    std::fs::write(&image, b"not a disk").unwrap();
    for (cp, says) in [
        (
            json!({"architecture": "x86_64", "infrastructure": "bakery"}),
            "boots armhf and arm64",
        ),
        (
            json!({"architecture": "armhf", "infrastructure": "warden"}),
            "disk stemcells (bakery, raw)",
        ),
    ] {
        let (t, m) = c.err("create_stemcell", json!([image, cp]));
        assert_eq!(t, "Bosh::Clouds::CpiError");
        assert!(m.contains(says), "{m}");
    }
    let (t, m) = c.err(
        "create_stemcell",
        json!([image, {"architecture": "armhf", "infrastructure": "bakery"}]),
    );
    assert_eq!(t, "Bosh::Clouds::CloudError");
    assert!(m.contains(&image.display().to_string()), "{m}");
    let (_, m) = c.err(
        "create_stemcell",
        json!([dir.path(), {"architecture": "armhf", "infrastructure": "bakery"}]),
    );
    assert!(m.contains("not a regular file"), "{m}");
    assert_eq!(
        std::fs::read_dir(c.state.join("stemcells"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn disks_are_made_resized_tagged_and_deleted() {
    if !pistemcell::cmd::on_path("qemu-img") {
        eprintln!("SKIPPED disks: qemu-img is not installed (apt-get install qemu-utils)");
        return;
    }
    let c = Cpi::new();
    let d = c.ok("create_disk", json!([64, {}, null]));
    let d = d.as_str().unwrap().to_string();
    assert!(
        d.starts_with("disk-") && d.len() <= 20,
        "{d}: a virtio serial holds 20 bytes"
    );
    assert_eq!(c.ok("has_disk", json!([d])), json!(true));
    let img = c.state.join("disks").join(&d).join("disk.qcow2");
    let size = |p: &Path| {
        let out = support::sh(
            Command::new("qemu-img")
                .args(["info", "--output=json"])
                .arg(p),
        );
        serde_json::from_str::<Value>(&out).unwrap()["virtual-size"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(size(&img), 64 << 20);
    c.ok("resize_disk", json!([d, 128]));
    assert_eq!(size(&img), 128 << 20);
    let (t, m) = c.err("resize_disk", json!([d, 32]));
    assert_eq!(t, "Bosh::Clouds::CloudError");
    assert!(m.contains("cannot shrink"), "{m}");
    c.ok("set_disk_metadata", json!([d, {"deployment": "x"}]));
    let (t, _) = c.err("create_disk", json!([0, {}, null]));
    assert_eq!(t, "Bosh::Clouds::CpiError");
    // Attaching to a VM that does not exist changes nothing.
    assert_eq!(
        c.err("attach_disk", json!(["vm-00", d])).0,
        "Bosh::Clouds::VMNotFound"
    );
    c.ok("delete_disk", json!([d]));
    assert_eq!(c.ok("has_disk", json!([d])), json!(false));
    assert_eq!(std::fs::read_dir(c.state.join("disks")).unwrap().count(), 0);

    // Calls at the same time take turns on the state dir's lock: every one gets its own disk.
    let ids: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| c.ok("create_disk", json!([8, {}, null]))))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap().as_str().unwrap().to_string())
            .collect()
    });
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{ids:?}");
    for d in ids {
        c.ok("delete_disk", json!([d]));
    }
}

fn missing_vm_tools() -> Option<String> {
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

/// The settings the VM's agent will read, from its overlay (read while the VM runs).
fn settings_in(vm_dir: &Path, scratch: &Path, root_offset: u64) -> Value {
    let raw = scratch.join("overlay.raw");
    support::sh(
        Command::new("qemu-img")
            .args(["convert", "-U", "-O", "raw"])
            .arg(vm_dir.join("overlay.qcow2"))
            .arg(&raw),
    );
    let mnt = scratch.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    support::sh(
        Command::new("mount")
            .args(["-o", &format!("ro,loop,offset={root_offset}")])
            .arg(&raw)
            .arg(&mnt),
    );
    let text = std::fs::read_to_string(mnt.join("piConfig/settings.json"));
    support::sh(Command::new("umount").arg(&mnt));
    std::fs::remove_file(&raw).unwrap();
    serde_json::from_str(&text.unwrap()).unwrap()
}

/// The fixture disk stemcell's `image`, extracted as `bosh` hands it to `create_stemcell`,
/// in `dir/x`.
fn fixture_image(dir: &Path) -> PathBuf {
    let packed = support::disk_stemcell(dir, "{}");
    let x = dir.join("x");
    std::fs::create_dir(&x).unwrap();
    support::sh(
        Command::new("tar")
            .arg("-xzf")
            .arg(&packed.path)
            .arg("-C")
            .arg(&x),
    );
    x
}

#[test]
fn a_vm_lives_takes_disks_and_leaves_nothing_when_deleted() {
    if let Some(why) = missing_vm_tools() {
        eprintln!("SKIPPED the CPI's VM lifecycle: {why}");
        return;
    }
    let c = Cpi::new();
    let dir = tempfile::tempdir().unwrap();
    let x = fixture_image(dir.path());
    let cp =
        json!({"architecture": "armhf", "infrastructure": "bakery", "name": "s", "version": "1"});
    let sc = c.ok("create_stemcell", json!([x.join("image"), cp]));
    let sc = sc.as_str().unwrap().to_string();
    let meta: Value = serde_json::from_slice(
        &std::fs::read(c.state.join("stemcells").join(&sc).join("meta.json")).unwrap(),
    )
    .unwrap();
    let root_offset = meta["root"][0].as_u64().unwrap();

    let nets = json!({"default": {"type": "manual", "ip": "10.0.2.15", "netmask": "255.255.255.0", "gateway": "10.0.2.2", "cloud_properties": {}}});
    let env = json!({"bosh": {"mbus": {"cert": {"ca": "CA"}}}});
    let port = free_port();
    let r = c.ok(
        "create_vm",
        json!(["agent-7", sc, {"ports": [{"host": port, "guest": 2222}]}, nets, [], env]),
    );
    let vm = r[0].as_str().unwrap().to_string();
    assert_eq!(r[1], nets, "API 2 answers the VM's id and its networks");
    assert_eq!(c.ok("has_vm", json!([vm])), json!(true));
    let vm_dir = c.state.join("vms").join(&vm);
    let running = support::cpi::qemus_under(&c.state);
    assert_eq!(running.len(), 1, "{running:?}");
    assert!(
        running[0].contains(&format!("hostfwd=tcp:127.0.0.1:{port}-:2222")),
        "{}",
        running[0]
    );
    assert!(
        !running[0].contains("hostfwd=tcp::"),
        "every forward is on 127.0.0.1"
    );
    let s = settings_in(&vm_dir, dir.path(), root_offset);
    assert_eq!(s["agent_id"], "agent-7");
    assert_eq!(s["vm"]["name"], vm.as_str());
    assert_eq!(s["mbus"], "https://mbus:pw@0.0.0.0:6868");
    assert_eq!(s["env"], env);
    assert_eq!(s["networks"]["default"]["preconfigured"], true);
    assert_eq!(s["disks"]["system"], "/dev/vda");
    assert_eq!(s["disks"]["ephemeral"]["path"], "/dev/vdb");
    assert_eq!(s["disks"]["persistent"], json!({}));

    // A disk: attached by restarting the VM with it; the hint names its serial.
    let d = c.ok("create_disk", json!([16, {}, vm]));
    let d = d.as_str().unwrap().to_string();
    let hint = c.ok("attach_disk", json!([vm, d]));
    assert_eq!(hint, json!({"id": d, "volume_id": d, "path": "/dev/vdc"}));
    assert_eq!(c.ok("get_disks", json!([vm])), json!([d]));
    let running = support::cpi::qemus_under(&c.state);
    assert_eq!(running.len(), 1, "the old qemu is gone: {running:?}");
    assert!(
        running[0].contains(&format!("serial={d}")),
        "{}",
        running[0]
    );
    let s = settings_in(&vm_dir, dir.path(), root_offset);
    assert_eq!(s["disks"]["persistent"][&d]["path"], "/dev/vdc");
    // Attached disks are not deleted, resized or given to another VM.
    assert_eq!(
        c.err("delete_disk", json!([d])).0,
        "Bosh::Clouds::CloudError"
    );
    assert_eq!(
        c.err("resize_disk", json!([d, 32])).0,
        "Bosh::Clouds::CloudError"
    );
    // A stemcell a VM boots from stays.
    let (t, m) = c.err("delete_stemcell", json!([sc]));
    assert!(t == "Bosh::Clouds::CloudError" && m.contains(&vm), "{m}");
    c.ok("detach_disk", json!([vm, d]));
    assert_eq!(c.ok("get_disks", json!([vm])), json!([]));
    assert!(!support::cpi::qemus_under(&c.state)[0].contains(&d));
    assert_eq!(
        c.err("detach_disk", json!([vm, d])).0,
        "Bosh::Clouds::CloudError"
    );
    c.ok("set_vm_metadata", json!([vm, {"name": "x/0"}]));
    c.ok("reboot_vm", json!([vm]));
    assert_eq!(support::cpi::qemus_under(&c.state).len(), 1);

    // A create_vm with the disk given up front, then both VMs deleted.
    // Its own mbus port: the config's forward of the guest's 6868 is replaced.
    let r = c.ok(
        "create_vm",
        json!(["agent-8", sc, {"ports": [{"host": free_port(), "guest": 6868}]}, nets, [d], {}]),
    );
    let vm2 = r[0].as_str().unwrap().to_string();
    assert_eq!(c.ok("get_disks", json!([vm2])), json!([d]));
    assert_eq!(support::cpi::qemus_under(&c.state).len(), 2);
    c.ok("delete_vm", json!([vm]));
    c.ok("delete_vm", json!([vm2]));
    assert_eq!(c.ok("has_vm", json!([vm])), json!(false));
    assert_eq!(
        c.err("delete_vm", json!([vm])).0,
        "Bosh::Clouds::VMNotFound"
    );
    c.ok("delete_disk", json!([d]));
    c.ok("delete_stemcell", json!([sc]));
    support::cpi::assert_nothing_left(&c);
}

#[test]
fn a_killed_calls_leftovers_are_swept_by_the_next_call() {
    if let Some(why) = missing_vm_tools() {
        eprintln!("SKIPPED the CPI's sweep: {why}");
        return;
    }
    let c = Cpi::new();
    let dir = tempfile::tempdir().unwrap();
    let x = fixture_image(dir.path());
    let cp = json!({"architecture": "armhf", "infrastructure": "bakery"});
    let sc = c.ok("create_stemcell", json!([x.join("image"), cp]));
    let r = c.ok("create_vm", json!(["a", sc, {}, {}, [], {}]));
    let vm = r[0].as_str().unwrap().to_string();
    // As a create_vm killed after qemu started: the VM's `creating` mark is still there. And
    // half-made stemcell and disk directories.
    std::fs::write(c.state.join("vms").join(&vm).join("creating"), "").unwrap();
    std::fs::create_dir(c.state.join("stemcells/.new-sc-0badc0ffee00")).unwrap();
    std::fs::create_dir(c.state.join("disks/.new-disk-0badc0ffee00")).unwrap();
    // A VM directory killed before its `creating` mark or record was written.
    std::fs::create_dir(c.state.join("vms/vm-0badc0ffee01")).unwrap();
    assert_eq!(support::cpi::qemus_under(&c.state).len(), 1);
    let r = c.call("has_vm", json!([vm]));
    assert_eq!(r["result"], json!(false), "{r}");
    let log = r["log"].as_str().unwrap();
    assert!(
        log.contains("removed a killed call's") && log.contains(&vm),
        "{log}"
    );
    assert!(support::cpi::qemus_under(&c.state).is_empty());
    assert!(!c.state.join("stemcells/.new-sc-0badc0ffee00").exists());
    assert!(!c.state.join("disks/.new-disk-0badc0ffee00").exists());
    assert!(!c.state.join("vms").join(&vm).exists());
    assert!(!c.state.join("vms/vm-0badc0ffee01").exists());
    c.ok("delete_stemcell", json!([sc]));
}
