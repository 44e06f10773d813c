//! The bootstrap step: from a spec to a configured ARM root filesystem.
//!
//! In order: choose the mirror, check the archive key, read the signed indices, resolve the
//! package set, download (parallel, verified, cached), extract every package natively
//! (like debootstrap's first stage), then configure them with dpkg (maintainer scripts run
//! chrooted, emulated on a foreign host), check the result and move it into place.
//!
//! [`packages`] installs more packages into such a rootfs, for data stages' `packages:` and the
//! built-in stages. The pipeline's first stage (`steps::bootstrap`) calls [`build`]; errors are
//! [`BootstrapError`] (in `context`, which opens the archive with the same errors).

pub mod packages;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::archive::download::{self, Item};
use crate::archive::http::join;
use crate::archive::packages::Package;
use crate::archive::resolve::{self, Universe, Variant};
use crate::context::BuildContext;
use crate::deb::Deb;
use crate::rootfs::deferred::Deferred;
use crate::rootfs::host_tools::HostTools;
use crate::rootfs::{binfmt, dpkg, extract, hostkeys, initramfs, mounts};
use crate::spec::{Resolved, VariantSpec};
use crate::workdir::WorkDir;

pub use crate::context::BootstrapError;
use crate::record::ARCHIVE_RECORD;

/// What the bootstrap produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The rootfs path.
    pub rootfs: PathBuf,
    /// Installed packages (name, version, architecture).
    pub packages: Vec<(String, String, String)>,
    /// The mirror used.
    pub mirror: String,
    /// Per-step wall times in seconds.
    pub timings: Vec<(&'static str, f64)>,
    /// Packages that were already in the cache.
    pub cache_hits: usize,
}

/// Version of the bootstrap's behaviour; bump it when the same inputs give another rootfs.
pub const FORMAT: &str = "4";

