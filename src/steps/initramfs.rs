//! The built-in `54-initramfs` stage: builds the initramfs of every kernel the stages before it
//! installed, once, with the host's tools where the rootfs is foreign (see
//! `crate::rootfs::initramfs`). The kernel and firmware stages come first in the build (they
//! rarely change); the package and OS stages after them add the hooks and files the initramfs
//! holds (udev's hook, `/etc/modprobe.d`), so it is built here, after them, and before monit
//! and the agent, which add nothing to it. A build without a kernel does nothing here.

use std::path::Path;

use crate::context::BuildContext;
use crate::pipeline::{PipelineError, Stage};
use crate::rootfs::{initramfs, mounts};

/// Bumped when the stage's behaviour changes (part of its cache key).
const FORMAT: &str = "1";

/// The built-in initramfs stage.
#[derive(Debug, Clone, Default)]
pub struct InitramfsStage;

fn fail(e: impl std::error::Error + Send + Sync + 'static) -> PipelineError {
    PipelineError::Build {
        stage: initramfs::STAGE.into(),
        source: Box::new(e),
    }
}

impl Stage for InitramfsStage {
    fn name(&self) -> &str {
        initramfs::STAGE
    }
    fn description(&self) -> &str {
        "build the initramfs of each kernel the stages before installed, once, with the host's tools (update-initramfs; raspi-firmware's hook copies it to the boot partition)"
    }
    fn applies(&self, _ctx: &BuildContext) -> bool {
        true
    }
    fn manifest(&self, _ctx: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        Ok(vec![("format".into(), FORMAT.into())])
    }
    fn run(&self, ctx: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        if initramfs::kernels_without_initramfs(root).is_empty() {
            return Ok(());
        }
        let log = ctx
            .log_dir()
            .map_err(fail)?
            .join(format!("{}.log", initramfs::STAGE));
        let _mounts = mounts::ChrootMounts::setup(root).map_err(fail)?;
        crate::bootstrap::finish_with_host_tools(
            ctx,
            root,
            initramfs::STAGE,
            None,
            true,
            &log,
            None,
        )
        .map_err(fail)
    }
}
