//! `pistemcell boot-test`: boots a stemcell's image under qemu (software emulation, the
//! `virt` machine) and checks, with the time since power-on of each, that the kernel mounts
//! the root, the service manager starts the agent, monit runs as the pinned version, and,
//! with a real agent in the image, that it answers `ping` and `get_state` over its HTTPS mbus
//! and made `/var/vcap/data` on the ephemeral disk, or, for a raw SD-card stemcell booted from
//! an emulated SD card larger than its image, on partitions it added to the card. The stemcell
//! is only read: the VM boots a copy-on-write overlay of its image, and every file the test
//! needs is written there.

pub mod card;
pub mod checks;
pub mod deploy;
pub mod guest;
pub mod mbus;
pub mod report;
pub mod steps;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::vm::{self, disk, overlay};
use checks::{CheckId, Checks};

/// Errors that stop the boot test before or around the VM (a failed check is a report).
#[derive(Debug, thiserror::Error)]
pub enum BootTestError {
    /// The stemcell could not be read, the overlay written or the VM run.
    #[error(transparent)]
    Machine(#[from] crate::vm::VmError),
    /// Writing the test's files into the overlay failed.
    #[error("the boot test's overlay: {0}")]
    Overlay(String),
    /// The image is of a kind the test cannot boot.
    #[error("boot-test cannot boot this image: {0}")]
    Unsupported(String),
    /// The VM could not be started.
    #[error("the VM: {0}")]
    Vm(String),
    /// An external tool failed.
    #[error(transparent)]
    Cmd(#[from] crate::cmd::CmdError),
    /// The user pressed Ctrl-C.
    #[error(transparent)]
    Interrupted(#[from] crate::interrupt::Interrupted),
    /// Scratch space could not be made.
    #[error("scratch space under {path}: {source}; choose another with --work-dir")]
    Scratch {
        /// The parent directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// How to run the boot test.
#[derive(Debug, Clone)]
pub struct Options {
    /// The stemcell .tgz.
    pub stemcell: PathBuf,
    /// Where scratch files go (the extracted image, the overlay, the ephemeral disk).
    pub scratch_parent: PathBuf,
    /// The bound on every wait, from power-on.
    pub timeout: Duration,
    /// The VM's memory, MiB.
    pub memory_mib: u32,
    /// The ephemeral disk's size, bytes (4 GiB: 32-bit agents have failed on disks ≥ 2 GiB).
    pub ephemeral_bytes: u64,
    /// After the boot checks, play the director: compile, apply, start, disks (`--deploy`).
    pub deploy: bool,
}

/// What the boot test saw.
#[derive(Debug)]
pub struct Report {
    /// The stemcell's name and version.
    pub stemcell: String,
    /// Its architecture.
    pub arch: String,
    /// Which kernel booted, and from where.
    pub kernel: String,
    /// The qemu command line.
    pub qemu: String,
    /// The checks.
    pub checks: Checks,
    /// Seconds from power-on to the end.
    pub elapsed: Duration,
    /// qemu's peak resident memory, KiB.
    pub vm_peak_kib: u64,
    /// The cause the logs name, on a failure.
    pub cause: Option<String>,
    /// The console's last lines.
    pub console_tail: Vec<String>,
    /// The agent log's last lines (streamed from the guest).
    pub agent_log_tail: Vec<String>,
    /// The deploy proof's steps (`--deploy`; empty without it).
    pub deploy: steps::Steps,
}

impl Report {
    /// Whether every check that ran passed.
    pub fn passed(&self) -> bool {
        !self.checks.failed() && !self.deploy.failed()
    }
}

/// The VM's three logs as the host follows them (a reboot starts new ones).
pub struct Logs {
    /// The serial console.
    pub console: vm::follow::Follow,
    /// The probe's port.
    pub probe: vm::follow::Follow,
    /// The agent's log, streamed.
    pub agent_log: vm::follow::Follow,
}

impl Logs {
    /// Followers of the logs a VM with log directory `dir` writes.
    pub fn new(dir: &Path) -> Logs {
        Logs {
            console: vm::follow::Follow::new(&dir.join("console.log")),
            probe: vm::follow::Follow::new(&dir.join("probe.log")),
            agent_log: vm::follow::Follow::new(&dir.join("agent.log")),
        }
    }
}

/// What the image's root says about itself, read from the overlay before power-on.
struct ImageFacts {
    /// The monit version its record pins.
    monit_pin: Option<String>,
    /// The agent version its record gives.
    agent_version: Option<String>,
    /// Why the agent checks cannot run (`None`: the agent is a real bosh-agent build).
    no_agent: Option<String>,
    /// Where agent.json's File settings source reads.
    settings_path: Option<String>,
    /// agent.json itself.
    agent_json: Option<serde_json::Value>,
}

fn read_image(root: &Path) -> ImageFacts {
    let comps = crate::record::read_all(root);
    let version = |name: &str| {
        comps
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.version.clone())
            .filter(|v| v != "unknown")
    };
    // Every path is resolved inside the image: its symlinks never reach the host's files.
    let no_agent = match agent_is_real(root) {
        Err(e) => Some(format!("the image has no agent binary ({e})")),
        Ok(true) => None,
        Ok(false) => Some("the image's /var/vcap/bosh/bin/bosh-agent is not a bosh-agent build (no github.com/cloudfoundry/bosh-agent in it); these checks need the real agent".into()),
    };
    let agent_json = crate::inside::read_text(
        root,
        "var/vcap/bosh/agent.json",
        crate::untrusted::SMALL_MAX,
        "the agent's settings",
    )
    .ok()
    .flatten()
    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let settings_path = agent_json.as_ref().and_then(overlay::settings_path);
    ImageFacts {
        monit_pin: version("monit"),
        agent_version: version("bosh-agent"),
        no_agent,
        settings_path,
        agent_json,
    }
}

/// Whether the image's agent (a regular file, resolved inside the image) is a bosh-agent
/// build: its module path is in it. Read in blocks, never whole.
fn agent_is_real(root: &Path) -> Result<bool, String> {
    use std::io::Read;
    let path = crate::inside::resolve(root, "var/vcap/bosh/bin/bosh-agent")
        .map_err(|e| e.to_string())?
        .ok_or("no /var/vcap/bosh/bin/bosh-agent")?;
    let mut f = crate::untrusted::open_regular(&path).map_err(|e| e.to_string())?;
    let needle = b"github.com/cloudfoundry/bosh-agent";
    let mut buf = vec![0u8; (1 << 20) + needle.len()];
    let mut keep = 0;
    loop {
        let n = f.read(&mut buf[keep..]).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(false);
        }
        let end = keep + n;
        if buf[..end].windows(needle.len()).any(|w| w == needle) {
            return Ok(true);
        }
        keep = (needle.len() - 1).min(end);
        buf.copy_within(end - keep..end, 0);
    }
}

/// Where the image's agent puts `/var/vcap/data` in this VM: on the card booted as an SD card
/// (its partitions as the image has them, in 512-byte sectors), or on an ephemeral disk.
fn data_plan(facts: &ImageFacts, d: &disk::Disk, on_sd: bool) -> card::DataPlan {
    let sectors = |(at, len): (u64, u64)| (at / 512, len / 512);
    let card = on_sd.then(|| card::Card {
        disk: "mmcblk0".into(),
        boot: sectors(d.boot),
        root: sectors(d.root),
    });
    card::plan(facts.agent_json.as_ref(), card)
}

/// Boots the stemcell and runs the checks. `progress` gets one line per check as it ends.
pub fn run(opts: &Options, progress: &dyn Fn(&str)) -> Result<Report, BootTestError> {
    let scratch = tempfile::Builder::new()
        .prefix(crate::workdir::BOOT_TEST_SCRATCH_PREFIX)
        .tempdir_in(&opts.scratch_parent)
        .map_err(|source| BootTestError::Scratch {
            path: opts.scratch_parent.clone(),
            source,
        })?;
    let dir_buf = scratch.path().to_path_buf();
    let dir = dir_buf.as_path();
    progress(&format!("reading {}", opts.stemcell.display()));
    let d = disk::extract(&opts.stemcell, &dir.join("image"))?;
    let (kernel, initramfs) = (dir.join("kernel"), dir.join("initramfs"));
    let files = disk::boot_files(&d, &kernel, &initramfs)?;
    if !disk::boots_on_virt(&files.kernel_name) {
        return Err(BootTestError::Unsupported(format!(
            "its kernel {} is not one of Debian's generic ARM kernels (armmp, arm64), which boot on qemu's virt machine; booting its root with a Debian kernel instead is not implemented yet",
            files.kernel_name
        )));
    }
    let kernel_note = format!(
        "the image's own {} and {} (from its boot partition's config.txt)",
        files.kernel_name, files.initramfs_name
    );

    // The overlay, with the test's settings and probe. A raw stemcell is the SD card a Pi
    // boots: an emulated card (qemu's sd-card on an SDHCI controller, /dev/mmcblk0 in the
    // guest) larger than the image, as a real card is.
    let on_sd = d.infrastructure == "raw";
    let overlay_path = dir.join("overlay.qcow2");
    let card_bytes = match on_sd {
        true => {
            let len = std::fs::metadata(&d.image)
                .map_err(|e| BootTestError::Vm(format!("{}: {e}", d.image.display())))?
                .len();
            Some(overlay::card_size(len, opts.ephemeral_bytes))
        }
        false => None,
    };
    overlay::create(&d.image, &overlay_path, card_bytes)?;
    let cert = guest::mbus_cert()
        .map_err(|e| BootTestError::Overlay(format!("making the mbus certificate: {e}")))?;
    let token = vm::random_hex(8);
    let (user, password, agent_id) = (
        "pstc".to_string(),
        vm::random_hex(16),
        format!("pistemcell-boot-test-{token}"),
    );
    // The deploy proof's blobstore, served on 127.0.0.1 to the guest's agent.
    let dav = match opts.deploy {
        true => Some(deploy::start_blobstore(dir)?),
        false => None,
    };
    let facts = {
        let m = overlay::MountedOverlay::open(&overlay_path, d.root, dir)?;
        let facts = read_image(&m.root);
        // Looked up inside the image: a symlink to the host's systemd does not count.
        let inside = |rel: &str| {
            crate::inside::resolve(&m.root, rel)
                .ok()
                .flatten()
                .and_then(|p| std::fs::symlink_metadata(p).ok())
        };
        if !inside("etc/systemd/system").is_some_and(|m| m.is_dir())
            || !inside("lib/systemd/systemd").is_some_and(|m| m.is_file())
        {
            return Err(BootTestError::Unsupported(
                "its init is not systemd (the probe runs as a systemd unit)".into(),
            ));
        }
        let settings = facts.settings_path.clone().ok_or_else(|| {
            BootTestError::Unsupported("its /var/vcap/bosh/agent.json has no File settings source to write the test's settings to".into())
        })?;
        let blobstore = dav.as_ref().map(|d| d.settings(deploy::GUEST_HOST));
        let plan = data_plan(&facts, &d, on_sd);
        let disks = guest::GuestDisks {
            system: if on_sd { "/dev/mmcblk0" } else { "/dev/vda" }.into(),
            ephemeral: (plan == card::DataPlan::EphemeralDisk).then(|| "/dev/vdb".into()),
        };
        let text = guest::settings(&agent_id, &user, &password, &cert, &disks, blobstore);
        m.write_settings(d.boot, &settings, text.as_bytes())?;
        if on_sd {
            m.write(guest::NO_DISCARD, guest::NO_DISCARD_RULE.as_bytes(), 0o644)?;
        }
        m.write(guest::PROBE, guest::probe().as_bytes(), 0o755)?;
        m.write(guest::UNIT, guest::unit().as_bytes(), 0o644)?;
        m.symlink(&format!("/{}", guest::UNIT), guest::UNIT_LINK)?;
        let mode = if facts.no_agent.is_some() {
            "no-agent\n"
        } else {
            "agent\n"
        };
        m.write(guest::MODE, mode.as_bytes(), 0o644)?;
        m.close()?;
        (facts, plan)
    };
    let (facts, plan) = facts;

    let ephemeral = match plan {
        card::DataPlan::EphemeralDisk => {
            let e = dir.join("ephemeral.raw");
            std::fs::File::create(&e)
                .and_then(|f| f.set_len(opts.ephemeral_bytes))
                .map_err(|err| {
                    BootTestError::Vm(format!("the ephemeral disk {}: {err}", e.display()))
                })?;
            Some(e)
        }
        _ => None,
    };
    let port = vm::qemu::free_port()?;
    let (persistent, job_port) = match opts.deploy {
        true => (
            Some(deploy::persistent_disk(dir)?),
            Some(vm::qemu::free_port()?),
        ),
        false => (None, None),
    };
    let drive = |path: PathBuf, serial: &str| vm::qemu::Drive {
        path,
        format: "raw",
        serial: serial.to_string(),
    };
    let mut disks: Vec<vm::qemu::Drive> = ephemeral
        .map(|e| drive(e, guest::EPHEMERAL_SERIAL))
        .into_iter()
        .collect();
    disks.extend(persistent.map(|p| drive(p, guest::PERSISTENT_SERIAL)));
    let mut forwards = vec![(port, 6868)];
    forwards.extend(job_port.map(|p| (p, deploy::JOB_PORT)));
    let cfg = vm::qemu::VmConfig {
        arch: d.arch.clone(),
        accel: vm::qemu::Accel::best_for(&d.arch),
        kernel,
        initramfs,
        root_partuuid: d.root_partuuid(),
        overlay: overlay_path,
        root_on_sd: on_sd,
        disks,
        forwards,
        // The deploy proof's agent reaches its blobstore on the host (10.0.2.2); without it
        // the guest has no way out.
        restrict: !opts.deploy,
        mac: vm::settings::MAC.into(),
        ports: vec![
            (guest::PORT_PROBE.into(), dir.join("probe.log")),
            (guest::PORT_AGENT_LOG.into(), dir.join("agent.log")),
        ],
        control: opts
            .deploy
            .then(|| (guest::PORT_CONTROL.into(), dir.join(guest::CONTROL_SOCKET))),
        console_input: None,
        memory_mib: opts.memory_mib,
        cpus: std::thread::available_parallelism().map_or(2, |n| n.get()),
        dir: dir.to_path_buf(),
    };
    let mbus = mbus::Mbus::new(port, &user, &password, &cert.ca).map_err(BootTestError::Vm)?;
    // `start` answers once monit is reconfigured and restarted: slow under emulation.
    let deploy_mbus = mbus.clone().with_timeout(Duration::from_secs(120));
    let mut checks = Checks::new(facts.monit_pin.clone(), facts.no_agent.as_deref(), plan);
    checks.expect_arch(&d.arch);
    progress(&format!("powering on: {kernel_note}"));
    let mut machine = vm::qemu::Vm::start(&cfg)?;
    let t0 = Instant::now();
    let mut logs = Logs::new(dir);
    let mut next_mbus = Duration::ZERO;
    let mut reported = std::collections::BTreeSet::new();
    let result = loop {
        let at = t0.elapsed();
        for l in logs.console.poll() {
            checks.console(&l, at);
        }
        for l in logs.agent_log.poll() {
            checks.agent_log(&l, at);
        }
        for l in logs.probe.poll() {
            if let Some(p) = guest::parse_line(&l) {
                checks.probe(&p, at);
            }
        }
        if checks.agent_seen()
            && at >= next_mbus
            && (checks.pending(CheckId::Ping) || checks.pending(CheckId::GetState))
        {
            mbus_round(
                &mbus,
                &mut checks,
                t0,
                &agent_id,
                facts.agent_version.as_deref(),
            );
            next_mbus = t0.elapsed() + Duration::from_secs(2);
        }
        for (id, st) in &checks.status {
            if !matches!(st, checks::Status::Pending) && reported.insert(*id) {
                progress(&report::check_line(*id, st));
            }
        }
        if checks.done() {
            break Ok(());
        }
        if checks.failed() {
            // The first failure decides; the rest cannot be trusted to come.
            checks.fail_pending(at, "not reached: an earlier check failed");
            break Ok(());
        }
        if let Some(st) = machine.exited() {
            checks.fail_pending(at, &format!("the VM stopped at {:.1} s ({st}): a kernel panic or a power-off; see the console", at.as_secs_f64()));
            break Ok(());
        }
        if at > opts.timeout {
            checks.fail_pending(
                at,
                &format!("timed out after {} s (--timeout)", opts.timeout.as_secs()),
            );
            break Ok(());
        }
        if let Err(e) = crate::interrupt::check() {
            break Err(e);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let mut elapsed = t0.elapsed();
    if result.is_ok() && checks.failed() {
        // A few seconds more for the logs: what the guest writes right after a failure
        // is usually why.
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && machine.exited().is_none() && !crate::interrupt::requested()
        {
            for l in logs.agent_log.poll() {
                checks.agent_log(&l, t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let mut proof = steps::Steps::default();
    if let (Ok(()), Some(dav), Some(job_port)) = (&result, &dav, job_port) {
        let mut session = deploy::Session {
            cfg,
            machine,
            mbus: &deploy_mbus,
            dav,
            job_port,
            t0,
            timeout: opts.timeout,
            logs,
            checks: &mut checks,
            progress,
        };
        if let Some(why) = &facts.no_agent {
            deploy::skip_all(&mut proof, why);
        } else if session.checks.failed() {
            deploy::skip_all(&mut proof, "not reached: the boot checks failed");
        } else {
            deploy::run(&mut session, &mut proof)?;
        }
        (machine, logs) = (session.machine, session.logs);
        elapsed = t0.elapsed();
    }
    machine.power_off();
    if std::env::var_os("PISTEMCELL_BOOT_TEST_KEEP").is_some() {
        // For debugging the test itself: the scratch dir (image, overlay, logs) stays.
        progress(&format!(
            "keeping {} (PISTEMCELL_BOOT_TEST_KEEP)",
            scratch.keep().display()
        ));
    }
    // What the guest wrote last.
    for l in logs.agent_log.poll() {
        checks.agent_log(&l, elapsed);
    }
    logs.console.poll();
    result?;
    let (console_tail, agent_log_tail) = (logs.console.tail(30), logs.agent_log.tail(30));
    let all_agent_log: Vec<String> = logs.agent_log.lines.iter().cloned().collect();
    let foreign = checks.status.iter().find_map(|(_, st)| match st {
        checks::Status::Failed(_, d) if d.contains("exec format error") => Some(d.clone()),
        _ => None,
    });
    let deploy_cause = proof
        .first_failure()
        .and_then(|_| checks.last_agent_error.clone())
        .map(|e| format!("the agent's last error: {e}"));
    let cause = foreign.or(deploy_cause).or_else(|| {
        checks
            .failed()
            .then(|| {
                checks::diagnose(
                    &all_agent_log,
                    checks.last_agent_error.as_deref(),
                    &console_tail,
                )
            })
            .flatten()
    });
    Ok(Report {
        stemcell: format!("{} ({}, {})", d.name, d.arch, d.infrastructure),
        arch: d.arch,
        kernel: kernel_note,
        qemu: machine.argv.clone(),
        vm_peak_kib: machine.peak_kib(),
        checks,
        elapsed,
        cause,
        console_tail,
        agent_log_tail,
        deploy: proof,
    })
}

/// One round of mbus calls: ping until pong, then get_state (which must name our agent id).
fn mbus_round(
    mbus: &mbus::Mbus,
    checks: &mut Checks,
    t0: Instant,
    agent_id: &str,
    version: Option<&str>,
) {
    if checks.pending(CheckId::Ping) {
        match mbus.call("ping") {
            Ok(v) if v == "pong" => checks.pass(CheckId::Ping, t0.elapsed(), "pong"),
            Ok(v) => checks.fail(
                CheckId::Ping,
                t0.elapsed(),
                format!("answered {v}, not \"pong\""),
            ),
            Err(_) => {} // not listening yet: the agent sets up before it serves
        }
        return;
    }
    match mbus.call("get_state") {
        Ok(v) => {
            let id = v["agent_id"].as_str().unwrap_or("");
            let job = v["job_state"].as_str().unwrap_or("");
            let at = t0.elapsed();
            if id != agent_id {
                checks.fail(
                    CheckId::GetState,
                    at,
                    format!("answered for agent id `{id}`, not the test's `{agent_id}`: {v}"),
                );
            } else if job.is_empty() {
                checks.fail(
                    CheckId::GetState,
                    at,
                    format!("no job_state in the answer: {v}"),
                );
            } else {
                let version = version.unwrap_or("unknown");
                checks.pass(CheckId::GetState, at, format!("agent {version} (the image's record; the mbus does not carry it), agent_id {id}, job_state {job} (from monit)"));
            }
        }
        Err(e) if e.contains("exception") => checks.fail(CheckId::GetState, t0.elapsed(), e),
        Err(_) => {}
    }
}
