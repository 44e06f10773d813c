//! The copy-on-write overlay the VM boots: `qemu-img create -f qcow2 -b IMAGE -F raw`, so the
//! extracted image stays as the stemcell has it. The test's own files are written into the
//! overlay, not the image: qemu-storage-daemon exports the qcow2 as a plain file over FUSE,
//! its root partition is attached as a loop device at its offset and mounted, and the files
//! written. Every piece (daemon, FUSE mount, loop device, mount) is a guard released in order
//! on error, panic and Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sys_mount::{Mount, Unmount, UnmountFlags};

use super::VmError;
use crate::image::loopdev::Loop;

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> VmError {
    let msg = format!("{what} {}", path.display());
    move |e| VmError::Overlay(format!("{msg}: {e}"))
}

/// Creates `overlay` (qcow2) on top of the raw `image`; `size` (bytes) makes the disk larger
/// than the image, as an SD card is larger than what is written to it.
pub fn create(image: &Path, overlay: &Path, size: Option<u64>) -> Result<(), VmError> {
    crate::cmd::run(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(image)
            .arg(overlay)
            .args(size.map(|s| s.to_string())),
    )?;
    Ok(())
}

/// The SD card a raw image is written to: the smallest power of two (qemu's SD cards are)
/// that holds the image and `free` bytes more.
pub fn card_size(image_len: u64, free: u64) -> u64 {
    image_len.saturating_add(free).next_power_of_two()
}

/// The overlay exported as a raw file over FUSE by qemu-storage-daemon; stopped (and the FUSE
/// mount removed) on drop.
struct Export {
    child: Child,
    file: PathBuf,
}

