//! The CPI's records and the paths of what it keeps: an imported stemcell, a VM, a disk, each
//! in its directory under the state dir, and which VM a disk is attached to.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::Forward;
use super::store::{self, Kind, Store};
use super::CpiError;

/// An imported stemcell's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stemcell {
    /// The stemcell's name and version.
    pub name: String,
    /// `armhf` or `arm64`.
    pub arch: String,
    /// `bakery` or `raw`.
    pub infrastructure: String,
    /// The MBR disk identifier.
    pub disk_id: u32,
    /// Partition 1 (boot): first byte, length.
    pub boot: (u64, u64),
    /// Partition 2 (root): first byte, length.
    pub root: (u64, u64),
    /// The kernel's name on the boot partition.
    pub kernel_name: String,
}

/// The base image's file in a stemcell's directory.
pub const IMAGE: &str = "image.raw";
/// The kernel's file.
pub const KERNEL: &str = "kernel";
/// The initramfs's file.
pub const INITRAMFS: &str = "initramfs";

impl Stemcell {
    /// The root partition's PARTUUID.
    pub fn root_partuuid(&self) -> String {
        format!("{:08x}-02", self.disk_id)
    }
}

/// A VM's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmRecord {
    /// The stemcell it boots.
    pub stemcell: String,
    /// Its agent's id.
    pub agent_id: String,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: usize,
    /// Forwards from 127.0.0.1.
    pub ports: Vec<Forward>,
    /// Whether it has an ephemeral disk (bakery; a raw stemcell's agent partitions its card).
    pub ephemeral: bool,
    /// The persistent disks attached, in the order the guest sees them.
    pub disks: Vec<String>,
    /// The networks `create_vm` was given.
    pub networks: Map<String, Value>,
    /// The director's `env`.
    pub env: Value,
    /// Metadata from `set_vm_metadata`.
    #[serde(default)]
    pub metadata: Value,
}

/// The overlay's file in a VM's directory.
pub const OVERLAY: &str = "overlay.qcow2";
/// The ephemeral disk's file.
pub const EPHEMERAL: &str = "ephemeral.qcow2";
/// The ephemeral disk's virtio serial.
pub const EPHEMERAL_SERIAL: &str = "ephemeral";

/// The VM a disk is attached to.
pub fn attached_to(store: &Store, disk: &str) -> Option<String> {
    store.all(Kind::Vm).into_iter().find_map(|(id, d)| {
        store::read_meta::<VmRecord>(&d)
            .ok()
            .filter(|r| r.disks.iter().any(|x| x == disk))
            .map(|_| id)
    })
}

/// The VM's directory and record, or VMNotFound.
pub fn open_vm(store: &Store, cid: &str) -> Result<(PathBuf, VmRecord), CpiError> {
    let dir = store
        .find(Kind::Vm, cid)
        .ok_or_else(|| CpiError::VmNotFound(cid.to_string()))?;
    let rec = store::read_meta(&dir)?;
    Ok((dir, rec))
}

/// The stemcell a VM boots: its directory and record.
pub fn stemcell_of(store: &Store, rec: &VmRecord) -> Result<(PathBuf, Stemcell), CpiError> {
    let dir = store
        .find(Kind::Stemcell, &rec.stemcell)
        .ok_or_else(|| CpiError::StemcellNotFound(rec.stemcell.clone()))?;
    let sc = store::read_meta(&dir)?;
    Ok((dir, sc))
}

/// A disk's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskRecord {
    /// Its size in MiB.
    pub size_mib: u64,
    /// Metadata from `set_disk_metadata`.
    #[serde(default)]
    pub metadata: Value,
}

/// The image file of disk `cid`.
pub fn disk_image(store: &Store, cid: &str) -> PathBuf {
    store.root().join("disks").join(cid).join("disk.qcow2")
}

pub fn open_disk(store: &Store, cid: &str) -> Result<(PathBuf, DiskRecord), CpiError> {
    let dir = store
        .find(Kind::Disk, cid)
        .ok_or_else(|| CpiError::DiskNotFound(cid.to_string()))?;
    Ok((dir.clone(), store::read_meta(&dir)?))
}