/// The named inputs a bootstrap's result depends on (its cache manifest). The mirror is not
/// one of them: every mirror serves the same signed archive.
pub fn manifest(spec: &Resolved) -> Vec<(String, String)> {
    let variant = match &spec.variant {
        VariantSpec::Required => "required".to_string(),
        VariantSpec::Minbase => "minbase".to_string(),
        VariantSpec::Important => "important".to_string(),
        VariantSpec::Packages(p) => format!("packages: {}", p.join(" ")),
    };
    let mut m: Vec<(String, String)> = vec![
        ("bootstrap-format".into(), FORMAT.into()),
        ("spec.profile".into(), spec.profile.name.clone()),
        ("spec.architecture".into(), spec.arch.debian().into()),
        ("spec.suite".into(), spec.suite.clone()),
        ("spec.components".into(), spec.components.join(" ")),
        ("spec.variant".into(), variant),
        ("spec.packages".into(), spec.packages.join(" ")),
        (
            "spec.keyring_fingerprints".into(),
            spec.fingerprints.join(" "),
        ),
        (
            "profile.merged_usr".into(),
            spec.profile.merged_usr.to_string(),
        ),
    ];
    // A pinned archive state is a different input (a build without a pin keeps its key).
    if let Some(pin) = &spec.archive_pin {
        m.push((
            "spec.archive_pin".into(),
            pin.release_sha256.to_ascii_lowercase(),
        ));
    }
    // Only when there are any: keys of profiles without extra archives stay as they were.
    if !spec.extra_archives.is_empty() {
        let text = spec
            .extra_archives
            .iter()
            .map(|a| {
                format!(
                    "{} {} {} {}",
                    a.name,
                    a.suite,
                    a.components.join(","),
                    a.keyring.fingerprints.join(",")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        m.push(("spec.extra_archives".into(), text));
    }
    m
}

/// The `bootstrap` subcommand: builds into a partial tree under the work dir and moves it to
/// `output` (default WORK/rootfs) only once it is complete.
pub fn run(
    ctx: &BuildContext,
    work: &WorkDir,
    output: Option<PathBuf>,
) -> Result<Outcome, BootstrapError> {
    let tree = work.partial("rootfs")?;
    let mut outcome = build(ctx, tree.path())?;
    let t = Instant::now();
    let out = output.unwrap_or_else(|| work.path().join("rootfs"));
    tree.commit(&out).map_err(|source| BootstrapError::Io {
        what: "moving the finished rootfs to",
        path: out.clone(),
        source,
    })?;
    outcome.rootfs = out;
    outcome.timings.push(("commit", t.elapsed().as_secs_f64()));
    Ok(outcome)
}

/// Bootstraps a configured rootfs into `root`, an empty directory.
pub fn build(ctx: &BuildContext, root: &Path) -> Result<Outcome, BootstrapError> {
    let spec = &ctx.spec;
    let reporter = &ctx.reporter;
    let mut timings = Vec::new();
    let mut t = Instant::now();
    let mut lap = |name: &'static str, timings: &mut Vec<(&'static str, f64)>| {
        timings.push((name, t.elapsed().as_secs_f64()));
        t = Instant::now();
    };
    let archive = ctx.archive()?;
    lap("index", &mut timings);

    let variant = match &spec.variant {
        VariantSpec::Required => Variant::Required,
        VariantSpec::Minbase => Variant::Minbase,
        VariantSpec::Important => Variant::Important,
        VariantSpec::Packages(p) => Variant::Packages(p.clone()),
    };
    let (extra, exclude) = usr_merge_packages(&archive.universe, spec, &spec.packages);
    let selected = resolve::resolve(&archive.universe, &variant, &extra, &exclude)?;
    reporter.step(&format!("resolved {} packages", selected.len()));
    lap("resolve", &mut timings);

    let items = download_items(&archive.mirror, &selected);
    let fetched = download::fetch_all(
        &archive.http,
        &archive.cache,
        &items,
        ctx.settings.jobs,
        reporter,
    )?;
    lap("download", &mut timings);
    crate::interrupt::check()?;

    if spec.profile.merged_usr {
        merge_usr(root)?;
    }
    let order = install_order(&selected);
    let debs: Vec<PathBuf> = order.iter().map(|&i| fetched.paths[i].clone()).collect();
    let bar = reporter.bar("extract", debs.len() as u64, false);
    for (&i, path) in order.iter().zip(&debs) {
        crate::interrupt::check()?;
        bar.message(&selected[i].name);
        extract_one(&selected[i], &items[i].url, path, root)?;
        bar.inc(1);
    }
    bar.finish(&format!("{} packages extracted", debs.len()));
    lap("extract", &mut timings);

    dpkg::init_database(root)?;
    configure(ctx, root, &debs, "bootstrap")?;
    let expected: BTreeSet<String> = selected.iter().map(|p| p.name.clone()).collect();
    dpkg::verify_installed(root, &expected)?;
    lap("configure", &mut timings);

    finish_rootfs(root, spec, &archive.mirror, &ctx.settings.etc_apt)?;
    extra_sources(root, &archive.extras)?;
    record_archive(
        root,
        spec,
        &archive.release_sha256,
        archive.release_date.as_deref(),
    )?;
    record_debs(root, &selected)?;
    let status = dpkg::read_status(root)?;
    lap("finish", &mut timings);
    Ok(Outcome {
        rootfs: root.to_path_buf(),
        packages: status.into_iter().map(|(n, (v, a, _))| (n, v, a)).collect(),
        mirror: archive.mirror.clone(),
        timings,
        cache_hits: fetched.hits,
    })
}

/// Download items for packages, in the same order.
pub fn download_items(mirror: &str, packages: &[Package]) -> Vec<Item> {
    packages
        .iter()
        .map(|p| Item {
            name: format!("{}_{}_{}.deb", p.name, p.version, p.architecture),
            url: join(mirror, &p.filename),
            size: p.size,
            sha256: p.sha256.to_ascii_lowercase(),
        })
        .collect()
}

/// Extracts one package's files into `root`; errors name the package and where it came from.
fn extract_one(p: &Package, url: &str, path: &Path, root: &Path) -> Result<(), BootstrapError> {
    let bad = |source: Box<dyn std::error::Error + Send + Sync>| BootstrapError::Package {
        package: format!("{} {} ({})", p.name, p.version, p.architecture),
        url: url.to_string(),
        source,
    };
    let deb = Deb::open(path).map_err(|e| bad(e.into()))?;
    extract::extract_deb(&deb, root).map_err(|e| bad(e.into()))?;
    Ok(())
}

/// Runs dpkg over `debs` in the rootfs, with the chroot mounts and policy-rc.d in place.
pub fn configure(
    ctx: &BuildContext,
    root: &Path,
    debs: &[PathBuf],
    label: &str,
) -> Result<(), BootstrapError> {
    let mode = ctx.settings.dpkg_mode.unwrap_or_else(|| {
        match dpkg::host_dpkg_unusable().or_else(|| dpkg::host_dpkg_unusable_for(root)) {
            None => dpkg::Mode::Host,
            Some(why) => {
                ctx.reporter.step(&format!(
                    "{label}: using the target's dpkg in the chroot: {why}"
                ));
                dpkg::Mode::Chroot
            }
        }
    });
    let log = ctx.log_dir()?.join(format!("{label}-dpkg.log"));
    {
        let _mounts = mounts::ChrootMounts::setup(root)?;
        check_runs(root)?;
        let _policy = dpkg::PolicyRcD::install(root)?;
        let deferred = Deferred::install(root, mode)?;
        // Host keys the image never keeps are not made (rootfs::hostkeys).
        let keys = hostkeys::Placeholders::put(root).map_err(|source| dpkg::DpkgError::Io {
            path: root.join("etc/ssh"),
            source,
        })?;
        // The commands maintainer scripts run per file (sed, grep, cp, ...) are the host's
        // where the rootfs is foreign: see rootfs::host_tools.
        let tools = host_tools_for(ctx, root, label, true, true);
        let path = tools.as_ref().map(|t| {
            ctx.reporter.detail(&format!(
                "{label}: the host's {} first on PATH for maintainer scripts",
                t.commands.join(" ")
            ));
            crate::rootfs::host_tools::path_with_toolbox()
        });
        dpkg::install(root, debs, mode, &log, &ctx.reporter, path.as_deref())?;
        keys.remove();
        // Kernels installed before the initramfs stage get theirs there, once (see
        // rootfs::initramfs::STAGE); later ones here.
        let initramfs = !initramfs::deferred_to_stage(label);
        finish_with_host_tools(ctx, root, label, Some(deferred), initramfs, &log, tools)?;
    }
    crate::interrupt::check()?;
    Ok(())
}

/// The host toolbox in `root` (`perl`: with the host's perl, for dpkg runs) when the rootfs is
/// foreign and `needed`, or None (with a warning saying why when it cannot be set up: the work
/// then runs emulated).
pub fn host_tools_for(
    ctx: &BuildContext,
    root: &Path,
    label: &str,
    needed: bool,
    perl: bool,
) -> Option<HostTools> {
    if !needed || binfmt::native(ctx.spec.arch) {
        return None;
    }
    let installed = if perl {
        HostTools::install_with_perl(root)
    } else {
        HostTools::install(root)
    };
    match installed {
        Ok(t) => Some(t),
        Err(why) => {
            ctx.reporter.warn(&format!(
                "{label}: the host's tools cannot be used, so maintainer scripts, the initramfs and deferred commands run emulated (minutes instead of seconds): {why}"
            ));
            None
        }
    }
}

/// What runs once after dpkg, with the host's tools where the rootfs is foreign: the deferred
/// commands (`deferred`), then, with `initramfs`, the initramfs of every kernel that has none.
/// `tools` is the toolbox already in the rootfs, if any (else one is set up when needed); it
/// is taken out at the end. The caller holds the chroot mounts.
pub fn finish_with_host_tools(
    ctx: &BuildContext,
    root: &Path,
    label: &str,
    deferred: Option<Deferred>,
    initramfs: bool,
    log: &Path,
    tools: Option<HostTools>,
) -> Result<(), BootstrapError> {
    let tools = match tools {
        Some(t) => Some(t),
        None => {
            let needed = deferred.as_ref().is_some_and(|d| d.called())
                || (initramfs && !initramfs::kernels_without_initramfs(root).is_empty());
            host_tools_for(ctx, root, label, needed, false)
        }
    };
    if let Some(deferred) = deferred {
        for c in deferred.finish(tools.as_ref(), log)? {
            ctx.reporter.detail(&format!(
                "{label}: ran {c} once, after every package was configured"
            ));
        }
    }
    if initramfs {
        let log = initramfs::log_path(&ctx.log_dir()?, label);
        initramfs::build_missing(
            root,
            tools.as_ref(),
            &log,
            &ctx.reporter,
            ctx.settings
                .reuse_initramfs
                .then_some(ctx.cache_dir.as_path()),
        )?;
    }
    if let Some(t) = tools {
        t.remove().map_err(|source| dpkg::DpkgError::HostTools {
            path: root.join(crate::rootfs::host_tools::DIR),
            source,
        })?;
    }
    Ok(())
}

/// Creates the merged-/usr layout (`bin`, `sbin`, `lib` as links into `usr`) as debootstrap does.
fn merge_usr(root: &Path) -> Result<(), BootstrapError> {
    for d in ["bin", "sbin", "lib"] {
        let real = root.join("usr").join(d);
        std::fs::create_dir_all(&real).map_err(|source| BootstrapError::Io {
            what: "creating",
            path: real.clone(),
            source,
        })?;
        let link = root.join(d);
        std::os::unix::fs::symlink(format!("usr/{d}"), &link).map_err(|source| {
            BootstrapError::Io {
                what: "creating merged-/usr link",
                path: link,
                source,
            }
        })?;
    }
    Ok(())
}

/// The extra and excluded packages of a merged-/usr bootstrap. pistemcell lays out merged
/// /usr itself (as debootstrap does), so the live-migration package `usrmerge` (which pulls in
/// perl) is excluded and the empty marker `usr-is-merged` installed where the archive has it.
pub fn usr_merge_packages(
    universe: &Universe,
    spec: &Resolved,
    wanted: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut extra = wanted.to_vec();
    let mut exclude = Vec::new();
    if spec.profile.merged_usr {
        exclude.push("usrmerge".into());
        if universe.get("usr-is-merged").is_some() {
            extra.push("usr-is-merged".into());
        }
    }
    (extra, exclude)
}

/// Install order: the packages debootstrap installs first, then the rest by name.
fn install_order(selected: &[Package]) -> Vec<usize> {
    const FIRST: &[&str] = &[
        "base-passwd",
        "base-files",
        "dpkg",
        "libc6",
        "perl-base",
        "mawk",
        "debconf",
    ];
    let mut idx: Vec<usize> = (0..selected.len()).collect();
    idx.sort_by_key(|&i| {
        let n = selected[i].name.as_str();
        (
            FIRST.iter().position(|f| *f == n).unwrap_or(FIRST.len()),
            n.to_string(),
        )
    });
    idx
}

/// Checks that the target's shell runs in the chroot (natively or emulated).
fn check_runs(root: &Path) -> Result<(), BootstrapError> {
    let r = crate::cmd::run(
        std::process::Command::new("chroot")
            .arg(root)
            .args(["/bin/sh", "-c", "exit 0"]),
    );
    r.map(|_| ()).map_err(|e| {
        BootstrapError::Check(format!(
            "the target's /bin/sh does not run in the chroot: {e}"
        ))
    })
}

/// The archive the image's apt sources name: the profile's public one, or for the Debian
/// profile the host's (a public mirror on a normal host), falling back to the build mirror.
pub fn image_mirror(spec: &Resolved, build_mirror: &str, etc_apt: &Path) -> String {
    if spec.profile.mirror != crate::profile::HOST_APT {
        return spec.profile.mirror.clone();
    }
    crate::mirror::from_host(etc_apt, &spec.profile.distro, &spec.suite)
        .unwrap_or_else(|| build_mirror.to_string())
}

/// The image's apt sources for the extra archives (`/etc/apt/sources.list.d/NAME.list`),
/// each signed-by its verified key, copied to `/usr/share/keyrings/pistemcell-NAME.{gpg,asc}`.
pub fn extra_sources(
    root: &Path,
    extras: &[(crate::profile::ExtraArchive, PathBuf)],
) -> Result<(), BootstrapError> {
    let io = |path: PathBuf| {
        move |source| BootstrapError::Io {
            what: "writing",
            path: path.clone(),
            source,
        }
    };
    for (a, key) in extras {
        let data = std::fs::read(key).map_err(|source| BootstrapError::Io {
            what: "reading",
            path: key.clone(),
            source,
        })?;
        let ext = if data.starts_with(b"-----BEGIN") {
            "asc"
        } else {
            "gpg"
        };
        let rel = format!("usr/share/keyrings/pistemcell-{}.{ext}", a.name);
        let dest = root.join(&rel);
        std::fs::create_dir_all(root.join("usr/share/keyrings")).map_err(io(dest.clone()))?;
        std::fs::write(&dest, &data).map_err(io(dest.clone()))?;
        let list = root.join(format!("etc/apt/sources.list.d/{}.list", a.name));
        std::fs::create_dir_all(root.join("etc/apt/sources.list.d")).map_err(io(list.clone()))?;
        let line = format!(
            "deb [signed-by=/{rel}] {} {} {}\n",
            a.mirror,
            a.suite,
            a.components.join(" ")
        );
        std::fs::write(&list, line).map_err(io(list.clone()))?;
    }
    Ok(())
}

/// Adds `packages` to the rootfs's record of installed .debs (`record::DEBS`).
pub fn record_debs(
    root: &Path,
    packages: &[crate::archive::packages::Package],
) -> Result<(), BootstrapError> {
    let list: Vec<_> = packages
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.version.clone(),
                p.architecture.clone(),
                p.sha256.clone(),
            )
        })
        .collect();
    crate::record::add_debs(root, &list).map_err(BootstrapError::Check)
}

