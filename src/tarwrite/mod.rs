//! The tree walk ([`tree`]) and the project's own tar writer, which stage snapshots
//! (`pipeline::snapshot`, `pipeline::layer`) and stemcells (`pack::tarball`) both use.
//!
//! The writer turns a walked tree into a tar stream that keeps everything a rootfs has. GNU headers (numeric owners in base-256 when large, long names
//! and link targets as GNU long-name entries), device numbers, hard links as link entries
//! to the first name, and extended attributes as PAX `SCHILY.xattr.*` records (what GNU
//! tar and bsdtar write, and what `rootfs::extract` reads back).
//!
//! Entry names are relative paths (`etc/passwd`); directories end in `/`; the root is `./`.
//! [`member_name`] reads such a name back.

use std::io::{self, Read, Write};
use std::path::Path;

use tar::{EntryType, Header};

pub mod tree;

use tree::{Kind, TreeEntry, TreeError};

/// What a written tar holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TarStats {
    /// Entries written (every kind).
    pub entries: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Sockets left out (tar cannot hold them).
    pub skipped_sockets: u64,
}

/// Walks `root` and appends every entry to `builder` (the caller finishes the archive).
pub fn write_tree<W: Write>(
    root: &Path,
    builder: &mut tar::Builder<W>,
) -> Result<TarStats, TreeError> {
    let mut stats = TarStats::default();
    tree::walk::<TreeError>(root, &|_| true, &mut |e| {
        if e.kind == Kind::Socket {
            stats.skipped_sockets += 1;
            return Ok(());
        }
        append_entry(builder, e)?;
        stats.entries += 1;
        stats.bytes += e.size;
        Ok(())
    })?;
    Ok(stats)
}

/// The tar name of a relative path: `rel`, `./` for the root, `/` appended for directories.
pub fn tar_name(rel: &Path, dir: bool) -> Vec<u8> {
    let mut name = tree::rel_bytes(rel).to_vec();
    if name.is_empty() {
        return b"./".to_vec();
    }
    if dir {
        name.push(b'/');
    }
    name
}

fn bytes_path(b: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(b))
}

/// Appends one walked entry (its PAX xattr record first, then header and content). The
/// entry may be adjusted first (fixed mtimes or owners for a reproducible stemcell).
pub fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    e: &TreeEntry,
) -> Result<(), TreeError> {
    let fail = |source: io::Error| TreeError::Io {
        op: "archive",
        path: e.path.clone(),
        source,
    };
    if !e.xattrs.is_empty() {
        let records: Vec<(Vec<u8>, &[u8])> = e
            .xattrs
            .iter()
            .map(|(k, v)| ([b"SCHILY.xattr.".as_slice(), k].concat(), v.as_slice()))
            .collect();
        let data = pax_records(&records);
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_path("././@PaxHeader").map_err(fail)?;
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_cksum();
        builder.append(&h, data.as_slice()).map_err(fail)?;
    }
    let mut h = Header::new_gnu();
    h.set_mode(e.mode);
    h.set_uid(u64::from(e.uid));
    h.set_gid(u64::from(e.gid));
    h.set_mtime(e.mtime.max(0) as u64);
    h.set_size(0);
    let name = tar_name(&e.rel, e.kind == Kind::Dir);
    let name = bytes_path(&name);
    match &e.kind {
        Kind::Dir => {
            h.set_entry_type(EntryType::Directory);
            builder.append_data(&mut h, name, io::empty())
        }
        Kind::File => {
            let file = tree::open_nofollow(&e.path)?;
            let segments = sparse_segments(&file, e.size).map_err(fail)?;
            match segments {
                Some(segs) => append_sparse(builder, &mut h, name, file, e.size, &segs),
                None => {
                    h.set_entry_type(EntryType::Regular);
                    h.set_size(e.size);
                    let exact = Exact {
                        inner: file,
                        left: e.size,
                    };
                    builder.append_data(&mut h, name, exact)
                }
            }
        }
        Kind::Symlink(target) => {
            h.set_entry_type(EntryType::Symlink);
            builder.append_link(&mut h, name, target)
        }
        Kind::HardLink(first) => {
            h.set_entry_type(EntryType::Link);
            let first = tar_name(first, false);
            builder.append_link(&mut h, name, bytes_path(&first))
        }
        Kind::Char { major, minor } | Kind::Block { major, minor } => {
            h.set_entry_type(if matches!(e.kind, Kind::Char { .. }) {
                EntryType::Char
            } else {
                EntryType::Block
            });
            h.set_device_major(*major).map_err(fail)?;
            h.set_device_minor(*minor).map_err(fail)?;
            builder.append_data(&mut h, name, io::empty())
        }
        Kind::Fifo => {
            h.set_entry_type(EntryType::Fifo);
            builder.append_data(&mut h, name, io::empty())
        }
        Kind::Socket => Ok(()),
    }
    .map_err(fail)
}

