//! `pistemcell build`: the pipeline, the audit's findings beside the rootfs, then the stemcell;
//! and `--check-reproducible`, which builds twice from scratch and compares.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use pistemcell::progress::Reporter;
use pistemcell::{pipeline, spec, steps};

use super::{open_build, Global, RunArgs, StageArgs};

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
}

/// What a build left.
pub enum Outcome {
    /// A whole build: the stemcell.
    Stemcell(PathBuf),
    /// A partial build (`--until`, `--only`): the rootfs.
    Rootfs(PathBuf),
}

/// Runs the pipeline in `work_dir` and, for a whole build, writes the stemcell.
pub fn run_once(
    g: &Global,
    work_dir: &Path,
    spec: spec::Resolved,
    stages: &StageArgs,
    run: &RunArgs,
    plan: &Plan,
    reporter: &Reporter,
) -> Result<Outcome> {
    // What the stages create does not depend on the caller's umask.
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o022) };
    let (work, ctx) = open_build(g, work_dir, spec, run, reporter)?;
    let source =
        pipeline::StageSource::new(stages.stages_dir.as_deref(), stages.assets_dir.as_deref());
    let list = pipeline::stages(&ctx, &source)?;
    let opts = pipeline::runner::RunOptions {
        from: plan.from.clone(),
        until: plan.until.clone(),
        only: plan.only.clone(),
        force: plan.force,
        output: plan
            .output
            .clone()
            .unwrap_or_else(|| work.path().join("rootfs")),
    };
    let name = format!("{} ({})", ctx.spec.profile.name, ctx.spec.source);
    let report = pipeline::runner::run(&ctx, &work, &list, &opts)
        .with_context(|| format!("build of {name} failed"))?;
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
    if plan.until.is_some() || plan.only.is_some() {
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
        return Ok(Outcome::Rootfs(report.output));
    }
    let dir = plan
        .stemcell_dir
        .clone()
        .unwrap_or_else(|| work.path().join("stemcells"));
    let audit = steps::audit::json_path(&report.output);
    let t = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    // SOURCE_DATE_EPOCH, else the date of the archive the rootfs came from.
    let epoch = pistemcell::pack::tarball::epoch_for(&report.output);
    let keys: Vec<(String, String)> = report
        .stages
        .iter()
        .map(|s| (s.name.clone(), s.key.clone()))
        .collect();
    let packed = pistemcell::pack::write::write_stemcell(
        &ctx.spec,
        &report.output,
        audit.is_file().then_some(audit.as_path()),
        &dir,
        epoch,
        threads,
        &keys,
    )
    .with_context(|| format!("packing the stemcell of {name}"))?;
    reporter.step(&format!(
        "stemcell: {} (sha1 {}, {:.1} MB, written and read back in {:.1} s)",
        packed.path.display(),
        packed.sha1,
        std::fs::metadata(&packed.path).map_or(0, |m| m.len()) as f64 / 1e6,
        t.elapsed().as_secs_f64()
    ));
    Ok(Outcome::Stemcell(packed.path))
}

/// `build --check-reproducible`: every stage run twice from scratch, in two work dirs, under
/// different umasks and clocks, with the same download cache; the two stemcells must be the
/// same bytes. Exit 1 with the first differences otherwise.
pub fn check_reproducible(
    g: &Global,
    spec: spec::Resolved,
    stages: &StageArgs,
    run: &RunArgs,
    reporter: &Reporter,
) -> Result<ExitCode> {
    let base = g.work_dir.join("reproducible");
    let mut built = Vec::new();
    for (i, umask) in [(1, 0o022), (2, 0o077)] {
        // SAFETY: umask has no preconditions. (run_once sets 022 for the stages: this proves
        // that nothing before it depends on the caller's.)
        unsafe { libc::umask(umask) };
        let work = base.join(format!("build-{i}"));
        let plan = Plan {
            force: true,
            ..Plan::default()
        };
        reporter.step(&format!(
            "reproducibility check: build {i} of 2 in {} (umask {umask:03o})",
            work.display()
        ));
        match run_once(g, &work, spec.clone(), stages, run, &plan, reporter)? {
            Outcome::Stemcell(p) => built.push(p),
            Outcome::Rootfs(_) => anyhow::bail!("the reproducibility check wrote no stemcell"),
        }
        // Another wall-clock second for the second build.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    // SAFETY: as above.
    unsafe { libc::umask(0o022) };
    let digest = |p: &Path| pistemcell::archive::cache::file_sha256(p);
    let (a, b) = (digest(&built[0])?, digest(&built[1])?);
    if a == b {
        reporter.step(&format!(
            "reproducible: both builds wrote {} (sha256 {a})",
            built[0]
                .file_name()
                .map_or("".into(), |n| n.to_string_lossy())
        ));
        println!("{}", built[0].display());
        return Ok(ExitCode::SUCCESS);
    }
    let read = |p: &Path| {
        pistemcell::diff::read::snapshot(p)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))
    };
    let d = pistemcell::diff::compare(&read(&built[0])?, &read(&built[1])?);
    let text = d.text();
    let first: Vec<&str> = text.lines().take(40).collect();
    eprintln!(
        "error: the two builds differ: {} (sha256 {a}) and {} (sha256 {b})\n{}",
        built[0].display(),
        built[1].display(),
        first.join("\n")
    );
    Ok(ExitCode::from(1))
}
