//! The VM methods: `create_vm`, `delete_vm`, `has_vm`, `reboot_vm`, `set_vm_metadata` and
//! `calculate_vm_cloud_properties` (booting is `machine`'s).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::config::Forward;
use super::machine;
use super::protocol::Args;
use super::records::{self, Stemcell, VmRecord, EPHEMERAL, OVERLAY};
use super::store::{self, Kind};
use super::{CpiError, Ctx};
use crate::vm::{detached, overlay};

/// The cloud properties a VM takes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloudProperties {
    memory_mib: Option<u32>,
    cpus: Option<usize>,
    ephemeral_disk_mib: Option<u64>,
    #[serde(default)]
    ports: Vec<Forward>,
}

/// `create_vm(agent_id, stemcell_cid, cloud_properties, networks, disk_cids, env)`: returns
/// the VM's id (API 1) or the id and the networks (API 2).
pub fn create(ctx: &mut Ctx, a: &Args, api: u64) -> Result<Value, CpiError> {
    let agent_id = a.string(0, "agent_id")?.to_string();
    let stemcell_cid = a.string(1, "stemcell_cid")?;
    let cp: CloudProperties = serde_json::from_value(Value::Object(a.object(2, "cloud_properties")?))
        .map_err(|e| CpiError::Request(format!("create_vm: cloud_properties: {e}; this CPI takes memory_mib, cpus, ephemeral_disk_mib and ports ([{{host, guest}}])")))?;
    let networks = a.object(3, "networks")?;
    let disk_cids = a.strings(4, "disk_cids")?;
    let env = Value::Object(a.object(5, "env")?);
    let sdir = ctx
        .store
        .find(Kind::Stemcell, stemcell_cid)
        .ok_or_else(|| CpiError::StemcellNotFound(stemcell_cid.to_string()))?;
    let sc: Stemcell = store::read_meta(&sdir)?;
    for d in &disk_cids {
        if ctx.store.find(Kind::Disk, d).is_none() {
            return Err(CpiError::DiskNotFound(d.clone()));
        }
        if let Some(vm) = records::attached_to(&ctx.store, d) {
            return Err(CpiError::Cloud(format!("disk {d} is attached to VM {vm}")));
        }
    }
    let defaults = &ctx.config.vm;
    // The VM's own forwards, then the config's for the guest ports it does not forward
    // itself: a second VM gives its mbus another host port.
    let mut ports = cp.ports.clone();
    for p in &defaults.ports {
        if !ports.iter().any(|q| q.host == p.host || q.guest == p.guest) {
            ports.push(*p);
        }
    }
    let rec = VmRecord {
        stemcell: stemcell_cid.to_string(),
        agent_id,
        memory_mib: cp.memory_mib.unwrap_or(defaults.memory_mib).max(256),
        cpus: match cp.cpus.unwrap_or(defaults.cpus) {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        },
        ports,
        ephemeral: sc.infrastructure == "bakery",
        disks: disk_cids,
        networks: networks.clone(),
        env,
        metadata: Value::Null,
    };
    let eph_mib = cp.ephemeral_disk_mib.unwrap_or(defaults.ephemeral_disk_mib);
    let cid = ctx.store.new_id(Kind::Vm);
    let dir = ctx.store.root().join("vms").join(&cid);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| CpiError::Io { path: p, source }
    };
    std::fs::create_dir(&dir).map_err(io(&dir))?;
    // Until the VM runs whole, a killed call's VM is the next call's to remove.
    std::fs::write(dir.join(store::CREATING), b"").map_err(io(&dir))?;
    let made = (|| {
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(io(&dir))?;
        let image = sdir.join(records::IMAGE);
        let card = match sc.infrastructure.as_str() {
            "raw" => {
                let len = std::fs::metadata(&image).map_err(io(&image))?.len();
                Some(overlay::card_size(len, eph_mib << 20))
            }
            _ => None,
        };
        overlay::create(&image, &dir.join(OVERLAY), card)?;
        if rec.ephemeral {
            crate::cmd::run(
                std::process::Command::new("qemu-img")
                    .args(["create", "-q", "-f", "qcow2"])
                    .arg(dir.join(EPHEMERAL))
                    .arg(format!("{eph_mib}M")),
            )?;
        }
        store::write_meta(&dir, &rec)?;
        machine::boot(ctx, &cid, &dir, &rec, &sc, &sdir)
    })();
    if let Err(e) = made {
        let _ = detached::stop(&dir, Duration::from_secs(5));
        let _ = ctx.store.remove(&dir);
        return Err(match e {
            CpiError::Vm(v) => CpiError::VmCreation(v.to_string()),
            other => other,
        });
    }
    std::fs::remove_file(dir.join(store::CREATING)).map_err(io(&dir))?;
    (ctx.log)(format!("VM {cid} is running (agent {})", rec.agent_id));
    Ok(match api {
        1 => Value::String(cid),
        _ => json!([cid, networks]),
    })
}

/// `delete_vm(vm_cid)`: stops qemu and removes the VM; its persistent disks stay.
pub fn delete(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    let cid = a.string(0, "vm_cid")?;
    let (dir, _) = records::open_vm(&ctx.store, cid)?;
    detached::stop(&dir, machine::STOP_GRACE)?;
    ctx.store.remove(&dir)?;
    (ctx.log)(format!("VM {cid} deleted"));
    Ok(Value::Null)
}

/// `has_vm(vm_cid)`.
pub fn has(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    Ok(json!(ctx
        .store
        .find(Kind::Vm, a.string(0, "vm_cid")?)
        .is_some()))
}

/// `reboot_vm(vm_cid)`.
pub fn reboot(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    machine::restart(ctx, a.string(0, "vm_cid")?, |_| {})?;
    Ok(Value::Null)
}

/// `set_vm_metadata(vm_cid, metadata)`: kept in the VM's record.
pub fn set_metadata(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    let cid = a.string(0, "vm_cid")?;
    let meta = a.object(1, "metadata")?;
    let (dir, mut rec) = records::open_vm(&ctx.store, cid)?;
    rec.metadata = Value::Object(meta);
    store::write_meta(&dir, &rec)?;
    Ok(Value::Null)
}

/// `calculate_vm_cloud_properties({ram, cpu, ephemeral_disk_size})`.
pub fn calculate_cloud_properties(a: &Args) -> Result<Value, CpiError> {
    let req = a.object(0, "desired_instance_size")?;
    let get = |k: &str| {
        req.get(k).and_then(Value::as_u64).ok_or_else(|| {
            CpiError::Request(format!(
                "calculate_vm_cloud_properties: `{k}` must be a whole number (ram and ephemeral_disk_size in MiB, cpu a count)"
            ))
        })
    };
    Ok(json!({
        "memory_mib": get("ram")?,
        "cpus": get("cpu")?,
        "ephemeral_disk_mib": get("ephemeral_disk_size")?,
    }))
}
