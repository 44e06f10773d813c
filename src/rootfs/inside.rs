//! Reading the files of a tree nobody here built (an unpacked stemcell, a mounted image): the
//! path is resolved inside the tree as if it were `/` (symlinks included, `..` refused), and
//! only a regular file under the size cap is read (see `untrusted`).

use std::path::{Path, PathBuf};

use crate::untrusted::{self, UntrustedError};

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
    crate::rootfs::extract::host_path_followed(root, rel).map_err(|reason| InsideError::Path {
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
}
