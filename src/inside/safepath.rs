//! Entry-name checks and chroot-style path resolution inside the rootfs.
//!
//! Every host path the extractor touches is built by [`resolve_dir`]: it walks the entry's
//! parent components from `root`, `lstat`ing each one. A symlink is followed as if `root` were
//! `/` (absolute targets restart at `root`, `..` stops at `root`), so the resulting path is
//! `root` joined with names that were each seen to be real directories: it cannot lead outside
//! the rootfs. The final component of an entry is never followed.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Most symlinks followed while resolving one path (Linux's own limit).
pub const MAX_SYMLINKS: usize = 40;

/// One path component: a plain name, never empty, `.` or `..`.
pub type Name = Vec<u8>;

/// Splits an archive entry name into plain components, refusing hostile names.
///
/// `./usr/bin/x`, `usr/bin/x` and `./usr/bin/` are fine; `/etc/x` (absolute), anything
/// with a `..` component and names with NUL bytes are refused with the reason. `./` gives
/// no components: the root itself.
pub fn normalize(name: &[u8]) -> Result<Vec<Name>, &'static str> {
    if name.is_empty() {
        return Err("the entry name is empty");
    }
    if name.first() == Some(&b'/') {
        return Err("absolute names are refused (dpkg names start with `./`)");
    }
    if name.contains(&0) {
        return Err("the name contains a NUL byte");
    }
    let mut out = Vec::new();
    for comp in name.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("names with a `..` component are refused"),
            _ => out.push(comp.to_vec()),
        }
    }
    Ok(out)
}

/// The host path of `/rel/path` inside `root`, with the parent directories resolved
/// chroot-style (symlinks followed as if `root` were `/`, never leading out of it) and the
/// final component not followed. `None` when a parent is missing or not a directory.
pub fn host_path(root: &Path, rel: &str) -> Result<Option<PathBuf>, String> {
    let rel = rel.trim_start_matches('/');
    let mut comps = normalize(rel.as_bytes()).map_err(str::to_string)?;
    let Some(last) = comps.pop() else {
        return Err("the path names the root itself".into());
    };
    match resolve_dir(root, &comps, false) {
        Ok(Some(dir)) => Ok(Some(dir.join(OsStr::from_bytes(&last)))),
        Ok(None) => Ok(None),
        Err(ResolveError::Loop) => Err("too many symlinks".into()),
        Err(ResolveError::NotDir(p)) => Err(format!("{} is not a directory", p.display())),
        Err(ResolveError::Io(what, p, e)) => Err(format!("cannot {what} {}: {e}", p.display())),
    }
}

/// The host path of `/rel/path` inside `root` for writing: parent directories resolved
/// chroot-style and made when missing (mode 0755), the final component not followed (the
/// caller replaces whatever is there, a symlink included, never writing through it).
pub fn host_path_for_write(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let mut comps = normalize(rel.trim_start_matches('/').as_bytes()).map_err(str::to_string)?;
    let Some(last) = comps.pop() else {
        return Err("the path names the root itself".into());
    };
    match resolve_dir(root, &comps, true) {
        Ok(Some(dir)) => Ok(dir.join(OsStr::from_bytes(&last))),
        Ok(None) => Err("a parent directory is missing".into()),
        Err(ResolveError::Loop) => Err("too many symlinks".into()),
        Err(ResolveError::NotDir(p)) => Err(format!("{} is not a directory", p.display())),
        Err(ResolveError::Io(what, p, e)) => Err(format!("cannot {what} {}: {e}", p.display())),
    }
}

/// The host path of `/rel/path` inside `root` with every component resolved chroot-style,
/// the final one too: a path read out of an untrusted image (a record's `Path:`, a package's
/// copyright file) can only ever name a file of that image. `..` and NUL bytes are refused;
/// `None` when it does not exist.
pub fn host_path_followed(root: &Path, rel: &str) -> Result<Option<PathBuf>, String> {
    let comps = normalize(rel.trim_start_matches('/').as_bytes()).map_err(str::to_string)?;
    if comps.is_empty() {
        return Err("the path names the root itself".into());
    }
    match resolve_any(root, &comps) {
        Ok(p) => Ok(p),
        Err(ResolveError::Loop) => Err("too many symlinks".into()),
        Err(ResolveError::NotDir(p)) => Err(format!("{} is not a directory", p.display())),
        Err(ResolveError::Io(what, p, e)) => Err(format!("cannot {what} {}: {e}", p.display())),
    }
}