/// The data segments (offset, length) of a file with holes, found with `SEEK_DATA` and
/// `SEEK_HOLE`; `None` for a file without holes (or a filesystem that cannot tell).
pub fn sparse_segments(file: &std::fs::File, size: u64) -> io::Result<Option<Vec<(u64, u64)>>> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;
    let meta = file.metadata()?;
    if size == 0 || meta.blocks() * 512 >= size {
        return Ok(None);
    }
    let fd = file.as_raw_fd();
    let mut segs = Vec::new();
    let mut pos: i64 = 0;
    let end = size as i64;
    while pos < end {
        // SAFETY: lseek on a file descriptor we own; no memory is passed.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole remains
            }
            if err.raw_os_error() == Some(libc::EINVAL) {
                return Ok(None); // the filesystem cannot tell
            }
            return Err(err);
        }
        if data >= end {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        let hole = hole.min(end);
        segs.push((data as u64, (hole - data) as u64));
        pos = hole;
    }
    let stored: u64 = segs.iter().map(|s| s.1).sum();
    if stored == size {
        return Ok(None);
    }
    // GNU tar marks a file that ends in a hole with an empty last segment at its size.
    if segs.last().is_none_or(|&(o, l)| o + l < size) {
        segs.push((size, 0));
    }
    Ok(Some(segs))
}

/// Appends a file with holes as an old-GNU sparse entry (type `S`, what GNU tar, bsdtar and
/// the tar crate read): the segment map in the header and extension blocks, then only the
/// data segments. The file must keep its size while it is read.
fn append_sparse<W: Write>(
    builder: &mut tar::Builder<W>,
    h: &mut Header,
    name: &Path,
    file: std::fs::File,
    size: u64,
    segs: &[(u64, u64)],
) -> io::Result<()> {
    h.set_entry_type(EntryType::GNUSparse);
    let stored: u64 = segs.iter().map(|s| s.1).sum();
    h.set_size(stored);
    let gnu = h
        .as_gnu_mut()
        .ok_or_else(|| io::Error::other("sparse entries need a GNU header"))?;
    gnu.set_real_size(size);
    for (slot, &(o, l)) in gnu.sparse.iter_mut().zip(segs) {
        slot.set_offset(o);
        slot.set_length(l);
    }
    gnu.set_is_extended(segs.len() > gnu.sparse.len());
    let mut ext = Vec::new();
    let rest: Vec<&[(u64, u64)]> = segs.get(4..).unwrap_or_default().chunks(21).collect();
    for (i, chunk) in rest.iter().enumerate() {
        let mut block = tar::GnuExtSparseHeader::new();
        for (slot, &(o, l)) in block.sparse.iter_mut().zip(chunk.iter()) {
            slot.set_offset(o);
            slot.set_length(l);
        }
        block.isextended[0] = u8::from(i + 1 < rest.len());
        ext.extend_from_slice(block.as_bytes());
    }
    let data = SparseData {
        file,
        segs: segs.to_vec(),
        idx: 0,
        left: segs.first().map_or(0, |s| s.1),
        size,
    };
    builder.append_data(h, name, io::Cursor::new(ext).chain(data))
}

