//! `pistemcell check-os`: the hardening upstream BOSH stemcells are built to, as named checks
//! ported from bosh-linux-stemcell-builder's own specs (`bosh-stemcell/spec/os_image/`,
//! `spec/stemcells/` and their shared examples in `spec/support/`). Each check keeps its
//! upstream id (STIG `V-…`, `CIS-…`, or the spec's description), says what it looks at, and
//! gives a one-line result.
//!
//! Checks only read files, inside the tree (symlinks resolved as if the tree were `/`, regular
//! files under a size cap, see `inside`): they run on any rootfs, image or stemcell, ours or
//! not, and never execute anything from it.
//!
//! - `tree`: the read-only view of the image the checks use;
//! - `test`: what a check looks at (a line in a file, a mode, a package) and how it is judged;
//! - `registry` and its topic modules: every check, applicable or not (with the reason).

pub mod registry;
pub mod report;
pub mod test;
pub mod tree;

mod accounts;
mod accounts_more;
mod agent;
mod agent_clouds;
mod auditd;
mod auditd_more;
mod common;
mod kernel;
mod logging;
mod pam;
mod stemcell;
mod system;

pub use crate::rules::OsAllow;
pub use report::{run, Outcome, Report, Status};
pub use test::Test;

/// Whether a check applies to the images this tool builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// It applies to every profile and board.
    Yes,
    /// It does not apply, for this reason (listed in the README's table).
    No(&'static str),
    /// It applies only to images of these infrastructures (as the image's
    /// `/var/vcap/bosh/etc/infrastructure` names it).
    Only(&'static [&'static str]),
    /// It applies to images of every infrastructure but these.
    Except(&'static [&'static str]),
}

/// One named check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Upstream's id: `V-38658`, `CIS-4.1.3`, or a slug of the spec's description.
    pub id: &'static str,
    /// Where upstream asserts it (`stemcells/stig_spec.rb`, `support/os_image_shared_examples.rb`).
    pub source: &'static str,
    /// What it requires, in one line.
    pub title: &'static str,
    /// What is looked at and how it is judged.
    pub test: Test,
    /// Whether it applies here.
    pub applies: Applies,
}

/// Refuses allow entries that name no check, or give no reason; names the entry.
pub fn check_allow(allow: &[OsAllow]) -> Result<(), String> {
    let all = registry::all();
    for (i, a) in allow.iter().enumerate() {
        if !all.iter().any(|c| c.id == a.check) {
            return Err(format!(
                "`check_os.allow[{i}].check` is `{}`, which is no check; `pistemcell check-os --list` lists them",
                a.check
            ));
        }
        if a.reason.trim().is_empty() {
            return Err(format!(
                "`check_os.allow[{i}]` ({}) has no `reason`: say why this check may fail",
                a.check
            ));
        }
    }
    Ok(())
}
