//! `create_stemcell` and `delete_stemcell`: a disk stemcell's image imported as a raw base
//! image (zeros as holes), with the kernel and initramfs its boot partition's config.txt names.

use std::path::Path;

use serde_json::Value;

use super::protocol::Args;
use super::records::{Stemcell, VmRecord, IMAGE, INITRAMFS, KERNEL};
use super::store::{self, Kind};
use super::{CpiError, Ctx};
use crate::vm::disk;

/// `create_stemcell(image_path, cloud_properties)`.
pub fn create(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    let image = Path::new(a.string(0, "image_path")?);
    let cp = a.object(1, "cloud_properties")?;
    let prop = |k: &str| {
        cp.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (arch, infra) = (prop("architecture"), prop("infrastructure"));
    if !matches!(arch.as_str(), "armhf" | "arm64") {
        return Err(CpiError::Request(format!(
            "create_stemcell: cloud_properties.architecture is `{arch}`: the pistemcell CPI boots armhf and arm64 stemcells"
        )));
    }
    if !matches!(infra.as_str(), "bakery" | "raw") {
        return Err(CpiError::Request(format!(
            "create_stemcell: cloud_properties.infrastructure is `{infra}`: the pistemcell CPI boots disk stemcells (bakery, raw); build one with --set infrastructure=bakery"
        )));
    }
    let name = format!("{} {}", prop("name"), prop("version"));
    let cid = ctx.store.new_id(Kind::Stemcell);
    let staged = ctx.store.staging(Kind::Stemcell, &cid)?;
    (ctx.log)(format!(
        "importing {} ({name}, {arch}, {infra})",
        image.display()
    ));
    let made = (|| {
        let d = disk::import(image, &staged.join(IMAGE), &arch, &infra, &name)?;
        let files = disk::boot_files(&d, &staged.join(KERNEL), &staged.join(INITRAMFS))?;
        if !disk::boots_on_virt(&files.kernel_name) {
            return Err(CpiError::Request(format!(
                "create_stemcell: its kernel {} is not one of Debian's generic ARM kernels (armmp, arm64), which boot on qemu's virt machine",
                files.kernel_name
            )));
        }
        store::write_meta(
            &staged,
            &Stemcell {
                name: name.clone(),
                arch: arch.clone(),
                infrastructure: infra.clone(),
                disk_id: d.disk_id,
                boot: d.boot,
                root: d.root,
                kernel_name: files.kernel_name,
            },
        )
    })();
    if let Err(e) = made {
        let _ = ctx.store.remove(&staged);
        return Err(e);
    }
    ctx.store.commit(Kind::Stemcell, &staged, &cid)?;
    (ctx.log)(format!("stemcell {cid} imported"));
    Ok(Value::String(cid))
}

/// `delete_stemcell(stemcell_cid)`: refused while a VM boots from it.
pub fn delete(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    let cid = a.string(0, "stemcell_cid")?;
    let Some(dir) = ctx.store.find(Kind::Stemcell, cid) else {
        return Err(CpiError::StemcellNotFound(cid.to_string()));
    };
    let users: Vec<String> = ctx
        .store
        .all(Kind::Vm)
        .into_iter()
        .filter(|(_, d)| store::read_meta::<VmRecord>(d).is_ok_and(|m| m.stemcell == cid))
        .map(|(id, _)| id)
        .collect();
    if !users.is_empty() {
        return Err(CpiError::Cloud(format!(
            "stemcell {cid} is the base image of VM {}: delete the VM first",
            users.join(", ")
        )));
    }
    ctx.store.remove(&dir)?;
    (ctx.log)(format!("stemcell {cid} deleted"));
    Ok(Value::Null)
}
