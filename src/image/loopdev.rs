//! The way with root: the root partition of the (already partitioned) image attached as its
//! own loop device by offset and size limit (this works where loop devices do not scan
//! partitions, as in containers), `mkfs.ext4 -d` onto the device, then mounted read-only and
//! compared with the tree through the kernel's own ext4. Loop devices and the mount are
//! guards: detached and unmounted on error, panic and Ctrl-C (a killed run's leftovers are
//! swept by the next one, see `sweep`).

use std::path::{Path, PathBuf};
use std::process::Command;

use sys_mount::{Mount, Unmount, UnmountFlags};

use super::{io_err as io, ImageError};

/// A loop device attached to part of a file; detached on drop.
pub struct Loop {
    /// The device (`/dev/loopN`).
    pub dev: PathBuf,
}

impl Loop {
    /// Attaches `len` bytes of `file` from `offset`.
    pub fn attach(file: &Path, offset: u64, len: u64) -> Result<Loop, ImageError> {
        let out = crate::cmd::run(
            Command::new("losetup")
                .args(["--find", "--show", "--offset"])
                .arg(offset.to_string())
                .arg("--sizelimit")
                .arg(len.to_string())
                .arg(file),
        )?;
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !dev.starts_with("/dev/loop") {
            return Err(ImageError::Layout(format!(
                "losetup printed `{dev}`, not a loop device"
            )));
        }
        Ok(Loop { dev: dev.into() })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// Loop devices whose backing file lies under `under` (a killed run's), with that file.
pub fn attached_under(under: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/block") else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path().join("loop/backing_file")) else {
            continue;
        };
        let file = text.trim_end_matches('\n');
        let file = file.strip_suffix(" (deleted)").unwrap_or(file);
        if Path::new(file).starts_with(under) {
            out.push((Path::new("/dev").join(&name), PathBuf::from(file)));
        }
    }
    out.sort();
    out
}

/// Detaches every loop device whose backing file lies under `under` (what a killed run
/// left; a device still mounted is detached as soon as it is unmounted). Returns the devices.
pub fn sweep(under: &Path) -> Vec<PathBuf> {
    attached_under(under)
        .into_iter()
        .map(|(dev, _)| {
            let _ = Command::new("losetup").arg("-d").arg(&dev).status();
            dev
        })
        .collect()
}

/// Fills the root partition of the image at `image` (`part`: offset and length) with the tree
/// at `root` through a loop device attached at the partition's offset: `mkfs.ext4 -d` writes
/// the tree onto the device (the same command and fixed times as the rootless way, so both
/// ways give the same bytes), then the partition is mounted read-only under `scratch`
/// (without journal replay: nothing is written) and compared with the tree entry by entry.
pub fn fill_root(
    image: &Path,
    part: (u64, u64),
    root: &Path,
    uuid: &str,
    epoch: u64,
    scratch: &Path,
) -> Result<(), ImageError> {
    let (offset, len) = part;
    let lo = Loop::attach(image, offset, len)?;
    crate::cmd::run(&mut super::ext4::mkfs_command(
        &lo.dev, len, root, uuid, epoch,
    ))
    .map_err(|e| super::ext4::mkfs_error(e, root, len))?;
    super::ext4_times::normalise(&lo.dev, 0, epoch)?;
    let mnt = scratch.join("root-mount");
    std::fs::create_dir_all(&mnt).map_err(io("creating", &mnt))?;
    let mount = Mount::builder()
        .fstype("ext4")
        .flags(sys_mount::MountFlags::RDONLY)
        .data("noload")
        .mount(&lo.dev, &mnt)
        .map_err(|source| ImageError::Io {
            what: "mounting the root partition on",
            path: mnt.clone(),
            source,
        })?
        .into_unmount_drop(UnmountFlags::DETACH);
    super::verify::same_tree(root, &mnt)?;
    drop(mount);
    drop(lo);
    Ok(())
}
