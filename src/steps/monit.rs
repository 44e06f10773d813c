//! The built-in `55-monit` stage: the pinned monit at `/var/vcap/bosh/bin/monit`, proven to
//! do what the agent needs (the proof runs on the finished tree while the stemcell is packed:
//! [`prove_finished`]).
//!
//! The spec pins `monit.version` and gives exactly one of `source` (a tarball, cross-compiled
//! with Debian's cross toolchain, see `monit_build`), `deb` (its monit binary, with the
//! package's dependencies installed from the archive) or `binary`. The binary must fit the
//! target (the audit's checks), `monit -V` must print the pinned version, and the proof
//! (`monit_proof`) must pass; `monit.skip_proof: true` turns a failed proof into a warning.
//! The monitrc and the service definition come from the data stages `31-monit-config` and
//! `50-runit-services`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sys_mount::{Mount, Unmount, UnmountFlags};

use super::monit_proof::{self, chroot_program, Failure};
use crate::context::BuildContext;
use crate::pipeline::{PipelineError, Stage};
use crate::spec::{Monit, MonitFrom};
use crate::steps::artifact::{self, ArtifactError};

/// The stage's name: after the runit services (monit's service), before the agent.
pub const NAME: &str = "55-monit";
/// Where monit lives in the image.
pub const MONIT_PATH: &str = "/var/vcap/bosh/bin/monit";
/// Bumped when the stage's behaviour changes (part of its cache key).
const FORMAT: &str = "3";

