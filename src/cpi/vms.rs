//! The VM methods: `create_vm`, `delete_vm`, `has_vm`, `reboot_vm`, `set_vm_metadata` and
//! `calculate_vm_cloud_properties`, and the one place a VM is (re)booted: its overlay's
//! settings written for the disks it now has, then qemu started as a daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::config::Forward;
use super::protocol::Args;
use super::stemcells::{self, Stemcell};
use super::store::{self, Kind, Store};
use super::{CpiError, Ctx};
use crate::vm::settings::{self, Disks};
use crate::vm::{detached, overlay, qemu};

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
const OVERLAY: &str = "overlay.qcow2";
/// The ephemeral disk's file.
const EPHEMERAL: &str = "ephemeral.qcow2";
/// The ephemeral disk's virtio serial.
const EPHEMERAL_SERIAL: &str = "ephemeral";
/// How long qemu gets to flush its disk images after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

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
        if let Some(vm) = attached_to(&ctx.store, d) {
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
        let image = sdir.join(stemcells::IMAGE);
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
        boot(ctx, &cid, &dir, &rec, &sc, &sdir)
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

/// The VM a disk is attached to.
pub fn attached_to(store: &Store, disk: &str) -> Option<String> {
    store.all(Kind::Vm).into_iter().find_map(|(id, d)| {
        store::read_meta::<VmRecord>(&d)
            .ok()
            .filter(|r| r.disks.iter().any(|x| x == disk))
            .map(|_| id)
    })
}

/// The VM's qemu configuration for the disks its record names.
fn config(store: &Store, dir: &Path, rec: &VmRecord, sc: &Stemcell, sdir: &Path) -> qemu::VmConfig {
    let mut disks = Vec::new();
    if rec.ephemeral {
        disks.push(qemu::Drive {
            path: dir.join(EPHEMERAL),
            format: "qcow2",
            serial: EPHEMERAL_SERIAL.into(),
        });
    }
    for d in &rec.disks {
        disks.push(qemu::Drive {
            path: super::disks::image(store, d),
            format: "qcow2",
            serial: d.clone(),
        });
    }
    qemu::VmConfig {
        arch: sc.arch.clone(),
        accel: qemu::Accel::best_for(&sc.arch),
        kernel: sdir.join(stemcells::KERNEL),
        initramfs: sdir.join(stemcells::INITRAMFS),
        root_partuuid: sc.root_partuuid(),
        overlay: dir.join(OVERLAY),
        root_on_sd: sc.infrastructure == "raw",
        disks,
        forwards: rec.ports.iter().map(|f| (f.host, f.guest)).collect(),
        mac: settings::MAC.into(),
        ports: Vec::new(),
        control: None,
        memory_mib: rec.memory_mib,
        cpus: rec.cpus,
        dir: dir.to_path_buf(),
    }
}

/// The guest's device for persistent disk `disk` of VM `cid`.
pub fn device_of(store: &Store, cid: &str, disk: &str) -> Result<String, CpiError> {
    let (dir, rec) = open(store, cid)?;
    let sdir = store
        .find(Kind::Stemcell, &rec.stemcell)
        .ok_or_else(|| CpiError::StemcellNotFound(rec.stemcell.clone()))?;
    let sc: Stemcell = store::read_meta(&sdir)?;
    let i = rec
        .disks
        .iter()
        .position(|d| d == disk)
        .ok_or_else(|| CpiError::Cloud(format!("disk {disk} is not attached to VM {cid}")))?;
    Ok(config(store, &dir, &rec, &sc, &sdir).disk_device(i + usize::from(rec.ephemeral)))
}

/// Writes the VM's settings into its overlay for the disks it has now, then starts it.
fn boot(
    ctx: &mut Ctx,
    cid: &str,
    dir: &Path,
    rec: &VmRecord,
    sc: &Stemcell,
    sdir: &Path,
) -> Result<(), CpiError> {
    let cfg = config(&ctx.store, dir, rec, sc, sdir);
    for f in &rec.ports {
        if std::net::TcpListener::bind(("127.0.0.1", f.host)).is_err() {
            return Err(CpiError::VmCreation(format!(
                "127.0.0.1:{} (forwarded to the guest's {}) is in use: stop what listens there, or give the VM other ports in its cloud_properties",
                f.host, f.guest
            )));
        }
    }
    let offset = usize::from(rec.ephemeral);
    let disks = Disks {
        system: cfg.root_device().into(),
        ephemeral: rec
            .ephemeral
            .then(|| (EPHEMERAL_SERIAL.to_string(), cfg.disk_device(0))),
        persistent: rec
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| (d.clone(), d.clone(), cfg.disk_device(offset + i)))
            .collect(),
    };
    let text = settings::agent_settings(
        &rec.agent_id,
        cid,
        &settings::Agent {
            mbus: &ctx.config.agent.mbus,
            blobstore: &ctx.config.agent.blobstore,
            ntp: &ctx.config.agent.ntp,
        },
        &rec.networks,
        &rec.env,
        &disks,
    );
    let text = serde_json::to_vec_pretty(&text).map_err(|e| CpiError::State(e.to_string()))?;
    let scratch = dir.join("mnt");
    std::fs::create_dir_all(&scratch).map_err(|source| CpiError::Io {
        path: scratch.clone(),
        source,
    })?;
    {
        let m = overlay::MountedOverlay::open(&dir.join(OVERLAY), sc.root, &scratch)?;
        let agent_json = crate::inside::read_text(
            &m.root,
            "var/vcap/bosh/agent.json",
            crate::untrusted::SMALL_MAX,
            "the agent's config",
        )
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        let path = agent_json
            .as_ref()
            .and_then(overlay::settings_path)
            .ok_or_else(|| {
                CpiError::Cloud(format!(
                    "stemcell {}: its /var/vcap/bosh/agent.json has no File settings source to write the agent's settings to",
                    rec.stemcell
                ))
            })?;
        m.write_settings(sc.boot, &path, &text)?;
        m.close()?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    (ctx.log)(format!(
        "starting VM {cid}: {} {}, {} MiB, {} CPUs, {} disks, forwards {}",
        sc.arch,
        cfg.accel.name(),
        rec.memory_mib,
        rec.cpus,
        cfg.disks.len(),
        rec.ports
            .iter()
            .map(|f| format!("127.0.0.1:{}->{}", f.host, f.guest))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let pid = detached::start(&cfg)?;
    (ctx.log)(format!("VM {cid}: qemu pid {pid}"));
    Ok(())
}

/// The VM's directory and record, or VMNotFound.
pub fn open(store: &Store, cid: &str) -> Result<(PathBuf, VmRecord), CpiError> {
    let dir = store
        .find(Kind::Vm, cid)
        .ok_or_else(|| CpiError::VmNotFound(cid.to_string()))?;
    let rec = store::read_meta(&dir)?;
    Ok((dir, rec))
}

/// Powers the VM off, changes its record with `change`, and boots it again with new settings.
/// The guest sees a power cut (its filesystems recover from their journals): the stemcell's
/// minimal systemd has no logind to act on qemu's power button, and under emulation a clean
/// shutdown would cost a minute.
pub fn restart(
    ctx: &mut Ctx,
    cid: &str,
    change: impl FnOnce(&mut VmRecord),
) -> Result<(), CpiError> {
    let (dir, mut rec) = open(&ctx.store, cid)?;
    (ctx.log)(format!("powering VM {cid} off"));
    detached::stop(&dir, STOP_GRACE)?;
    change(&mut rec);
    store::write_meta(&dir, &rec)?;
    let sdir = ctx
        .store
        .find(Kind::Stemcell, &rec.stemcell)
        .ok_or_else(|| CpiError::StemcellNotFound(rec.stemcell.clone()))?;
    let sc: Stemcell = store::read_meta(&sdir)?;
    boot(ctx, cid, &dir, &rec, &sc, &sdir)
}

/// `delete_vm(vm_cid)`: stops qemu and removes the VM; its persistent disks stay.
pub fn delete(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    let cid = a.string(0, "vm_cid")?;
    let (dir, _) = open(&ctx.store, cid)?;
    detached::stop(&dir, STOP_GRACE)?;
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
    restart(ctx, a.string(0, "vm_cid")?, |_| {})?;
    Ok(Value::Null)
}

/// `set_vm_metadata(vm_cid, metadata)`: kept in the VM's record.
pub fn set_metadata(ctx: &mut Ctx, a: &Args) -> Result<Value, CpiError> {
    let cid = a.string(0, "vm_cid")?;
    let meta = a.object(1, "metadata")?;
    let (dir, mut rec) = open(&ctx.store, cid)?;
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
