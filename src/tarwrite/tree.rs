//! Walking a root filesystem tree: every entry with the metadata a rootfs needs kept
//! (type, mode with setuid/setgid/sticky, numeric owner, mtime, xattrs, device numbers,
//! hard-link groups), in a fixed order (depth first, children sorted by name as bytes).
//!
//! Symlinks are never followed, and the walk never crosses into another filesystem: a
//! mount point inside the tree is an error (it would mean a chroot's `/proc` is still
//! mounted). The tar writer (`tarwrite`) and [`tree_manifest`] are built on [`walk`]; the
//! stemcell packer can reuse both.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// An error walking or reading a tree, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A filesystem call failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The host path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A directory inside the tree is another filesystem's mount point.
    #[error("{path} is a mount point inside the tree (left by a killed chroot?); unmount it (`umount -l {path}`) and run again")]
    MountPoint {
        /// The mount point.
        path: PathBuf,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> TreeError + 'a {
    move |source| TreeError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Extended attributes: (name, value) pairs.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file (first occurrence of its inode).
    File,
    /// A symbolic link and its target, as stored (never followed).
    Symlink(PathBuf),
    /// Another name of an inode met earlier in the walk (the first name, relative).
    HardLink(PathBuf),
    /// A character device.
    Char {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    Block {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A Unix socket (tar cannot hold one: writers skip it).
    Socket,
}

/// One entry of a tree.
#[derive(Debug, Clone)]
pub struct TreeEntry {
    /// Path relative to the root; empty for the root itself.
    pub rel: PathBuf,
    /// The host path.
    pub path: PathBuf,
    /// What it is.
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Modification time, whole seconds since the epoch.
    pub mtime: i64,
    /// Size in bytes (regular files; 0 otherwise).
    pub size: u64,
    /// Extended attributes (name, value), sorted by name.
    pub xattrs: Xattrs,
    /// When the inode last changed (`ctime`), since the epoch.
    pub ctime: std::time::Duration,
}

/// Walks `root` depth first, children sorted by name, calling `visit` for every entry
/// (the root first, with an empty `rel`). `descend(rel)` decides whether a directory's
/// contents are walked (the directory itself is always visited).
pub fn walk<E: From<TreeError>>(
    root: &Path,
    descend: &dyn Fn(&Path) -> bool,
    visit: &mut dyn FnMut(&TreeEntry) -> Result<(), E>,
) -> Result<(), E> {
    let meta = fs::symlink_metadata(root).map_err(io_err("inspect", root))?;
    let mut links = HashMap::new();
    let entry = make_entry(root, PathBuf::new(), &meta, &mut links)?;
    visit(&entry)?;
    if meta.is_dir() {
        walk_dir(root, Path::new(""), meta.dev(), descend, &mut links, visit)?;
    }
    Ok(())
}

fn walk_dir<E: From<TreeError>>(
    dir: &Path,
    rel: &Path,
    dev: u64,
    descend: &dyn Fn(&Path) -> bool,
    links: &mut HashMap<(u64, u64), PathBuf>,
    visit: &mut dyn FnMut(&TreeEntry) -> Result<(), E>,
) -> Result<(), E> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(io_err("list", dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err("list", dir))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let path = dir.join(&name);
        let child_rel = rel.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(io_err("inspect", &path))?;
        if meta.is_dir() && meta.dev() != dev {
            return Err(TreeError::MountPoint { path }.into());
        }
        let entry = make_entry(&path, child_rel.clone(), &meta, links)?;
        visit(&entry)?;
        if meta.is_dir() && descend(&child_rel) {
            walk_dir(&path, &child_rel, dev, descend, links, visit)?;
        }
    }
    Ok(())
}

fn make_entry(
    path: &Path,
    rel: PathBuf,
    meta: &Metadata,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<TreeEntry, TreeError> {
    let ft = meta.file_type();
    let dev = || {
        let rdev = meta.rdev();
        (libc::major(rdev), libc::minor(rdev))
    };
    let mut kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink(fs::read_link(path).map_err(io_err("read the symlink", path))?)
    } else if ft.is_char_device() {
        let (major, minor) = dev();
        Kind::Char { major, minor }
    } else if ft.is_block_device() {
        let (major, minor) = dev();
        Kind::Block { major, minor }
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_socket() {
        Kind::Socket
    } else {
        Kind::File
    };
    if !ft.is_dir() {
        if let Some(first) = link_target(links, meta.dev(), meta.ino(), meta.nlink(), &rel) {
            kind = Kind::HardLink(first);
        }
    }
    let size = if kind == Kind::File { meta.len() } else { 0 };
    Ok(TreeEntry {
        xattrs: xattrs(path)?,
        path: path.to_path_buf(),
        rel,
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: meta.mtime(),
        size,
        ctime: std::time::Duration::new(
            u64::try_from(meta.ctime()).unwrap_or(0),
            u32::try_from(meta.ctime_nsec()).unwrap_or(0),
        ),
    })
}

/// The first name of `rel`'s hard-link group, when `rel` is a later member of one. Only
/// files with more than one link are grouped: overlayfs can report the same (dev, ino) for
/// two different files from different layers, each with one link, and those must stay two
/// files (GNU tar linking them made a corrupt stemcell). Writers also compare contents
/// before storing a link.
pub fn link_target(
    links: &mut HashMap<(u64, u64), PathBuf>,
    dev: u64,
    ino: u64,
    nlink: u64,
    rel: &Path,
) -> Option<PathBuf> {
    if nlink < 2 {
        return None;
    }
    match links.get(&(dev, ino)) {
        Some(first) => Some(first.clone()),
        None => {
            links.insert((dev, ino), rel.to_path_buf());
            None
        }
    }
}

fn cpath(path: &Path) -> Result<CString, TreeError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| TreeError::Io {
        op: "name",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"),
    })
}

