//! The read-only view of an image the checks use. Every path is resolved inside the tree (see
//! `inside`), files are read only when regular and under the cap, and a walk stops at the
//! entry cap of `untrusted`: a hostile image cannot make a check read the host or run long.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::untrusted::{SMALL_MAX, TREE_ENTRIES_MAX};

/// What `lstat` says of a path in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Whether it is a directory.
    pub dir: bool,
    /// Whether it is a regular file.
    pub file: bool,
    /// Whether it is a symlink.
    pub symlink: bool,
}

impl Meta {
    fn of(m: &std::fs::Metadata) -> Meta {
        Meta {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            dir: m.is_dir(),
            file: m.is_file(),
            symlink: m.file_type().is_symlink(),
        }
    }
}

/// A tree to check: a rootfs directory, or an image or stemcell opened as one.
pub struct Tree {
    root: PathBuf,
    packages: OnceLock<Result<BTreeMap<String, String>, String>>,
}

impl Tree {
    /// A view of the tree at `root`.
    pub fn new(root: &Path) -> Tree {
        Tree {
            root: root.to_path_buf(),
            packages: OnceLock::new(),
        }
    }

    /// The tree's root on the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The text of `path` (`/etc/login.defs`), `None` when it is missing; an error when it
    /// is not a regular file under the cap or cannot be read.
    pub fn text(&self, path: &str) -> Result<Option<String>, String> {
        crate::inside::read_text(&self.root, rel(path), SMALL_MAX, "a configuration file")
            .map_err(|e| e.to_string())
    }

    /// `lstat` of `path` inside the tree (a final symlink is not followed).
    pub fn meta(&self, path: &str) -> Result<Option<Meta>, String> {
        let Some(host) = crate::inside::safepath::host_path(&self.root, rel(path))? else {
            return Ok(None);
        };
        match std::fs::symlink_metadata(&host) {
            Ok(m) => Ok(Some(Meta::of(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{path}: {e}")),
        }
    }

    /// `stat` of `path` inside the tree, a final symlink followed inside the tree too.
    pub fn meta_followed(&self, path: &str) -> Result<Option<Meta>, String> {
        let Some(host) = crate::inside::safepath::host_path_followed(&self.root, rel(path))? else {
            return Ok(None);
        };
        match std::fs::symlink_metadata(&host) {
            Ok(m) => Ok(Some(Meta::of(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{path}: {e}")),
        }
    }

    /// The id of user `name` in the image's `/etc/passwd` (or group `name` in `/etc/group`
    /// when `group`).
    pub fn id_of(&self, name: &str, group: bool) -> Result<Option<u32>, String> {
        let file = if group { "/etc/group" } else { "/etc/passwd" };
        let text = self.text(file)?.unwrap_or_default();
        Ok(text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[0] == name)
                .then(|| f[2].parse().ok())
                .flatten()
        }))
    }

    /// Installed packages (`install ok installed` in dpkg's status) and their versions.
    pub fn packages(&self) -> Result<&BTreeMap<String, String>, String> {
        self.packages
            .get_or_init(|| {
                let all =
                    crate::rootfs::dpkg::read_status(&self.root).map_err(|e| e.to_string())?;
                Ok(all
                    .into_iter()
                    .filter(|(_, (_, _, status))| status == "install ok installed")
                    .map(|(n, (v, _, _))| (n, v))
                    .collect())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Calls `f` with the image path and `lstat` of every entry under `dir` (not following
    /// symlinks, not crossing into `/proc`, `/sys` or `/dev`), up to the entry cap.
    pub fn walk(&self, dir: &str, f: &mut dyn FnMut(&str, &Meta)) -> Result<(), String> {
        let start = if rel(dir).is_empty() {
            self.root.clone()
        } else {
            match crate::inside::safepath::host_path(&self.root, rel(dir))? {
                Some(p) => p,
                None => return Ok(()),
            }
        };
        let mut seen = 0u64;
        let mut stack = vec![(start, dir.trim_end_matches('/').to_string())];
        while let Some((host, shown)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&host) else {
                continue;
            };
            let mut names: Vec<_> = entries.filter_map(Result::ok).collect();
            names.sort_by_key(|e| e.file_name());
            for e in names {
                seen += 1;
                if seen > TREE_ENTRIES_MAX {
                    return Err(format!(
                        "{dir} holds more than {TREE_ENTRIES_MAX} entries: not a tree to check"
                    ));
                }
                let name = e.file_name().to_string_lossy().into_owned();
                let path = format!("{shown}/{name}");
                let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                    continue;
                };
                let meta = Meta::of(&m);
                f(&path, &meta);
                if meta.dir && !matches!(path.as_str(), "/proc" | "/sys" | "/dev") {
                    stack.push((e.path(), path));
                }
            }
        }
        Ok(())
    }
}

/// `/etc/x` as the relative path `etc/x`.
fn rel(path: &str) -> &str {
    path.trim_start_matches('/')
}
