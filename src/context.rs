//! The build context every stage receives: the resolved spec, where caches and logs go, and
//! the archive (mirror, verified index), loaded once on first use and shared by the bootstrap
//! and every stage that installs packages.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::archive::cache::Cache;
use crate::archive::client::{self, Source};
use crate::archive::http::Http;
use crate::archive::resolve::Universe;
use crate::archive::{download, resolve};
use crate::progress::Reporter;
use crate::rootfs::{binfmt, dpkg, mounts};
use crate::spec::Resolved;

/// Errors preparing a rootfs from the archive (opening it, bootstrapping, installing
/// packages), each naming the step.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Choosing the mirror failed.
    #[error(transparent)]
    Mirror(#[from] crate::mirror::MirrorError),
    /// The archive could not be read or verified.
    #[error("reading the archive: {0}")]
    Archive(#[from] client::ClientError),
    /// The package set cannot be resolved.
    #[error("resolving packages: {0}")]
    Resolve(#[from] resolve::ResolveError),
    /// Downloads failed.
    #[error("downloading packages: {0}")]
    Download(#[from] download::DownloadError),
    /// A cache directory is unusable.
    #[error(transparent)]
    Cache(#[from] crate::archive::cache::CacheError),
    /// A package could not be read or extracted.
    #[error("package {package} ({url}) cannot be installed: {source}")]
    Package {
        /// Name, version and architecture.
        package: String,
        /// Where it came from.
        url: String,
        /// What is wrong with it.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The target's binaries cannot run here.
    #[error(transparent)]
    Binfmt(#[from] binfmt::BinfmtError),
    /// Mounting failed.
    #[error(transparent)]
    Mount(#[from] mounts::MountError),
    /// The second stage failed.
    #[error("configuring packages: {0}")]
    Dpkg(#[from] dpkg::DpkgError),
    /// The work directory is unusable.
    #[error(transparent)]
    WorkDir(#[from] crate::workdir::WorkDirError),
    /// The user pressed Ctrl-C.
    #[error(transparent)]
    Interrupted(#[from] crate::interrupt::Interrupted),
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The finished rootfs does not work.
    #[error("the finished rootfs does not work: {0}")]
    Check(String),
}

/// Where and how to build (what the command line decides).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The work directory (logs, partial trees).
    pub work_dir: PathBuf,
    /// The shared download and stage cache.
    pub cache_dir: PathBuf,
    /// `--mirror` from the command line.
    pub mirror: Option<String>,
    /// Parallel downloads.
    pub jobs: usize,
    /// Force a dpkg mode (default: the host's dpkg when usable).
    pub dpkg_mode: Option<dpkg::Mode>,
    /// The host's apt configuration directory (for the Debian mirror).
    pub etc_apt: PathBuf,
    /// Build even when the archive is not the pinned state (`--allow-archive-change`).
    pub allow_archive_change: bool,
    /// Reuse an initramfs made from the same files (`rootfs::initramfs_reuse`); off for
    /// `--force`.
    pub reuse_initramfs: bool,
}

impl Settings {
    /// Defaults for `work_dir` and `cache_dir`: 8 downloads, automatic dpkg, `/etc/apt`.
    pub fn new(work_dir: &Path, cache_dir: &Path) -> Settings {
        Settings {
            work_dir: work_dir.to_path_buf(),
            cache_dir: cache_dir.to_path_buf(),
            mirror: None,
            jobs: 8,
            allow_archive_change: false,
            reuse_initramfs: true,
            dpkg_mode: None,
            etc_apt: PathBuf::from("/etc/apt"),
        }
    }
}

/// The archive as a build sees it: verified, indexed, with the mirror it came from.
#[derive(Debug)]
pub struct ArchiveState {
    /// The mirror packages are downloaded from.
    pub mirror: String,
    /// The HTTP client.
    pub http: Http,
    /// The download cache.
    pub cache: Cache,
    /// Every package of the suite for the target architecture.
    pub universe: Universe,
    /// sha256 of the signed Release text.
    pub release_sha256: String,
    /// The Release's `Date`.
    pub release_date: Option<String>,
    /// The extra archives read, each with its verified key file.
    pub extras: Vec<(crate::profile::ExtraArchive, PathBuf)>,
}

/// What every stage receives.
#[derive(Debug)]
pub struct BuildContext {
    /// The resolved spec.
    pub spec: Resolved,
    /// Progress and log lines.
    pub reporter: Reporter,
    /// The work directory (logs, partial trees).
    pub work_dir: PathBuf,
    /// The shared download and stage cache.
    pub cache_dir: PathBuf,
    /// The rest of the command line's settings.
    pub settings: Settings,
    archive: Mutex<Option<Arc<ArchiveState>>>,
}

impl BuildContext {
    /// A context for building `spec` with `settings`.
    pub fn new(spec: Resolved, settings: Settings, reporter: Reporter) -> BuildContext {
        BuildContext {
            spec,
            reporter,
            work_dir: settings.work_dir.clone(),
            cache_dir: settings.cache_dir.clone(),
            settings,
            archive: Mutex::new(None),
        }
    }

    /// The directory for this run's logs (created on demand).
    pub fn log_dir(&self) -> Result<PathBuf, BootstrapError> {
        let logs = self.work_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|source| BootstrapError::Io {
            what: "creating",
            path: logs.clone(),
            source,
        })?;
        Ok(logs)
    }

    /// The verified archive index, read on first use (also makes the target's binaries runnable).
    pub fn archive(&self) -> Result<Arc<ArchiveState>, BootstrapError> {
        let mut slot = self.archive.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = slot.as_ref() {
            return Ok(a.clone());
        }
        let spec = &self.spec;
        if let Some(done) = binfmt::ensure(spec.arch)? {
            self.reporter.step(&done);
        }
        let mirror = crate::mirror::choose(
            spec,
            self.settings.mirror.as_deref(),
            &self.settings.etc_apt,
        )?;
        self.reporter.step(&format!(
            "{} {} {} from {mirror}",
            spec.profile.name,
            spec.suite,
            spec.arch.debian()
        ));
        let http = Http::new();
        let cache = Cache::open(&self.cache_dir)?;
        let keyring = client::prepare_keyring(
            &http,
            &cache,
            &spec.keyring,
            spec.profile.keyring.package.as_deref(),
            &spec.fingerprints,
            spec.profile.keyring.allow_sha1,
        )?;
        let source = Source {
            mirror: mirror.clone(),
            suite: spec.suite.clone(),
            components: spec.components.clone(),
            arch: spec.arch.debian().into(),
            keyring,
        };
        let index = client::load_index(&http, &cache, &source, &self.reporter)?;
        if let Some(pin) = &spec.archive_pin {
            if !pin
                .release_sha256
                .eq_ignore_ascii_case(&index.release_sha256)
            {
                let msg = format!(
                    "the archive is not the pinned state: `archive_pin` names the Release with sha256 {} (dated {}), {mirror} serves {} (dated {})",
                    pin.release_sha256.to_ascii_lowercase(),
                    pin.date.as_deref().unwrap_or("unknown"),
                    index.release_sha256,
                    index.release.date.as_deref().unwrap_or("unknown")
                );
                if !self.settings.allow_archive_change {
                    return Err(BootstrapError::Check(format!(
                        "{msg}; build with --allow-archive-change to take the new state, or point `mirror:` at a snapshot of the pinned one"
                    )));
                }
                self.reporter
                    .warn(&format!("{msg} (--allow-archive-change: building anyway)"));
            }
        }
        let mut packages = index.packages;
        let mut extras = Vec::new();
        for extra in &spec.extra_archives {
            self.reporter.step(&format!(
                "{} {} {} from {}",
                extra.name,
                extra.suite,
                spec.arch.debian(),
                extra.mirror
            ));
            let k = &extra.keyring;
            let keyring = client::prepare_keyring(
                &http,
                &cache,
                &k.location,
                k.package.as_deref(),
                &k.fingerprints,
                k.allow_sha1,
            )?;
            let key_path = keyring.path.clone();
            let src = Source {
                mirror: extra.mirror.clone(),
                suite: extra.suite.clone(),
                components: extra.components.clone(),
                arch: spec.arch.debian().into(),
                keyring,
            };
            let more = client::load_index(&http, &cache, &src, &self.reporter)?;
            // Each package keeps the archive it comes from: its file name becomes a URL.
            packages.extend(more.packages.into_iter().map(|mut p| {
                p.filename = crate::archive::http::join(&extra.mirror, &p.filename);
                p
            }));
            extras.push((extra.clone(), key_path));
        }
        let state = Arc::new(ArchiveState {
            mirror,
            http,
            cache,
            universe: Universe::new(packages, spec.arch.debian()).with_label(&spec.suite),
            release_sha256: index.release_sha256,
            release_date: index.release.date,
            extras,
        });
        *slot = Some(state.clone());
        Ok(state)
    }
}
