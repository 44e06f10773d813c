//! The deterministic tar writer for stemcells: a rootfs tree to a tar stream that is the same
//! byte for byte whenever the tree's contents are.
//!
//! - entries sorted by name (the walker's order), names relative (`./`, `etc/`, `etc/passwd`);
//! - every mtime set to one value (`SOURCE_DATE_EPOCH` or the spec's), no atime or ctime;
//! - numeric owners from the tree, no user or group names;
//! - hard links only for files with more than one link, sharing (dev, ino) **and** the same
//!   content: overlayfs can give two different files one inode number, and GNU tar storing
//!   one as a link to the other is how a corrupt Pi stemcell was made;
//! - symlinks, device nodes, fifos, setuid/setgid/sticky bits, xattrs (`security.capability`)
//!   as PAX `SCHILY.xattr.*`; long names and link targets as GNU long-name entries;
//! - a file that grows or shrinks while it is read is an error naming it, never a short or
//!   padded entry.
//!
//! The `tar` crate's reader, GNU tar and bsdtar read what it writes (see tests/pack.rs).

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::tarwrite;
use crate::tarwrite::tree::{self, Kind, TreeError};

/// Errors packing a tree.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The destination is not ours to replace (a device, FIFO, directory, symlink).
    #[error(transparent)]
    Owned(#[from] crate::owned::OwnedError),
    /// Reading the tree or writing the archive failed (names the file).
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// Writing the output failed.
    #[error("writing {what}: {source}")]
    Write {
        /// What was being written.
        what: String,
        /// The I/O error.
        source: io::Error,
    },
}

/// What the writer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Entries written.
    pub entries: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Hard links stored as links.
    pub hard_links: u64,
    /// Files sharing an inode number with another but not its content: stored as files.
    pub false_links: u64,
    /// Sockets left out (tar cannot hold them).
    pub sockets: u64,
}

/// Whether two files have the same size and bytes.
pub fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let (fa, fb) = (File::open(a)?, File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ra, mut rb) = (BufReader::new(fa), BufReader::new(fb));
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = ra.read(&mut ba)?;
        if n == 0 {
            return Ok(rb.read(&mut bb[..1])? == 0);
        }
        rb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// Writes `root` as a tar stream into `out` with every mtime set to `mtime`; returns the
/// output (the archive finished with its end marker) and what was written.
pub fn pack_tree<W: Write>(root: &Path, out: W, mtime: u64) -> Result<(W, PackStats), PackError> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut stats = PackStats::default();
    let descend = |_: &Path| true;
    tree::walk::<TreeError>(root, &descend, &mut |e| {
        let mut e = e.clone();
        e.mtime = i64::try_from(mtime).unwrap_or(i64::MAX);
        match &e.kind {
            Kind::Socket => {
                stats.sockets += 1;
                return Ok(());
            }
            Kind::HardLink(first) => {
                let first_path: PathBuf = root.join(first);
                let same = same_content(&first_path, &e.path).map_err(|source| TreeError::Io {
                    op: "compare",
                    path: e.path.clone(),
                    source,
                })?;
                if same {
                    stats.hard_links += 1;
                } else {
                    stats.false_links += 1;
                    let meta =
                        std::fs::symlink_metadata(&e.path).map_err(|source| TreeError::Io {
                            op: "inspect",
                            path: e.path.clone(),
                            source,
                        })?;
                    e.kind = Kind::File;
                    e.size = meta.size();
                }
            }
            _ => {}
        }
        tarwrite::append_entry(&mut builder, &e)?;
        stats.entries += 1;
        stats.bytes += e.size;
        Ok(())
    })?;
    let out = builder.into_inner().map_err(|source| PackError::Write {
        what: "the end of the archive".into(),
        source,
    })?;
    Ok((out, stats))
}

/// Packs `root` into `dest` as a deterministic `.tgz` (parallel gzip at `level` on `threads`
/// workers), written to a temporary file beside it and renamed: nothing half-written survives.
pub fn write_tgz(
    root: &Path,
    dest: &Path,
    mtime: u64,
    level: u32,
    threads: usize,
) -> Result<PackStats, PackError> {
    let werr = |source: io::Error| PackError::Write {
        what: dest.display().to_string(),
        source,
    };
    crate::owned::check_destination(dest)?;
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".pistemcell-")
        .tempfile_in(dir)
        .map_err(werr)?;
    let file = tmp.reopen().map_err(werr)?;
    let gz = super::pgzip::ParallelGzip::new(
        io::BufWriter::with_capacity(1 << 20, file),
        level,
        threads,
    )
    .map_err(werr)?;
    let (gz, stats) = pack_tree(root, gz, mtime)?;
    let out = gz.finish().map_err(werr)?;
    out.into_inner()
        .map_err(|e| werr(e.into_error()))?
        .sync_all()
        .map_err(werr)?;
    // tempfile makes 0600 files; an archive is for others to read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644)).map_err(werr)?;
    // Checked again: what is at `dest` may have changed while the tree was packed.
    crate::owned::check_destination(dest)?;
    tmp.persist(dest).map_err(|e| werr(e.error))?;
    Ok(stats)
}