/// Writes [`ARCHIVE_RECORD`].
fn record_archive(
    root: &Path,
    spec: &Resolved,
    release_sha256: &str,
    date: Option<&str>,
) -> Result<(), BootstrapError> {
    let path = root.join(ARCHIVE_RECORD);
    let mut text = format!(
        "Profile: {}\nSuite: {}\nComponents: {}\nArchitecture: {}\nRelease-SHA256: {release_sha256}\n",
        spec.profile.name,
        spec.suite,
        spec.components.join(" "),
        spec.arch.debian()
    );
    if let Some(d) = date {
        text.push_str(&format!("Date: {d}\n"));
    }
    let io = |source| BootstrapError::Io {
        what: "writing",
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(&path, text).map_err(io)
}

/// Final touches: the image's apt sources, no leftover package files, a chroot that runs.
fn finish_rootfs(
    root: &Path,
    spec: &Resolved,
    build_mirror: &str,
    etc_apt: &Path,
) -> Result<(), BootstrapError> {
    let sources = root.join("etc/apt/sources.list");
    let line = format!(
        "deb {} {} {}\n",
        image_mirror(spec, build_mirror, etc_apt),
        spec.suite,
        spec.components.join(" ")
    );
    std::fs::write(&sources, line).map_err(|source| BootstrapError::Io {
        what: "writing",
        path: sources,
        source,
    })?;
    let archives = root.join("var/cache/apt/archives");
    if let Ok(rd) = std::fs::read_dir(&archives) {
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "deb") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    crate::cmd::run(
        std::process::Command::new("chroot")
            .arg(root)
            .arg("/bin/true"),
    )
    .map_err(|e| BootstrapError::Check(format!("`chroot ROOT /bin/true` fails: {e}")))?;
    Ok(())
}
