//! Reading the files of a tree nobody here built (an unpacked stemcell, a mounted image): the
//! path is resolved inside the tree as if it were `/` (symlinks included, `..` refused), and
//! only a regular file under the size cap is read (see `untrusted`).
//!
//! [`safepath`] is the resolution itself: entry-name checks and chroot-style lookups, which the
//! extractor (`rootfs::extract`) also builds every path with.

use std::path::{Path, PathBuf};

use crate::untrusted::{self, UntrustedError};

pub mod safepath;

/// Why a file of the tree was not read.
#[derive(Debug, thiserror::Error)]
pub enum InsideError {
    /// The path cannot name a file of the tree (`..`, NUL, a symlink loop).
    #[error(
        "{}: `{}` cannot be resolved inside the tree: {reason}",
        untrusted::escape_path(root),
        untrusted::escape(rel)
    )]
    Path {
        /// The tree.
        root: PathBuf,
        /// The path, as the tree gave it.
        rel: String,
        /// Why.
        reason: String,
    },
    /// The file is not regular, too large or unreadable.
    #[error(transparent)]
    Read(#[from] UntrustedError),
}

/// The host path of `/rel` inside `root`, every symlink followed inside it; `Ok(None)` when
/// it does not exist.
pub fn resolve(root: &Path, rel: &str) -> Result<Option<PathBuf>, InsideError> {
    safepath::host_path_followed(root, rel).map_err(|reason| InsideError::Path {
        root: root.to_path_buf(),
        rel: rel.to_string(),
        reason,
    })
}

/// Reads `/rel` of the tree at `root` (see [`resolve`]) when it is a regular file of at most
/// `cap` bytes; `Ok(None)` when it does not exist.
pub fn read(
    root: &Path,
    rel: &str,
    cap: u64,
    what: &'static str,
) -> Result<Option<Vec<u8>>, InsideError> {
    let Some(p) = resolve(root, rel)? else {
        return Ok(None);
    };
    match untrusted::read_capped(&p, cap, what) {
        Err(UntrustedError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        other => Ok(Some(other?)),
    }
}

/// Writes `contents` as the regular file `/rel` of the tree at `root` with `mode`: its
/// directories resolved (and made, 0755) inside the tree whatever its symlinks say, and what
/// is at the final name removed first, so nothing is ever written through a symlink out of
/// the tree. Returns the host path written.
pub fn write(root: &Path, rel: &str, contents: &[u8], mode: u32) -> Result<PathBuf, InsideError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let p = safepath::host_path_for_write(root, rel).map_err(|reason| InsideError::Path {
        root: root.to_path_buf(),
        rel: rel.to_string(),
        reason,
    })?;
    let io = |source| {
        InsideError::Read(UntrustedError::Io {
            path: p.clone(),
            source,
        })
    };
    match std::fs::symlink_metadata(&p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p).map_err(io)?,
        Ok(_) => std::fs::remove_file(&p).map_err(io)?,
        Err(_) => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p)
        .map_err(io)?;
    f.write_all(contents).map_err(io)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    Ok(p)
}

/// [`read`] as text, invalid UTF-8 replaced.
pub fn read_text(
    root: &Path,
    rel: &str,
    cap: u64,
    what: &'static str,
) -> Result<Option<String>, InsideError> {
    Ok(
        read(root, rel, cap, what)?.map(|b| match String::from_utf8(b) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_stay_inside_and_only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("usr/share/doc/a")).unwrap();
        std::fs::write(root.join("usr/share/doc/a/copyright"), "mine").unwrap();
        std::fs::write(dir.path().join("secret"), "host").unwrap();
        symlink("a/copyright", root.join("usr/share/doc/b")).unwrap();
        symlink("/usr/share/doc/a/copyright", root.join("abs")).unwrap();
        symlink("../../../secret", root.join("up")).unwrap();
        symlink("/dev/zero", root.join("zero")).unwrap();
        let r = |p| read(&root, p, 100, "a test file");
        assert_eq!(r("usr/share/doc/a/copyright").unwrap().unwrap(), b"mine");
        assert_eq!(r("/usr/share/doc/b").unwrap().unwrap(), b"mine");
        assert_eq!(r("abs").unwrap().unwrap(), b"mine");
        // `../../../secret` from the root is `/secret` of the tree: absent, not the host's.
        assert!(r("up").unwrap().is_none());
        assert!(r("zero").unwrap().is_none());
        assert!(r("../secret").is_err());
        assert!(r("/").is_err());
        std::fs::create_dir_all(root.join("dev")).unwrap();
        let c = std::ffi::CString::new(root.join("dev/fifo").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = r("dev/fifo").unwrap_err().to_string();
        assert!(e.contains("is a FIFO"), "{e}");
    }

    #[test]
    fn writes_land_inside_the_tree_never_through_its_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let host = dir.path().join("host");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("fstab"), "the host's").unwrap();
        symlink(host.join("fstab"), root.join("etc/fstab")).unwrap();
        symlink(&host, root.join("conf")).unwrap();
        write(&root, "etc/fstab", b"mine", 0o644).unwrap();
        write(&root, "conf/settings.json", b"{}", 0o600).unwrap();
        assert_eq!(std::fs::read(host.join("fstab")).unwrap(), b"the host's");
        assert!(!host.join("settings.json").exists());
        assert_eq!(std::fs::read(root.join("etc/fstab")).unwrap(), b"mine");
        let inside = root
            .join(host.strip_prefix("/").unwrap())
            .join("settings.json");
        assert_eq!(std::fs::read(inside).unwrap(), b"{}");
    }
}