/// Errors of the monit stage.
#[derive(Debug, thiserror::Error)]
pub enum MonitError {
    /// The input could not be fetched.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The input is unusable (a .deb without monit, missing host tools).
    #[error("monit.{kind} {location}: {reason}")]
    Input {
        /// `source`, `deb` or `binary`.
        kind: &'static str,
        /// Where it came from.
        location: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The binary is not for the target.
    #[error("monit.{kind} {location} cannot run on the target: {why}\n  give a monit built for {arch} ({cpu} or older)")]
    Misfit {
        /// `source`, `deb` or `binary`.
        kind: &'static str,
        /// Where it came from.
        location: String,
        /// What is wrong.
        why: String,
        /// The target architecture.
        arch: String,
        /// The CPU floor.
        cpu: String,
    },
    /// The monit does not behave as the agent needs.
    #[error("monit {version} (monit.{kind} {location}) fails the agent's request {failure}\n  the BOSH agent could not manage jobs with it; pin a monit that works (5.2.5, the version BOSH stemcells carry), or set `monit.skip_proof: true` to build anyway\n  monit's log: {log}")]
    Proof {
        /// The pinned version.
        version: String,
        /// `source`, `deb` or `binary`.
        kind: &'static str,
        /// Where it came from.
        location: String,
        /// The failed request and what happened.
        failure: Box<Failure>,
        /// monit's own output.
        log: PathBuf,
    },
    /// Installing or preparing the proof failed.
    #[error("{0}")]
    Other(String),
}

/// The built-in monit stage.
#[derive(Debug, Clone, Default)]
pub struct MonitStage;

fn wrap(e: MonitError) -> PipelineError {
    PipelineError::Build {
        stage: NAME.into(),
        source: Box::new(e),
    }
}

fn field(m: &Monit) -> String {
    format!("monit.{}", m.from.kind())
}

impl Stage for MonitStage {
    fn stemcell_input(&self) -> bool {
        true
    }
    fn name(&self) -> &str {
        NAME
    }
    fn description(&self) -> &str {
        "the pinned monit (built from source, from a .deb or a binary); its proof that it answers the agent's requests runs on the finished tree while the stemcell is packed"
    }
    fn applies(&self, _ctx: &BuildContext) -> bool {
        true
    }
    fn manifest(&self, ctx: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        let m = &ctx.spec.monit;
        Ok(vec![
            ("monit-format".into(), FORMAT.into()),
            ("monit.version".into(), m.version.clone()),
            (field(m), m.from.artifact().digest()),
            (
                "target".into(),
                format!(
                    "{} {}",
                    ctx.spec.arch.debian(),
                    ctx.spec.lookup("cpu").unwrap_or_default()
                ),
            ),
            ("monit-build".into(), super::monit_build::RECIPE.into()),
        ])
    }
    fn prepare(&self, ctx: &BuildContext) -> Result<(), PipelineError> {
        let m = &ctx.spec.monit;
        if let MonitFrom::Source(_) = &m.from {
            super::monit_build::check_tools(ctx.spec.arch)
                .map_err(|e| wrap(MonitError::Other(e)))?;
        }
        artifact::fetch(&ctx.cache_dir, &field(m), m.from.artifact())
            .map_err(|e| wrap(e.into()))?;
        Ok(())
    }
    fn has_prebuild(&self) -> bool {
        true
    }
    fn prebuild(&self, ctx: &BuildContext) {
        let m = &ctx.spec.monit;
        if let MonitFrom::Source(_) = &m.from {
            if let Ok(fetched) = artifact::fetch(&ctx.cache_dir, &field(m), m.from.artifact()) {
                let _ = super::monit_build::build(ctx, &fetched);
            }
        }
    }
    fn run(&self, ctx: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        install(ctx, root).map_err(wrap)
    }
}

fn install(ctx: &BuildContext, root: &Path) -> Result<(), MonitError> {
    let spec = &ctx.spec;
    let m = &spec.monit;
    let kind = m.from.kind();
    let location = m.from.artifact().location().to_string();
    let input = |reason: String| MonitError::Input {
        kind,
        location: location.clone(),
        reason,
    };
    let fetched = artifact::fetch(&ctx.cache_dir, &field(m), m.from.artifact())?;
    let binary = match &m.from {
        MonitFrom::Binary(_) => fetched,
        MonitFrom::Source(_) => super::monit_build::build(ctx, &fetched).map_err(input)?,
        MonitFrom::Deb(_) => from_deb(ctx, root, &fetched).map_err(input)?,
    };
    if let Some(why) = artifact::misfit(&binary, spec.arch, spec.cpu).map_err(&input)? {
        return Err(MonitError::Misfit {
            kind,
            location,
            why,
            arch: spec.arch.debian().into(),
            cpu: spec.lookup("cpu").unwrap_or_default(),
        });
    }
    if !root.join("var/vcap/bosh/etc/monitrc").is_file() {
        return Err(MonitError::Other(
            "/var/vcap/bosh/etc/monitrc is missing: the stage 31-monit-config must run before this one".into(),
        ));
    }
    artifact::install_into(root, MONIT_PATH, &binary, 0o755, 0, 0).map_err(MonitError::Other)?;
    crate::record::write(
        root,
        &crate::record::Component {
            name: "monit".into(),
            version: m.version.clone(),
            path: MONIT_PATH.into(),
            kind: kind.to_string(),
            origin: crate::record::origin_of(m.from.artifact()),
            input_sha256: m.from.artifact().digest(),
            patches: Vec::new(),
        },
    )
    .map_err(MonitError::Other)?;
    ctx.reporter.detail(&format!(
        "installed {MONIT_PATH} from monit.{kind} {location}"
    ));
    // `monit -V` now (it runs in the tree as it is); the proof runs on the finished tree,
    // while the stemcell is packed (`prove_finished`).
    let t = std::time::Instant::now();
    let mounts = crate::rootfs::mounts::ChrootMounts::setup(root)
        .map_err(|e| MonitError::Other(format!("monit -V: mounting /proc, /sys, /dev: {e}")))?;
    let version = version_check(root, &m.version);
    drop(mounts);
    if let Err(failure) = version {
        let err = MonitError::Proof {
            version: m.version.clone(),
            kind,
            location: location.clone(),
            failure: Box::new(failure),
            log: PathBuf::from("(none: monit -V's output is quoted above)"),
        };
        if !m.skip_proof {
            return Err(err);
        }
        ctx.reporter.warn(&format!(
            "{err}\n  (monit.skip_proof is set: building anyway)"
        ));
        return Ok(());
    }
    ctx.reporter.detail(&format!(
        "monit -V prints {} ({:.1} s)",
        m.version,
        t.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The proof (`monit_proof`) on the finished rootfs, in a throwaway overlay of it: run by the
/// build while the stemcell is packed (the tree is only read then), so its waits on monit's
/// cycles cost no build time. `monit.skip_proof: true` turns a failure into a warning.
pub fn prove_finished(ctx: &BuildContext, root: &Path) -> Result<(), MonitError> {
    let m = &ctx.spec.monit;
    let kind = m.from.kind();
    let location = m.from.artifact().location().to_string();
    let log = ctx
        .log_dir()
        .map_err(|e| MonitError::Other(e.to_string()))?
        .join("monit-proof.log");
    let _ = std::fs::remove_file(&log);
    let t = std::time::Instant::now();
    match prove(ctx, root, &m.version, &log)? {
        Ok(transcript) => {
            ctx.reporter.step(&format!(
                "monit {}: proof passed in {:.0} s, on the finished tree while the stemcell was packed ({})",
                m.version,
                t.elapsed().as_secs_f64(),
                transcript.join("; ")
            ));
            Ok(())
        }
        Err(failure) => {
            let err = MonitError::Proof {
                version: m.version.clone(),
                kind,
                location,
                failure: Box::new(failure),
                log,
            };
            if m.skip_proof {
                ctx.reporter.warn(&format!(
                    "{err}\n  (monit.skip_proof is set: building anyway)"
                ));
                Ok(())
            } else {
                Err(err)
            }
        }
    }
}

/// Runs `monit -V` and the proof in a throwaway overlay of `root`, in a private network
/// namespace. The outer error is a setup problem; the inner one the proof's verdict.
fn prove(
    ctx: &BuildContext,
    root: &Path,
    version: &str,
    log: &Path,
) -> Result<Result<Vec<String>, Failure>, MonitError> {
    let other = |what: &str, e: String| MonitError::Other(format!("monit proof: {what}: {e}"));
    let base = ctx.work_dir.join("monit-proof.partial");
    let _ = crate::rootfs::mounts::sweep(&base);
    let _ = crate::workdir::remove_tree(&base);
    let (upper, work, merged) = (base.join("upper"), base.join("work"), base.join("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d)
            .map_err(|e| other("creating", format!("{}: {e}", d.display())))?;
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        root.display(),
        upper.display(),
        work.display()
    );
    let overlay = Mount::builder()
        .fstype("overlay")
        .data(&data)
        .mount("pistemcell-monit-proof", &merged)
        .map_err(|e| {
            other(
                "mounting an overlay of the rootfs",
                format!("{e} (is the overlay module available?)"),
            )
        })?
        .into_unmount_drop(UnmountFlags::DETACH);
    let verdict = {
        let _mounts = crate::rootfs::mounts::ChrootMounts::setup(&merged)
            .map_err(|e| other("mounting /proc, /sys, /dev", e.to_string()))?;
        let v = version_check(&merged, version);
        match v {
            Err(f) => Err(f),
            Ok(()) => in_private_network(|| monit_proof::converse(&merged, log))
                .map_err(|e| other("private network namespace", e))?,
        }
    };
    monit_proof::kill_rooted_at(&merged);
    drop(overlay);
    let _ = crate::workdir::remove_tree(&base);
    Ok(verdict)
}

/// `monit -V` must print the pinned version.
fn version_check(root: &Path, version: &str) -> Result<(), Failure> {
    let fail = |detail: String| Failure {
        request: "monit -V".into(),
        detail,
    };
    let out = Command::new(chroot_program())
        .arg(root)
        .args([MONIT_PATH, "-V"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match monit_proof::version_of(&text) {
        Some(v) if v == version => Ok(()),
        Some(v) => Err(fail(format!(
            "it reports version {v}, but the spec pins {version}"
        ))),
        None => Err(fail(format!(
            "it did not print a version ({}): {}",
            out.status,
            crate::cmd::tail(text.trim(), 5)
        ))),
    }
}

/// Runs `f` on a thread of its own in a new network namespace with only loopback up: monit
/// binds 127.0.0.1:2822 there, invisible to the host and to parallel builds.
fn in_private_network<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "unshare(CLONE_NEWNET): {}",
                    std::io::Error::last_os_error()
                ));
            }
            monit_proof::loopback_up()?;
            Ok(f())
        })
        .join()
        .map_err(|_| "the proof thread panicked".to_string())?
    })
}

