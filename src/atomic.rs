//! Files written whole or not at all: a temporary file beside the destination, renamed over it.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to a temporary file beside `path` (mode 0644), then renames it there.
/// A destination that is not a regular file (a device, FIFO, directory, symlink) is refused
/// (see `owned`).
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let refuse = |e: crate::owned::OwnedError| io::Error::other(e.to_string());
    crate::owned::check_destination(path).map_err(refuse)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".pistemcell-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    crate::owned::check_destination(path).map_err(refuse)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The `FILE.sha1` and `FILE.sha256` files beside `file`, each written atomically in the
/// `sha1sum`/`sha256sum` format (`DIGEST  NAME`), so `sha256sum -c` checks them from that
/// directory. On an error, the path that could not be written.
pub fn write_sums(file: &Path, sha1: &str, sha256: &str) -> Result<(), (PathBuf, io::Error)> {
    let name = file
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    for (ext, digest) in [("sha1", sha1), ("sha256", sha256)] {
        let side = PathBuf::from(format!("{}.{ext}", file.display()));
        write(&side, format!("{digest}  {name}\n").as_bytes()).map_err(|e| (side, e))?;
    }
    Ok(())
}

/// Removes `file` and its `.sha1`/`.sha256` files, whichever exist (a failed write's cleanup).
pub fn remove_with_sums(file: &Path) {
    let _ = std::fs::remove_file(file);
    for ext in ["sha1", "sha256"] {
        let _ = std::fs::remove_file(format!("{}.{ext}", file.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }

    #[test]
    fn sums_are_in_the_sha256sum_format() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.tgz");
        write_sums(&f, "aa", "bb").unwrap();
        let read =
            |e: &str| std::fs::read_to_string(dir.path().join(format!("x.tgz.{e}"))).unwrap();
        assert_eq!(read("sha1"), "aa  x.tgz\n");
        assert_eq!(read("sha256"), "bb  x.tgz\n");
        remove_with_sums(&f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let missing = dir.path().join("no/such/dir/y.tgz");
        let (path, _) = write_sums(&missing, "aa", "bb").unwrap_err();
        assert_eq!(path, dir.path().join("no/such/dir/y.tgz.sha1"));
    }
}
