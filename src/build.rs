//! `pistemcell build`: the pipeline, the audit's findings beside the rootfs, then the stemcell;
//! `--check-reproducible` and `--check-reproducible-against` are in `reproducible.rs`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use pistemcell::progress::Reporter;
use pistemcell::{os_image, pipeline, spec, steps};

use super::{artifacts, open_build, BootArgs, Global, RunArgs, StageArgs};

/// The options of `pistemcell build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The spec file (default: the built-in default spec).
    spec: Option<PathBuf>,
    #[command(flatten)]
    stages: StageArgs,
    #[command(flatten)]
    run: RunArgs,
    /// Rebuild from this stage even if it is cached.
    #[arg(long, value_name = "STAGE", conflicts_with = "only")]
    from: Option<String>,
    /// Stop after this stage.
    #[arg(long, value_name = "STAGE", conflicts_with = "only")]
    until: Option<String>,
    /// Run just this stage, on its parent's cached result.
    #[arg(long, value_name = "STAGE")]
    only: Option<String>,
    /// Ignore every cached stage.
    #[arg(long)]
    force: bool,
    /// Where the finished rootfs goes (default: WORK_DIR/rootfs).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Where the stemcell .tgz (with .sha1 and .sha256) goes (default: WORK_DIR/stemcells).
    /// Written when the build runs to the end.
    #[arg(long, value_name = "DIR")]
    stemcell_dir: Option<PathBuf>,
    /// Build twice from scratch (every stage run, in two work dirs under
    /// WORK_DIR/reproducible, with different umasks and clocks, the same download cache)
    /// and compare the stemcells byte for byte; on a difference, name the first differing
    /// files and exit 1.
    #[arg(long, conflicts_with_all = ["from", "until", "only", "force", "output", "stemcell_dir", "os_image", "os_image_from", "json"])]
    check_reproducible: bool,
    /// Build once from scratch (every stage run, in WORK_DIR/reproducible/build-2, under
    /// umask 077) and compare the stemcell byte for byte with STEMCELL, built earlier from
    /// the same spec and inputs (here or on another host); on a difference, name the first
    /// differing files and exit 1.
    #[arg(long, value_name = "STEMCELL", conflicts_with_all = ["check_reproducible", "from", "until", "only", "force", "output", "stemcell_dir", "os_image", "os_image_from", "json"])]
    check_reproducible_against: Option<PathBuf>,
    /// Build only the OS image: every stage before the first that needs monit or the agent,
    /// packed as a rootfs tarball (pistemcell-os-image-PROFILE-ARCH-VERSION.tgz, with .sha1
    /// and .sha256) into the stemcell dir. Needs neither monit nor the agent.
    #[arg(long, conflicts_with_all = ["until", "only", "boot_test", "os_image_from"])]
    os_image: bool,
    /// Make the stemcell from an OS image written by `build --os-image` (on this host or
    /// another): its tree replaces the OS stages, then monit, the agent and every later
    /// stage run. The OS image must be for the spec's profile, architecture and CPU.
    #[arg(long, value_name = "FILE")]
    os_image_from: Option<PathBuf>,
    /// Then boot the stemcell under qemu and run the boot test's checks (see `boot-test`);
    /// exit 1 when one fails.
    #[arg(long, conflicts_with_all = ["check_reproducible", "until", "only"])]
    boot_test: bool,
    #[command(flatten)]
    boot: BootArgs,
    /// Print a JSON summary on stdout when the build ends (what it wrote with its path,
    /// sha1, sha256 and size; every stage's outcome and seconds; the cache hits; the log
    /// file; the boot test's report with --boot-test); the progress stays on stderr.
    #[arg(long)]
    json: bool,
}

