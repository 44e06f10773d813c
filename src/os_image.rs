//! The OS image: the rootfs of every stage before the first that installs a stemcell input
//! (monit, the agent), packed as a rootfs tarball by `build --os-image`, the way
//! bosh-linux-stemcell-builder separates `build_os_image` from the stemcell; and the stage
//! that starts a stemcell build from such a tarball (`build --os-image-from FILE`).
//!
//! The tarball is the project's deterministic tar writer's output, read back to its end before
//! it is kept. It carries what it was built from in `var/lib/pistemcell/os-image.json`, which
//! `--os-image-from` checks against the spec and removes after extracting.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::context::BuildContext;
use crate::pipeline::{PipelineError, Stage};
use crate::spec::{Cpu, Resolved};

/// Where the OS image's record lives inside the tree (and the tarball).
pub const META_PATH: &str = "var/lib/pistemcell/os-image.json";

/// The name of the stage that extracts an OS image (`--os-image-from`).
pub const STAGE: &str = "00-os-image";

/// Errors of writing or reading an OS image; each names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum OsImageError {
    /// Reading or writing failed.
    #[error("OS image {path}: cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not an OS image pistemcell wrote.
    #[error("{path} is not a pistemcell OS image ({reason}); make one with `pistemcell build --os-image`")]
    NotOsImage {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The OS image was built for another target than the spec asks for.
    #[error("OS image {path} was built for {built}, but the spec asks for {wanted}: {hint}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What the OS image is.
        built: String,
        /// What the spec asks for.
        wanted: String,
        /// Which --set makes them agree, or what to rebuild.
        hint: String,
    },
    /// Packing failed.
    #[error("packing the OS image {path}: {reason}")]
    Pack {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// What an OS image was built from (its `os-image.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// The record's format.
    pub format: u32,
    /// pistemcell's version that built it.
    pub pistemcell: String,
    /// The OS profile.
    pub profile: String,
    /// The archive suite.
    pub suite: String,
    /// The Debian architecture.
    pub architecture: String,
    /// The CPU floor.
    pub cpu: Cpu,
    /// The stages it holds, in order (skipped ones left out).
    pub stages: Vec<String>,
    /// The cache key of its last stage.
    pub last_key: String,
    /// Directories made only to hold this record (removed again with it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record_dirs: Vec<String>,
}

impl Meta {
    /// The record of an OS image built for `spec` through `stages` (name, key).
    pub fn new(spec: &Resolved, stages: &[(String, String)]) -> Meta {
        Meta {
            format: 1,
            pistemcell: env!("CARGO_PKG_VERSION").into(),
            profile: spec.profile.name.clone(),
            suite: spec.suite.clone(),
            architecture: spec.arch.debian().into(),
            cpu: spec.cpu,
            stages: stages.iter().map(|(n, _)| n.clone()).collect(),
            last_key: stages.last().map(|(_, k)| k.clone()).unwrap_or_default(),
            record_dirs: Vec::new(),
        }
    }

    /// The last stage it holds.
    pub fn last_stage(&self) -> &str {
        self.stages.last().map_or("", String::as_str)
    }
}

/// Index of the first stage that installs a stemcell input (the list's length if none does).
pub fn cut(stages: &[Box<dyn Stage>]) -> usize {
    stages
        .iter()
        .position(|s| s.stemcell_input())
        .unwrap_or(stages.len())
}

/// `pistemcell-os-image-PROFILE-ARCH-VERSION.tgz`.
pub fn file_name(spec: &Resolved) -> String {
    format!(
        "pistemcell-os-image-{}-{}-{}.tgz",
        spec.profile.name,
        spec.arch.debian(),
        spec.stemcell_version
    )
}

/// A written OS image.
#[derive(Debug, Clone)]
pub struct Written {
    /// The tarball.
    pub path: PathBuf,
    /// Its sha1.
    pub sha1: String,
    /// Its sha256 (also in `PATH.sha256`).
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Entries in it.
    pub entries: u64,
}

