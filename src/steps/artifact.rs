//! Pinned build inputs (monit, the agent, replacements): fetched from a URL or a local path,
//! checked against the spec's sha256 and kept in the download cache under
//! `CACHE/artifacts/ab/<sha256>`, so a second build needs neither the network nor the path.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::archive::cache::{copy_sha256, CopyError};
use crate::archive::http::Http;
use crate::spec::Artifact;

/// The cache kind artifacts are stored under.
pub const KIND: &str = "artifacts";

/// Errors getting a pinned input.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The file could not be had.
    #[error("{field}: cannot get {location}: {reason}\n  download it elsewhere and give the local file: --set {field}.path=FILE (the pinned sha256 stays)")]
    Unavailable {
        /// The spec field (`monit.source`).
        field: String,
        /// The URL or path.
        location: String,
        /// What failed.
        reason: String,
    },
    /// The file's digest is not the pinned one.
    #[error("{field}: {location} has sha256 {actual}, but the spec pins {expected}; if the new file is trusted, update {field}.sha256")]
    Mismatch {
        /// The spec field.
        field: String,
        /// The URL or path.
        location: String,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// The cache directory is not usable.
    #[error("cache {path}: {source}; check permissions or choose another with --cache-dir")]
    Cache {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Where the artifact is kept once fetched (whether or not it is there yet).
pub fn cached_path(cache_dir: &Path, a: &Artifact) -> PathBuf {
    let d = a.digest();
    cache_dir
        .join(KIND)
        .join(d.get(..2).unwrap_or("xx"))
        .join(&d)
}

/// Whether the artifact is already in the cache, intact.
pub fn is_cached(cache_dir: &Path, a: &Artifact) -> bool {
    let p = cached_path(cache_dir, a);
    crate::archive::cache::file_sha256(&p).is_ok_and(|d| d == a.digest())
}

/// Returns the cached copy of `a`, fetching and verifying it first when needed. `field`
/// names the spec field in errors.
pub fn fetch(cache_dir: &Path, field: &str, a: &Artifact) -> Result<PathBuf, ArtifactError> {
    let dest = cached_path(cache_dir, a);
    if is_cached(cache_dir, a) {
        return Ok(dest);
    }
    let unavailable = |reason: String| ArtifactError::Unavailable {
        field: field.to_string(),
        location: a.location().to_string(),
        reason,
    };
    let mut reader: Box<dyn Read> = match (&a.url, &a.path) {
        (Some(url), _) => Http::new().open(url).map(|(body, _)| body).map_err(|e| {
            use crate::archive::http::HttpError;
            unavailable(match e {
                HttpError::NotFound { .. } => "not found (HTTP 404)".into(),
                HttpError::Status { code, .. } => format!("the server answered HTTP {code}"),
                HttpError::Transport { reason, .. } => reason,
                HttpError::Io { source, .. } => source.to_string(),
            })
        })?,
        (None, Some(path)) => {
            Box::new(std::fs::File::open(path).map_err(|e| unavailable(format!("{e}")))?)
        }
        (None, None) => return Err(unavailable("no url or path is given".into())),
    };
    let dir = dest.parent().unwrap_or(cache_dir).to_path_buf();
    let io = |source| ArtifactError::Cache {
        path: dir.clone(),
        source,
    };
    crate::owned::claim(cache_dir, crate::owned::Kind::Cache)
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(&dir)
        .map_err(io)?;
    let (actual, _) = copy_sha256(&mut reader, &mut tmp, &|_| {}, None).map_err(|e| match e {
        CopyError::Read(e) => unavailable(format!("reading failed: {e}")),
        CopyError::Write(e) => io(e),
    })?;
    if actual != a.digest() {
        return Err(ArtifactError::Mismatch {
            field: field.to_string(),
            location: a.location().to_string(),
            expected: a.digest(),
            actual,
        });
    }
    tmp.persist(&dest).map_err(|e| io(e.error))?;
    Ok(dest)
}

/// Copies `src` to `/rel` inside `root` (parents resolved chroot-style, see
/// `inside::safepath::host_path`) with `mode` and owner `uid:gid`, atomically: a temporary
/// file in the same directory renamed over the destination. An existing symlink or
/// directory at the destination is refused.
pub fn install_into(
    root: &Path,
    rel: &str,
    src: &Path,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let dest = crate::inside::safepath::host_path(root, rel)?
        .ok_or_else(|| format!("the directory of {rel} does not exist in the rootfs"))?;
    match std::fs::symlink_metadata(&dest) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(format!("{rel} is a symlink; name the file it points to"))
        }
        Ok(m) if !m.is_file() => return Err(format!("{rel} exists and is not a regular file")),
        _ => {}
    }
    let dir = dest.parent().unwrap_or(root);
    let io = |e: std::io::Error| format!("writing {rel} into {}: {e}", dir.display());
    let tmp = tempfile::Builder::new()
        .prefix(".pistemcell-")
        .tempfile_in(dir)
        .map_err(io)?;
    std::fs::copy(src, tmp.path()).map_err(io)?;
    std::os::unix::fs::chown(tmp.path(), Some(uid), Some(gid)).map_err(io)?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).map_err(io)?;
    tmp.persist(&dest).map_err(|e| io(e.error))?;
    Ok(())
}