/// `pistemcell build`.
pub fn command(g: &Global, a: &BuildArgs, reporter: &Reporter) -> Result<ExitCode> {
    if a.boot.deploy && !a.boot_test {
        bail!("--deploy is part of the boot test: give --boot-test --deploy");
    }
    let spec = spec::load(a.spec.as_deref(), &g.sets)?;
    // check-os's exceptions name its checks: an unknown one is refused before anything runs.
    pistemcell::checkos::check_allow(&spec.check_os_allow)
        .map_err(|e| anyhow::anyhow!("spec {}: {e}", spec.source))?;
    if a.check_reproducible || a.check_reproducible_against.is_some() {
        let against = a.check_reproducible_against.as_deref();
        return crate::reproducible::check(g, spec, &a.stages, &a.run, against, reporter);
    }
    let plan = Plan {
        from: a.from.clone(),
        until: a.until.clone(),
        only: a.only.clone(),
        force: a.force,
        output: a.output.clone(),
        stemcell_dir: a.stemcell_dir.clone(),
        os_image: a.os_image,
        os_image_from: a.os_image_from.clone(),
    };
    let built = match run_once(g, &g.work_dir, spec, &a.stages, &a.run, &plan, reporter) {
        Ok(b) => b,
        Err(e) if a.json => {
            // CI reads stdout: the failure too is a JSON object.
            let log = reporter.log_path().map(|p| p.display().to_string());
            let summary = serde_json::json!({ "error": format!("{e:#}"), "log": log });
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let mut code = ExitCode::SUCCESS;
    let mut boot = None;
    if a.boot_test {
        let Outcome::Stemcell(p) = &built.outcome else {
            bail!("--boot-test needs a disk stemcell, and this build wrote none (a warden build, or one stopped early)")
        };
        if !a.json {
            println!("{}", p.path.display());
        }
        let report =
            artifacts::boot_test_report(&g.work_dir, &p.path, &a.boot.args(a.json), reporter)?;
        if a.json {
            // The human report on stderr, the machine one in the summary.
            eprint!("{}", pistemcell::boottest::report::text(&report));
            boot = serde_json::from_str(&pistemcell::boottest::report::json(&report)).ok();
        } else {
            print!("{}", pistemcell::boottest::report::text(&report));
        }
        if !report.passed() {
            code = ExitCode::FAILURE;
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&built.json(boot)).unwrap_or_default()
        );
    } else if !a.boot_test {
        println!("{}", built.path().display());
    }
    Ok(code)
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// `--from`.
    pub from: Option<String>,
    /// `--until`.
    pub until: Option<String>,
    /// `--only`.
    pub only: Option<String>,
    /// `--force`.
    pub force: bool,
    /// `--output` (default WORK/rootfs).
    pub output: Option<PathBuf>,
    /// `--stemcell-dir` (default WORK/stemcells).
    pub stemcell_dir: Option<PathBuf>,
    /// `--os-image`: stop before monit and the agent and pack the OS image.
    pub os_image: bool,
    /// `--os-image-from FILE`: start from an OS image instead of the OS stages.
    pub os_image_from: Option<PathBuf>,
}

/// What a build wrote.
pub enum Outcome {
    /// A whole build: the stemcell.
    Stemcell(pistemcell::pack::stemcell::Packed),
    /// `--os-image`: the OS image tarball.
    OsImage(os_image::Written),
    /// A partial build (`--until`, `--only`): the rootfs.
    Rootfs(PathBuf),
}

/// A finished build: what it wrote, each stage's outcome and time, the log.
pub struct Built {
    /// What it wrote.
    pub outcome: Outcome,
    /// The stages.
    pub report: pipeline::RunReport,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// This run's log file.
    pub log: Option<PathBuf>,
}

impl Built {
    /// The file the build wrote (stemcell, OS image) or the rootfs.
    pub fn path(&self) -> &Path {
        match &self.outcome {
            Outcome::Stemcell(p) => &p.path,
            Outcome::OsImage(w) => &w.path,
            Outcome::Rootfs(p) => p,
        }
    }

    /// The summary `build --json` prints: what was written with its digests and size, every
    /// stage with its outcome and times, the cache hits, the log; `boot_test` when it ran.
    pub fn json(&self, boot_test: Option<serde_json::Value>) -> serde_json::Value {
        use serde_json::json;
        let file = |path: &Path, sha1: &str, sha256: &str| {
            json!({
                "path": path.display().to_string(),
                "sha1": sha1,
                "sha256": sha256,
                "size": std::fs::metadata(path).map_or(0, |m| m.len()),
            })
        };
        let (stemcell, image) = match &self.outcome {
            Outcome::Stemcell(p) => (Some(file(&p.path, &p.sha1, &p.sha256)), None),
            Outcome::OsImage(w) => (None, Some(file(&w.path, &w.sha1, &w.sha256))),
            Outcome::Rootfs(_) => (None, None),
        };
        let stages: Vec<serde_json::Value> = self
            .report
            .stages
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "outcome": outcome_name(s.outcome),
                    "seconds": round(s.seconds),
                    "snapshot_seconds": round(s.snapshot_seconds),
                    "key": s.key,
                })
            })
            .collect();
        let count =
            |o: pipeline::Outcome| self.report.stages.iter().filter(|s| s.outcome == o).count();
        json!({
            "stemcell": stemcell,
            "os_image": image,
            "rootfs": self.report.output.display().to_string(),
            "stages": stages,
            "cache_hits": count(pipeline::Outcome::Restored) + count(pipeline::Outcome::Cached),
            "stages_run": count(pipeline::Outcome::Ran),
            "seconds": round(self.seconds),
            "log": self.log.as_ref().map(|p| p.display().to_string()),
            "boot_test": boot_test,
        })
    }
}

