//! The work directory: one run at a time (a lock), a sweep of what a killed run left
//! (mounts, half-built trees), and temporary trees that vanish unless kept.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::owned;
use crate::rootfs::mounts;

/// Suffix of trees under construction; the sweep removes any it finds.
pub const PARTIAL: &str = ".partial";

/// Prefix of the stemcell writer's scratch directories.
pub const SCRATCH_PREFIX: &str = ".pistemcell-stemcell-";

/// Prefix of the boot test's scratch directories (swept when a work dir is opened).
pub const BOOT_TEST_SCRATCH_PREFIX: &str = ".pistemcell-boot-test-";

/// Errors managing the work directory.
#[derive(Debug, thiserror::Error)]
pub enum WorkDirError {
    /// The directory could not be created or read.
    #[error("work dir {path}: {source}; choose another with --work-dir")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another run holds the lock.
    #[error("another pistemcell run is using work dir {path}; wait for it, or give this run its own --work-dir")]
    Locked {
        /// The path.
        path: PathBuf,
    },
    /// The directory is not one of ours (no marker, or protected).
    #[error(transparent)]
    Owned(#[from] owned::OwnedError),
    /// A leftover mount could not be removed.
    #[error(transparent)]
    Mount(#[from] mounts::MountError),
}

/// An open, locked work directory.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    _lock: File,
}

impl WorkDir {
    /// Creates (marked: see `owned`) and locks `path`, then sweeps what a killed run left:
    /// mounts first, then loop devices on its files, then `*.partial` trees and half-written
    /// stemcells. Returns the work dir and the leftovers that were removed. A directory that
    /// holds anything without the work dir's marker, or a protected one, is refused untouched.
    pub fn open(path: &Path) -> Result<(WorkDir, Vec<PathBuf>), WorkDirError> {
        Self::open_as(path, owned::Kind::WorkDir)
    }

    /// [`WorkDir::open`] for a directory of `kind` (`clean --cache` locks and sweeps the cache
    /// the same way).
    pub fn open_as(
        path: &Path,
        kind: owned::Kind,
    ) -> Result<(WorkDir, Vec<PathBuf>), WorkDirError> {
        let path = owned::claim(path, kind)?;
        let lock = File::create(path.join(".lock")).map_err(|source| WorkDirError::Io {
            path: path.clone(),
            source,
        })?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(WorkDirError::Locked { path });
        }
        // A killed boot test's VM and export daemon run on: stop them before their mounts go.
        let mut swept = kill_scratch_processes(&path.join(BOOT_TEST_SCRATCH_PREFIX));
        swept.extend(mounts::sweep(&path)?);
        swept.extend(crate::image::loopdev::sweep(&path));
        // Half-built trees, and the stemcell writer's scratch dirs (the default stemcell dir
        // is under the work dir).
        swept.extend(remove_matching(&path, |n| {
            n.ends_with(PARTIAL) || n.starts_with(BOOT_TEST_SCRATCH_PREFIX)
        })?);
        let stemcells = path.join("stemcells");
        if stemcells.is_dir() {
            swept.extend(remove_matching(&stemcells, |n| {
                n.starts_with(SCRATCH_PREFIX)
            })?);
        }
        mark_top_dir(&path);
        Ok((WorkDir { path, _lock: lock }, swept))
    }

    /// The work directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh temporary tree `NAME.UNIQUE.partial` under the work dir, removed on drop unless
    /// kept. The name differs every time: ext4 starts a new top-level tree in the block group
    /// its name hashes to (see [`mark_top_dir`]), and one away from the tree the last run
    /// replaced keeps its freed inodes out of the way.
    pub fn partial(&self, name: &str) -> Result<PartialTree, WorkDirError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}."))
            .suffix(PARTIAL)
            // As create_dir makes it (the umask applies): the tree's root keeps its mode.
            .permissions(std::fs::Permissions::from_mode(0o777))
            .tempdir_in(&self.path)
            .map_err(|source| WorkDirError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(PartialTree {
            path: Some(dir.keep()),
        })
    }
}