/// Why the ELF file at `path` cannot run on the target (`None` when it fits or is no ELF
/// file): each failing audit check as `check: found; needs needed`.
pub fn misfit(
    path: &Path,
    arch: crate::spec::Arch,
    cpu: crate::spec::Cpu,
) -> Result<Option<String>, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(info) =
        crate::audit::elf::read(&mut f).map_err(|e| format!("{}: {e}", path.display()))?
    else {
        return Ok(None);
    };
    let bad: Vec<String> = crate::audit::check(&info, arch, cpu)
        .into_iter()
        .filter(|(c, ..)| {
            crate::rules::CHECKS
                .iter()
                .any(|k| k.0 == *c && k.1 == crate::rules::Severity::Fail)
        })
        .map(|(c, found, needed)| format!("{c}: {found}; needs {needed}"))
        .collect();
    Ok((!bad.is_empty()).then(|| bad.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(path: &Path, sha: &str) -> Artifact {
        Artifact {
            url: None,
            path: Some(path.display().to_string()),
            sha256: sha.into(),
        }
    }

    #[test]
    fn fetches_verifies_and_reuses_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        std::fs::write(&src, b"hello").unwrap();
        let sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let cache = dir.path().join("cache");
        let got = fetch(&cache, "monit.binary", &artifact(&src, sha)).unwrap();
        assert_eq!(std::fs::read(&got).unwrap(), b"hello");
        std::fs::remove_file(&src).unwrap();
        // The source is gone: the cache still answers.
        assert_eq!(
            fetch(&cache, "monit.binary", &artifact(&src, sha)).unwrap(),
            got
        );
        // A corrupted cache entry is fetched again (and fails here: the source is gone).
        std::fs::write(&got, b"hellO").unwrap();
        let e = fetch(&cache, "monit.binary", &artifact(&src, sha))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("monit.binary") && e.contains("--set monit.binary.path=FILE"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_digest_names_both_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        std::fs::write(&src, b"hello").unwrap();
        let cache = dir.path().join("cache");
        let e = fetch(&cache, "agent.binary", &artifact(&src, &"0".repeat(64)))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&"0".repeat(64)) && e.contains("2cf24dba"), "{e}");
        // Only the cache's marker: no temporary, no entry.
        let left: Vec<_> = walk(&cache);
        assert_eq!(left, [cache.join(crate::owned::Kind::Cache.marker())]);
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    out.extend(walk(&e.path()));
                } else {
                    out.push(e.path());
                }
            }
        }
        out
    }
}
