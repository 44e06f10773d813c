//! The stage pipeline: one ordered list of built-in (Rust) and data (`stages/NN-name`)
//! stages, each cached as a rootfs snapshot under a key made of its named inputs and its
//! parent's key; a build restores the newest valid snapshot and runs only what follows.
//!
//! - `stage`, `script`, `env`: data stages (schema, checks, environment, running);
//! - `key`: cache keys as manifests of named inputs, and why a cache entry is stale;
//! - `snapshot`, `layer`: the snapshot store and layered snapshots (written with `tarwrite`);
//! - `runner`: planning, running (`--from`, `--until`, `--only`, `--force`), eviction.
//!
//! The pipeline knows stages only through the [`Stage`] trait: the list of built-in stages is
//! assembled above it, by `steps::stages`.

#![warn(missing_docs)]

pub mod env;
pub mod key;
pub mod layer;
pub mod runner;
pub mod script;
pub mod snapshot;
pub mod stage;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::context::BuildContext;

pub use env::STAGE_ENV;
pub use runner::{
    evict, plan, render_plan, run, CacheState, Outcome, Planned, RunOptions, RunReport, StageRun,
};
pub use stage::DataStage;

/// Errors of the pipeline; each names the stage or file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The cache or work dir is not pistemcell's (no marker, or protected).
    #[error(transparent)]
    Owned(#[from] crate::owned::OwnedError),
    /// A stage directory is malformed (name, missing stage.yml).
    #[error("stage {path}: {reason}")]
    StageDir {
        /// The stage directory.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// `stage.yml` does not parse (the message carries line and column).
    #[error("{path}: {source}\n  (the stage.yml fields are described in src/pipeline/stage.rs and README.md)")]
    StageYml {
        /// The stage.yml path.
        path: PathBuf,
        /// The YAML error with its position.
        source: serde_norway::Error,
    },
    /// `stage.yml` parses but its values are wrong.
    #[error("stage {stage} ({path}): {reason}")]
    Invalid {
        /// The stage name.
        stage: String,
        /// The stage.yml path.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Two stages have the same name.
    #[error("two stages are named {name}; rename one of the stage directories")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// `--from`, `--until` or `--only` names no stage.
    #[error("there is no stage {name}; the stages are: {valid}")]
    UnknownStage {
        /// The name given.
        name: String,
        /// Every stage name.
        valid: String,
    },
    /// `--from`, `--until` or `--only` names a stage this build skips.
    #[error("stage {name} does not apply to this build ({reason}); `pistemcell stages` lists the ones that do")]
    NotApplicable {
        /// The stage.
        name: String,
        /// Why it is skipped.
        reason: String,
    },
    /// `--only X` needs X's parent cached.
    #[error("--only {stage} runs on the cached result of {parent}, which is not cached: build it first (`pistemcell build --until {parent}`)")]
    ParentNotCached {
        /// The stage to run.
        stage: String,
        /// Its parent.
        parent: String,
    },
    /// Stages of this run cannot get what they need (checked before any stage runs).
    #[error("the build cannot start: the first stage to run needs inputs this host cannot get; nothing was changed:\n  - {}\n  give them and run the same command again, or build the OS image alone with `pistemcell build --os-image`", .0.join("\n  - "))]
    Inputs(Vec<String>),
    /// A stage's inputs are missing: the stages before it ran (and are cached), the build
    /// stopped there.
    #[error("the build stopped before stage {stage}: it needs inputs this host cannot get:\n  - {}\n  the stages before it are built and cached (through {}); give the inputs and run the same command again to resume at {stage}, or build the OS image alone with `pistemcell build --os-image`", .missing.join("\n  - "), .ran.last().map_or("none", String::as_str))]
    Stopped {
        /// The first stage that cannot run.
        stage: String,
        /// The stages that ran or were restored before it.
        ran: Vec<String>,
        /// What is missing, one line each, with the `--set` flags that give it.
        missing: Vec<String>,
    },
    /// The run options contradict each other.
    #[error("{0}")]
    Options(String),
    /// `apply.sh` failed.
    #[error("stage {stage}: {script} failed ({status}); last lines of its output:\n{tail}\n  full log: {log}\n  fix the stage and run the build again: the stages before it are cached")]
    Script {
        /// The stage name.
        stage: String,
        /// The script path.
        script: PathBuf,
        /// `exit code N` or `killed by signal N`.
        status: String,
        /// The last lines of output.
        tail: String,
        /// The full log.
        log: PathBuf,
    },
    /// A script could not be started.
    #[error("stage {stage}: cannot run `{argv}`: {source}; is bash installed (on the host for `run: host`, in the rootfs for chroot stages)?")]
    Spawn {
        /// The stage name.
        stage: String,
        /// The command line.
        argv: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Preparing the chroot (emulation, mounts, policy-rc.d) failed.
    #[error("stage {stage}: preparing the chroot: {reason}")]
    Chroot {
        /// The stage name.
        stage: String,
        /// What failed.
        reason: String,
    },
    /// A built-in stage (or the packages of a data stage) failed.
    #[error("stage {stage}: {source}")]
    Build {
        /// The stage name.
        stage: String,
        /// The underlying error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Saving a snapshot failed.
    #[error("stage {stage}: cannot save the snapshot {path}: {reason}; check free space in the cache dir (--cache-dir)")]
    Snapshot {
        /// The stage name.
        stage: String,
        /// The snapshot path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Restoring a snapshot failed.
    #[error("stage {stage}: cannot restore the snapshot {path}: {reason}; delete it (or run `pistemcell build --force`)")]
    Restore {
        /// The stage name.
        stage: String,
        /// The snapshot's key.
        key: String,
        /// The snapshot path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Walking or reading a tree failed.
    #[error(transparent)]
    Tree(#[from] crate::tarwrite::tree::TreeError),
    /// The work directory is unusable.
    #[error(transparent)]
    WorkDir(#[from] crate::workdir::WorkDirError),
    /// The user pressed Ctrl-C.
    #[error(transparent)]
    Interrupted(#[from] crate::interrupt::Interrupted),
    /// A file operation failed.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One stage of the pipeline.
pub trait Stage: Sync {
    /// The stage name, `NN-name`; the pipeline is ordered by it.
    fn name(&self) -> &str;
    /// One line for humans.
    fn description(&self) -> &str;
    /// Whether the stage runs in this build.
    fn applies(&self, ctx: &BuildContext) -> bool;
    /// Why the stage does not run in this build (`None` when it does).
    fn skip_reason(&self, ctx: &BuildContext) -> Option<String> {
        (!self.applies(ctx)).then(|| "does not apply to this build".to_string())
    }
    /// The stage's named inputs (its cache manifest, without the parent).
    fn manifest(&self, ctx: &BuildContext) -> Result<Vec<(String, String)>, PipelineError>;
    /// Gets what the stage needs from outside (downloads, host tools) before the build
    /// starts, so a missing input stops the build before the first stage runs.
    fn prepare(&self, _ctx: &BuildContext) -> Result<(), PipelineError> {
        Ok(())
    }
    /// Host-only work `run` would do first (building the stage's programs into their
    /// content-addressed caches), started in the background while the stages before run. It
    /// never touches the rootfs; what fails here is left for `run` to do again and report.
    fn prebuild(&self, _ctx: &BuildContext) {}
    /// Whether [`Stage::prebuild`] has anything to do for this stage.
    fn has_prebuild(&self) -> bool {
        false
    }
    /// Changes the tree at `root` (the first stage receives an empty directory).
    fn run(&self, ctx: &BuildContext, root: &Path) -> Result<(), PipelineError>;
    /// Whether the stage installs a stemcell input (monit, the agent): the OS image
    /// (`build --os-image`) is every stage before the first such stage.
    fn stemcell_input(&self) -> bool {
        false
    }
}

impl Stage for DataStage {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        &self.file.description
    }
    fn applies(&self, ctx: &BuildContext) -> bool {
        self.skip_reason(&ctx.spec).is_none()
    }
    fn skip_reason(&self, ctx: &BuildContext) -> Option<String> {
        DataStage::skip_reason(self, &ctx.spec)
    }
    fn manifest(&self, ctx: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        self.inputs(ctx)
    }
    fn run(&self, ctx: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        self.execute(ctx, root)
    }
}

/// Where data stages and assets are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSource {
    /// The `stages/` directory.
    pub stages_dir: PathBuf,
    /// The `assets/` directory.
    pub assets_dir: PathBuf,
}

impl StageSource {
    /// `--stages-dir` / `--assets-dir` when given, else [`default_stages_dir`] and
    /// [`default_assets_dir`].
    pub fn new(stages_dir: Option<&Path>, assets_dir: Option<&Path>) -> StageSource {
        StageSource {
            stages_dir: stages_dir.map_or_else(default_stages_dir, Path::to_path_buf),
            assets_dir: assets_dir.map_or_else(default_assets_dir, Path::to_path_buf),
        }
    }
}

/// `PISTEMCELL_STAGES_DIR`, else the source tree's `stages/`.
pub fn default_stages_dir() -> PathBuf {
    std::env::var_os("PISTEMCELL_STAGES_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/stages")))
}

/// `PISTEMCELL_ASSETS_DIR`, else the source tree's `assets/`.
pub fn default_assets_dir() -> PathBuf {
    std::env::var_os("PISTEMCELL_ASSETS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/assets")))
}

/// Sorts stages by name and refuses duplicate names.
pub fn ordered(mut stages: Vec<Box<dyn Stage>>) -> Result<Vec<Box<dyn Stage>>, PipelineError> {
    stages.sort_by(|a, b| a.name().cmp(b.name()));
    if let Some(w) = stages.windows(2).find(|w| w[0].name() == w[1].name()) {
        return Err(PipelineError::Duplicate {
            name: w[0].name().to_string(),
        });
    }
    Ok(stages)
}

#[cfg(test)]
mod readme_tests {
    #[test]
    fn readme_documents_every_stage_field_and_variable() {
        let readme = include_str!("../../README.md");
        for (name, ..) in super::stage::STAGE_FIELDS {
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "README.md lacks stage.yml field `{name}`"
            );
        }
        for (name, _) in super::env::STAGE_ENV {
            for var in name.split(", ") {
                assert!(
                    readme.contains(var),
                    "README.md lacks stage variable `{var}`"
                );
            }
        }
    }
}
