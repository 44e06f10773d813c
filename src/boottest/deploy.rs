//! `boot-test --deploy`: once the boot checks pass, the test plays the director over the
//! agent's HTTPS mbus, as a director or `bosh create-env` would:
//!
//! 1. the source of a package the project generates goes into a dav blobstore the test serves
//!    on 127.0.0.1 (the guest reaches it as `10.0.2.2` through qemu's user network), and
//!    `compile_package` builds it on the VM with the image's `make` and `gcc`; the compiled
//!    blob must arrive in the blobstore;
//! 2. `add_persistent_disk` and `mount_disk` of the VM's second, empty disk: the agent
//!    partitions and formats it and mounts it at `/var/vcap/store`;
//! 3. `apply` of a job using the package (a monit file, a ctl script, a rendered config),
//!    `run_script pre-start`, `start`, then `get_state` until `job_state` is `running`; the
//!    compiled program answers on a port forwarded to 127.0.0.1 with what the job wrote on the
//!    persistent disk at its first start;
//! 4. `drain`, `stop`, `unmount_disk`, a reboot with the same disks, `mount_disk` again and
//!    `start`: the job answers with the same marker, so the disk kept it;
//! 5. `fetch_logs`, whose tarball must arrive in the blobstore.
//!
//! Each step gets its time since the first power-on; the first failure ends the proof and the
//! report shows the agent's last error and the console's tail. The stemcell is never modified:
//! the VM runs on the boot test's overlay and scratch disks.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::checks::Checks;
use super::steps::Steps;
use super::{guest, mbus, BootTestError, Logs};
use crate::deploy::dav::DavServer;
use crate::deploy::director::{BlobRef, Director, DrainKind};
use crate::deploy::release::{TestRelease, JOB, PACKAGE, PACKAGE_VERSION};
use crate::vm;

/// The host as the guest sees it on qemu's user network (connections reach the host's 127.0.0.1).
pub const GUEST_HOST: &str = "10.0.2.2";
/// The port the test job listens on in the guest (forwarded from a free port on 127.0.0.1).
pub const JOB_PORT: u16 = 2345;
/// The persistent disk's id, as a director would name it.
pub const DISK_CID: &str = "pstc-persistent-disk";
/// The persistent disk's size (sparse).
pub const PERSISTENT_BYTES: u64 = 1 << 30;
/// The bound on one step's wait (a compile under emulation takes the longest).
const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything the proof drives.
pub struct Session<'a> {
    /// How the VM is started (again, for the reboot).
    pub cfg: vm::qemu::VmConfig,
    /// The running VM.
    pub machine: vm::qemu::Vm,
    /// The agent's mbus.
    pub mbus: &'a mbus::Mbus,
    /// The blobstore.
    pub dav: &'a DavServer,
    /// The host port forwarded to the job's port.
    pub job_port: u16,
    /// The first power-on.
    pub t0: Instant,
    /// The bound on waits from power-on.
    pub timeout: Duration,
    /// The VM's logs.
    pub logs: Logs,
    /// The boot checks (they collect the agent's last error).
    pub checks: &'a mut Checks,
    /// One line per step as it ends.
    pub progress: &'a dyn Fn(&str),
}

/// Starts the blobstore in the scratch dir.
pub fn start_blobstore(dir: &Path) -> Result<DavServer, BootTestError> {
    DavServer::start(&dir.join("blobstore"))
        .map_err(|e| BootTestError::Vm(format!("the deploy proof's dav blobstore: {e}")))
}

/// Makes the empty persistent disk.
pub fn persistent_disk(dir: &Path) -> Result<PathBuf, BootTestError> {
    let p = dir.join("persistent.raw");
    std::fs::File::create(&p)
        .and_then(|f| f.set_len(PERSISTENT_BYTES))
        .map_err(|e| BootTestError::Vm(format!("the persistent disk {}: {e}", p.display())))?;
    Ok(p)
}

