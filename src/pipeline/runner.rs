//! Planning and running the pipeline.
//!
//! Every applicable stage gets a key: the sha256 of its named inputs plus `pipeline-format`,
//! its name and `parent` (the previous applicable stage's name and key), so a key exists in
//! the cache only if the whole chain before it is unchanged. A build restores the snapshot of
//! the last cached stage (up to `--until`) into `WORK/build.UNIQUE.partial`, runs the stages after
//! it, snapshotting after each, and moves the tree to the output at the end. A run killed at
//! any point leaves only complete snapshots and a partial tree the next run sweeps, so the
//! next build resumes after the last complete stage.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use super::key::{self, Inputs, Manifest};
use super::layer;
use super::snapshot::Store;
use super::{PipelineError, Stage};
use crate::context::BuildContext;
use crate::workdir::WorkDir;

/// A stage's cache state in this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheState {
    /// The stage does not apply to this build.
    Skipped {
        /// Why (`when.infrastructures [warden] excludes bakery`).
        reason: String,
    },
    /// A snapshot with this key exists.
    Cached,
    /// Snapshots of this stage exist, but for other inputs.
    Stale {
        /// Which inputs changed, compared with the closest cached snapshot.
        why: Vec<String>,
    },
    /// No snapshot of this stage exists.
    NotBuilt,
}

/// One stage of the plan.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The stage name.
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// Its inputs and key (`None` when skipped).
    pub manifest: Option<Manifest>,
    /// Its cache state.
    pub state: CacheState,
}

impl Planned {
    /// The cache key (`None` when the stage is skipped).
    pub fn key(&self) -> Option<&str> {
        self.manifest.as_ref().map(|m| m.key.as_str())
    }
}

/// What `run` should do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Rebuild from this stage even if it is cached.
    pub from: Option<String>,
    /// Stop after this stage.
    pub until: Option<String>,
    /// Run just this stage on its parent's cached snapshot.
    pub only: Option<String>,
    /// Ignore every cached snapshot.
    pub force: bool,
    /// Where the finished rootfs goes (replaced only once complete).
    pub output: PathBuf,
}

/// What happened to one stage in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not part of this build.
    Skipped,
    /// Cached; a later snapshot was restored instead.
    Cached,
    /// Its snapshot was restored.
    Restored,
    /// It ran (and was snapshotted).
    Ran,
}

/// One stage's line in the report.
#[derive(Debug, Clone)]
pub struct StageRun {
    /// The stage name.
    pub name: String,
    /// What happened.
    pub outcome: Outcome,
    /// Wall time of running (or restoring) it, in seconds.
    pub seconds: f64,
    /// Wall time of saving its snapshot, in seconds.
    pub snapshot_seconds: f64,
    /// Its cache key (empty for a skipped stage).
    pub key: String,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Every stage up to the last one run, in order.
    pub stages: Vec<StageRun>,
    /// The finished rootfs.
    pub output: PathBuf,
}

impl RunReport {
    /// The names of the stages that ran.
    pub fn ran(&self) -> Vec<&str> {
        self.stages
            .iter()
            .filter(|s| s.outcome == Outcome::Ran)
            .map(|s| s.name.as_str())
            .collect()
    }
}

/// Computes every stage's key and cache state, in order.
pub fn plan(ctx: &BuildContext, stages: &[Box<dyn Stage>]) -> Result<Vec<Planned>, PipelineError> {
    let store = Store::open(&ctx.cache_dir)?;
    let snapshots = store.list()?;
    let mut parent: Option<(String, String)> = None;
    let mut out = Vec::new();
    for s in stages {
        let name = s.name().to_string();
        if let Some(reason) = s.skip_reason(ctx) {
            out.push(Planned {
                name,
                description: s.description().to_string(),
                manifest: None,
                state: CacheState::Skipped { reason },
            });
            continue;
        }
        let mut inputs: Inputs = s.manifest(ctx)?.into_iter().collect();
        inputs.insert("pipeline-format".into(), key::PIPELINE_FORMAT.into());
        if let Some((pn, pk)) = &parent {
            inputs.insert("parent".into(), key::parent_value(pn, pk));
        }
        let manifest = Manifest::new(&name, inputs);
        let state = if store.has(&manifest.key) {
            CacheState::Cached
        } else {
            // The closest snapshot of the same stage explains what changed.
            snapshots
                .iter()
                .filter(|x| x.manifest.stage == name)
                .map(|x| (key::diff(&x.manifest.inputs, &manifest.inputs), x.mtime))
                .min_by(|a, b| a.0.len().cmp(&b.0.len()).then(b.1.cmp(&a.1)))
                .map_or(CacheState::NotBuilt, |(why, _)| CacheState::Stale { why })
        };
        parent = Some((name.clone(), manifest.key.clone()));
        out.push(Planned {
            name,
            description: s.description().to_string(),
            manifest: Some(manifest),
            state,
        });
    }
    Ok(out)
}

