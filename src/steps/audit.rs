//! The built-in `95-audit` stage: swaps the spec's `replacements:` into the rootfs, then
//! audits every ELF file against the target (see `crate::audit`). A failing finding that no
//! `audit.allow` entry (the profile's or the spec's) accepts fails the build, with the
//! complete list of offenders and the package each came from.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::audit::{self, Report};
use crate::context::BuildContext;
use crate::pipeline::{PipelineError, Stage};
use crate::spec::{Artifact, Resolved};
use crate::steps::artifact::{self, ArtifactError};

/// The stage's name: after every OS stage and the cleanup, so it sees the final tree.
pub const NAME: &str = "95-audit";
/// Bumped when the stage's behaviour changes (part of its cache key).
const FORMAT: &str = "1";

/// Errors of the audit stage.
#[derive(Debug, thiserror::Error)]
pub enum AuditStageError {
    /// A replacement could not be fetched.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// A replacement cannot be put in place.
    #[error("replacements: {path}: {reason}")]
    Replacement {
        /// The rootfs path.
        path: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Walking the tree failed.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    /// Files that cannot run on the target.
    #[error("{0}")]
    Offenders(String),
}

/// The built-in audit stage.
#[derive(Debug, Clone, Default)]
pub struct AuditStage;

fn wrap(e: AuditStageError) -> PipelineError {
    PipelineError::Build {
        stage: NAME.into(),
        source: Box::new(e),
    }
}

impl Stage for AuditStage {
    fn name(&self) -> &str {
        NAME
    }
    fn description(&self) -> &str {
        "swap in `replacements:`, then audit every ELF file: machine, float ABI, CPU floor (x86 or too-new code fails the build)"
    }
    fn applies(&self, _ctx: &BuildContext) -> bool {
        true
    }
    fn manifest(&self, ctx: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        let spec = &ctx.spec;
        let replacements: Vec<String> = spec
            .replacements
            .iter()
            .map(|(p, a)| format!("{p}={}", a.digest()))
            .collect();
        let allow: Vec<String> = spec
            .audit_allow
            .iter()
            .map(|e| format!("{} [{}] {}", e.path, e.checks.join(","), e.reason))
            .collect();
        Ok(vec![
            ("audit-format".into(), FORMAT.into()),
            ("architecture".into(), spec.arch.debian().into()),
            ("cpu".into(), spec.lookup("cpu").unwrap_or_default()),
            ("replacements".into(), replacements.join(" ")),
            ("audit.allow".into(), allow.join("; ")),
        ])
    }
    fn prepare(&self, ctx: &BuildContext) -> Result<(), PipelineError> {
        for (path, a) in &ctx.spec.replacements {
            artifact::fetch(&ctx.cache_dir, &format!("replacements.{path}"), a)
                .map_err(|e| wrap(e.into()))?;
        }
        Ok(())
    }
    fn run(&self, ctx: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        for (path, a) in &ctx.spec.replacements {
            replace(ctx, root, path, a).map_err(wrap)?;
            ctx.reporter
                .detail(&format!("replaced {path} with {}", a.location()));
        }
        let report = report_for(&ctx.spec, root).map_err(|e| wrap(e.into()))?;
        let allowed = report
            .findings
            .iter()
            .filter(|f| f.allowed.is_some())
            .count();
        if report.failures().next().is_some() {
            return Err(wrap(AuditStageError::Offenders(offenders_message(
                &report, &ctx.spec,
            ))));
        }
        ctx.reporter.step(&format!(
            "audit: {} ELF files of {} fit {} {}; {allowed} accepted by audit.allow, {} warnings",
            report.elf_files,
            report.files,
            ctx.spec.arch.debian(),
            ctx.spec.lookup("cpu").unwrap_or_default(),
            report
                .findings
                .iter()
                .filter(|f| f.severity == audit::Severity::Warn)
                .count()
        ));
        Ok(())
    }
}

/// Audits `root` for the spec's target, with the allow-list applied.
pub fn report_for(spec: &Resolved, root: &Path) -> Result<Report, audit::AuditError> {
    let mut report = audit::audit_tree(root, spec.arch, spec.cpu)?;
    report.apply_allow(&spec.audit_allow);
    Ok(report)
}

/// The build-failing message: every offending file with its package and what is wrong,
/// then what the user can do.
pub fn offenders_message(report: &Report, spec: &Resolved) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut last = "";
    for f in report.failures() {
        if f.path != last {
            lines.push(format!(
                "  {} ({})",
                f.path,
                f.package
                    .as_deref()
                    .map_or("not from a package".to_string(), |p| format!("package {p}"))
            ));
            last = &f.path;
        }
        lines.push(format!(
            "      {}: {}; needs {}",
            f.check, f.found, f.needed
        ));
    }
    format!(
        "{} files cannot run on {} (cpu floor {}):\n{}\n  for each: swap in an ARM build with `replacements: {{PATH: {{url|path, sha256}}}}`, remove it in a stage, or accept it with `audit.allow: [{{path: PATH, reason: WHY}}]`; `pistemcell audit ROOTFS --json` lists them again",
        report.failing_files(),
        spec.arch.debian(),
        spec.lookup("cpu").unwrap_or_default(),
        lines.join("\n")
    )
}

/// Where a build writes the audit's findings for its rootfs: `ROOTFS.audit.json` beside it.
pub fn json_path(rootfs: &Path) -> std::path::PathBuf {
    let name = rootfs
        .file_name()
        .map_or("rootfs".into(), |n| n.to_string_lossy().into_owned());
    rootfs.with_file_name(format!("{name}.audit.json"))
}

/// Writes `report` as JSON to `path` atomically.
pub fn write_json(report: &Report, spec: &Resolved, path: &Path) -> std::io::Result<()> {
    crate::atomic::write(path, audit::to_json(report, spec.arch, spec.cpu).as_bytes())
}

/// Puts the replacement for `path` in place: the file it replaces keeps its mode and owner
/// (a new file is 0755 root:root); the replacement must itself fit the target.
fn replace(
    ctx: &BuildContext,
    root: &Path,
    path: &str,
    a: &Artifact,
) -> Result<(), AuditStageError> {
    let err = |reason: String| AuditStageError::Replacement {
        path: path.to_string(),
        reason,
    };
    let src = artifact::fetch(&ctx.cache_dir, &format!("replacements.{path}"), a)?;
    if let Some(why) = artifact::misfit(&src, ctx.spec.arch, ctx.spec.cpu).map_err(err)? {
        return Err(err(format!(
            "the replacement {} does not fit the target either ({why})",
            a.location()
        )));
    }
    let (mode, uid, gid) = match crate::inside::safepath::host_path(root, path)
        .map_err(err)?
        .and_then(|p| fs::symlink_metadata(p).ok())
    {
        Some(m) if m.is_file() => (m.mode() & 0o7777, m.uid(), m.gid()),
        _ => (0o755, 0, 0),
    };
    artifact::install_into(root, path, &src, mode, uid, gid).map_err(err)
}
