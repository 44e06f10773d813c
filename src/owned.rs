//! What is ours to delete or overwrite. A work dir and a cache carry a marker file of their
//! own, written when pistemcell makes them (or finds them empty); nothing deletes in a
//! directory without its marker, and `/`, `$HOME` and the system's top directories are
//! refused whatever they hold. A writer replaces only a regular file or nothing: never a
//! device, FIFO, socket, directory or symlink. A tree output replaces only an empty directory
//! or a rootfs pistemcell made.

use std::path::{Path, PathBuf};

use crate::untrusted::{escape_path, kind_of};

/// The kinds of directory pistemcell deletes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--work-dir`: trees, logs, stemcells.
    WorkDir,
    /// `--cache-dir`: downloads, stage snapshots, the agent's source.
    Cache,
    /// The CPI's `state_dir`: imported stemcells, VMs and disks.
    CpiState,
}

impl Kind {
    /// The marker file's name.
    pub fn marker(self) -> &'static str {
        match self {
            Kind::WorkDir => ".pistemcell-work-dir",
            Kind::Cache => ".pistemcell-cache",
            Kind::CpiState => ".pistemcell-cpi-state",
        }
    }
    /// In words.
    pub fn what(self) -> &'static str {
        match self {
            Kind::WorkDir => "work dir",
            Kind::Cache => "cache",
            Kind::CpiState => "CPI state dir",
        }
    }
    /// The option that chooses it.
    pub fn option(self) -> &'static str {
        match self {
            Kind::WorkDir => "--work-dir",
            Kind::Cache => "--cache-dir",
            Kind::CpiState => "`state_dir` in the CPI's config",
        }
    }
}

/// The record of a rootfs pistemcell made (see `record::DEBS`): a tree holding it may be
/// replaced by a new output.
const ROOTFS_RECORD: &str = "var/lib/pistemcell";

/// Why a directory or destination is not ours to touch.
#[derive(Debug, thiserror::Error)]
pub enum OwnedError {
    /// A directory that must never be a work dir or cache.
    #[error("{} {}: refused, it is {why}; pistemcell deletes what it finds in its {}. Give a directory of its own with {}", kind.what(), escape_path(path), kind.what(), kind.option())]
    Protected {
        /// Which kind was asked for.
        kind: Kind,
        /// The directory.
        path: PathBuf,
        /// Why it is protected (`the root directory`, `your home directory`).
        why: &'static str,
    },
    /// A directory without the marker.
    #[error("{} {}: {}, with no {} marker, so it is not a pistemcell {}: nothing in it was touched. Give an empty or new directory with {}; if it is a {} made before markers existed, create the marker: touch {}", kind.what(), escape_path(path), state, kind.marker(), kind.what(), kind.option(), kind.what(), escape_path(&path.join(kind.marker())))]
    NoMarker {
        /// Which kind.
        kind: Kind,
        /// The directory.
        path: PathBuf,
        /// `not empty` or `exists`.
        state: &'static str,
    },
    /// A destination that is not a regular file.
    #[error("{}: is {kind}, not a regular file; pistemcell writes only a new file or over a regular file it may replace. Give another output path", escape_path(path))]
    NotRegular {
        /// The destination.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A tree destination that is not a directory.
    #[error("{}: is {kind}, not a directory; a rootfs output is a new directory, an empty one or a rootfs pistemcell made. Give another output path", escape_path(path))]
    NotDir {
        /// The destination.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A tree destination that is neither empty nor a rootfs of ours.
    #[error("{}: a directory that is not empty and not a rootfs pistemcell made (no {ROOTFS_RECORD}); it would be replaced whole. Give a new or empty directory", escape_path(path))]
    ForeignTree {
        /// The destination.
        path: PathBuf,
    },
    /// The output would be written inside the tree being read.
    #[error("{}: inside {}, the tree being packed: the output would pack itself (and an older output). Write it outside the tree", escape_path(output), escape_path(tree))]
    InsideInput {
        /// The output.
        output: PathBuf,
        /// The tree.
        tree: PathBuf,
    },
    /// Looking at the path failed.
    #[error("{}: {source}", escape_path(path))]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why `dir` (canonical) may never be a work dir or cache, if it may not.
pub fn protected(dir: &Path) -> Option<&'static str> {
    if dir == Path::new("/") {
        return Some("the root directory");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .and_then(|h| h.canonicalize().ok());
    if let Some(home) = &home {
        if dir == home {
            return Some("your home directory");
        }
        if home.starts_with(dir) {
            return Some("a directory holding your home directory");
        }
    }
    const SYSTEM: &[&str] = &[
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/local",
        "/usr/share",
        "/var",
        "/var/cache",
        "/var/lib",
        "/var/log",
        "/var/tmp",
    ];
    if SYSTEM.iter().any(|s| dir == Path::new(s)) {
        return Some("a system directory");
    }
    None
}

/// Makes `dir` a `kind` directory, or checks that it is one: created when missing, marked when
/// empty; refused when protected or when it holds anything without the marker. Returns its
/// canonical path.
pub fn claim(dir: &Path, kind: Kind) -> Result<PathBuf, OwnedError> {
    let io = |source| OwnedError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let canon = dir.canonicalize().map_err(io)?;
    if let Some(why) = protected(&canon) {
        return Err(OwnedError::Protected {
            kind,
            path: canon,
            why,
        });
    }
    let marker = canon.join(kind.marker());
    if std::fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file()) {
        return Ok(canon);
    }
    let empty = std::fs::read_dir(&canon).map_err(io)?.next().is_none();
    if !empty {
        return Err(OwnedError::NoMarker {
            kind,
            path: canon,
            state: "not empty",
        });
    }
    let text = format!(
        "This directory is a pistemcell {}: `pistemcell clean` empties it.\n",
        kind.what()
    );
    std::fs::write(&marker, text).map_err(|source| OwnedError::Io {
        path: marker.clone(),
        source,
    })?;
    Ok(canon)
}

/// Checks, without changing anything, that the existing `dir` is a `kind` directory pistemcell
/// may delete in. Returns its canonical path.
pub fn check(dir: &Path, kind: Kind) -> Result<PathBuf, OwnedError> {
    let canon = dir.canonicalize().map_err(|source| OwnedError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if let Some(why) = protected(&canon) {
        return Err(OwnedError::Protected {
            kind,
            path: canon,
            why,
        });
    }
    if !std::fs::symlink_metadata(canon.join(kind.marker())).is_ok_and(|m| m.is_file()) {
        let empty = std::fs::read_dir(&canon).is_ok_and(|mut r| r.next().is_none());
        return Err(OwnedError::NoMarker {
            kind,
            path: canon,
            state: if empty { "exists" } else { "not empty" },
        });
    }
    Ok(canon)
}

/// Checks that a file output may go to `path`: nothing there, or a regular file (which the
/// writer replaces by renaming). A symlink is refused too: its target is not ours to judge.
pub fn check_destination(path: &Path) -> Result<(), OwnedError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(OwnedError::Io {
            path: path.to_path_buf(),
            source,
        }),
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) => Err(OwnedError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(m.file_type()),
        }),
    }
}