/// The extended attributes of `path` itself (a symlink is not followed), sorted by name.
pub fn xattrs(path: &Path) -> Result<Xattrs, TreeError> {
    let c = cpath(path)?;
    let fail = |op| {
        let source = io::Error::last_os_error();
        match source.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(Vec::new()),
            _ => Err(TreeError::Io {
                op,
                path: path.to_path_buf(),
                source,
            }),
        }
    };
    let mut names = vec![0u8; 1024];
    loop {
        // SAFETY: `c` is NUL-terminated; the buffer is writable for its whole length.
        let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            names.truncate(n as usize);
            break;
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            return fail("list the extended attributes of");
        }
        names.resize(names.len() * 4, 0);
    }
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).unwrap_or_default();
        let mut value = vec![0u8; 256];
        loop {
            // SAFETY: both strings are NUL-terminated; the buffer is writable for its length.
            let n = unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    cname.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            if n >= 0 {
                value.truncate(n as usize);
                break;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::ERANGE) if value.len() < (1 << 20) => value.resize(value.len() * 8, 0),
                // Removed between listing and reading.
                Some(libc::ENODATA) => {
                    value.clear();
                    break;
                }
                _ => return fail("read an extended attribute of"),
            }
        }
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

/// Opens a regular file for reading without following a symlink put in its place.
pub fn open_nofollow(path: &Path) -> Result<fs::File, TreeError> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err("open", path))
}

/// Whether [`tree_manifest`] lines carry mtimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mtimes {
    /// Compare modification times too (a snapshot round trip keeps them).
    Keep,
    /// Leave them out (two separate builds write files at different times).
    Ignore,
}

/// Top-level directories whose contents [`tree_manifest`] leaves out (kernel filesystems).
const VIRTUAL_DIRS: &[&str] = &["proc", "sys", "dev"];

/// One line per entry of `root` (sorted walk): path, type, mode, uid:gid, mtime, size,
/// content sha256, link target, xattrs (hex) and the first name of its hard-link group.
/// The contents of `/proc`, `/sys` and `/dev` are left out.
pub fn tree_manifest(root: &Path, mtimes: Mtimes) -> Result<Vec<String>, TreeError> {
    let mut out = Vec::new();
    let descend = |rel: &Path| !VIRTUAL_DIRS.iter().any(|d| rel == Path::new(d));
    walk::<TreeError>(root, &descend, &mut |e| {
        out.push(manifest_line(e, mtimes)?);
        Ok(())
    })?;
    Ok(out)
}

fn manifest_line(e: &TreeEntry, mtimes: Mtimes) -> Result<String, TreeError> {
    let kind = match &e.kind {
        Kind::Dir => "dir".to_string(),
        Kind::File => format!("file size={} sha256={}", e.size, file_sha256(&e.path)?),
        Kind::Symlink(t) => format!("symlink -> {}", t.display()),
        Kind::HardLink(first) => format!("hardlink => /{}", first.display()),
        Kind::Char { major, minor } => format!("char {major},{minor}"),
        Kind::Block { major, minor } => format!("block {major},{minor}"),
        Kind::Fifo => "fifo".to_string(),
        Kind::Socket => "socket".to_string(),
    };
    let mut line = format!(
        "/{} {kind} mode={:04o} owner={}:{}",
        e.rel.display(),
        e.mode,
        e.uid,
        e.gid
    );
    if mtimes == Mtimes::Keep {
        line.push_str(&format!(" mtime={}", e.mtime));
    }
    for (name, value) in &e.xattrs {
        line.push_str(&format!(
            " xattr:{}={}",
            String::from_utf8_lossy(name),
            hex(value)
        ));
    }
    Ok(line)
}

/// Compares two trees' manifests; `Err` lists the first differing lines of each side.
pub fn equal_trees(a: &Path, b: &Path, mtimes: Mtimes) -> Result<(), String> {
    let ma = tree_manifest(a, mtimes).map_err(|e| e.to_string())?;
    let mb = tree_manifest(b, mtimes).map_err(|e| e.to_string())?;
    if ma == mb {
        return Ok(());
    }
    let only = |x: &[String], y: &[String]| -> Vec<String> {
        let set: std::collections::HashSet<&String> = y.iter().collect();
        x.iter()
            .filter(|l| !set.contains(l))
            .take(10)
            .cloned()
            .collect()
    };
    Err(format!(
        "trees differ\n  only in {}:\n    {}\n  only in {}:\n    {}",
        a.display(),
        only(&ma, &mb).join("\n    "),
        b.display(),
        only(&mb, &ma).join("\n    ")
    ))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 (hex) of a regular file's content (a symlink in its place is refused).
pub fn file_sha256(path: &Path) -> Result<String, TreeError> {
    let mut f = open_nofollow(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("read", path)(e)),
        }
    }
    Ok(hex(&h.finalize()))
}

/// The relative path as bytes (for tar names and messages).
pub fn rel_bytes(rel: &Path) -> &[u8] {
    rel.as_os_str().as_bytes()
}
