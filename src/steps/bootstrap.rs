//! The built-in first stage: bootstraps the configured rootfs into an empty directory (the
//! work itself is `crate::bootstrap`).

use std::path::Path;

use crate::context::BuildContext;
use crate::pipeline::{PipelineError, Stage};

/// The built-in first stage: bootstraps the configured rootfs into an empty directory.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap;

/// The name of the built-in bootstrap stage.
pub const BOOTSTRAP: &str = "00-bootstrap";

impl Stage for Bootstrap {
    fn name(&self) -> &str {
        BOOTSTRAP
    }
    fn description(&self) -> &str {
        "resolve, download, verify, extract and configure the base rootfs"
    }
    fn applies(&self, _ctx: &BuildContext) -> bool {
        true
    }
    fn manifest(&self, ctx: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        Ok(crate::bootstrap::manifest(&ctx.spec))
    }
    fn run(&self, ctx: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        crate::bootstrap::build(ctx, root)
            .map(|_| ())
            .map_err(|source| PipelineError::Build {
                stage: BOOTSTRAP.into(),
                source: Box::new(source),
            })
    }
}
