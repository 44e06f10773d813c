//! The stage cache: after each stage the rootfs is saved as `CACHE/stages/KEY.tar.zst`
//! with `KEY.manifest.yml` (the stage's named inputs) beside it. When the parent's snapshot is
//! in the store, the tar holds only what the stage changed and `KEY.layer` names the base and
//! what to remove (see `layer`).
//!
//! Nothing half-written survives: the tar is written to a locked temporary file in the same
//! directory and renamed into place, then the manifest likewise; a snapshot counts only once
//! its manifest exists. Temporary files whose writer died (kill -9) are removed when the
//! store is opened: their lock is free. Restoring extracts into an empty directory through
//! `rootfs::extract::extract_tar`, with the same safety rules as package extraction.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::key::Manifest;
use super::layer;
use super::PipelineError;
use crate::rootfs::extract::{self, ExtractStats};
use crate::tarwrite::tree::TreeError;
use crate::tarwrite::{self, TarStats};

/// zstd level for snapshots: fast, and most of a rootfs compresses well at any level.
pub const ZSTD_LEVEL: i32 = 2;

/// Prefix of temporary files in the store.
const TEMP_PREFIX: &str = ".tmp.";
/// One snapshot of a restore chain: its key and, for a layer, what it removes.
type ChainLink = (String, Option<layer::Removals>);

/// How many layers a snapshot may stand on.
const MAX_CHAIN: usize = 64;
/// A snapshot tar without a manifest older than this is a leftover and may be evicted.
const ORPHAN_AGE: Duration = Duration::from_secs(600);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The directory of stage snapshots.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// One snapshot in the store.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Its manifest (stage name, key, inputs).
    pub manifest: Manifest,
    /// The tar.zst path.
    pub path: PathBuf,
    /// Compressed size in bytes.
    pub size: u64,
    /// When it was written or last restored.
    pub mtime: SystemTime,
}

/// What saving a snapshot did.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The tar.zst path.
    pub path: PathBuf,
    /// What the tar holds.
    pub tar: TarStats,
    /// Compressed size in bytes.
    pub compressed: u64,
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PipelineError + 'a {
    move |source| PipelineError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Tries to take an exclusive lock without waiting; true when taken.