/// Why a path could not be resolved inside the rootfs.
#[derive(Debug)]
pub enum ResolveError {
    /// More than [`MAX_SYMLINKS`] symlinks on the way.
    Loop,
    /// A component exists but is not a directory (nor a symlink to one).
    NotDir(PathBuf),
    /// A filesystem call failed.
    Io(&'static str, PathBuf, io::Error),
}

/// Host path of the directory named by `comps` under `root`, following symlinks chroot-style.
///
/// With `create`, missing directories are made (mode 0755, like tar) and a non-directory on
/// the way is [`ResolveError::NotDir`]; without it, `Ok(None)` says "missing or not a
/// directory". The returned path is `root` plus real directory names only.
pub fn resolve_dir(
    root: &Path,
    comps: &[Name],
    create: bool,
) -> Result<Option<PathBuf>, ResolveError> {
    resolve(root, comps, create, false)
}

/// Host path of the file named by `comps` under `root`: every component, the last one too,
/// resolved chroot-style (a final symlink is followed inside `root`). `None` when missing.
pub fn resolve_any(root: &Path, comps: &[Name]) -> Result<Option<PathBuf>, ResolveError> {
    resolve(root, comps, false, true)
}

fn resolve(
    root: &Path,
    comps: &[Name],
    create: bool,
    last_may_be_file: bool,
) -> Result<Option<PathBuf>, ResolveError> {
    let mut queue: VecDeque<Name> = comps.iter().cloned().collect();
    let mut cur = root.to_path_buf();
    let mut depth = 0usize; // number of names pushed on top of root
    let mut links = 0usize;
    while let Some(comp) = queue.pop_front() {
        match &comp[..] {
            b"" | b"." => continue,
            b".." => {
                if depth > 0 {
                    cur.pop();
                    depth -= 1;
                }
                continue;
            }
            _ => {}
        }
        let next = cur.join(OsStr::from_bytes(&comp));
        match fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(ResolveError::Loop);
                }
                let target = fs::read_link(&next)
                    .map_err(|e| ResolveError::Io("read the symlink", next.clone(), e))?;
                let target = target.as_os_str().as_bytes();
                if target.first() == Some(&b'/') {
                    cur = root.to_path_buf();
                    depth = 0;
                }
                for part in target.split(|b| *b == b'/').rev() {
                    if !part.is_empty() && part != b"." {
                        queue.push_front(part.to_vec());
                    }
                }
            }
            Ok(meta) if meta.is_dir() => {
                cur = next;
                depth += 1;
            }
            Ok(_) if last_may_be_file && queue.is_empty() => return Ok(Some(next)),
            Ok(_) if create => return Err(ResolveError::NotDir(next)),
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                match fs::DirBuilder::new().mode(0o755).create(&next) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // Appeared meanwhile: look at it again.
                        queue.push_front(comp);
                        continue;
                    }
                    Err(e) => return Err(ResolveError::Io("create the directory", next, e)),
                }
                cur = next;
                depth += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ResolveError::Io("inspect", next, e)),
        }
    }
    Ok(Some(cur))
}

/// Joins a resolved parent and a final name (which is never followed).
pub fn child(parent: &Path, name: &[u8]) -> PathBuf {
    parent.join(OsStr::from_bytes(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(p: &str) -> Vec<Name> {
        normalize(p.as_bytes()).unwrap()
    }

    #[test]
    fn normalize_accepts_dpkg_names_and_refuses_hostile_ones() {
        assert_eq!(
            names("./usr/bin/x"),
            [b"usr".to_vec(), b"bin".to_vec(), b"x".to_vec()]
        );
        assert_eq!(names("usr//bin/./"), [b"usr".to_vec(), b"bin".to_vec()]);
        assert!(names("./").is_empty());
        assert!(normalize(b"/etc/passwd").is_err());
        assert!(normalize(b"../x").is_err());
        assert!(normalize(b"./a/../../x").is_err());
        assert!(normalize(b"./a/..").is_err());
        assert!(normalize(b"").is_err());
        assert!(normalize(b"./a\0b").is_err());
        assert_eq!(names("./..a/b.."), [b"..a".to_vec(), b"b..".to_vec()]);
    }

    #[test]
    fn symlinks_are_followed_as_if_root_were_slash() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../..", root.join("up")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        let r = |p: &str, create| resolve_dir(&root, &names(p), create);
        assert_eq!(r("./bin", false).unwrap().unwrap(), root.join("usr/bin"));
        assert_eq!(r("./abs", false).unwrap().unwrap(), root.join("etc"));
        assert_eq!(r("./up", false).unwrap().unwrap(), root);
        assert_eq!(r("./up/etc", false).unwrap().unwrap(), root.join("etc"));
        assert!(matches!(r("./loop1", false), Err(ResolveError::Loop)));
        assert!(r("./missing/x", false).unwrap().is_none());
        // Creating through a symlink that points "outside" creates inside the root.
        assert_eq!(
            r("./up/new/dir", true).unwrap().unwrap(),
            root.join("new/dir")
        );
        assert!(root.join("new/dir").is_dir());
        fs::write(root.join("file"), "x").unwrap();
        assert!(
            matches!(r("./file/x", true), Err(ResolveError::NotDir(p)) if p == root.join("file"))
        );
        assert!(r("./file", false).unwrap().is_none());
    }
}