/// Finds a stage by name among the applicable ones; returns its position in `active`.
fn position(planned: &[Planned], active: &[usize], name: &str) -> Result<usize, PipelineError> {
    let Some(i) = planned.iter().position(|p| p.name == name) else {
        return Err(PipelineError::UnknownStage {
            name: name.to_string(),
            valid: planned
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    if let CacheState::Skipped { reason } = &planned[i].state {
        return Err(PipelineError::NotApplicable {
            name: name.to_string(),
            reason: reason.clone(),
        });
    }
    Ok(active.iter().position(|&a| a == i).unwrap_or(0))
}

/// Which stages a run restores and runs: (restore point, first to run, last to run), as
/// positions among the applicable stages.
fn choose(
    planned: &[Planned],
    active: &[usize],
    opts: &RunOptions,
) -> Result<(Option<usize>, usize, usize), PipelineError> {
    let cached = |pos: usize| planned[active[pos]].state == CacheState::Cached;
    let pos = |name: &Option<String>| {
        name.as_deref()
            .map(|n| position(planned, active, n))
            .transpose()
    };
    let (from, until, only) = (pos(&opts.from)?, pos(&opts.until)?, pos(&opts.only)?);
    if active.is_empty() {
        return Err(PipelineError::Options(
            "no stage applies to this build".into(),
        ));
    }
    if let Some(o) = only {
        if from.is_some() || until.is_some() {
            return Err(PipelineError::Options(
                "--only runs one stage; it cannot be combined with --from or --until".into(),
            ));
        }
        if o == 0 {
            return Ok((None, 0, 0));
        }
        if !cached(o - 1) {
            return Err(PipelineError::ParentNotCached {
                stage: planned[active[o]].name.clone(),
                parent: planned[active[o - 1]].name.clone(),
            });
        }
        return Ok((Some(o - 1), o, o));
    }
    let end = until.unwrap_or(active.len() - 1);
    if let Some(f) = from {
        if f > end {
            return Err(PipelineError::Options(format!(
                "--from {} comes after --until {}",
                planned[active[f]].name, planned[active[end]].name
            )));
        }
    }
    if opts.force {
        return Ok((None, 0, end));
    }
    let limit = from.map_or(end + 1, |f| f);
    let restore = (0..limit).rev().find(|&p| cached(p));
    Ok((restore, restore.map_or(0, |r| r + 1), end))
}

/// How many unusable snapshots one run drops and replans around before giving up.
const MAX_DROPPED: usize = 3;

/// Runs the pipeline: restores the newest valid snapshot, runs the stages after it
/// (snapshotting each), and moves the finished tree to `opts.output`. A snapshot that cannot
/// be restored (truncated, corrupt) is removed with a warning and the run replanned, so the
/// stage is built again.
pub fn run(
    ctx: &BuildContext,
    work: &WorkDir,
    stages: &[Box<dyn Stage>],
    opts: &RunOptions,
) -> Result<RunReport, PipelineError> {
    let mut dropped = 0;
    loop {
        match run_once(ctx, work, stages, opts) {
            Err(PipelineError::Restore {
                stage,
                key,
                path,
                reason,
            }) if dropped < MAX_DROPPED => {
                ctx.reporter.warn(&format!(
                    "stage {stage}: the cached snapshot {} cannot be restored ({reason}); removed it, building the stage again",
                    path.display()
                ));
                Store::open(&ctx.cache_dir)?.remove(&key)?;
                dropped += 1;
            }
            other => return other,
        }
    }
}

fn run_once(
    ctx: &BuildContext,
    work: &WorkDir,
    stages: &[Box<dyn Stage>],
    opts: &RunOptions,
) -> Result<RunReport, PipelineError> {
    let planned = plan(ctx, stages)?;
    let active: Vec<usize> = (0..planned.len())
        .filter(|&i| !matches!(planned[i].state, CacheState::Skipped { .. }))
        .collect();
    let (restore, first, mut last) = choose(&planned, &active, opts)?;
    // Every input the stages about to run need from outside, before any of them runs. When
    // one is missing, the stages before the first that needs it still run (and are cached),
    // then the build stops there with every missing input in one message.
    let mut missing = Vec::new();
    let mut blocked: Option<usize> = None;
    for (pos, &i) in active.iter().enumerate().take(last + 1).skip(first) {
        if let Err(e) = stages[i].prepare(ctx) {
            missing.push(e.to_string());
            blocked.get_or_insert(pos);
        }
    }
    let mut stopped = None;
    if let Some(b) = blocked {
        if b == first {
            return Err(PipelineError::Inputs(missing));
        }
        let stage = planned[active[b]].name.clone();
        ctx.reporter.warn(&format!(
            "stage {stage} cannot get its inputs; the build runs the stages before it and stops there:\n  - {}",
            missing.join("\n  - ")
        ));
        last = b - 1;
        stopped = Some((stage, missing));
    }
    let store = Store::open(&ctx.cache_dir)?;
    let tree = work.partial("build")?;
    let root = tree.path().to_path_buf();
    let mut report = Vec::new();
    // Report every stage up to the last one run (to the end, skipped ones included, when
    // the run goes to the end).
    let stop = if opts.until.is_none() && opts.only.is_none() && stopped.is_none() {
        planned.len()
    } else {
        active[last] + 1
    };
    let skip_until = restore.map_or(0, |r| r + 1).min(first);
    // --only reports its parent and itself, nothing before.
    let start = match &opts.only {
        Some(_) => active[restore.unwrap_or(first)],
        None => 0,
    };
    // Host-only work of the stages about to run (their programs' builds) starts now, in the
    // background, while the stages before them run (emulated dpkg leaves a core idle).
    let to_run: Vec<usize> = active
        .iter()
        .enumerate()
        .filter(|&(pos, &i)| {
            pos >= skip_until && Some(pos) != restore && pos <= last && stages[i].has_prebuild()
        })
        .map(|(_, &i)| i)
        .collect();
    let background = Background::new(to_run);
    std::thread::scope(|scope| -> Result<(), PipelineError> {
        scope.spawn(|| background.work(ctx, stages));
        let result = (|| -> Result<(), PipelineError> {
            // The key of the last applicable stage passed: a stage whose parent's snapshot is
            // in the store saves a layer on it.
            let mut parent_key: Option<String> = None;
            // The tree as the stage that just ran left it (its layer's walk): the next stage's
            // listing, without walking the tree again.
            let mut left: Option<layer::Delta> = None;
            for (i, p) in planned.iter().enumerate().take(stop).skip(start) {
                let line = |outcome, seconds, snapshot_seconds| StageRun {
                    name: p.name.clone(),
                    outcome,
                    seconds,
                    snapshot_seconds,
                    key: p.key().map(str::to_string).unwrap_or_default(),
                };
                let pos = active.iter().position(|&a| a == i);
                let (Some(pos), Some(manifest)) = (pos, p.manifest.as_ref()) else {
                    if let CacheState::Skipped { reason } = &p.state {
                        ctx.reporter
                            .detail(&format!("{}: skipped, {reason}", p.name));
                    }
                    report.push(line(Outcome::Skipped, 0.0, 0.0));
                    continue;
                };
                let parent = parent_key.replace(manifest.key.clone());
                if Some(pos) == restore {
                    let t = Instant::now();
                    ctx.reporter.step(&format!("{}: cached, restoring", p.name));
                    store.restore(&manifest.key, &p.name, &root)?;
                    let secs = t.elapsed().as_secs_f64();
                    ctx.reporter
                        .step(&format!("{}: restored in {secs:.1} s", p.name));
                    report.push(line(Outcome::Restored, secs, 0.0));
                    continue;
                }
                if pos < skip_until {
                    ctx.reporter.step(&format!("{}: cached", p.name));
                    report.push(line(Outcome::Cached, 0.0, 0.0));
                    continue;
                }
                crate::interrupt::check()?;
                let why = match &p.state {
                    CacheState::Stale { why } if !opts.force => format!(" ({})", why.join(", ")),
                    _ => String::new(),
                };
                ctx.reporter.step(&format!("{}: running{why}", p.name));
                let t = Instant::now();
                background.wait_for(i);
                let base = parent.filter(|k| store.has(k));
                let t_list = Instant::now();
                let before = match (&base, left.take()) {
                    (Some(_), Some(d)) => Some(d.into_listing(&root)),
                    (Some(_), None) => Some(layer::listing(&root)?),
                    (None, _) => None,
                };
                let listed = t_list.elapsed();
                stages[i].run(ctx, &root)?;
                let secs = t.elapsed().as_secs_f64() - listed.as_secs_f64();
                crate::interrupt::check()?;
                let t = Instant::now();
                let (saved, kind) = match (&base, &before) {
                    (Some(b), Some(l)) => {
                        let d = layer::delta(&root, l)?;
                        let saved = store.save_layer(manifest, b, &d)?;
                        left = Some(d);
                        (saved, "layer")
                    }
                    _ => (store.save(&root, manifest)?, "full"),
                };
                let snap = t.elapsed().as_secs_f64() + listed.as_secs_f64();
                ctx.reporter.step(&format!(
                    "{}: done in {secs:.1} s (snapshot {snap:.1} s, {kind} {:.1} MB)",
                    p.name,
                    saved.compressed as f64 / 1e6
                ));
                report.push(line(Outcome::Ran, secs, snap));
            }
            Ok(())
        })();
        background.stop();
        result
    })?;
    if let Some((stage, missing)) = stopped {
        // The partial tree is dropped (removed): the output stays as it was.
        let ran = report
            .iter()
            .filter(|r| r.outcome != Outcome::Skipped)
            .map(|r| r.name.clone())
            .collect();
        return Err(PipelineError::Stopped {
            stage,
            ran,
            missing,
        });
    }
    commit(tree, &opts.output)?;
    Ok(RunReport {
        stages: report,
        output: opts.output.clone(),
    })
}

/// The plan as a table for `pistemcell stages`: name, state, description, and for stale
/// stages what changed (skipped ones say why).
pub fn render_plan(planned: &[Planned]) -> String {
    let width = planned.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for p in planned {
        let (state, detail) = match &p.state {
            CacheState::Cached => ("cached", String::new()),
            CacheState::NotBuilt => ("not built", String::new()),
            CacheState::Stale { why } => (
                "stale",
                format!("\n{:width$}  {:9}  ↳ {}", "", "", why.join(", ")),
            ),
            CacheState::Skipped { reason } => ("skipped", format!(" ({reason})")),
        };
        out.push_str(&format!(
            "{:width$}  {state:9}  {}{detail}\n",
            p.name, p.description
        ));
    }
    out
}

/// Moves the finished tree to `output` (on the work dir's filesystem).
fn commit(tree: crate::workdir::PartialTree, output: &Path) -> Result<(), PipelineError> {
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| PipelineError::Io {
            what: "create",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    tree.commit(output).map_err(|source| PipelineError::Io {
        what: "move the finished rootfs (the output must be on the work dir's filesystem) to",
        path: output.to_path_buf(),
        source,
    })
}

/// Keeps, per stage, the `keep` most recently written or restored snapshots in
/// `CACHE/stages` and removes the rest (`pistemcell clean --keep N`); returns what was removed.
pub fn evict(cache_dir: &Path, keep: usize) -> Result<Vec<PathBuf>, PipelineError> {
    Store::open(cache_dir)?.evict(keep)
}

/// The niceness of the background builds.
const BACKGROUND_NICE: libc::c_int = 10;

/// The background worker running the stages' [`Stage::prebuild`]s in pipeline order.
struct Background {
    stages: Vec<usize>,
    /// How many prebuilds have ended (`usize::MAX` once the worker is gone).
    done: Mutex<usize>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Background {
    fn new(stages: Vec<usize>) -> Background {
        Background {
            stages,
            done: Mutex::new(0),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        }
    }

    /// Runs every prebuild in turn, until told to stop or interrupted.
    fn work(&self, ctx: &BuildContext, stages: &[Box<dyn Stage>]) {
        struct Gone<'a>(&'a Background);
        impl Drop for Gone<'_> {
            fn drop(&mut self) {
                *self.0.done.lock().unwrap_or_else(|e| e.into_inner()) = usize::MAX;
                self.0.changed.notify_all();
            }
        }
        let _gone = Gone(self);
        // The stages on the critical path go first: this thread and the compilers it starts
        // (which inherit it) yield the CPU to the emulated dpkg runs.
        // SAFETY: setpriority on this thread's own id; no memory is involved.
        unsafe {
            libc::setpriority(
                libc::PRIO_PROCESS,
                libc::gettid() as libc::id_t,
                BACKGROUND_NICE,
            );
        }
        for &i in &self.stages {
            if self.stop.load(Ordering::Relaxed) || crate::interrupt::requested() {
                return;
            }
            stages[i].prebuild(ctx);
            *self.done.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            self.changed.notify_all();
        }
    }

    /// Waits until stage `i`'s prebuild (if it has one) has ended.
    fn wait_for(&self, i: usize) {
        let Some(k) = self.stages.iter().position(|&s| s == i) else {
            return;
        };
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while *done <= k {
            done = self.changed.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Asks the worker to start nothing more.
    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
