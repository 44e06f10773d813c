//! Booting a VM: its qemu configuration from its record, the agent's settings written into its
//! overlay for the disks it has now, qemu started as a daemon; and restarting one with a
//! changed record (a disk attached or detached).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::records::{self, Stemcell, VmRecord, EPHEMERAL, EPHEMERAL_SERIAL, OVERLAY};
use super::store::{self, Store};
use super::{CpiError, Ctx};
use crate::vm::settings::{self, Disks};
use crate::vm::{detached, overlay, qemu};

/// How long qemu gets to flush its disk images after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(20);
/// How long a guest gets to sync, remount read-only and power off before qemu is stopped.
const CLEAN_GRACE: Duration = Duration::from_secs(30);

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
            path: records::disk_image(store, d),
            format: "qcow2",
            serial: d.clone(),
        });
    }
    qemu::VmConfig {
        arch: sc.arch.clone(),
        accel: qemu::Accel::best_for(&sc.arch),
        kernel: sdir.join(records::KERNEL),
        initramfs: sdir.join(records::INITRAMFS),
        root_partuuid: sc.root_partuuid(),
        overlay: dir.join(OVERLAY),
        root_on_sd: sc.infrastructure == "raw",
        disks,
        forwards: rec.ports.iter().map(|f| (f.host, f.guest)).collect(),
        // The guest answers on its forwards and reaches nothing: the CLI pushes blobs to the
        // agent over the mbus, and no traffic of the guest leaves qemu's user network.
        restrict: true,
        mac: settings::MAC.into(),
        ports: Vec::new(),
        control: None,
        console_input: Some(dir.join(detached::CONSOLE_SOCKET)),
        memory_mib: rec.memory_mib,
        cpus: rec.cpus,
        dir: dir.to_path_buf(),
    }
}

/// The guest's device for persistent disk `disk` of VM `cid`.
pub fn device_of(store: &Store, cid: &str, disk: &str) -> Result<String, CpiError> {
    let (dir, rec) = records::open_vm(store, cid)?;
    let (sdir, sc) = records::stemcell_of(store, &rec)?;
    let i = rec
        .disks
        .iter()
        .position(|d| d == disk)
        .ok_or_else(|| CpiError::Cloud(format!("disk {disk} is not attached to VM {cid}")))?;
    Ok(config(store, &dir, &rec, &sc, &sdir).disk_device(i + usize::from(rec.ephemeral)))
}

/// Writes the VM's settings into its overlay for the disks it has now, then starts it.
pub fn boot(
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

/// Powers the VM off, changes its record with `change`, and boots it again with new settings.
/// The guest is not shut down (the stemcell's minimal systemd has no logind to act on qemu's
/// power button, and under emulation a shutdown would cost a minute) but made safe to cut:
/// Magic SysRq syncs, remounts read-only and powers off (`detached::power_off_cleanly`). A
/// power cut without that lost the agent's freshly written state files, and the agent did not
/// come back.
pub fn restart(
    ctx: &mut Ctx,
    cid: &str,
    change: impl FnOnce(&mut VmRecord),
) -> Result<(), CpiError> {
    let (dir, mut rec) = records::open_vm(&ctx.store, cid)?;
    (ctx.log)(format!("powering VM {cid} off"));
    let t0 = std::time::Instant::now();
    match detached::power_off_cleanly(&dir, CLEAN_GRACE) {
        true => (ctx.log)(format!(
            "VM {cid}: synced, remounted read-only and powered off (SysRq) in {:.1} s",
            t0.elapsed().as_secs_f64()
        )),
        false => (ctx.log)(format!(
            "VM {cid}: no clean power-off within {} s (SysRq over the console); stopping qemu",
            CLEAN_GRACE.as_secs()
        )),
    }
    detached::stop(&dir, STOP_GRACE)?;
    change(&mut rec);
    store::write_meta(&dir, &rec)?;
    let (sdir, sc) = records::stemcell_of(&ctx.store, &rec)?;
    boot(ctx, cid, &dir, &rec, &sc, &sdir)
}
