//! The disk methods: persistent disks are qcow2 files under `disks/CID/`, attached to a VM by
//! powering it off and booting it again with the disk as a virtio disk whose serial is the
//! disk's id (hot-plug would need the guest's virtio-mmio to take a new device, which it
//! cannot: `virt` has no hot-pluggable bus for them).

use serde_json::{json, Value};

use super::machine;
use super::protocol::Args;
use super::records::{self, open_disk as open, DiskRecord};
use super::store::{self, Kind};
use super::{CpiError, Ctx};
use crate::vm::settings;

/// `create_disk(size_mib, cloud_properties, vm_cid)`.
pub fn create(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    let size = a.number(0, "size")?;
    if size == 0 {
        return Err(CpiError::Request(
            "create_disk: size must be at least 1 MiB".into(),
        ));
    }
    let cid = ctx.store.new_id(Kind::Disk);
    let staged = ctx.store.staging(Kind::Disk, &cid)?;
    let made = (|| {
        let file = staged.join("disk.qcow2");
        crate::cmd::run(
            std::process::Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2"])
                .arg(&file)
                .arg(format!("{size}M")),
        )?;
        store::write_meta(
            &staged,
            &DiskRecord {
                size_mib: size,
                metadata: Value::Null,
            },
        )
    })();
    if let Err(e) = made {
        let _ = ctx.store.remove(&staged);
        return Err(e);
    }
    ctx.store.commit(Kind::Disk, &staged, &cid)?;
    (ctx.log)(format!("disk {cid} made ({size} MiB)"));
    Ok(Value::String(cid))
}

/// `delete_disk(disk_cid)`: refused while attached.
pub fn delete(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    let cid = a.string(0, "disk_cid")?;
    let (dir, _) = open(&ctx.store, cid)?;
    if let Some(vm) = records::attached_to(&ctx.store, cid) {
        return Err(CpiError::Cloud(format!(
            "disk {cid} is attached to VM {vm}: detach it first"
        )));
    }
    ctx.store.remove(&dir)?;
    (ctx.log)(format!("disk {cid} deleted"));
    Ok(Value::Null)
}

/// `has_disk(disk_cid)`.
pub fn has(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    Ok(json!(ctx
        .store
        .find(Kind::Disk, a.string(0, "disk_cid")?)
        .is_some()))
}

/// `attach_disk(vm_cid, disk_cid)`: the VM is powered off and booted with the disk; returns
/// the disk hint (API 2) or nothing (API 1).
pub fn attach(ctx: &mut Ctx, a: &Args, api: u64) -> Result<Value, CpiError> {
    let (vm, cid) = (a.string(0, "vm_cid")?, a.string(1, "disk_cid")?);
    records::open_vm(&ctx.store, vm)?;
    open(&ctx.store, cid)?;
    match records::attached_to(&ctx.store, cid) {
        Some(other) if other != vm => {
            return Err(CpiError::Cloud(format!(
                "disk {cid} is attached to VM {other}: detach it first"
            )))
        }
        Some(_) => {}
        None => {
            (ctx.log)(format!("attaching disk {cid} to VM {vm} (the VM restarts)"));
            machine::restart(ctx, vm, |r| r.disks.push(cid.to_string()))?;
        }
    }
    let device = machine::device_of(&ctx.store, vm, cid)?;
    Ok(match api {
        1 => Value::Null,
        _ => settings::disk_hint(cid, &device),
    })
}

/// `detach_disk(vm_cid, disk_cid)`: the VM is powered off and booted without the disk.
pub fn detach(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    let (vm, cid) = (a.string(0, "vm_cid")?, a.string(1, "disk_cid")?);
    let (_, rec) = records::open_vm(&ctx.store, vm)?;
    open(&ctx.store, cid)?;
    if !rec.disks.iter().any(|d| d == cid) {
        return Err(CpiError::Cloud(format!(
            "disk {cid} is not attached to VM {vm}"
        )));
    }
    (ctx.log)(format!(
        "detaching disk {cid} from VM {vm} (the VM restarts)"
    ));
    machine::restart(ctx, vm, |r| r.disks.retain(|d| d != cid))?;
    Ok(Value::Null)
}

/// `get_disks(vm_cid)`.
pub fn get(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    let (_, rec) = records::open_vm(&ctx.store, a.string(0, "vm_cid")?)?;
    Ok(json!(rec.disks))
}

/// `resize_disk(disk_cid, new_size)`: grows a detached disk; shrinking is refused.
pub fn resize(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    let (cid, size) = (a.string(0, "disk_cid")?, a.number(1, "new_size")?);
    let (dir, mut rec) = open(&ctx.store, cid)?;
    if let Some(vm) = records::attached_to(&ctx.store, cid) {
        return Err(CpiError::Cloud(format!(
            "disk {cid} is attached to VM {vm}: detach it before resizing"
        )));
    }
    if size < rec.size_mib {
        return Err(CpiError::Cloud(format!(
            "disk {cid} is {} MiB: it cannot shrink to {size} MiB",
            rec.size_mib
        )));
    }
    if size > rec.size_mib {
        crate::cmd::run(
            std::process::Command::new("qemu-img")
                .args(["resize", "-q", "-f", "qcow2"])
                .arg(records::disk_image(&ctx.store, cid))
                .arg(format!("{size}M")),
        )?;
        rec.size_mib = size;
        store::write_meta(&dir, &rec)?;
    }
    Ok(Value::Null)
}

/// `set_disk_metadata(disk_cid, metadata)`: kept in the disk's record.
pub fn set_metadata(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    let cid = a.string(0, "disk_cid")?;
    let meta = a.object(1, "metadata")?;
    let (dir, mut rec) = open(&ctx.store, cid)?;
    rec.metadata = Value::Object(meta);
    store::write_meta(&dir, &rec)?;
    Ok(Value::Null)
}