/// Takes monit from a .deb: installs the package's dependencies from the archive into the
/// rootfs, and returns its monit binary (extracted to the work dir).
fn from_deb(ctx: &BuildContext, root: &Path, deb_path: &Path) -> Result<PathBuf, String> {
    let deb = crate::deb::Deb::open(deb_path).map_err(|e| e.to_string())?;
    let control = deb.control_text().map_err(|e| e.to_string())?;
    let field_of = |name: &str| {
        let mut value = String::new();
        let mut on = false;
        for line in control.lines() {
            if let Some(rest) = line.strip_prefix(&format!("{name}:")) {
                value.push_str(rest);
                on = true;
            } else if on && line.starts_with(' ') {
                value.push_str(line);
            } else {
                on = false;
            }
        }
        value
    };
    let arch = field_of("Architecture").trim().to_string();
    if arch != ctx.spec.arch.debian() && arch != "all" {
        return Err(format!(
            "the package is for {arch}, the target is {}",
            ctx.spec.arch.debian()
        ));
    }
    let deps: Vec<String> = field_of("Pre-Depends")
        .split(',')
        .chain(field_of("Depends").split(','))
        .filter_map(|d| d.split('|').next())
        .filter_map(|d| d.split(['(', ':']).next())
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .collect();
    if !deps.is_empty() {
        let added = crate::bootstrap::packages::install(ctx, root, &deps, NAME)
            .map_err(|e| format!("installing its dependencies ({}): {e}", deps.join(", ")))?;
        if !added.is_empty() {
            ctx.reporter.step(&format!(
                "monit.deb: installed its dependencies {}",
                added.join(", ")
            ));
        }
    }
    let candidates = [
        "usr/bin/monit",
        "usr/sbin/monit",
        "var/vcap/bosh/bin/monit",
        "bin/monit",
    ];
    let mut archive = deb.data_archive().map_err(|e| e.to_string())?;
    let out = ctx.work_dir.join("monit-from-deb");
    let entries = archive.entries().map_err(|e| deb.corrupt(&e).to_string())?;
    for entry in entries {
        let mut entry = entry.map_err(|e| deb.corrupt(&e).to_string())?;
        let name = crate::tarwrite::member_name(&entry).map_err(|e| e.to_string())?;
        if candidates.contains(&name.as_str()) && entry.header().entry_type().is_file() {
            let mut f =
                std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            std::io::copy(&mut entry, &mut f).map_err(|e| format!("{}: {e}", out.display()))?;
            return Ok(out);
        }
    }
    Err(format!(
        "the package has no monit binary (looked for /{})",
        candidates.join(", /")
    ))
}