/// Packs `root` with its record into `dest` (atomically), reads it back to its end, and writes
/// `dest.sha1` and `dest.sha256` beside it. The record is removed from `root` afterwards.
pub fn write(
    root: &Path,
    meta: &Meta,
    dest: &Path,
    epoch: u64,
    threads: usize,
) -> Result<Written, OsImageError> {
    let io_err = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| OsImageError::Io { what, path, source }
    };
    let record = root.join(META_PATH);
    let mut meta = meta.clone();
    meta.record_dirs = missing_dirs(root, META_PATH);
    for d in meta.record_dirs.iter().rev() {
        let dir = root.join(d);
        std::fs::create_dir(&dir).map_err(io_err("create", &dir))?;
    }
    let text = serde_json::to_string_pretty(&meta).unwrap_or_default() + "\n";
    let written = std::fs::write(&record, text).map_err(io_err("write", &record));
    let packed = written.and_then(|()| {
        if let Some(dir) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        }
        crate::pack::tarball::write_tgz(root, dest, epoch, 6, threads).map_err(|e| {
            OsImageError::Pack {
                path: dest.to_path_buf(),
                reason: e.to_string(),
            }
        })
    });
    remove_record(root, &meta);
    let stats = packed?;
    let meta = &meta;
    // Read back: every member to the end, the gzip trailer checked, the record present.
    let ReadBack {
        entries,
        meta: found,
        sha1,
        sha256,
    } = match read_back(dest) {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(dest);
            return Err(e);
        }
    };
    if entries != stats.entries || found.as_ref() != Some(meta) {
        let _ = std::fs::remove_file(dest);
        return Err(OsImageError::Pack {
            path: dest.to_path_buf(),
            reason: format!(
                "read back {entries} entries (wrote {}), record {}; removed it",
                stats.entries,
                if found.is_some() {
                    "differs"
                } else {
                    "missing"
                }
            ),
        });
    }
    if let Err((side, e)) = crate::atomic::write_sums(dest, &sha1, &sha256) {
        crate::atomic::remove_with_sums(dest);
        return Err(io_err("write", &side)(e));
    }
    let size = std::fs::metadata(dest).map_err(io_err("read", dest))?.len();
    Ok(Written {
        path: dest.to_path_buf(),
        sha1,
        sha256,
        size,
        entries,
    })
}

/// The ancestors of `rel` missing under `root`, deepest first.
fn missing_dirs(root: &Path, rel: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut p = Path::new(rel).parent();
    while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty()) {
        if root.join(dir).symlink_metadata().is_err() {
            out.push(dir.display().to_string());
        }
        p = dir.parent();
    }
    out
}

/// Removes the record and the directories made for it from `root`.
fn remove_record(root: &Path, meta: &Meta) {
    let _ = std::fs::remove_file(root.join(META_PATH));
    for d in &meta.record_dirs {
        let _ = std::fs::remove_dir(root.join(d));
    }
}

/// What reading an OS image to its end found.
#[derive(Debug, Clone)]
pub struct ReadBack {
    /// Entries in the tarball.
    pub entries: u64,
    /// Its record, if it has one.
    pub meta: Option<Meta>,
    /// The file's sha1.
    pub sha1: String,
    /// The file's sha256.
    pub sha256: String,
}

/// Hashes what passes through it (sha1 and sha256), so a file read to its end once is
/// also digested.
struct Digesting<R> {
    inner: R,
    sha1: sha1::Sha1,
    sha256: sha2::Sha256,
}

impl<R: Read> Read for Digesting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha1::Digest;
        let n = self.inner.read(buf)?;
        self.sha1.update(&buf[..n]);
        self.sha256.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads an OS image to its end, once: the number of entries, its record (if any) and the