/// Marks `dir` as the top of directory hierarchies for ext4's Orlov allocator (`chattr +T`),
/// so each tree made in it starts in a block group of its own instead of the one its parent
/// is in. Without it, a rootfs extracted right after the previous one was removed lands where
/// that one's inodes were just freed, and on ext4 without a journal the allocator then passes
/// over each recently freed inode one by one (a 40,000-file restore took 9 to 21 s instead
/// of 2). Best effort: other filesystems have no such flag, and nothing depends on it.
fn mark_top_dir(dir: &Path) {
    let Ok(f) = File::open(dir) else {
        return;
    };
    let Some(flags) = inode_flags(&f) else {
        return;
    };
    if flags & FS_TOPDIR_FL == 0 {
        let flags = flags | FS_TOPDIR_FL;
        // SAFETY: FS_IOC_SETFLAGS on a descriptor we own, with a pointer to a live int.
        unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_SETFLAGS as _, &flags) };
    }
}

/// ext4's "top of directory hierarchies" inode flag (`chattr +T`).
const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;
/// The size in the ioctl numbers below: they are declared with `long`, though the kernel
/// reads and writes an int.
const LONG: libc::c_ulong = std::mem::size_of::<libc::c_long>() as libc::c_ulong;
/// `_IOR('f', 1, long)`.
const FS_IOC_GETFLAGS: libc::c_ulong =
    (2 << 30) | (LONG << 16) | ((b'f' as libc::c_ulong) << 8) | 1;
/// `_IOW('f', 2, long)`.
const FS_IOC_SETFLAGS: libc::c_ulong =
    (1 << 30) | (LONG << 16) | ((b'f' as libc::c_ulong) << 8) | 2;

/// The inode flags of an open file (`lsattr`), where its filesystem has them.
fn inode_flags(f: &File) -> Option<libc::c_int> {
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS on a descriptor we own, with a pointer to a live int.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_GETFLAGS as _, &mut flags) };
    (rc == 0).then_some(flags)
}

/// Kills (and reaps, when they are ours) processes whose command line names a path starting
/// with `prefix`; returns their executables.
fn kill_scratch_processes(prefix: &Path) -> Vec<PathBuf> {
    let prefix = prefix.to_string_lossy().into_owned();
    let mut killed = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return killed;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if pid != std::process::id() as i32 && String::from_utf8_lossy(&cmdline).contains(&prefix) {
            // SAFETY: kill with a pid read from /proc; a pid gone since is ESRCH, harmless.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let exe = std::fs::read_link(e.path().join("exe")).unwrap_or_else(|_| e.path());
            killed.push(exe);
        }
    }
    if !killed.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    killed
}

