//! The CPI's state directory: `stemcells/CID/`, `vms/CID/` and `disks/CID/`, each object a
//! directory with its own `meta.json`. The directory carries the CPI's marker (`owned`), and
//! every call holds its lock (`lock`, flock, waited for), so concurrent calls take turns.
//! An object is made under `.new-CID` (or, for a VM, with a `creating` file in it) and put in
//! place last: whatever a killed call left (half-made objects, a VM's qemu, the overlay's
//! export daemon, mounts and loop devices) is swept by the next call before it does anything.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Serialize};

use super::CpiError;

/// The three kinds of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An imported stemcell: its raw image, kernel and initramfs.
    Stemcell,
    /// A VM: its overlay, ephemeral disk, logs and qemu's pidfile.
    Vm,
    /// A persistent disk (qcow2).
    Disk,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Stemcell => "stemcells",
            Kind::Vm => "vms",
            Kind::Disk => "disks",
        }
    }
    /// The id's prefix: ids are short, since a disk's id is its virtio serial (20 bytes) and a
    /// VM's directory holds a unix socket (107 bytes).
    fn prefix(self) -> &'static str {
        match self {
            Kind::Stemcell => "sc-",
            Kind::Vm => "vm-",
            Kind::Disk => "disk-",
        }
    }
}

/// A half-made object's directory name starts with this.
const NEW: &str = ".new-";
/// A VM being created has this file in its directory.
pub const CREATING: &str = "creating";
/// Each object's record.
const META: &str = "meta.json";

/// The open, locked state directory.
pub struct Store {
    root: PathBuf,
    _lock: File,
}

impl Store {
    /// Claims (see `owned`) and locks `dir`, waiting for other calls, then sweeps what killed
    /// calls left. `log` gets a line for each leftover removed.
    pub fn open(dir: &Path, log: &mut dyn FnMut(String)) -> Result<Store, CpiError> {
        let root = crate::owned::claim(dir, crate::owned::Kind::CpiState)?;
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| CpiError::Io { path: p, source }
        };
        let lock_path = root.join("lock");
        let lock = File::create(&lock_path).map_err(io(&lock_path))?;
        // SAFETY: flock on a descriptor we own; blocks until other calls are done.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(CpiError::Io {
                path: lock_path,
                source: std::io::Error::last_os_error(),
            });
        }
        for k in [Kind::Stemcell, Kind::Vm, Kind::Disk] {
            let d = root.join(k.dir());
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        let store = Store { root, _lock: lock };
        store.sweep(log)?;
        Ok(store)
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stops what a killed call left running, then removes its mounts, loop devices and
    /// half-made objects. Never touches a VM that was created whole.
    fn sweep(&self, log: &mut dyn FnMut(String)) -> Result<(), CpiError> {
        // The overlay export daemons first (their FUSE mounts go with them), then the VMs
        // whose creation did not finish.
        for pid in export_daemons_under(&self.root) {
            // SAFETY: kill with a pid read from /proc that is a qemu-storage-daemon of ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            log(format!(
                "stopped a killed call's qemu-storage-daemon (pid {pid})"
            ));
        }
        let vms = self.root.join(Kind::Vm.dir());
        for e in std::fs::read_dir(&vms).into_iter().flatten().flatten() {
            if leftover(&e.path()) {
                crate::vm::detached::stop(&e.path(), std::time::Duration::from_secs(5))?;
            }
        }
        for m in crate::rootfs::mounts::sweep(&self.root)? {
            log(format!("unmounted a killed call's {}", m.display()));
        }
        for l in crate::image::loopdev::sweep(&self.root) {
            log(format!(
                "detached a killed call's loop device {}",
                l.display()
            ));
        }
        for k in [Kind::Stemcell, Kind::Vm, Kind::Disk] {
            let d = self.root.join(k.dir());
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if leftover(&e.path()) {
                    crate::workdir::remove_tree(&e.path()).map_err(|source| CpiError::Io {
                        path: e.path(),
                        source,
                    })?;
                    log(format!("removed a killed call's {}", e.path().display()));
                }
            }
        }
        Ok(())
    }

    /// A new id of `kind`.
    pub fn new_id(&self, kind: Kind) -> String {
        format!("{}{}", kind.prefix(), crate::vm::random_hex(6))
    }

    /// The directory of object `cid`, if `cid` is an id of `kind` that exists; a `cid` that is
    /// not one of ours (another prefix, `..`, a slash) is never looked up.
    pub fn find(&self, kind: Kind, cid: &str) -> Option<PathBuf> {
        let ours = cid.strip_prefix(kind.prefix()).is_some_and(|h| {
            !h.is_empty() && h.len() <= 32 && h.bytes().all(|b| b.is_ascii_hexdigit())
        });
        let dir = self.root.join(kind.dir()).join(cid);
        (ours && dir.join(META).is_file() && !dir.join(CREATING).exists()).then_some(dir)
    }

    /// A fresh directory for a new object `cid`, under its `.new-` name.
    pub fn staging(&self, kind: Kind, cid: &str) -> Result<PathBuf, CpiError> {
        let d = self.root.join(kind.dir()).join(format!("{NEW}{cid}"));
        std::fs::create_dir(&d).map_err(|source| CpiError::Io {
            path: d.clone(),
            source,
        })?;
        Ok(d)
    }

    /// Puts a staged object in place under its id.
    pub fn commit(&self, kind: Kind, staged: &Path, cid: &str) -> Result<PathBuf, CpiError> {
        let to = self.root.join(kind.dir()).join(cid);
        std::fs::rename(staged, &to).map_err(|source| CpiError::Io {
            path: to.clone(),
            source,
        })?;
        Ok(to)
    }

    /// Every object of `kind` that exists whole, by id.
    pub fn all(&self, kind: Kind) -> Vec<(String, PathBuf)> {
        let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(self.root.join(kind.dir()))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let id = e.file_name().to_str()?.to_string();
                let dir = self.find(kind, &id)?;
                Some((id, dir))
            })
            .collect();
        out.sort();
        out
    }

    /// Removes an object's directory.
    pub fn remove(&self, dir: &Path) -> Result<(), CpiError> {
        crate::workdir::remove_tree(dir).map_err(|source| CpiError::Io {
            path: dir.to_path_buf(),
            source,
        })
    }
}