/// file's digests.
pub fn read_back(path: &Path) -> Result<ReadBack, OsImageError> {
    let file = File::open(path).map_err(|source| OsImageError::Io {
        what: "open",
        path: path.to_path_buf(),
        source,
    })?;
    let not = |reason: String| OsImageError::NotOsImage {
        path: path.to_path_buf(),
        reason,
    };
    use sha1::Digest;
    let digesting = Digesting {
        inner: BufReader::with_capacity(1 << 20, file),
        sha1: sha1::Sha1::new(),
        sha256: sha2::Sha256::new(),
    };
    let gz = flate2::read::MultiGzDecoder::new(digesting);
    let mut archive = tar::Archive::new(crate::untrusted::TarGuard::new(gz));
    let mut entries = 0;
    let mut meta = None;
    let read_err = |e: io::Error| not(format!("unreadable tarball: {e}"));
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        entries += 1;
        let name = crate::tarwrite::member_name(&entry).map_err(read_err)?;
        if name.trim_start_matches("./") == META_PATH {
            use crate::untrusted::{read_stream_capped, CappedRead, RECORD_MAX};
            if !entry.header().entry_type().is_file() || meta.is_some() {
                return Err(not(format!("its {META_PATH} is not one regular file")));
            }
            let bytes = read_stream_capped(&mut entry, RECORD_MAX).map_err(|e| match e {
                CappedRead::Io(e) => read_err(e),
                CappedRead::TooLarge => not(format!(
                    "its {META_PATH} is over the {RECORD_MAX}-byte limit for a record"
                )),
            })?;
            let text = String::from_utf8_lossy(&bytes);
            meta = Some(
                serde_json::from_str(&text)
                    .map_err(|e| not(format!("its {META_PATH} does not parse: {e}")))?,
            );
        } else {
            io::copy(&mut entry, &mut io::sink()).map_err(read_err)?;
        }
    }
    let mut rest = archive.into_inner().into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(read_err)?;
    // Whatever follows the gzip stream counts too: the digests are the whole file's.
    let mut file = rest.into_inner();
    io::copy(&mut file, &mut io::sink()).map_err(read_err)?;
    let hex = |d: &[u8]| d.iter().map(|x| format!("{x:02x}")).collect::<String>();
    Ok(ReadBack {
        entries,
        meta,
        sha1: hex(&file.sha1.finalize()),
        sha256: hex(&file.sha256.finalize()),
    })
}

/// The first stage of a build from an OS image: extracts it (`--os-image-from FILE`).
#[derive(Debug, Clone)]
pub struct OsImageStage {
    /// The tarball.
    pub path: PathBuf,
    /// Its sha256 (the stage's cache key input).
    pub sha256: String,
    /// Its record.
    pub meta: Meta,
}

impl OsImageStage {
    /// Reads the OS image at `path` to its end and takes its record.
    pub fn open(path: &Path) -> Result<OsImageStage, OsImageError> {
        if !path.is_file() {
            return Err(OsImageError::Io {
                what: "read",
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::NotFound, "no such file"),
            });
        }
        let ReadBack { meta, sha256, .. } = read_back(path)?;
        let meta = meta.ok_or_else(|| OsImageError::NotOsImage {
            path: path.to_path_buf(),
            reason: format!("it has no {META_PATH}"),
        })?;
        Ok(OsImageStage {
            path: path.to_path_buf(),
            sha256,
            meta,
        })
    }

    /// Refuses an OS image built for another profile, architecture or CPU floor than `spec`.
    pub fn check(&self, spec: &Resolved) -> Result<(), OsImageError> {
        let m = &self.meta;
        let cpu = |c: Cpu| format!("{c:?}").to_lowercase();
        let built = format!("{} {} (cpu {})", m.profile, m.architecture, cpu(m.cpu));
        let wanted = format!(
            "{} {} (cpu {})",
            spec.profile.name,
            spec.arch.debian(),
            cpu(spec.cpu)
        );
        if built == wanted {
            return Ok(());
        }
        Err(OsImageError::Mismatch {
            path: self.path.clone(),
            built,
            wanted,
            hint: format!(
                "build with --set profile={} --set architecture={} --set cpu={}, or make an OS image for this spec with `pistemcell build --os-image`",
                m.profile,
                m.architecture,
                cpu(m.cpu)
            ),
        })
    }
}

impl Stage for OsImageStage {
    fn name(&self) -> &str {
        STAGE
    }
    fn description(&self) -> &str {
        "extract the OS image given with --os-image-from"
    }
    fn applies(&self, _ctx: &BuildContext) -> bool {
        true
    }
    fn manifest(&self, _ctx: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        Ok(vec![
            ("os-image.sha256".into(), self.sha256.clone()),
            ("os-image.stages".into(), self.meta.stages.join(",")),
        ])
    }
    fn run(&self, _ctx: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        let fail = |reason: String| PipelineError::Build {
            stage: STAGE.into(),
            source: format!("extracting {}: {reason}", self.path.display()).into(),
        };
        let file = File::open(&self.path).map_err(|e| fail(e.to_string()))?;
        let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, file));
        crate::rootfs::extract::extract_tar(
            tar::Archive::new(crate::untrusted::TarGuard::new(gz)),
            root,
            &self.path.display().to_string(),
        )
        .map_err(|e| fail(e.to_string()))?;
        // The tree continues as the build that made the OS image left it.
        remove_record(root, &self.meta);
        Ok(())
    }
}
