//! The built-in `96-check-os` stage: runs `check-os` (upstream's hardening assertions, see
//! `crate::checkos`) on the finished rootfs. A failing check that the spec's `check_os.allow`
//! does not name fails the build, with every failure and what was seen. The stemcell carries
//! the report as `check-os.json` (see `pack::write`).

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::checkos;
use crate::context::BuildContext;
use crate::pipeline::{PipelineError, Stage};

/// The stage's name: after the audit, on the tree the stemcell is packed from.
pub const NAME: &str = "96-check-os";
/// Bumped when the stage's behaviour changes (part of its cache key).
const FORMAT: &str = "1";

/// The built-in check-os stage.
#[derive(Debug, Clone, Default)]
pub struct CheckOsStage;

fn fail(message: String) -> PipelineError {
    PipelineError::Build {
        stage: NAME.into(),
        source: message.into(),
    }
}

impl Stage for CheckOsStage {
    fn name(&self) -> &str {
        NAME
    }
    fn description(&self) -> &str {
        "check the hardening upstream stemcells are built to (`pistemcell check-os`); a failing check not in `check_os.allow` fails the build"
    }
    fn applies(&self, _ctx: &BuildContext) -> bool {
        true
    }
    fn manifest(&self, ctx: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        let checks = crate::tarwrite::tree::hex(&Sha256::digest(checkos::registry::list_text()));
        let allow = serde_json::to_string(&ctx.spec.check_os_allow).unwrap_or_default();
        Ok(vec![
            ("format".into(), FORMAT.into()),
            ("checks".into(), checks),
            ("check_os.allow".into(), allow),
        ])
    }
    fn prepare(&self, ctx: &BuildContext) -> Result<(), PipelineError> {
        checkos::check_allow(&ctx.spec.check_os_allow).map_err(fail)
    }
    fn run(&self, ctx: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        let report = checkos::run(root, &ctx.spec.check_os_allow);
        let failed: Vec<String> = report
            .failures()
            .map(|o| format!("  {} ({}): {}\n      {}", o.id, o.source, o.title, o.detail))
            .collect();
        if !failed.is_empty() {
            return Err(fail(format!(
                "{} hardening checks fail:\n{}\n  fix the OS stage that configures each, or accept it with `check_os.allow: [{{check: ID, reason: WHY}}]`; `pistemcell check-os ROOTFS` lists every check again",
                failed.len(),
                failed.join("\n")
            )));
        }
        ctx.reporter.step(&format!(
            "check-os: {} passed, {} allowed by check_os.allow, {} not applicable",
            report.count("pass"),
            report.count("allowed"),
            report.count("n/a")
        ));
        Ok(())
    }
}
