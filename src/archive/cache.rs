//! The content-addressed download cache shared between builds: `KIND/ab/<sha256>`.
//!
//! Entries are written to a temporary file in the same directory, checked against their
//! sha256 and size, then renamed: a killed download never leaves a bad entry under its final
//! name. A lookup re-checks size and digest; a truncated or corrupted entry is removed and
//! reported as a miss, so it is fetched again.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Errors writing to the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The directory is not a pistemcell cache (no marker, or protected).
    #[error(transparent)]
    Owned(#[from] crate::owned::OwnedError),
    /// The cache directory is not usable.
    #[error("cache {path}: {source}; check permissions or choose another with --cache-dir")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Reading the source failed.
    #[error("downloading {what}: {source}")]
    Read {
        /// What was being downloaded.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The data does not match the signed digest.
    #[error("{what}: expected {expected_size} bytes with sha256 {expected}, got {actual_size} bytes with sha256 {actual}; the mirror may be mid-sync or serving a tampered file: try again later or another --mirror")]
    Mismatch {
        /// What was downloaded.
        what: String,
        /// Expected digest.
        expected: String,
        /// Actual digest.
        actual: String,
        /// Expected size.
        expected_size: u64,
        /// Actual size.
        actual_size: u64,
    },
}

/// A content-addressed store under one directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Opens (creating and marking) the cache at `root`; a directory that holds anything and
    /// has no cache marker is refused (see `owned`).
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        crate::owned::claim(root, crate::owned::Kind::Cache)?;
        Ok(Cache {
            root: root.to_path_buf(),
        })
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the entry with `sha256` of `kind` lives.
    pub fn path_for(&self, kind: &str, sha256: &str) -> PathBuf {
        let prefix = sha256.get(..2).unwrap_or("xx");
        self.root.join(kind).join(prefix).join(sha256)
    }

    /// Returns the entry if present and intact; removes it if it is truncated or corrupted.
    pub fn lookup(&self, kind: &str, sha256: &str, size: u64) -> Option<PathBuf> {
        let p = self.path_for(kind, sha256);
        let meta = std::fs::metadata(&p).ok()?;
        if meta.len() == size {
            if let Ok(actual) = file_sha256(&p) {
                if actual.eq_ignore_ascii_case(sha256) {
                    return Some(p);
                }
            }
        }
        let _ = std::fs::remove_file(&p);
        None
    }

    /// Streams `reader` into the cache, checking size and sha256 before the entry appears.
    /// `on_bytes` is called with each chunk's length (for progress).
    pub fn store(
        &self,
        kind: &str,
        sha256: &str,
        size: u64,
        what: &str,
        reader: &mut dyn Read,
        on_bytes: &dyn Fn(u64),
    ) -> Result<PathBuf, CacheError> {
        let dest = self.path_for(kind, sha256);
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        let io = |source| CacheError::Io {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(io)?;
        let (actual, total) =
            copy_sha256(reader, &mut tmp, on_bytes, Some(size)).map_err(|e| match e {
                CopyError::Read(source) => CacheError::Read {
                    what: what.into(),
                    source,
                },
                CopyError::Write(source) => io(source),
            })?;
        if total != size || !actual.eq_ignore_ascii_case(sha256) {
            return Err(CacheError::Mismatch {
                what: what.into(),
                expected: sha256.into(),
                actual,
                expected_size: size,
                actual_size: total,
            });
        }
        tmp.persist(&dest).map_err(|e| io(e.error))?;
        Ok(dest)
    }
}

/// Why [`copy_sha256`] stopped.
#[derive(Debug)]
pub enum CopyError {
    /// Reading the source failed.
    Read(std::io::Error),
    /// Writing the copy failed.
    Write(std::io::Error),
}

/// Copies `reader` into `out`, hashing what passes; stops once more than `limit` bytes came
/// (a source longer than promised). Returns the sha256 (lowercase hex) and the byte count.
pub fn copy_sha256(
    reader: &mut dyn Read,
    out: &mut dyn Write,
    on_bytes: &dyn Fn(u64),
    limit: Option<u64>,
) -> Result<(String, u64), CopyError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
        on_bytes(n as u64);
        if limit.is_some_and(|l| total > l) {
            break;
        }
    }
    Ok((hex(&hasher.finalize()), total))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of a file, as lowercase hex.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    reader_sha256(&mut std::fs::File::open(path)?)
}

/// The sha256 of everything `r` yields, as lowercase hex.
pub fn reader_sha256(r: &mut dyn Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(r, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        hex(&Sha256::digest(data))
    }

    #[test]
    fn stored_entries_are_found_and_damaged_ones_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path()).unwrap();
        let data = b"package bytes".to_vec();
        let s = sha(&data);
        let p = c
            .store(
                "debs",
                &s,
                data.len() as u64,
                "p.deb",
                &mut &data[..],
                &|_| {},
            )
            .unwrap();
        assert_eq!(c.lookup("debs", &s, data.len() as u64), Some(p.clone()));

        std::fs::write(&p, b"package").unwrap(); // truncated
        assert_eq!(c.lookup("debs", &s, data.len() as u64), None);
        assert!(!p.exists(), "a truncated entry is removed");

        c.store(
            "debs",
            &s,
            data.len() as u64,
            "p.deb",
            &mut &data[..],
            &|_| {},
        )
        .unwrap();
        std::fs::write(&p, b"packagX bytes").unwrap(); // corrupted, same size
        assert_eq!(c.lookup("debs", &s, data.len() as u64), None);
        assert!(!p.exists(), "a corrupted entry is removed");
    }

    #[test]
    fn mismatched_data_never_becomes_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path()).unwrap();
        let s = sha(b"right");
        let e = c
            .store("debs", &s, 5, "x.deb", &mut &b"wrong"[..], &|_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.deb") && e.contains(&s), "{e}");
        assert!(!c.path_for("debs", &s).exists());
        let leftovers = std::fs::read_dir(c.path_for("debs", &s).parent().unwrap())
            .unwrap()
            .count();
        assert_eq!(leftovers, 0, "no temp file left behind");
    }
}