fn round(s: f64) -> f64 {
    (s * 10.0).round() / 10.0
}

fn outcome_name(o: pipeline::Outcome) -> &'static str {
    match o {
        pipeline::Outcome::Ran => "ran",
        pipeline::Outcome::Restored => "restored",
        pipeline::Outcome::Cached => "cached",
        pipeline::Outcome::Skipped => "skipped",
    }
}

/// `WORK/logs/build-YYYY-MM-DDTHH-MM-SSZ.log`.
fn log_path(work: &Path) -> PathBuf {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp = pistemcell::sbom::rfc3339(now).replace(':', "-");
    work.join("logs").join(format!("build-{stamp}.log"))
}

/// Runs the pipeline in `work_dir` and, for a whole build, writes the stemcell (or with
/// `--os-image`, the OS image). Every line it reports also goes to `WORK/logs/build-*.log`,
/// the error included.
pub fn run_once(
    g: &Global,
    work_dir: &Path,
    spec: spec::Resolved,
    stages: &StageArgs,
    run: &RunArgs,
    plan: &Plan,
    reporter: &Reporter,
) -> Result<Built> {
    // What the stages create does not depend on the caller's umask.
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o022) };
    let t = std::time::Instant::now();
    let (work, mut ctx) = open_build(g, work_dir, spec, run, reporter)?;
    // A forced build (and each build of --check-reproducible) makes every initramfs itself.
    ctx.settings.reuse_initramfs = !plan.force;
    let log = log_path(work.path());
    match reporter.log_to(&log) {
        Ok(()) => reporter.step(&format!("build log: {}", log.display())),
        Err(e) => reporter.warn(&format!(
            "cannot write the build log {}: {e}",
            log.display()
        )),
    }
    let result = run_stages(&work, &ctx, stages, plan, reporter);
    if let Err(e) = &result {
        reporter.log_only(&format!("error: {e:#}"));
    }
    let (outcome, report) = result?;
    Ok(Built {
        outcome,
        report,
        seconds: t.elapsed().as_secs_f64(),
        log: reporter.log_path(),
    })
}

