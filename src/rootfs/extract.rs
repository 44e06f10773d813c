//! Extracting a .deb's data.tar (or any tar stream, such as a stage snapshot) into a rootfs
//! directory without ever writing outside it.
//!
//! Safety rules (the host is protected):
//! - entry names that are absolute or hold a `..` component are refused;
//! - every parent component is resolved chroot-style (see `safepath`): a symlink in the
//!   rootfs (merged-usr `bin -> usr/bin`, or one planted by an earlier entry pointing at
//!   `/etc` or `../../..`) is followed as if the rootfs were `/`, so it leads back inside;
//! - the final component is never followed: a file written over a symlink replaces it;
//! - a hard link may only point at an entry already extracted from the same archive;
//! - symlink targets are stored as text and never followed while extracting.
//!
//! Files are written under a temporary name in their directory and renamed into place, so a
//! failure never leaves a half-written file at the final path. Owners (numeric), modes with
//! setuid/setgid/sticky bits, mtimes, device nodes, fifos and `SCHILY.xattr.*` attributes
//! (e.g. `security.capability`) are kept.
//!
//! The checks assume nothing else changes the rootfs while a package is being extracted
//! (maintainer scripts run before or after, never during).

mod copy;
mod sys;
#[cfg(test)]
mod tests;
mod types;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::deb::{list_path, Deb};
use crate::inside::safepath::{self, child, normalize, resolve_dir, Name, ResolveError};

pub use sys::is_root;
pub use types::{ExtractError, ExtractStats};

/// Extracts `deb`'s data.tar into `root` (which must exist) and reports what was written.
pub fn extract_deb(deb: &Deb, root: &Path) -> Result<ExtractStats, ExtractError> {
    let corrupt = |e: &io::Error| ExtractError::Deb(deb.corrupt(e));
    let mut archive = deb.data_archive()?;
    let stats = extract_entries(&mut archive, root, deb.path(), &corrupt)?;
    deb.finish_data(archive)?;
    Ok(stats)
}

/// Extracts a plain tar stream into `root` (which must exist) under the same safety rules as
/// [`extract_deb`]; `label` names the archive in errors (e.g. the snapshot file). The stream
/// is read to its end after the tar end marker, so a compressor's integrity check runs.
pub fn extract_tar<R: Read>(
    mut archive: tar::Archive<R>,
    root: &Path,
    label: &str,
) -> Result<ExtractStats, ExtractError> {
    let corrupt = |e: &io::Error| ExtractError::Corrupt {
        archive: PathBuf::from(label),
        detail: e.to_string(),
    };
    let stats = extract_entries(&mut archive, root, Path::new(label), &corrupt)?;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| corrupt(&e))?;
    Ok(stats)
}

/// Turns a read error of the archive into the caller's error (which names the archive).
type Corrupt<'a> = dyn Fn(&io::Error) -> ExtractError + 'a;

/// Extracts every entry of `archive` into `root`; `label` names the archive in errors.
fn extract_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    root: &Path,
    label: &Path,
    corrupt: &Corrupt<'_>,
) -> Result<ExtractStats, ExtractError> {
    let mut x = Extractor {
        label,
        corrupt,
        root,
        root_user: sys::is_root(),
        stats: ExtractStats::default(),
        extracted: HashSet::new(),
        dirs: Vec::new(),
    };
    let entries = archive.entries().map_err(|e| corrupt(&e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(&e))?;
        x.entry(&mut entry)?;
    }
    x.finish_dirs()?;
    x.summarize();
    Ok(x.stats)
}

/// Metadata of one entry, decoded from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Extractor<'a> {
    /// The archive, for errors.
    label: &'a Path,
    corrupt: &'a Corrupt<'a>,
    root: &'a Path,
    root_user: bool,
    stats: ExtractStats,
    /// Normalized names extracted so far (hard-link targets must be among them).
    extracted: HashSet<Vec<Name>>,
    /// Directories whose mode (if deferred) and mtime are set at the end.
    dirs: Vec<(PathBuf, String, Option<u32>, i64)>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary name in the target directory, removed on drop unless renamed into place.
struct Temp {
    path: PathBuf,
    armed: bool,
}

impl Drop for Temp {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Extractor<'_> {
    fn path(&self) -> PathBuf {
        self.label.to_path_buf()
    }