/// Whether an object's directory is what a killed call left: staged under `.new-`, marked
/// `creating`, or without its record (killed before it was written). Asked only under the lock,
/// when no other call is making anything.
fn leftover(dir: &Path) -> bool {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    name.starts_with(NEW) || dir.join(CREATING).exists() || !dir.join(META).is_file()
}

/// Reads an object's record.
pub fn read_meta<T: DeserializeOwned>(dir: &Path) -> Result<T, CpiError> {
    let p = dir.join(META);
    let bytes = crate::untrusted::read_capped(&p, crate::untrusted::SMALL_MAX, "a CPI record")
        .map_err(|e| CpiError::State(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| CpiError::State(format!("{}: {e}", p.display())))
}

/// Writes an object's record whole (a temp file renamed).
pub fn write_meta<T: Serialize>(dir: &Path, meta: &T) -> Result<(), CpiError> {
    let p = dir.join(META);
    let text = serde_json::to_vec_pretty(meta).map_err(|e| CpiError::State(e.to_string()))?;
    crate::atomic::write(&p, &text).map_err(|source| CpiError::Io { path: p, source })
}

/// The pids of qemu-storage-daemon processes whose command line names a path under `root`.
fn export_daemons_under(root: &Path) -> Vec<i32> {
    let needle = format!("{}/", root.display());
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let mut args = cmdline.split(|b| *b == 0);
        let daemon = args
            .next()
            .and_then(|a| a.rsplit(|b| *b == b'/').next())
            .is_some_and(|exe| exe == b"qemu-storage-daemon");
        if daemon && String::from_utf8_lossy(&cmdline).contains(&needle) {
            pids.push(pid);
        }
    }
    pids
}
