//! The built-in stages written in Rust, what they share, and the whole stage list.

pub mod agent;
pub mod agent_build;
pub mod agent_fetch;
pub mod artifact;
pub mod audit;
pub mod blobstore;
pub mod bootstrap;
pub mod check_os;
pub mod go_source;
pub mod gobuild;
pub mod initramfs;
pub mod monit;
pub mod monit_build;
pub mod monit_http;
pub mod monit_proof;
#[cfg(test)]
mod tests;

use crate::context::BuildContext;
use crate::pipeline::{stage, PipelineError, Stage, StageSource};

/// The whole pipeline: the built-in stages (bootstrap, monit, agent, blobstore clients, audit,
/// check-os)
/// and every data stage under `source`, in name order.
pub fn stages(
    ctx: &BuildContext,
    source: &StageSource,
) -> Result<Vec<Box<dyn Stage>>, PipelineError> {
    let mut list: Vec<Box<dyn Stage>> = vec![
        Box::new(bootstrap::Bootstrap),
        Box::new(monit::MonitStage),
        Box::new(agent::AgentStage {
            assets_dir: source.assets_dir.clone(),
        }),
        Box::new(blobstore::BlobstoreClientsStage),
        Box::new(initramfs::InitramfsStage),
        Box::new(audit::AuditStage),
        Box::new(check_os::CheckOsStage),
    ];
    for s in stage::load_all(source, &ctx.spec)? {
        list.push(Box::new(s));
    }
    crate::pipeline::ordered(list)
}