/// Reads the data segments of a sparse file in order, exactly.
struct SparseData {
    file: std::fs::File,
    segs: Vec<(u64, u64)>,
    idx: usize,
    left: u64,
    size: u64,
}

impl Read for SparseData {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        while self.left == 0 {
            self.idx += 1;
            let Some(&(_, l)) = self.segs.get(self.idx) else {
                if self.file.metadata()?.len() != self.size {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the file changed size while being archived",
                    ));
                }
                return Ok(0);
            };
            self.left = l;
        }
        let (off, len) = self.segs[self.idx];
        let at = off + (len - self.left);
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while being archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Encodes PAX extended-header records: `LEN KEY=VALUE\n`, LEN counting itself.
pub fn pax_records(records: &[(Vec<u8>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let body = key.len() + value.len() + 3; // space, '=', newline
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(key);
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// A reader that yields exactly `left` bytes or fails: a file that shrank while being
/// archived must not produce a short (corrupt) tar entry.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // A file that grew while being archived must not be cut off silently either.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the file grew while being archived",
                ));
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file shrank while being archived ({} bytes short)",
                    self.left
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// An archive member's name without a leading `./` (`./stemcell.MF` is `stemcell.MF`).
pub fn member_name<R: Read>(entry: &tar::Entry<'_, R>) -> io::Result<String> {
    Ok(entry
        .path()?
        .to_string_lossy()
        .trim_start_matches("./")
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let r = pax_records(&[(b"SCHILY.xattr.user.a".to_vec(), b"xyz".as_slice())]);
        let text = String::from_utf8(r.clone()).unwrap();
        let (len, _) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), r.len());
        // Crossing a power of ten: the length's own digits push it over.
        for n in 80..120 {
            let v = vec![b'v'; n];
            let r = pax_records(&[(b"k".to_vec(), v.as_slice())]);
            let text = String::from_utf8(r.clone()).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), r.len(), "value of {n} bytes");
        }
    }

    #[test]
    fn a_file_that_grows_or_shrinks_while_read_is_an_error() {
        let read_all = |data: &[u8], left: u64| {
            let mut r = Exact { inner: data, left };
            let mut out = Vec::new();
            r.read_to_end(&mut out).map(|_| out)
        };
        assert_eq!(read_all(b"0123456789", 10).unwrap(), b"0123456789");
        let grew = read_all(b"0123456789", 5).unwrap_err().to_string();
        assert!(grew.contains("grew"), "{grew}");
        let shrank = read_all(b"0123456789", 15).unwrap_err().to_string();
        assert!(
            shrank.contains("shrank") && shrank.contains("5 bytes short"),
            "{shrank}"
        );
    }

    #[test]
    fn one_inode_number_makes_a_link_only_for_files_with_several_links() {
        use std::collections::HashMap;
        let mut links = HashMap::new();
        // The overlay collision: two files, one link each, the same (dev, ino).
        assert_eq!(
            tree::link_target(&mut links, 1, 42, 1, Path::new("a")),
            None
        );
        assert_eq!(
            tree::link_target(&mut links, 1, 42, 1, Path::new("b")),
            None
        );
        // A real hard-link pair.
        assert_eq!(tree::link_target(&mut links, 1, 7, 2, Path::new("c")), None);
        assert_eq!(
            tree::link_target(&mut links, 1, 7, 2, Path::new("d")).as_deref(),
            Some(Path::new("c"))
        );
    }

    #[test]
    fn names_are_dot_relative_and_dirs_end_in_a_slash() {
        assert_eq!(tar_name(Path::new(""), true), b"./");
        assert_eq!(tar_name(Path::new("etc"), true), b"etc/");
        assert_eq!(tar_name(Path::new("etc/passwd"), false), b"etc/passwd");
    }
}