/// The steps in order, with their titles.
pub const STEPS: &[(&str, &str)] = &[
    ("compile", "compile_package builds C with make and gcc on the VM; the compiled blob arrives in the blobstore"),
    ("mount-disk", "add_persistent_disk + mount_disk: the agent formats the second disk and mounts /var/vcap/store"),
    ("apply", "apply installs the job and the compiled package"),
    ("pre-start", "run_script pre-start runs the job's script"),
    ("start", "start, then get_state reports job_state running"),
    ("job-answers", "the compiled program answers on its forwarded port"),
    ("drain-stop", "drain, stop, unmount_disk"),
    ("reboot", "clean poweroff, power on with the same disks: the agent answers ping again"),
    ("remount", "the disk mounted again, start: the job runs and reads what it wrote before the reboot"),
    ("fetch-logs", "fetch_logs: the job's logs arrive in the blobstore"),
];

/// Marks every step skipped with `why`.
pub fn skip_all(proof: &mut Steps, why: &str) {
    for (name, title) in STEPS {
        proof.skip(name, title, why);
    }
}

impl Session<'_> {
    fn poll_logs(&mut self) {
        let at = self.t0.elapsed();
        for l in self.logs.agent_log.poll() {
            self.checks.agent_log(&l, at);
        }
        self.logs.console.poll();
        self.logs.probe.poll();
    }

    /// Waits until `f` gives `Some`, polling every second, bounded by the step timeout.
    fn wait_for<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut Self) -> Result<Option<T>, String>,
    ) -> Result<T, String> {
        let until = Instant::now() + STEP_TIMEOUT;
        loop {
            self.poll_logs();
            if let Some(v) = f(self)? {
                return Ok(v);
            }
            if let Some(st) = self.machine.exited() {
                return Err(format!("the VM stopped ({st}) while waiting for {what}"));
            }
            if Instant::now() > until || self.t0.elapsed() > self.timeout {
                return Err(format!("timed out waiting for {what}"));
            }
            if crate::interrupt::requested() {
                return Err("interrupted".into());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn wait_running(&mut self, d: &D) -> Result<String, String> {
        let mut last = String::new();
        let since = Instant::now();
        self.wait_for("job_state running", |_| {
            let v = d.get_state().map_err(|e| e.to_string())?;
            last = v.raw.to_string();
            match v.job_state.as_str() {
                "running" => Ok(Some(format!(
                    "job_state running after {:.1} s ({})",
                    since.elapsed().as_secs_f64(),
                    v.processes
                        .iter()
                        .map(|p| format!("{} {}", p.name, p.state))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
                _ => Ok(None),
            }
        })
        .map_err(|e| format!("{e}; the last get_state: {last}"))
    }

    /// Reads the job's one-line answer on its forwarded port.
    fn job_answer(&mut self) -> Result<String, String> {
        let port = self.job_port;
        self.wait_for("the job's answer", |_| {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let Ok(c) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
                return Ok(None);
            };
            let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = Vec::new();
            let _ = c.take(4096).read_to_end(&mut buf);
            let text = String::from_utf8_lossy(&buf).trim().to_string();
            // qemu accepts on the host side before the guest's port is listening: then the
            // connection closes empty.
            Ok((!text.is_empty()).then_some(text))
        })
    }

    fn reboot(&mut self, d: &D) -> Result<String, String> {
        let down = Instant::now();
        let clean = self.machine.shutdown(
            &self.cfg.dir.join(guest::CONTROL_SOCKET),
            Duration::from_secs(120),
        );
        if !clean {
            self.machine.stop(Duration::from_secs(20));
            return Err(format!(
                "the guest did not power off within {:.0} s of the probe's `poweroff` (a VM whose disks are cut mid-write is no proof)",
                down.elapsed().as_secs_f64()
            ));
        }
        let down = down.elapsed();
        let dir = self.cfg.dir.join("after-reboot");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        self.cfg.dir = dir.clone();
        self.machine = vm::qemu::Vm::start(&self.cfg).map_err(|e| e.to_string())?;
        let powered = Instant::now();
        self.logs = Logs::new(&dir);
        self.wait_for("ping after the reboot", |_| {
            Ok(d.ping().is_ok().then(|| {
                format!(
                    "clean poweroff in {:.1} s; pong {:.1} s after power-on",
                    down.as_secs_f64(),
                    powered.elapsed().as_secs_f64()
                )
            }))
        })
    }
}

/// Runs the proof's steps in order; the first failure skips the rest.
pub fn run(s: &mut Session, proof: &mut Steps) -> Result<(), BootTestError> {
    let release = TestRelease::new(JOB_PORT);
    let mbus = s.mbus;
    let d = Director::new(mbus).with_polling(Duration::from_millis(500), STEP_TIMEOUT);
    let mut compiled: Option<BlobRef> = None;
    let mut marker = String::new();
    for (name, title) in STEPS {
        crate::interrupt::check()?;
        if proof.failed() {
            proof.skip(name, title, "not reached: an earlier step failed");
            continue;
        }
        let outcome = match *name {
            "compile" => compile(s, &d, &release).map(|(blob, detail)| {
                compiled = Some(blob);
                detail
            }),
            "mount-disk" => mount(&d, Some(&persistent_device(&s.cfg))),
            "apply" => match &compiled {
                Some(c) => apply(s, &d, &release, c),
                None => Err("no compiled package".into()),
            },
            "pre-start" => d
                .run_script("pre-start", &Default::default())
                .map(|_| "the job's bin/pre-start ran".to_string())
                .map_err(|e| e.to_string()),
            "start" => d
                .start()
                .map_err(|e| e.to_string())
                .and_then(|_| s.wait_running(&d)),
            "job-answers" => s.job_answer().and_then(|a| {
                marker = a.clone();
                check_answer(&a)
            }),
            "drain-stop" => drain_stop(&d),
            "reboot" => s.reboot(&d),
            "remount" => remount(s, &d, &marker),
            "fetch-logs" => fetch_logs(s, &d),
            _ => Err(format!("unknown step {name}")),
        };
        proof.record(s.t0, name, title, outcome);
        if let Some(last) = proof.list.last() {
            (s.progress)(&super::steps::line(last));
        }
    }
    Ok(())
}

type D<'a> = Director<&'a mbus::Mbus>;

fn check_answer(a: &str) -> Result<String, String> {
    let prefix = TestRelease::expected_answer(Some(""));
    match a.strip_prefix(prefix.as_str()) {
        Some(m) if !m.is_empty() && a != TestRelease::expected_answer(None) => {
            Ok(format!("answered `{a}`"))
        }
        _ => Err(format!(
            "answered `{a}`, not `pstc-hello MARKER` (the marker the job writes on /var/vcap/store at its first start)"
        )),
    }
}

fn compile(s: &mut Session, d: &D, release: &TestRelease) -> Result<(BlobRef, String), String> {
    let source = release.package_source_tgz();
    let (id, sha1) = s.dav.put(&source).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let blob = d
        .compile_package(&id, &sha1, PACKAGE, PACKAGE_VERSION, json!({}))
        .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    let bytes = s.dav.get(&blob.blobstore_id).ok_or_else(|| {
        format!(
            "the agent named compiled blob {} but it is not in the blobstore",
            blob.blobstore_id
        )
    })?;
    let actual = crate::deploy::dav::sha1_hex(&bytes);
    if blob.sha1_hex() != Some(actual.as_str()) {
        return Err(format!(
            "the compiled blob {} has SHA-1 {actual}, the agent said {}",
            blob.blobstore_id, blob.sha1
        ));
    }
    let detail = format!(
        "compiled on the VM in {:.1} s; blob {} ({} bytes, sha1 {actual}) in the blobstore",
        took.as_secs_f64(),
        blob.blobstore_id,
        bytes.len()
    );
    Ok((blob, detail))
}

/// The guest's device for the persistent disk: the last disk given.
fn persistent_device(cfg: &vm::qemu::VmConfig) -> String {
    cfg.disk_device(cfg.disks.len().saturating_sub(1))
}

/// Adds the persistent disk (at `add`, its device in the guest) when given, then mounts it.
fn mount(d: &D, add: Option<&str>) -> Result<String, String> {
    if let Some(path) = add {
        let hint = json!({"id": guest::PERSISTENT_SERIAL, "path": path, "volume_id": guest::PERSISTENT_SERIAL});
        d.add_persistent_disk(DISK_CID, &hint)
            .map_err(|e| e.to_string())?;
    }
    d.mount_disk(DISK_CID).map_err(|e| e.to_string())?;
    let listed = d.list_disk().map_err(|e| e.to_string())?;
    match listed.iter().any(|c| c == DISK_CID) {
        true => Ok(format!("mounted; list_disk: {listed:?}")),
        false => Err(format!(
            "mount_disk answered, but list_disk says {listed:?}"
        )),
    }
}

fn apply(
    s: &mut Session,
    d: &D,
    release: &TestRelease,
    compiled: &BlobRef,
) -> Result<String, String> {
    let rendered = release.rendered_templates_tgz();
    let (id, sha1) = s.dav.put(&rendered).map_err(|e| e.to_string())?;
    let rendered = BlobRef {
        blobstore_id: id,
        sha1,
    };
    let spec = release.apply_spec(compiled, &rendered);
    d.apply(&spec).map_err(|e| e.to_string())?;
    Ok(format!(
        "applied job {JOB} with package {PACKAGE} (rendered templates {})",
        rendered.blobstore_id
    ))
}

fn drain_stop(d: &D) -> Result<String, String> {
    let wait = d.drain(&DrainKind::Shutdown).map_err(|e| e.to_string())?;
    d.stop().map_err(|e| e.to_string())?;
    let msg = d.unmount_disk(DISK_CID).map_err(|e| e.to_string())?;
    Ok(format!(
        "drain answered {wait}; stopped; unmount_disk: {msg}"
    ))
}

fn remount(s: &mut Session, d: &D, marker: &str) -> Result<String, String> {
    // At boot the agent mounts the disk it last mounted by itself (as after any reboot a
    // director does not see); `mount_disk` is for a disk it has not mounted, and on a mounted
    // one it tries to repartition a disk in use.
    let listed = d.list_disk().map_err(|e| e.to_string())?;
    let how = match listed.iter().any(|c| c == DISK_CID) {
        true => "the agent mounted the disk again at boot".to_string(),
        false => mount(d, None).map(|_| "mount_disk mounted it again".to_string())?,
    };
    d.start().map_err(|e| e.to_string())?;
    s.wait_running(d)?;
    let a = s.job_answer()?;
    match a == marker {
        true => Ok(format!(
            "{how}; the job answers `{a}` again: the persistent disk kept what it wrote"
        )),
        false => Err(format!(
            "the job answered `{a}` after the reboot, `{marker}` before: the persistent disk lost what the job wrote"
        )),
    }
}

fn fetch_logs(s: &mut Session, d: &D) -> Result<String, String> {
    let blob = d.fetch_logs("job", &[]).map_err(|e| e.to_string())?;
    let bytes = s.dav.get(&blob.blobstore_id).ok_or_else(|| {
        format!(
            "fetch_logs named blob {}, but it is not in the blobstore",
            blob.blobstore_id
        )
    })?;
    let names = s
        .dav
        .tgz_names(&blob.blobstore_id)
        .map_err(|e| format!("the logs tarball {}: {e}", blob.blobstore_id))?;
    let job_logs: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with(&format!("{JOB}/")))
        .collect();
    if job_logs.is_empty() {
        return Err(format!(
            "the logs tarball {} holds no {JOB}/ logs: {names:?}",
            blob.blobstore_id
        ));
    }
    Ok(format!(
        "logs tarball {} ({} bytes) in the blobstore with {}",
        blob.blobstore_id,
        bytes.len(),
        job_logs
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_must_carry_a_marker() {
        assert!(check_answer("pstc-hello first-start 1f2e").is_ok());
        assert!(check_answer("pstc-hello none").is_err());
        assert!(check_answer("pstc-hello ").is_err());
        assert!(check_answer("HTTP/1.1 400").is_err());
    }

    #[test]
    fn every_step_is_skipped_with_the_reason() {
        let mut p = Steps::default();
        skip_all(&mut p, "no real agent");
        assert_eq!(p.list.len(), STEPS.len());
        assert!(!p.failed());
        assert!(p
            .list
            .iter()
            .all(|s| super::super::steps::line(s).contains("skipped: no real agent")));
    }
}