/// Checks that a tree output may replace `path`: nothing there, an empty directory, or a
/// rootfs pistemcell made.
pub fn check_tree_destination(path: &Path) -> Result<(), OwnedError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(OwnedError::Io {
            path: path.to_path_buf(),
            source,
        }),
        Ok(m) if m.is_dir() => {
            let empty = std::fs::read_dir(path).is_ok_and(|mut r| r.next().is_none());
            let ours =
                std::fs::symlink_metadata(path.join(ROOTFS_RECORD)).is_ok_and(|m| m.is_dir());
            if empty || ours {
                Ok(())
            } else {
                Err(OwnedError::ForeignTree {
                    path: path.to_path_buf(),
                })
            }
        }
        Ok(m) => Err(OwnedError::NotDir {
            path: path.to_path_buf(),
            kind: kind_of(m.file_type()),
        }),
    }
}

/// Refuses an output that would land inside the tree `tree` being read.
pub fn check_outside(output: &Path, tree: &Path) -> Result<(), OwnedError> {
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let (Ok(parent), Ok(tree_c)) = (parent.canonicalize(), tree.canonicalize()) else {
        return Ok(());
    };
    if parent.starts_with(&tree_c) {
        return Err(OwnedError::InsideInput {
            output: output.to_path_buf(),
            tree: tree.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_claimed_only_when_new_empty_or_marked() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new");
        let c = claim(&new, Kind::WorkDir).unwrap();
        assert!(c.join(Kind::WorkDir.marker()).is_file());
        assert!(claim(&new, Kind::WorkDir).is_ok());
        assert!(check(&new, Kind::WorkDir).is_ok());
        // A work dir is not a cache.
        let e = check(&new, Kind::Cache).unwrap_err().to_string();
        assert!(e.contains(".pistemcell-cache"), "{e}");
        let full = dir.path().join("docs");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("thesis.tex"), "years of work").unwrap();
        for e in [
            claim(&full, Kind::Cache).unwrap_err(),
            check(&full, Kind::Cache).unwrap_err(),
        ] {
            let e = e.to_string();
            assert!(
                e.contains("docs") && e.contains("no .pistemcell-cache marker"),
                "{e}"
            );
            assert!(e.contains("touch "), "{e}");
        }
        assert!(full.join("thesis.tex").exists());
    }

    #[test]
    fn system_and_home_directories_are_refused_even_marked() {
        for d in ["/", "/usr", "/var/tmp", "/etc"] {
            assert!(protected(Path::new(d)).is_some(), "{d}");
        }
        let home = std::env::var_os("HOME").map(PathBuf::from);
        if let Some(h) = home.and_then(|h| h.canonicalize().ok()) {
            assert!(protected(&h).is_some());
        }
        assert!(protected(Path::new("/var/tmp/pistemcell")).is_none());
    }

    #[test]
    fn destinations_are_regular_files_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_destination(&dir.path().join("absent")).is_ok());
        std::fs::write(dir.path().join("f"), "x").unwrap();
        assert!(check_destination(&dir.path().join("f")).is_ok());
        for (p, kind) in [
            ("/dev/null", "a character device"),
            ("/dev/full", "a character device"),
            ("/tmp", "a directory"),
        ] {
            let e = check_destination(Path::new(p)).unwrap_err().to_string();
            assert!(e.contains(kind) && e.contains(p), "{e}");
        }
        std::os::unix::fs::symlink("/dev/null", dir.path().join("l")).unwrap();
        assert!(check_destination(&dir.path().join("l")).is_err());
        // Trees: empty, or a rootfs of ours.
        let t = dir.path().join("t");
        std::fs::create_dir(&t).unwrap();
        assert!(check_tree_destination(&t).is_ok());
        std::fs::write(t.join("notes"), "x").unwrap();
        assert!(check_tree_destination(&t).is_err());
        std::fs::create_dir_all(t.join(ROOTFS_RECORD)).unwrap();
        assert!(check_tree_destination(&t).is_ok());
        assert!(check_outside(&t.join("out.tgz"), &t).is_err());
        assert!(check_outside(&dir.path().join("out.tgz"), &t).is_ok());
    }
}
