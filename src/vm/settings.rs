//! The agent's settings for a VM, as a cloud's metadata service would hand them over, for
//! boot-test and the CPI alike: its id, the mbus, blobstore and NTP servers, the networks
//! (marked preconfigured: qemu's user network has already given the guest its address), the
//! disks the VM has, and the director's `env` (which carries the mbus certificate). Written
//! into the overlay by `overlay::MountedOverlay::write_settings`.

use serde_json::{json, Map, Value};

/// What every agent of a VM host is told: the mbus URL, the blobstore and NTP servers.
#[derive(Debug, Clone)]
pub struct Agent<'a> {
    /// The mbus URL the agent serves.
    pub mbus: &'a str,
    /// The agent's blobstore.
    pub blobstore: &'a Value,
    /// NTP servers.
    pub ntp: &'a [String],
}

/// The MAC address of every VM's one network card (each VM has its own user network).
pub const MAC: &str = "52:54:00:12:34:56";
/// The address qemu's user network gives the guest.
pub const GUEST_IP: &str = "10.0.2.15";

/// The disks the settings name.
pub struct Disks {
    /// `/dev/vda` or `/dev/mmcblk0`.
    pub system: String,
    /// The ephemeral disk: its virtio serial and device.
    pub ephemeral: Option<(String, String)>,
    /// Persistent disks: id, serial and device.
    pub persistent: Vec<(String, String, String)>,
}

/// The disk hint the agent resolves a disk by: its virtio serial (`/dev/disk/by-id`) first,
/// its device path otherwise.
pub fn disk_hint(serial: &str, device: &str) -> Value {
    json!({"id": serial, "volume_id": serial, "path": device})
}

/// The settings JSON.
pub fn agent_settings(
    agent_id: &str,
    vm_cid: &str,
    agent: &Agent,
    networks: &Map<String, Value>,
    env: &Value,
    disks: &Disks,
) -> Value {
    let nets: Map<String, Value> = networks
        .iter()
        .map(|(name, n)| {
            let mut n = n.clone();
            if let Value::Object(m) = &mut n {
                m.insert("preconfigured".into(), json!(true));
                m.insert("mac".into(), json!(MAC));
                m.remove("cloud_properties");
            }
            (name.clone(), n)
        })
        .collect();
    let persistent: Map<String, Value> = disks
        .persistent
        .iter()
        .map(|(id, serial, dev)| (id.clone(), disk_hint(serial, dev)))
        .collect();
    let mut v = json!({
        "agent_id": agent_id,
        "vm": {"name": vm_cid},
        "mbus": agent.mbus,
        "blobstore": agent.blobstore,
        "ntp": agent.ntp,
        "networks": nets,
        "disks": {"system": disks.system, "persistent": persistent},
        "env": env,
    });
    if let Some((serial, dev)) = &disks.ephemeral {
        v["disks"]["ephemeral"] = json!({"id": serial, "path": dev});
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_carry_the_config_the_networks_the_disks_and_env() {
        let blobstore = json!({"provider": "local"});
        let agent = Agent {
            mbus: "https://mbus:p@0.0.0.0:6868",
            blobstore: &blobstore,
            ntp: &[],
        };
        let nets =
            json!({"default": {"type": "manual", "ip": "10.0.2.15", "cloud_properties": {"x": 1}}});
        let env = json!({"bosh": {"mbus": {"cert": {"ca": "CA"}}}});
        let disks = Disks {
            system: "/dev/vda".into(),
            ephemeral: Some(("eph".into(), "/dev/vdb".into())),
            persistent: vec![("disk-1".into(), "disk-1".into(), "/dev/vdc".into())],
        };
        let s = agent_settings(
            "a-1",
            "vm-1",
            &agent,
            nets.as_object().unwrap(),
            &env,
            &disks,
        );
        assert_eq!(s["agent_id"], "a-1");
        assert_eq!(s["mbus"], "https://mbus:p@0.0.0.0:6868");
        assert_eq!(s["networks"]["default"]["preconfigured"], true);
        assert_eq!(s["networks"]["default"]["mac"], MAC);
        assert!(s["networks"]["default"].get("cloud_properties").is_none());
        assert_eq!(s["env"]["bosh"]["mbus"]["cert"]["ca"], "CA");
        assert_eq!(s["disks"]["ephemeral"]["path"], "/dev/vdb");
        assert_eq!(s["disks"]["persistent"]["disk-1"]["id"], "disk-1");
    }
}
