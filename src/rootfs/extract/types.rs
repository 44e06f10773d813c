//! The public result and error types of extraction.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::deb::DebError;

/// What one extraction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Regular files written.
    pub files: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Directories created or updated (including ones kept as symlinks).
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Device nodes and fifos created.
    pub nodes: u64,
    /// Device nodes skipped because the process is not root.
    pub skipped_nodes: u64,
    /// Entries whose owner could not be set because the process is not root.
    pub skipped_owners: u64,
    /// Human-readable warnings (one line each, already naming the .deb).
    pub warnings: Vec<String>,
    /// Every entry as dpkg lists it in `info/PKG.list` (`/.`, `/usr/bin/x`), archive order.
    pub paths: Vec<String>,
}

/// Errors from extracting a .deb; each names the .deb, the entry and what to do.
#[derive(Debug, Error)]
pub enum ExtractError {
    /// The .deb itself could not be read (truncated, corrupt, unsupported compression).
    #[error(transparent)]
    Deb(#[from] DebError),
    /// A plain tar stream (not a .deb) could not be read: truncated or corrupt.
    #[error(
        "{archive} is corrupt: {detail}; delete it (a cache entry is rebuilt on the next run)"
    )]
    Corrupt {
        /// The archive, as labelled by the caller.
        archive: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The entry name tries to leave the rootfs or is malformed.
    #[error("{deb}: entry `{entry}` refused: {reason}; the package is corrupt or hostile: do not install it, report it to its maintainer")]
    Unsafe {
        /// The .deb file.
        deb: PathBuf,
        /// The entry name as stored in data.tar.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// A hard link points outside the entries of this archive.
    #[error("{deb}: hard link `{entry}` -> `{target}` refused: {reason}; the package is corrupt or hostile: do not install it, report it to its maintainer")]
    HardLink {
        /// The .deb file.
        deb: PathBuf,
        /// The hard link entry.
        entry: String,
        /// Its link target as stored.
        target: String,
        /// Why it is refused.
        reason: String,
    },
    /// Something in the rootfs is in the way of the entry.
    #[error("{deb}: entry `{entry}` conflicts with {existing}, which exists in the rootfs as {found}; remove that path from the rootfs or fix the package set")]
    Conflict {
        /// The .deb file.
        deb: PathBuf,
        /// The entry name.
        entry: String,
        /// The host path in the way.
        existing: PathBuf,
        /// What it is (`a regular file`, `a non-empty directory`, …).
        found: &'static str,
    },
    /// A filesystem operation failed.
    #[error("{deb}: entry `{entry}`: cannot {op} {path}: {source}; check free space and permissions of the rootfs")]
    Io {
        /// The .deb file.
        deb: PathBuf,
        /// The entry name.
        entry: String,
        /// What was being done.
        op: &'static str,
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An extended attribute could not be set.
    #[error("{deb}: entry `{entry}`: cannot set extended attribute `{name}` on {path}: {source}; run as root on a filesystem with xattr support (ext4, xfs)")]
    Xattr {
        /// The .deb file.
        deb: PathBuf,
        /// The entry name.
        entry: String,
        /// The attribute name.
        name: String,
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The entry has a tar type this extractor does not handle.
    #[error("{deb}: entry `{entry}` has unsupported tar entry type {kind:?}; repack the package with dpkg-deb")]
    Unsupported {
        /// The .deb file.
        deb: PathBuf,
        /// The entry name.
        entry: String,
        /// The raw type byte.
        kind: char,
    },
}
