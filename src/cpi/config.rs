//! The CPI's config file (JSON, rendered by the CPI release's job): where its state lives,
//! what every agent is told (mbus, blobstore, NTP), and the VMs' defaults.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::CpiError;

/// The config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// An absolute directory holding the imported stemcells, the VMs and the disks.
    pub state_dir: PathBuf,
    /// What goes into every agent's settings.
    pub agent: AgentConfig,
    /// The VMs' defaults, which a VM's `cloud_properties` override.
    #[serde(default)]
    pub vm: VmDefaults,
}

/// What every agent is told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's mbus URL (`https://USER:PASSWORD@0.0.0.0:6868` for `bosh create-env`).
    pub mbus: String,
    /// The agent's blobstore (`{"provider": "local", "options": {...}}` for create-env).
    #[serde(default = "local_blobstore")]
    pub blobstore: serde_json::Value,
    /// NTP servers (the guest reaches none but qemu's gateway; empty by default).
    #[serde(default)]
    pub ntp: Vec<String>,
}

fn local_blobstore() -> serde_json::Value {
    serde_json::json!({"provider": "local", "options": {"blobstore_path": "/var/vcap/micro_bosh/data/cache"}})
}

/// The VMs' defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmDefaults {
    /// Memory in MiB.
    #[serde(default = "default_memory")]
    pub memory_mib: u32,
    /// Virtual CPUs (0: as many as the host has).
    #[serde(default)]
    pub cpus: usize,
    /// The ephemeral disk's size in MiB.
    #[serde(default = "default_ephemeral")]
    pub ephemeral_disk_mib: u64,
    /// Forwards from 127.0.0.1 every VM gets: the agent's mbus by default.
    #[serde(default = "default_ports")]
    pub ports: Vec<Forward>,
}

impl Default for VmDefaults {
    fn default() -> Self {
        VmDefaults {
            memory_mib: default_memory(),
            cpus: 0,
            ephemeral_disk_mib: default_ephemeral(),
            ports: default_ports(),
        }
    }
}

fn default_memory() -> u32 {
    1024
}
fn default_ephemeral() -> u64 {
    4096
}
fn default_ports() -> Vec<Forward> {
    vec![Forward {
        host: 6868,
        guest: 6868,
    }]
}

/// A TCP port forwarded from 127.0.0.1 on the host to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// The port on 127.0.0.1.
    pub host: u16,
    /// The guest's port.
    pub guest: u16,
}

impl Config {
    /// Reads and checks the config file.
    pub fn load(path: &Path) -> Result<Config, CpiError> {
        let bad = |msg: String| CpiError::Config {
            path: path.to_path_buf(),
            msg,
        };
        let text =
            crate::untrusted::read_capped(path, crate::untrusted::SMALL_MAX, "the CPI config")
                .map_err(|e| bad(e.to_string()))?;
        let c: Config = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        if !c.state_dir.is_absolute() {
            return Err(bad(format!(
                "state_dir {} is not an absolute path",
                c.state_dir.display()
            )));
        }
        if !c.agent.mbus.starts_with("https://") && !c.agent.mbus.starts_with("nats://") {
            return Err(bad(format!(
                "agent.mbus `{}` is not an https:// (or nats://) URL",
                c.agent.mbus
            )));
        }
        if c.vm.memory_mib < 256 {
            return Err(bad(format!(
                "vm.memory_mib {} is under the 256 MiB a stemcell boots in",
                c.vm.memory_mib
            )));
        }
        Ok(c)
    }
}