impl Export {
    fn start(overlay: &Path, file: &Path) -> Result<Export, VmError> {
        std::fs::write(file, b"").map_err(io("creating", file))?;
        let mut cmd = Command::new("qemu-storage-daemon");
        cmd.arg("--blockdev")
            .arg(format!(
                "driver=file,node-name=file0,filename={}",
                overlay.display()
            ))
            .args(["--blockdev", "driver=qcow2,node-name=disk0,file=file0"])
            .arg("--export")
            .arg(format!(
                "type=fuse,id=exp0,node-name=disk0,mountpoint={},writable=on",
                file.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let argv = crate::cmd::argv_of(&cmd);
        let child = cmd
            .spawn()
            .map_err(|source| crate::cmd::CmdError::Spawn { argv, source })?;
        let mut export = Export {
            child,
            file: file.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !crate::rootfs::mounts::mounts_under(file).contains(&file.to_path_buf()) {
            if let Ok(Some(st)) = export.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = export.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(VmError::Overlay(format!(
                    "qemu-storage-daemon exited ({st}) before exporting the overlay: {}; it needs /dev/fuse (the fuse kernel module)",
                    err.trim()
                )));
            }
            if Instant::now() > deadline {
                return Err(VmError::Overlay(
                    "qemu-storage-daemon did not export the overlay within 20 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(export)
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        // SIGTERM: the daemon flushes the qcow2 and exits; then the FUSE mount goes.
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = sys_mount::unmount(&self.file, UnmountFlags::DETACH);
    }
}

/// The overlay's root partition, mounted read-write under the scratch dir until dropped.
pub struct MountedOverlay {
    /// Where the root partition is mounted.
    pub root: PathBuf,
    // Dropped in this order: the mount, the loop device, the export.
    mount: Option<sys_mount::UnmountDrop<Mount>>,
    lo: Option<Loop>,
    export: Export,
}

impl MountedOverlay {
    /// Exports `overlay` and mounts its root partition (`part`: first byte, length) at
    /// `scratch/root`.
    pub fn open(
        overlay: &Path,
        part: (u64, u64),
        scratch: &Path,
    ) -> Result<MountedOverlay, VmError> {
        let export = Export::start(overlay, &scratch.join("overlay.raw"))?;
        let lo = Loop::attach(&export.file, part.0, part.1)
            .map_err(|e| VmError::Overlay(format!("attaching the root partition: {e}")))?;
        let root = scratch.join("root");
        std::fs::create_dir_all(&root).map_err(io("creating", &root))?;
        let mount = Mount::builder()
            .fstype("ext4")
            .mount(&lo.dev, &root)
            .map_err(io("mounting the overlay's root partition on", &root))?
            .into_unmount_drop(UnmountFlags::empty());
        Ok(MountedOverlay {
            root,
            mount: Some(mount),
            lo: Some(lo),
            export,
        })
    }

    /// Writes `contents` to `rel` (relative to the root) with `mode`, creating directories,
    /// inside the image whatever its symlinks say (`inside::write`).
    pub fn write(&self, rel: &str, contents: &[u8], mode: u32) -> Result<(), VmError> {
        crate::inside::write(&self.root, rel, contents, mode)
            .map(|_| ())
            .map_err(|e| VmError::Overlay(format!("the image's /{rel}: {e}")))
    }

    /// Writes `contents` to `rel` inside the FAT boot partition (`part`: first byte, length),
    /// through the same export, creating directories.
    pub fn write_boot(&self, part: (u64, u64), rel: &str, contents: &[u8]) -> Result<(), VmError> {
        use std::io::Write;
        let file = &self.export.file;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(file)
            .map_err(io("opening", file))?;
        let bad = |e: std::io::Error| VmError::Overlay(format!("the boot partition's {rel}: {e}"));
        let fs = fatfs::FileSystem::new(
            crate::image::fat::Window::new(&f, part.0, part.1),
            fatfs::FsOptions::new(),
        )
        .map_err(bad)?;
        {
            let mut dir = fs.root_dir();
            let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
            let Some((name, dirs)) = parts.split_last() else {
                return Err(VmError::Overlay(format!("`{rel}` is not a file path")));
            };
            for d in dirs {
                dir = dir.create_dir(d).map_err(bad)?;
            }
            let mut out = dir.create_file(name).map_err(bad)?;
            out.truncate().map_err(bad)?;
            out.write_all(contents).map_err(bad)?;
        }
        fs.unmount().map_err(bad)
    }

    /// Writes the agent's settings to `path`, where the image's File settings source reads
    /// them: through the FAT boot partition (`boot`: first byte, length) when the image's fstab
    /// mounts it over that path, as a Pi's firmware partition is (raw); in the root filesystem
    /// otherwise (bakery's `/piConfig`). Readable by root only.
    pub fn write_settings(&self, boot: (u64, u64), path: &str, text: &[u8]) -> Result<(), VmError> {
        let on_fat = fat_mount_point(&self.root)
            .and_then(|mp| Some(path.strip_prefix(&mp)?.strip_prefix('/')?.to_string()));
        match on_fat {
            Some(rel) => self.write_boot(boot, &rel, text),
            None => self.write(path.trim_start_matches('/'), text, 0o600),
        }
    }

    /// Makes `rel` a symlink to `target`.
    pub fn symlink(&self, target: &str, rel: &str) -> Result<(), VmError> {
        // Written as a file first (inside the image), then replaced by the link.
        let p = crate::inside::write(&self.root, rel, b"", 0o644)
            .map_err(|e| VmError::Overlay(format!("the image's /{rel}: {e}")))?;
        std::fs::remove_file(&p).map_err(io("linking", &p))?;
        std::os::unix::fs::symlink(target, &p).map_err(io("linking", &p))
    }

    /// Unmounts, detaches and stops the export, reporting an unmount failure.
    pub fn close(mut self) -> Result<(), VmError> {
        // SAFETY: sync has no preconditions.
        unsafe { libc::sync() };
        drop(self.mount.take());
        if crate::rootfs::mounts::mounts_under(&self.root).contains(&self.root) {
            return Err(VmError::Overlay(format!(
                "could not unmount the overlay's root at {}",
                self.root.display()
            )));
        }
        drop(self.lo.take());
        Ok(())
    }
}

impl Drop for MountedOverlay {
    fn drop(&mut self) {
        drop(self.mount.take());
        drop(self.lo.take());
    }
}

/// The path the `File` settings source of an image's agent.json reads.
pub fn settings_path(agent_json: &serde_json::Value) -> Option<String> {
    agent_json["Infrastructure"]["Settings"]["Sources"]
        .as_array()?
        .iter()
        .find(|s| s["Type"] == "File")?["SettingsPath"]
        .as_str()
        .map(str::to_string)
}

/// Where the image's fstab mounts the FAT boot partition (`/boot/firmware`), if it does.
fn fat_mount_point(root: &Path) -> Option<String> {
    let fstab = crate::inside::read_text(root, "etc/fstab", crate::untrusted::SMALL_MAX, "fstab")
        .ok()
        .flatten()?;
    fstab.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 3 && !f[0].starts_with('#') && f[2] == "vfat")
            .then(|| f[1].trim_end_matches('/').to_string())
    })
}