    fn io(&self, entry: &str, op: &'static str, path: &Path, source: io::Error) -> ExtractError {
        ExtractError::Io {
            deb: self.path(),
            entry: entry.to_string(),
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    fn unsafe_entry(&self, entry: &str, reason: &str) -> ExtractError {
        ExtractError::Unsafe {
            deb: self.path(),
            entry: entry.to_string(),
            reason: reason.to_string(),
        }
    }

    fn conflict(&self, entry: &str, existing: &Path, found: &'static str) -> ExtractError {
        ExtractError::Conflict {
            deb: self.path(),
            entry: entry.to_string(),
            existing: existing.to_path_buf(),
            found,
        }
    }

    fn resolve_err(&self, entry: &str, err: ResolveError) -> ExtractError {
        match err {
            ResolveError::Loop => self.unsafe_entry(
                entry,
                &format!(
                    "more than {} symbolic links on the way to its directory",
                    safepath::MAX_SYMLINKS
                ),
            ),
            ResolveError::NotDir(p) => self.conflict(entry, &p, "a non-directory parent"),
            ResolveError::Io(op, p, e) => self.io(entry, op, &p, e),
        }
    }

    fn meta<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
    ) -> Result<Meta, ExtractError> {
        let corrupt = |e: io::Error| {
            (self.corrupt)(&io::Error::new(e.kind(), format!("entry `{name}`: {e}")))
        };
        let header = entry.header();
        let mode = header.mode().map_err(corrupt)? & 0o7777;
        let id = |v: io::Result<u64>| {
            v.and_then(|v| {
                u32::try_from(v)
                    .map_err(|_| io::Error::other(format!("owner id {v} is out of range")))
            })
        };
        let uid = id(header.uid()).map_err(corrupt)?;
        let gid = id(header.gid()).map_err(corrupt)?;
        let mut mtime = header.mtime().map_err(corrupt)? as i64;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(corrupt)? {
            for record in pax {
                let record = record.map_err(corrupt)?;
                let key = record.key_bytes();
                if let Some(attr) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((attr.to_vec(), record.value_bytes().to_vec()));
                } else if key == b"mtime" {
                    let text = record.value().unwrap_or("");
                    let secs = text.split('.').next().unwrap_or("");
                    if let Ok(v) = secs.parse::<i64>() {
                        mtime = v;
                    }
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ExtractError> {
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let comps = normalize(&raw).map_err(|r| self.unsafe_entry(&name, r))?;
        let meta = self.meta(entry, &name)?;
        let is_dir = kind == T::Directory || (kind == T::Regular && raw.ends_with(b"/"));
        self.stats.paths.push(list_path(&name));
        let Some((last, parents)) = comps.split_last() else {
            if !is_dir {
                return Err(self.unsafe_entry(&name, "only a directory may name the root"));
            }
            let root = self.root.to_path_buf();
            self.dir_meta(&name, &root, &meta)?;
            return Ok(());
        };
        let parent = resolve_dir(self.root, parents, true)
            .map_err(|e| self.resolve_err(&name, e))?
            .ok_or_else(|| self.unsafe_entry(&name, "its directory cannot be created"))?;
        let target = child(&parent, last);
        match kind {
            _ if is_dir => self.dir(&name, &comps, &target, &meta)?,
            T::Regular | T::Continuous | T::GNUSparse => {
                self.file(entry, &name, &parent, &target, &meta)?
            }
            T::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .filter(|l| !l.is_empty() && !l.contains(&0))
                    .ok_or_else(|| self.unsafe_entry(&name, "symlink without a valid target"))?;
                self.symlink(&name, &parent, &target, &link, &meta)?;
            }
            T::Link => {
                let link = entry.link_name_bytes().map(|l| l.into_owned());
                self.hardlink(&name, &parent, &target, link.as_deref().unwrap_or(b""))?;
            }
            T::Char | T::Block | T::Fifo => {
                let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                let kind = match kind {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                self.node(&name, &parent, &target, kind, major, minor, &meta)?;
            }
            other => {
                return Err(ExtractError::Unsupported {
                    deb: self.path(),
                    entry: name,
                    kind: other.as_byte() as char,
                })
            }
        }
        self.extracted.insert(comps);
        Ok(())
    }

    /// A fresh name in `dir` made by `make`, retried if a stale one is in the way.
    fn temp(
        &self,
        name: &str,
        dir: &Path,
        mut make: impl FnMut(&Path) -> io::Result<()>,
    ) -> Result<Temp, ExtractError> {
        let pid = std::process::id();
        for _ in 0..1000 {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".pistemcell-new.{pid}.{n}"));
            match make(&path) {
                Ok(()) => return Ok(Temp { path, armed: true }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(self.io(name, "create a temporary file in", dir, e)),
            }
        }
        let e = io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name");
        Err(self.io(name, "create a temporary file in", dir, e))
    }

    /// Moves `temp` to `target`; a directory in the way is removed only if empty.
    fn install(
        &self,
        name: &str,
        mut temp: Temp,
        target: &Path,
        hardlink: bool,
    ) -> Result<(), ExtractError> {
        if let Ok(meta) = fs::symlink_metadata(target) {
            if meta.is_dir() && fs::remove_dir(target).is_err() {
                return Err(self.conflict(name, target, "a non-empty directory"));
            }
        }
        fs::rename(&temp.path, target).map_err(|e| self.io(name, "rename into", target, e))?;
        // rename() is a no-op when both names are links to the same inode: drop the temp.
        if hardlink && fs::symlink_metadata(&temp.path).is_ok() {
            fs::remove_file(&temp.path).map_err(|e| self.io(name, "remove", &temp.path, e))?;
        }
        temp.armed = false;
        Ok(())
    }

    fn chown(&mut self, name: &str, path: &Path, meta: &Meta) -> Result<(), ExtractError> {
        if self.root_user {
            std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))
                .map_err(|e| self.io(name, "change the owner of", path, e))
        } else {
            self.stats.skipped_owners += 1;
            Ok(())
        }
    }

    fn xattrs(
        &self,
        name: &str,
        path: &Path,
        meta: &Meta,
        file: Option<&File>,
    ) -> Result<(), ExtractError> {
        for (attr, value) in &meta.xattrs {
            let res = match file {
                Some(f) => sys::fsetxattr(f, attr, value),
                None => sys::lsetxattr(path, attr, value),
            };
            res.map_err(|source| ExtractError::Xattr {
                deb: self.path(),
                entry: name.to_string(),
                name: String::from_utf8_lossy(attr).into_owned(),
                path: path.to_path_buf(),
                source,
            })?;
        }
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
        parent: &Path,
        target: &Path,
        meta: &Meta,
    ) -> Result<(), ExtractError> {
        if fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
            // Checked before writing so nothing is written for nothing.
            if fs::read_dir(target)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
            {
                return Err(self.conflict(name, target, "a non-empty directory"));
            }
        }
        let mut file = None;
        let temp = self.temp(name, parent, |p| {
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)?;
            file = Some(f);
            Ok(())
        })?;
        let Some(mut file) = file else {
            let e = io::Error::other("temporary file vanished");
            return Err(self.io(name, "create", &temp.path, e));
        };
        let sparse = entry.header().entry_type().is_gnu_sparse();
        let written = copy::copy(entry, &mut file, sparse).map_err(|e| match e {
            copy::CopyError::Read(e) => {
                let e = io::Error::new(e.kind(), format!("entry `{name}`: {e}"));
                (self.corrupt)(&e)
            }
            copy::CopyError::Write(e) => self.io(name, "write", &temp.path, e),
        })?;
        let kind = entry.header().entry_type();
        if !kind.is_gnu_sparse() && written != entry.size() {
            let e = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "entry `{name}` is cut short ({written} of {} bytes)",
                    entry.size()
                ),
            );
            return Err((self.corrupt)(&e));
        }
        if self.root_user {
            std::os::unix::fs::fchown(&file, Some(meta.uid), Some(meta.gid))
                .map_err(|e| self.io(name, "change the owner of", &temp.path, e))?;
        } else {
            self.stats.skipped_owners += 1;
        }
        file.set_permissions(fs::Permissions::from_mode(meta.mode))
            .map_err(|e| self.io(name, "set the mode of", &temp.path, e))?;
        self.xattrs(name, &temp.path, meta, Some(&file))?;
        sys::set_mtime_fd(&file, meta.mtime)
            .map_err(|e| self.io(name, "set the mtime of", &temp.path, e))?;
        drop(file);
        self.install(name, temp, target, false)?;
        self.stats.files += 1;
        self.stats.bytes += written;
        Ok(())
    }

    fn symlink(
        &mut self,
        name: &str,
        parent: &Path,
        target: &Path,
        link: &[u8],
        meta: &Meta,
    ) -> Result<(), ExtractError> {
        use std::os::unix::ffi::OsStrExt;
        let link = std::ffi::OsStr::from_bytes(link);
        let temp = self.temp(name, parent, |p| std::os::unix::fs::symlink(link, p))?;
        self.chown(name, &temp.path, meta)?;
        self.xattrs(name, &temp.path, meta, None)?;
        sys::set_mtime_nofollow(&temp.path, meta.mtime)
            .map_err(|e| self.io(name, "set the mtime of", &temp.path, e))?;
        self.install(name, temp, target, false)?;
        self.stats.symlinks += 1;
        Ok(())
    }

    fn hardlink(
        &mut self,
        name: &str,
        parent: &Path,
        target: &Path,
        link: &[u8],
    ) -> Result<(), ExtractError> {
        let shown = String::from_utf8_lossy(link).into_owned();
        let refuse = |reason: &str| ExtractError::HardLink {
            deb: self.path(),
            entry: name.to_string(),
            target: shown.clone(),
            reason: reason.to_string(),
        };
        let comps = normalize(link).map_err(refuse)?;
        if !self.extracted.contains(&comps) {
            return Err(refuse("the target is not an earlier entry of this package"));
        }
        let Some((last, parents)) = comps.split_last() else {
            return Err(refuse("the target is the root directory"));
        };
        let source = resolve_dir(self.root, parents, false)
            .map_err(|e| self.resolve_err(name, e))?
            .map(|dir| safepath::child(&dir, last))
            .ok_or_else(|| refuse("the target's directory is gone"))?;
        match fs::symlink_metadata(&source) {
            Ok(m) if m.is_dir() => return Err(refuse("the target is a directory")),
            Ok(_) => {}
            Err(_) => return Err(refuse("the target no longer exists")),
        }
        let temp = self.temp(name, parent, |p| sys::link_nofollow(&source, p))?;
        self.install(name, temp, target, true)?;
        self.stats.hardlinks += 1;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        name: &str,
        parent: &Path,
        target: &Path,
        kind: libc::mode_t,
        major: u32,
        minor: u32,
        meta: &Meta,
    ) -> Result<(), ExtractError> {
        if kind != libc::S_IFIFO && !self.root_user {
            self.stats.skipped_nodes += 1;
            return Ok(());
        }
        let temp = self.temp(name, parent, |p| sys::mknod(p, kind, major, minor))?;
        self.chown(name, &temp.path, meta)?;
        fs::set_permissions(&temp.path, fs::Permissions::from_mode(meta.mode))
            .map_err(|e| self.io(name, "set the mode of", &temp.path, e))?;
        self.xattrs(name, &temp.path, meta, None)?;
        sys::set_mtime_nofollow(&temp.path, meta.mtime)
            .map_err(|e| self.io(name, "set the mtime of", &temp.path, e))?;
        self.install(name, temp, target, false)?;
        self.stats.nodes += 1;
        Ok(())
    }

    fn dir(
        &mut self,
        name: &str,
        comps: &[Name],
        target: &Path,
        meta: &Meta,
    ) -> Result<(), ExtractError> {
        match fs::symlink_metadata(target) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                // merged-usr: `bin -> usr/bin` stays a symlink when it leads to a directory.
                if let Ok(Some(_)) = resolve_dir(self.root, comps, false) {
                    self.stats.dirs += 1;
                    return Ok(());
                }
                fs::remove_file(target).map_err(|e| self.io(name, "remove", target, e))?;
                self.mkdir(name, target)?;
            }
            Ok(m) if m.is_file() => return Err(self.conflict(name, target, "a regular file")),
            Ok(_) => return Err(self.conflict(name, target, "a special file")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.mkdir(name, target)?,
            Err(e) => return Err(self.io(name, "inspect", target, e)),
        }
        self.dir_meta(name, target, meta)
    }

    fn mkdir(&self, name: &str, target: &Path) -> Result<(), ExtractError> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(target)
            .map_err(|e| self.io(name, "create the directory", target, e))
    }

    fn dir_meta(&mut self, name: &str, target: &Path, meta: &Meta) -> Result<(), ExtractError> {
        self.chown(name, target, meta)?;
        // Without root, a directory we could not write into would stop its own contents:
        // keep u+rwx until the end.
        let (now, later) = if !self.root_user && meta.mode & 0o700 != 0o700 {
            (meta.mode | 0o700, Some(meta.mode))
        } else {
            (meta.mode, None)
        };
        fs::set_permissions(target, fs::Permissions::from_mode(now))
            .map_err(|e| self.io(name, "set the mode of", target, e))?;
        self.xattrs(name, target, meta, None)?;
        self.dirs
            .push((target.to_path_buf(), name.to_string(), later, meta.mtime));
        self.stats.dirs += 1;
        Ok(())
    }

    /// Directory mtimes (and deferred modes) last, deepest first, once nothing changes them.
    fn finish_dirs(&mut self) -> Result<(), ExtractError> {
        let dirs = std::mem::take(&mut self.dirs);
        for (path, name, mode, mtime) in dirs.iter().rev() {
            if let Some(mode) = mode {
                fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                    .map_err(|e| self.io(name, "set the mode of", path, e))?;
            }
            sys::set_mtime_nofollow(path, *mtime)
                .map_err(|e| self.io(name, "set the mtime of", path, e))?;
        }
        Ok(())
    }

    fn summarize(&mut self) {
        let deb = self.label.display();
        if self.stats.skipped_nodes > 0 {
            self.stats.warnings.push(format!(
                "{deb}: skipped {} device node(s): creating devices needs root",
                self.stats.skipped_nodes
            ));
        }
        if self.stats.skipped_owners > 0 {
            self.stats.warnings.push(format!(
                "{deb}: kept the current user as owner of {} entr(y/ies): setting owners needs root",
                self.stats.skipped_owners
            ));
        }
    }
}
