//! The mounts a chroot needs (`/proc`, `/sys`, a private `/dev` with `/dev/pts`), held as
//! RAII guards, and the sweep that unmounts what a killed run left behind.
//!
//! `/dev` is a fresh tmpfs populated with the few nodes maintainer scripts use, never a bind
//! mount of the host's `/dev`: nothing a script does there reaches the host's devices, and
//! nothing is left in the rootfs once the tmpfs is unmounted.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sys_mount::{Mount, MountFlags, Unmount, UnmountDrop, UnmountFlags};

/// Errors mounting or unmounting.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A mount failed.
    #[error("cannot mount {fstype} on {target}: {source} (mounting needs root: run as root, see `pistemcell doctor`)")]
    Mount {
        /// The filesystem type.
        fstype: String,
        /// The mount point.
        target: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Preparing a mount point or device node failed.
    #[error("cannot prepare {path} in the rootfs: {source}")]
    Prepare {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Unmounting a leftover mount failed.
    #[error("cannot unmount leftover {path}: {source}; unmount it by hand (`umount -l {path}`)")]
    Sweep {
        /// The mount point.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The mounts of one chroot session; everything is unmounted (in reverse order) on drop.
pub struct ChrootMounts {
    guards: Vec<UnmountDrop<Mount>>,
    root: PathBuf,
}

impl std::fmt::Debug for ChrootMounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ChrootMounts({}, {} mounts)",
            self.root.display(),
            self.guards.len()
        )
    }
}

/// Character devices created in the private /dev: (name, mode, major, minor).
const DEVICES: &[(&str, u32, u32, u32)] = &[
    ("null", 0o666, 1, 3),
    ("zero", 0o666, 1, 5),
    ("full", 0o666, 1, 7),
    ("random", 0o666, 1, 8),
    ("urandom", 0o666, 1, 9),
    ("tty", 0o666, 5, 0),
    ("console", 0o600, 5, 1),
];

/// Symlinks created in the private /dev: (name, target).
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

impl ChrootMounts {
    /// Mounts proc, sysfs, a tmpfs /dev with basic nodes, and devpts under `root`.
    pub fn setup(root: &Path) -> Result<ChrootMounts, MountError> {
        let mut me = ChrootMounts {
            guards: Vec::new(),
            root: root.to_path_buf(),
        };
        let nosuid = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
        me.mount("proc", "proc", "proc", nosuid, None)?;
        me.mount("sysfs", "sysfs", "sys", nosuid | MountFlags::RDONLY, None)?;
        me.mount(
            "tmpfs",
            "pistemcell-dev",
            "dev",
            MountFlags::NOSUID | MountFlags::NOEXEC,
            Some("mode=0755"),
        )?;
        let dev = root.join("dev");
        for (name, mode, major, minor) in DEVICES {
            let p = dev.join(name);
            mknod_char(&p, *mode, *major, *minor)
                .map_err(|source| MountError::Prepare { path: p, source })?;
        }
        for (name, target) in DEV_LINKS {
            let p = dev.join(name);
            std::os::unix::fs::symlink(target, &p)
                .map_err(|source| MountError::Prepare { path: p, source })?;
        }
        for d in ["pts", "shm"] {
            let p = dev.join(d);
            std::fs::create_dir(&p).map_err(|source| MountError::Prepare { path: p, source })?;
        }
        me.mount(
            "devpts",
            "devpts",
            "dev/pts",
            MountFlags::NOSUID | MountFlags::NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )?;
        Ok(me)
    }

    fn mount(
        &mut self,
        fstype: &str,
        source: &str,
        rel: &str,
        flags: MountFlags,
        data: Option<&str>,
    ) -> Result<(), MountError> {
        let target = self.root.join(rel);
        if !target.is_dir() {
            std::fs::create_dir_all(&target).map_err(|source| MountError::Prepare {
                path: target.clone(),
                source,
            })?;
        }
        let mut b = Mount::builder().fstype(fstype).flags(flags);
        if let Some(d) = data {
            b = b.data(d);
        }
        let m = b
            .mount(source, &target)
            .map_err(|source| MountError::Mount {
                fstype: fstype.into(),
                target: target.clone(),
                source,
            })?;
        self.guards.push(m.into_unmount_drop(UnmountFlags::DETACH));
        Ok(())
    }
}

impl Drop for ChrootMounts {
    fn drop(&mut self) {
        while let Some(g) = self.guards.pop() {
            drop(g);
        }
    }
}

fn mknod_char(path: &Path, mode: u32, major: u32, minor: u32) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: `c` is a valid NUL-terminated path; mknod has no other memory effects.
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | mode, dev) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // mknod applies the umask; set the mode exactly.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
}

/// Mount points at or below `under`, deepest first, read from /proc/self/mountinfo.
pub fn mounts_under(under: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(under))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts (lazily) everything mounted at or below `under`; returns what was unmounted.
pub fn sweep(under: &Path) -> Result<Vec<PathBuf>, MountError> {
    let mut done = Vec::new();
    for p in mounts_under(under) {
        sys_mount::unmount(&p, UnmountFlags::DETACH).map_err(|source| MountError::Sweep {
            path: p.clone(),
            source,
        })?;
        done.push(p);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn chroot_mounts_are_released_on_drop_and_swept_after_a_leak() {
        if !is_root() {
            eprintln!("skipped: mounting needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        {
            let m = ChrootMounts::setup(&root).unwrap();
            assert!(root.join("proc/self").exists());
            assert!(root.join("dev/null").exists());
            assert_eq!(mounts_under(dir.path()).len(), 4, "{m:?}");
        }
        assert!(
            mounts_under(dir.path()).is_empty(),
            "guards must unmount on drop"
        );
        assert!(
            !root.join("dev/null").exists(),
            "the private /dev leaves nothing behind"
        );

        // A killed run leaks its mounts: the sweep removes them.
        std::mem::forget(ChrootMounts::setup(&root).unwrap());
        assert_eq!(mounts_under(dir.path()).len(), 4);
        assert_eq!(sweep(dir.path()).unwrap().len(), 4);
        assert!(mounts_under(dir.path()).is_empty());
    }
}