fn run_stages(
    work: &pistemcell::workdir::WorkDir,
    ctx: &pistemcell::context::BuildContext,
    stages: &StageArgs,
    plan: &Plan,
    reporter: &Reporter,
) -> Result<(Outcome, pipeline::RunReport)> {
    let source =
        pipeline::StageSource::new(stages.stages_dir.as_deref(), stages.assets_dir.as_deref());
    let mut list = pistemcell::steps::stages(ctx, &source)?;
    let mut until = plan.until.clone();
    let cut = os_image::cut(&list);
    if plan.os_image {
        // The OS image ends with the last stage of this build before monit and the agent.
        let planned = pipeline::runner::plan(ctx, &list[..cut])?;
        let last = planned
            .iter()
            .rev()
            .find(|p| !matches!(p.state, pipeline::CacheState::Skipped { .. }))
            .map(|p| p.name.clone());
        until = Some(last.context("no stage of this build comes before monit and the agent")?);
    }
    if let Some(file) = &plan.os_image_from {
        list = from_os_image(ctx, list, cut, file)?;
    }
    let opts = pipeline::runner::RunOptions {
        from: plan.from.clone(),
        until: until.clone(),
        only: plan.only.clone(),
        force: plan.force,
        output: plan
            .output
            .clone()
            .unwrap_or_else(|| work.path().join("rootfs")),
    };
    // A user's --output is refused before any stage runs unless it is new, empty or a rootfs
    // of ours (the work dir's own rootfs is ours by the work dir's marker).
    if let Some(out) = &plan.output {
        pistemcell::owned::check_tree_destination(out)?;
    }
    let name = format!("{} ({})", ctx.spec.profile.name, ctx.spec.source);
    let report = pipeline::runner::run(ctx, work, &list, &opts)
        .with_context(|| format!("build of {name} failed"))?;
    let dir = plan
        .stemcell_dir
        .clone()
        .unwrap_or_else(|| work.path().join("stemcells"));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    // SOURCE_DATE_EPOCH, else the date of the archive the rootfs came from.
    let epoch = pistemcell::epoch::epoch_for(&report.output);
    let keys: Vec<(String, String)> = report
        .stages
        .iter()
        .map(|s| (s.name.clone(), s.key.clone()))
        .collect();
    if plan.os_image {
        let t = std::time::Instant::now();
        // The record names the stages the image holds: not the skipped ones.
        let held: Vec<(String, String)> = report
            .stages
            .iter()
            .filter(|s| s.outcome != pipeline::Outcome::Skipped)
            .map(|s| (s.name.clone(), s.key.clone()))
            .collect();
        let meta = os_image::Meta::new(&ctx.spec, &held);
        let dest = dir.join(os_image::file_name(&ctx.spec));
        let written = os_image::write(&report.output, &meta, &dest, epoch, threads)
            .with_context(|| format!("packing the OS image of {name}"))?;
        reporter.step(&format!(
            "OS image: {} ({} stages through {}, {} entries, sha256 {}, {:.1} MB, written and read back in {:.1} s); make a stemcell from it with `pistemcell build --os-image-from {}`",
            written.path.display(),
            meta.stages.len(),
            meta.last_stage(),
            written.entries,
            written.sha256,
            written.size as f64 / 1e6,
            t.elapsed().as_secs_f64(),
            written.path.display()
        ));
        return Ok((Outcome::OsImage(written), report));
    }
    // The audit's findings travel with the rootfs (packing puts them in the stemcell).
    if report
        .stages
        .iter()
        .any(|s| s.name == steps::audit::NAME && s.outcome != pipeline::Outcome::Skipped)
    {
        let findings = steps::audit::report_for(&ctx.spec, &report.output)?;
        let path = steps::audit::json_path(&report.output);
        steps::audit::write_json(&findings, &ctx.spec, &path)
            .with_context(|| format!("writing {}", path.display()))?;
        reporter.detail(&format!("audit findings: {}", path.display()));
    }
    if until.is_some() || plan.only.is_some() {
        let ran = report.ran();
        reporter.step(&format!(
            "rootfs ready: {} ({} stages ran{}); no stemcell for a partial build (--until/--only)",
            report.output.display(),
            ran.len(),
            if ran.is_empty() {
                String::new()
            } else {
                format!(": {}", ran.join(", "))
            }
        ));
        let out = report.output.clone();
        return Ok((Outcome::Rootfs(out), report));
    }
    let audit = steps::audit::json_path(&report.output);
    let t = std::time::Instant::now();
    // The monit proof runs on the finished tree beside the packing (both only read it; the
    // proof mostly waits on monit's cycles); the stemcell is put in place only once it passed.
    let monit_ran = report
        .stages
        .iter()
        .any(|s| s.name == steps::monit::NAME && s.outcome != pipeline::Outcome::Skipped);
    let proof: std::sync::Mutex<Option<Result<(), String>>> = std::sync::Mutex::new(None);
    let done = std::sync::Condvar::new();
    let packed = std::thread::scope(|scope| {
        if monit_ran {
            scope.spawn(|| {
                let r =
                    steps::monit::prove_finished(ctx, &report.output).map_err(|e| e.to_string());
                *proof.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                done.notify_all();
            });
        }
        let gate = || -> Result<(), String> {
            if !monit_ran {
                return Ok(());
            }
            let mut r = proof.lock().unwrap_or_else(|p| p.into_inner());
            while r.is_none() {
                r = done.wait(r).unwrap_or_else(|p| p.into_inner());
            }
            r.clone().unwrap_or(Ok(()))
        };
        pistemcell::pack::write::write_stemcell_gated(
            &ctx.spec,
            &report.output,
            audit.is_file().then_some(audit.as_path()),
            &dir,
            epoch,
            threads,
            &keys,
            &gate,
        )
    })
    .with_context(|| format!("packing the stemcell of {name}"))?;
    reporter.step(&format!(
        "stemcell: {} (sha1 {}, {:.1} MB, written and read back in {:.1} s: {})",
        packed.path.display(),
        packed.sha1,
        std::fs::metadata(&packed.path).map_or(0, |m| m.len()) as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        packed
            .phases
            .iter()
            .map(|(what, s)| format!("{what} {s:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok((Outcome::Stemcell(packed), report))
}

/// The stage list of a build from an OS image: the OS image's stage, then every stage from the
/// first that installs a stemcell input (`cut`) on.
fn from_os_image(
    ctx: &pistemcell::context::BuildContext,
    mut list: Vec<Box<dyn pipeline::Stage>>,
    cut: usize,
    file: &Path,
) -> Result<Vec<Box<dyn pipeline::Stage>>> {
    let image = os_image::OsImageStage::open(file)?;
    image.check(&ctx.spec)?;
    // The OS stages this tree would run, to compare with the ones the image holds.
    let planned = pipeline::runner::plan(ctx, &list[..cut])?;
    let here: Vec<&pipeline::Planned> = planned
        .iter()
        .filter(|p| !matches!(p.state, pipeline::CacheState::Skipped { .. }))
        .collect();
    let names: Vec<&str> = here.iter().map(|p| p.name.as_str()).collect();
    if names
        != image
            .meta
            .stages
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    {
        ctx.reporter.warn(&format!(
            "OS image {} holds the stages {}, this build's OS stages are {}: the stemcell is built on the OS image as it is",
            file.display(),
            image.meta.stages.join(", "),
            names.join(", ")
        ));
    } else if here.last().and_then(|p| p.key()) != Some(image.meta.last_key.as_str()) {
        ctx.reporter.warn(&format!(
            "OS image {} was built from other inputs than this build's OS stages would use (a stage, the spec or pistemcell changed): the stemcell is built on the OS image as it is",
            file.display()
        ));
    }
    ctx.reporter.step(&format!(
        "OS image {}: {} {} through {} (sha256 {})",
        file.display(),
        image.meta.profile,
        image.meta.architecture,
        image.meta.last_stage(),
        image.sha256
    ));
    let rest = list.split_off(cut);
    let mut out: Vec<Box<dyn pipeline::Stage>> = vec![Box::new(image)];
    out.extend(rest);
    Ok(out)
}