/// Removes every entry of `dir` whose name matches; returns what was removed.
fn remove_matching(
    dir: &Path,
    matches: impl Fn(&str) -> bool,
) -> Result<Vec<PathBuf>, WorkDirError> {
    let entries = std::fs::read_dir(dir).map_err(|source| WorkDirError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut removed = Vec::new();
    for e in entries.flatten() {
        if matches(&e.file_name().to_string_lossy()) {
            remove_tree(&e.path()).map_err(|source| WorkDirError::Io {
                path: e.path(),
                source,
            })?;
            removed.push(e.path());
        }
    }
    Ok(removed)
}

/// Removes a tree after unmounting anything below it (never descends into a mount).
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    mounts::sweep(path).map_err(std::io::Error::other)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A tree under construction: removed on drop (error, panic, Ctrl-C) unless `commit`ted.
#[derive(Debug)]
pub struct PartialTree {
    path: Option<PathBuf>,
}

impl PartialTree {
    /// The tree's current path.
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new("/nonexistent"))
    }

    /// Moves the finished tree to `dest`, replacing an older tree there only after the new
    /// one is in place.
    pub fn commit(mut self, dest: &Path) -> std::io::Result<()> {
        let Some(src) = self.path.take() else {
            return Ok(());
        };
        let old = dest.with_file_name(format!(
            "{}.old{PARTIAL}",
            dest.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let had_old = dest.exists();
        if had_old {
            remove_tree(&old)?;
            std::fs::rename(dest, &old)?;
        }
        if let Err(e) = std::fs::rename(&src, dest) {
            if had_old {
                let _ = std::fs::rename(&old, dest);
            }
            self.path = Some(src);
            return Err(e);
        }
        if had_old {
            remove_tree(&old)?;
        }
        Ok(())
    }
}

impl Drop for PartialTree {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = remove_tree(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tree_has_its_own_name_in_a_top_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = WorkDir::open(dir.path()).unwrap();
        let (a, b) = (w.partial("build").unwrap(), w.partial("build").unwrap());
        assert_ne!(a.path(), b.path());
        for t in [&a, &b] {
            let name = t.path().file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with("build.") && name.ends_with(PARTIAL),
                "{name}"
            );
        }
        // Where the filesystem has inode flags (ext4 does), the work dir carries +T.
        if let Some(flags) = inode_flags(&File::open(w.path()).unwrap()) {
            assert_ne!(flags & FS_TOPDIR_FL, 0, "flags {flags:#x}");
        }
    }

    #[test]
    fn a_second_run_on_the_same_work_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_w, _) = WorkDir::open(dir.path()).unwrap();
        let e = WorkDir::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("another pistemcell run"), "{e}");
    }

    #[test]
    fn partial_trees_vanish_unless_committed_and_leftovers_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (w, _) = WorkDir::open(dir.path()).unwrap();
            let t = w.partial("rootfs").unwrap();
            std::fs::write(t.path().join("f"), "x").unwrap();
            let kept = t.path().to_path_buf();
            drop(t);
            assert!(!kept.exists());

            let t = w.partial("rootfs").unwrap();
            std::fs::write(t.path().join("f"), "new").unwrap();
            std::fs::create_dir(dir.path().join("out")).unwrap();
            std::fs::write(dir.path().join("out/f"), "old").unwrap();
            t.commit(&dir.path().join("out")).unwrap();
            assert_eq!(
                std::fs::read_to_string(dir.path().join("out/f")).unwrap(),
                "new"
            );
            // A killed run's tree:
            std::fs::create_dir(dir.path().join(format!("x{PARTIAL}"))).unwrap();
        }
        let (_w, swept) = reopen(dir.path());
        assert_eq!(swept.len(), 1);
        assert!(!dir.path().join(format!("x{PARTIAL}")).exists());
        assert!(dir.path().join("out/f").exists());
    }

    /// Opens a work dir this test has just closed. Another test's child process may still
    /// hold the lock for a moment: a fork shares the lock's open file until the child execs,
    /// which closes it (close-on-exec).
    fn reopen(path: &Path) -> (WorkDir, Vec<PathBuf>) {
        for _ in 0..100 {
            match WorkDir::open(path) {
                Err(WorkDirError::Locked { .. }) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other.unwrap(),
            }
        }
        WorkDir::open(path).unwrap()
    }

    #[test]
    fn a_killed_image_writers_loop_device_and_scratch_dir_are_swept() {
        if !crate::rootfs::extract::is_root() || !crate::cmd::on_path("losetup") {
            eprintln!("SKIPPED: attaching a loop device needs root and losetup");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        owned::claim(dir.path(), owned::Kind::WorkDir).unwrap();
        let scratch = dir
            .path()
            .join("stemcells")
            .join(format!("{SCRATCH_PREFIX}abc"));
        std::fs::create_dir_all(&scratch).unwrap();
        let img = scratch.join("disk.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        // What a killed run leaves: a loop device on a file under the work dir.
        let lo = crate::image::loopdev::Loop::attach(&img, 1 << 20, 4 << 20).unwrap();
        let dev = lo.dev.clone();
        std::mem::forget(lo);
        let canon = dir.path().canonicalize().unwrap();
        assert_eq!(crate::image::loopdev::attached_under(&canon).len(), 1);
        let (_w, swept) = WorkDir::open(dir.path()).unwrap();
        assert!(swept.contains(&dev), "{swept:?}");
        assert!(crate::image::loopdev::attached_under(&canon).is_empty());
        assert!(!scratch.exists());
    }
}
