//! `build --check-reproducible` and `--check-reproducible-against`: builds from scratch, in
//! their own work dirs under `WORK/reproducible`, compared byte for byte.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use pistemcell::progress::Reporter;
use pistemcell::spec;

use crate::build::{run_once, Outcome, Plan};
use crate::{Global, RunArgs, StageArgs};

/// `build --check-reproducible`: every stage run twice from scratch, in two work dirs, under
/// different umasks and clocks, with the same download cache; the two stemcells must be the
/// same bytes. With `against` (`--check-reproducible-against`), that stemcell is the first
/// build and only the second runs. Exit 1 with the first differences otherwise.
pub fn check(
    g: &Global,
    spec: spec::Resolved,
    stages: &StageArgs,
    run: &RunArgs,
    against: Option<&Path>,
    reporter: &Reporter,
) -> Result<ExitCode> {
    let base = g.work_dir.join("reproducible");
    let mut built = Vec::new();
    let mut builds: Vec<(u32, u32)> = vec![(1, 0o022), (2, 0o077)];
    if let Some(first) = against {
        // Read before hours of building: a regular file that reads as a stemcell.
        let meta = std::fs::metadata(first)
            .with_context(|| format!("--check-reproducible-against {}", first.display()))?;
        if !meta.is_file() {
            bail!(
                "--check-reproducible-against {}: not a regular file; give the .tgz of a stemcell built earlier",
                first.display()
            );
        }
        pistemcell::pack::inspect::inspect(first).map_err(|e| {
            anyhow::anyhow!(
                "--check-reproducible-against {}: {e}; give the .tgz of a stemcell built earlier",
                first.display()
            )
        })?;
        built.push(first.to_path_buf());
        builds.remove(0);
    }
    for (i, umask) in builds {
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
        match run_once(g, &work, spec.clone(), stages, run, &plan, reporter)?.outcome {
            Outcome::Stemcell(p) => built.push(p.path),
            _ => anyhow::bail!("the reproducibility check wrote no stemcell"),
        }
        // Another wall-clock second for the second build.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    // SAFETY: as above.
    unsafe { libc::umask(0o022) };
    let digest = |p: &Path| pistemcell::archive::cache::file_sha256(p);
    let (a, b) = (digest(&built[0])?, digest(&built[1])?);
    if a == b {
        // The stemcell this run wrote (the first of two, or the one built against).
        let shown = &built[usize::from(against.is_some())];
        reporter.step(&format!(
            "reproducible: both builds wrote {} (sha256 {a}){}",
            shown.file_name().map_or("".into(), |n| n.to_string_lossy()),
            against.map_or(String::new(), |p| format!("; the first is {}", p.display()))
        ));
        println!("{}", shown.display());
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
