//! The way with root: each partition of the (already partitioned) image attached as its own
//! loop device by offset and size limit (this works where loop devices do not scan
//! partitions, as in containers), the FAT32 written onto the boot device, `mkfs.ext4` on the
//! root device, which is mounted and filled with the tree through the project's own tar
//! writer and extractor. Loop devices and the mount are guards: detached and unmounted on
//! error, panic and Ctrl-C (a killed run's leftovers are swept by the next one).

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

/// Fills the root partition of the image at `image` (`offset`, `len`) with the tree at
/// `root`: mkfs.ext4 on a loop device, mounted under `scratch`, the tree copied in.
pub fn fill_root(
    image: &Path,
    offset: u64,
    len: u64,
    root: &Path,
    uuid: &str,
    scratch: &Path,
) -> Result<(), ImageError> {
    let lo = Loop::attach(image, offset, len)?;
    crate::cmd::run(
        Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-t",
                "ext4",
                "-b",
                "4096",
                "-L",
                super::ext4::LABEL,
                "-U",
                uuid,
            ])
            .arg("-E")
            .arg(format!("hash_seed={uuid},root_owner=0:0"))
            .arg(&lo.dev),
    )?;
    let mnt = scratch.join("root-mount");
    std::fs::create_dir_all(&mnt).map_err(io("creating", &mnt))?;
    let mount = Mount::builder()
        .fstype("ext4")
        .mount(&lo.dev, &mnt)
        .map_err(|source| ImageError::Io {
            what: "mounting the root partition on",
            path: mnt.clone(),
            source,
        })?
        .into_unmount_drop(UnmountFlags::DETACH);
    // The tree goes through the project's tar writer into its extractor: owners, modes,
    // xattrs, device nodes, hard links and holes arrive as they are.
    let (reader, writer) = std::io::pipe().map_err(io("creating a pipe for", root))?;
    let src = root.to_path_buf();
    let producer = std::thread::spawn(move || {
        let mut builder = tar::Builder::new(std::io::BufWriter::new(writer));
        crate::pipeline::tarwrite::write_tree(&src, &mut builder).map_err(|e| e.to_string())?;
        builder.into_inner().map(drop).map_err(|e| e.to_string())
    });
    let extracted = crate::rootfs::extract::extract_tar(
        tar::Archive::new(reader),
        &mnt,
        &root.display().to_string(),
    );
    let produced = producer
        .join()
        .map_err(|_| ImageError::Layout("the tar writer thread panicked".into()))?;
    produced.map_err(ImageError::Layout)?;
    extracted.map_err(|e| {
        ImageError::Layout(format!(
            "copying {} into the root partition: {e}",
            root.display()
        ))
    })?;
    // lost+found stays, as mkfs.ext4 -d leaves it. Unmount, then detach (which flushes).
    drop(mount);
    drop(lo);
    Ok(())
}