fn try_lock(file: &File) -> bool {
    // SAFETY: flock on a descriptor owned by `file`.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// A locked temporary file, removed on drop unless persisted.
struct Temp {
    path: PathBuf,
    file: Option<File>,
}

impl Temp {
    fn create(dir: &Path, name: &str) -> Result<Temp, PipelineError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{TEMP_PREFIX}{}.{n}.{name}", std::process::id()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        try_lock(&file);
        Ok(Temp {
            path,
            file: Some(file),
        })
    }

    /// Renames the file to `dest`, still holding its lock so no sweep can take it first.
    fn persist(mut self, dest: &Path) -> Result<(), PipelineError> {
        if let Some(f) = &self.file {
            f.sync_all().map_err(io_err("write", &self.path))?;
        }
        fs::rename(&self.path, dest).map_err(io_err("rename into place", dest))?;
        self.file = None;
        Ok(())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Store {
    /// Opens (creating) `CACHE/stages` and removes temporary files of dead writers.
    pub fn open(cache_dir: &Path) -> Result<Store, PipelineError> {
        crate::owned::claim(cache_dir, crate::owned::Kind::Cache)?;
        let dir = cache_dir.join("stages");
        fs::create_dir_all(&dir).map_err(io_err("create the stage cache", &dir))?;
        for e in fs::read_dir(&dir).map_err(io_err("list", &dir))?.flatten() {
            if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                if let Ok(f) = File::open(e.path()) {
                    if try_lock(&f) {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
        Ok(Store { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tar.zst path of `key`.
    pub fn tar_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.tar.zst"))
    }

    /// The manifest path of `key`.
    pub fn manifest_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.manifest.yml"))
    }

    /// The layer file of `key` (only layers have one: see [`super::layer`]).
    pub fn layer_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.layer"))
    }

    /// The base key and removals of `key` when it is a layer; `Err` when its layer file is
    /// there but unreadable.
    fn layer_of(&self, key: &str) -> Result<Option<(String, layer::Removals)>, String> {
        match fs::read(self.layer_path(key)) {
            Ok(bytes) => layer::decode(&bytes)
                .map(Some)
                .ok_or_else(|| format!("{} is malformed", self.layer_path(key).display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.layer_path(key).display())),
        }
    }

    /// The chain that restores `key`: `key` first, down to the full snapshot at the bottom.
    fn chain(&self, key: &str) -> Result<Vec<ChainLink>, String> {
        let mut out = Vec::new();
        let mut current = key.to_string();
        loop {
            if out.len() > MAX_CHAIN || out.iter().any(|(k, _)| *k == current) {
                return Err(format!(
                    "the layers below {key} form a loop or are too deep"
                ));
            }
            match self.layer_of(&current)? {
                Some((base, remove)) => {
                    out.push((current, Some(remove)));
                    current = base;
                }
                None => {
                    out.push((current, None));
                    return Ok(out);
                }
            }
        }
    }

    /// Whether a complete snapshot of `key` exists (for a layer: with every layer below it).
    pub fn has(&self, key: &str) -> bool {
        match self.chain(key) {
            Ok(chain) => chain
                .iter()
                .all(|(k, _)| self.manifest_path(k).is_file() && self.tar_path(k).is_file()),
            Err(_) => false,
        }
    }

    /// Saves the tree at `root` as the snapshot of `manifest.key` (replacing one there).
    pub fn save(&self, root: &Path, manifest: &Manifest) -> Result<Saved, PipelineError> {
        self.write(manifest, None, |b| tarwrite::write_tree(root, b))
    }

    /// Saves what the stage changed (`delta`, found in the tree) as a layer on the snapshot
    /// `base`.
    pub fn save_layer(
        &self,
        manifest: &Manifest,
        base: &str,
        delta: &layer::Delta,
    ) -> Result<Saved, PipelineError> {
        let layer = layer::encode(base, &delta.remove);
        self.write(manifest, Some(layer), |b| layer::write_delta(delta, b))
    }

    /// Writes the tar (by `fill`), the layer file when given, then the manifest, each to a
    /// temporary file renamed into place.
    fn write(
        &self,
        manifest: &Manifest,
        layer: Option<Vec<u8>>,
        fill: impl FnOnce(
            &mut tar::Builder<zstd::Encoder<'static, BufWriter<File>>>,
        ) -> Result<TarStats, TreeError>,
    ) -> Result<Saved, PipelineError> {
        let path = self.tar_path(&manifest.key);
        // A snapshot being replaced stops counting first.
        let _ = fs::remove_file(self.manifest_path(&manifest.key));
        let temp = Temp::create(&self.dir, &format!("{}.tar.zst", manifest.key))?;
        let tar = {
            let fail = |e: io::Error| PipelineError::Snapshot {
                stage: manifest.stage.clone(),
                path: path.clone(),
                reason: e.to_string(),
            };
            let file = temp.file.as_ref().map(File::try_clone);
            let file = match file {
                Some(f) => f.map_err(fail)?,
                None => return Err(fail(io::Error::other("temporary file vanished"))),
            };
            let mut enc = zstd::Encoder::new(BufWriter::with_capacity(1 << 20, file), ZSTD_LEVEL)
                .map_err(fail)?;
            enc.multithread(2).map_err(fail)?;
            let mut builder = tar::Builder::new(enc);
            let stats = fill(&mut builder).map_err(|e| PipelineError::Snapshot {
                stage: manifest.stage.clone(),
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let enc = builder.into_inner().map_err(fail)?;
            enc.finish().map_err(fail)?.flush().map_err(fail)?;
            stats
        };
        let compressed = temp
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        temp.persist(&path)?;
        let lpath = self.layer_path(&manifest.key);
        match layer {
            Some(bytes) => {
                let mut ltemp = Temp::create(&self.dir, &format!("{}.layer", manifest.key))?;
                if let Some(f) = ltemp.file.as_mut() {
                    f.write_all(&bytes).map_err(io_err("write", &lpath))?;
                }
                ltemp.persist(&lpath)?;
            }
            None => match fs::remove_file(&lpath) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("remove", &lpath)(e))
                }
                _ => {}
            },
        }
        let text = serde_norway::to_string(manifest).map_err(|e| PipelineError::Snapshot {
            stage: manifest.stage.clone(),
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mpath = self.manifest_path(&manifest.key);
        let mut mtemp = Temp::create(&self.dir, &format!("{}.manifest.yml", manifest.key))?;
        if let Some(f) = mtemp.file.as_mut() {
            f.write_all(text.as_bytes())
                .map_err(io_err("write", &mpath))?;
        }
        mtemp.persist(&mpath)?;
        Ok(Saved {
            path,
            tar,
            compressed,
        })
    }

    /// Extracts the snapshot of `key` (taken after `stage`) into the empty directory `root`:
    /// for a layer, the full snapshot below it and then every layer up to `key`. An error
    /// names the snapshot that failed (which the caller removes, so it is built again).
    pub fn restore(
        &self,
        key: &str,
        stage: &str,
        root: &Path,
    ) -> Result<ExtractStats, PipelineError> {
        let fail = |k: &str, reason: String| PipelineError::Restore {
            stage: stage.to_string(),
            key: k.to_string(),
            path: self.tar_path(k),
            reason,
        };
        let chain = self.chain(key).map_err(|r| fail(key, r))?;
        let mut stats = ExtractStats::default();
        for (k, remove) in chain.iter().rev() {
            if let Some(remove) = remove {
                layer::apply_removals(root, remove)
                    .map_err(|e| fail(k, format!("removing what the layer replaces: {e}")))?;
            }
            let path = self.tar_path(k);
            let file = File::open(&path).map_err(|e| fail(k, e.to_string()))?;
            let dec = zstd::Decoder::new(file).map_err(|e| fail(k, e.to_string()))?;
            stats = extract::extract_tar(tar::Archive::new(dec), root, &path.display().to_string())
                .map_err(|e| fail(k, e.to_string()))?;
            // Recently used snapshots are the last to be evicted.
            let _ = File::open(&path).and_then(|f| f.set_modified(SystemTime::now()));
        }
        Ok(stats)
    }

    /// Removes the snapshot of `key` (its manifest first, so a half-removed one never counts).
    pub fn remove(&self, key: &str) -> Result<(), PipelineError> {
        for p in [
            self.manifest_path(key),
            self.tar_path(key),
            self.layer_path(key),
        ] {
            match fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("remove", &p)(e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Every complete snapshot in the store (unreadable manifests are skipped).
    pub fn list(&self) -> Result<Vec<Snapshot>, PipelineError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir)
            .map_err(io_err("list", &self.dir))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".manifest.yml") else {
                continue;
            };
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let Some(manifest) = self.read_manifest(key) else {
                continue;
            };
            let path = self.tar_path(key);
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            out.push(Snapshot {
                manifest,
                size: meta.len(),
                mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                path,
            });
        }
        Ok(out)
    }

    /// Reads the manifest of `key`, if it exists and parses.
    pub fn read_manifest(&self, key: &str) -> Option<Manifest> {
        let text = fs::read_to_string(self.manifest_path(key)).ok()?;
        serde_norway::from_str::<Manifest>(&text)
            .ok()
            .filter(|m| m.key == key)
    }

    /// Keeps, per stage name, the `keep` most recently written or restored snapshots and
    /// removes the others, plus leftovers (a tar without manifest, a manifest without tar).
    /// Returns the removed paths.
    pub fn evict(&self, keep: usize) -> Result<Vec<PathBuf>, PipelineError> {
        let mut snaps = self.list()?;
        snaps.sort_by(|a, b| {
            (a.manifest.stage.as_str(), std::cmp::Reverse(a.mtime))
                .cmp(&(b.manifest.stage.as_str(), std::cmp::Reverse(b.mtime)))
        });
        let mut removed = Vec::new();
        let mut count = 0usize;
        let mut current = String::new();
        let mut evicted = Vec::new();
        let mut kept = Vec::new();
        for s in &snaps {
            if s.manifest.stage != current {
                current = s.manifest.stage.clone();
                count = 0;
            }
            count += 1;
            if count > keep {
                evicted.push(s);
            } else {
                kept.push(s.manifest.key.clone());
            }
        }
        // A snapshot that a kept layer is built on stays.
        let needed: std::collections::HashSet<String> = kept
            .iter()
            .filter_map(|k| self.chain(k).ok())
            .flatten()
            .map(|(k, _)| k)
            .collect();
        for s in evicted {
            if needed.contains(&s.manifest.key) {
                continue;
            }
            self.remove(&s.manifest.key)?;
            removed.extend([self.manifest_path(&s.manifest.key), s.path.clone()]);
        }
        let now = SystemTime::now();
        for e in fs::read_dir(&self.dir)
            .map_err(io_err("list", &self.dir))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let orphan = if let Some(key) = name.strip_suffix(".tar.zst") {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .map(|t| now.duration_since(t).unwrap_or_default() > ORPHAN_AGE)
                    .unwrap_or(false);
                old && self.read_manifest(key).is_none()
            } else if let Some(key) = name.strip_suffix(".manifest.yml") {
                !self.tar_path(key).exists()
            } else if let Some(key) = name.strip_suffix(".layer") {
                !self.manifest_path(key).exists() && !self.tar_path(key).exists()
            } else {
                false
            };
            if orphan {
                fs::remove_file(e.path()).map_err(io_err("remove", &e.path()))?;
                removed.push(e.path());
            }
        }
        Ok(removed)
    }
}
