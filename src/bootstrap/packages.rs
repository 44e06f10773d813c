//! Installing packages into an existing rootfs (what a stage's `packages:` asks for): resolved
//! against the same verified index as the bootstrap, with what is installed counted as chosen,
//! downloaded through the shared cache and configured with dpkg. No Recommends, like
//! `apt-get install --no-install-recommends`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::archive::download;
use crate::archive::resolve::{self, Variant};
use crate::bootstrap::{self, BootstrapError};
use crate::context::BuildContext;
use crate::rootfs::dpkg;

/// Installs `names` and their missing dependencies; returns the names newly installed.
pub fn install(
    ctx: &BuildContext,
    root: &Path,
    names: &[String],
    stage: &str,
) -> Result<Vec<String>, BootstrapError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let archive = ctx.archive()?;
    let installed = dpkg::read_status(root)?;
    let mut seeds: Vec<String> = installed
        .iter()
        .filter(|(_, (_, _, status))| status == "install ok installed")
        .map(|(n, _)| n.clone())
        .filter(|n| archive.universe.get(n).is_some())
        .collect();
    seeds.extend(names.iter().cloned());
    let (extra, exclude) = bootstrap::usr_merge_packages(&archive.universe, &ctx.spec, &[]);
    let resolved = resolve::resolve(
        &archive.universe,
        &Variant::Packages(seeds),
        &extra,
        &exclude,
    )?;
    let new: Vec<_> = resolved
        .into_iter()
        .filter(|p| !installed.contains_key(&p.name))
        .collect();
    if new.is_empty() {
        ctx.reporter
            .step(&format!("{stage}: {} already installed", names.join(", ")));
        return Ok(Vec::new());
    }
    ctx.reporter.step(&format!(
        "{stage}: installing {} packages ({})",
        new.len(),
        new.iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let items = bootstrap::download_items(&archive.mirror, &new);
    let fetched = download::fetch_all(
        &archive.http,
        &archive.cache,
        &items,
        ctx.settings.jobs,
        &ctx.reporter,
    )?;
    crate::interrupt::check()?;
    let debs: Vec<PathBuf> = fetched.paths;
    bootstrap::configure(ctx, root, &debs, stage)?;
    let mut expected: BTreeSet<String> = installed.keys().cloned().collect();
    expected.extend(new.iter().map(|p| p.name.clone()));
    dpkg::verify_installed(root, &expected)?;
    bootstrap::record_debs(root, &new)?;
    Ok(new.into_iter().map(|p| p.name).collect())
}
