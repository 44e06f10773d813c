//! The stemcell's disk, as the boot test needs it: the raw image written once to scratch (the
//! stemcell itself is only read), its partitions, and the kernel and initramfs its boot
//! partition's `config.txt` names, read through the FAT filesystem without mounting it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::VmError;

/// The stemcell's image on scratch, with what the manifest says about it.
pub struct Disk {
    /// The raw disk image.
    pub image: PathBuf,
    /// `cloud_properties.architecture` (`armhf`, `arm64`).
    pub arch: String,
    /// `cloud_properties.infrastructure` (`bakery`, `raw`).
    pub infrastructure: String,
    /// The stemcell's name and version, for the report.
    pub name: String,
    /// The MBR disk identifier (PARTUUIDs are `ID-NN`).
    pub disk_id: u32,
    /// Partition 1 (boot, FAT): first byte and length.
    pub boot: (u64, u64),
    /// Partition 2 (root, ext4): first byte and length.
    pub root: (u64, u64),
}

impl Disk {
    /// The root partition's PARTUUID.
    pub fn root_partuuid(&self) -> String {
        format!("{:08x}-02", self.disk_id)
    }
}

fn bad(stemcell: &Path, msg: impl Into<String>) -> VmError {
    VmError::Stemcell {
        path: stemcell.to_path_buf(),
        msg: msg.into(),
    }
}

/// Reads `stemcell` (a .tgz): its manifest, and its `image` written raw to `dest`.
pub fn extract(stemcell: &Path, dest: &Path) -> Result<Disk, VmError> {
    let f = File::open(stemcell).map_err(|e| bad(stemcell, e.to_string()))?;
    let mut outer = tar::Archive::new(crate::untrusted::TarGuard::new(
        flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f)),
    ));
    let mut manifest: Option<crate::pack::stemcell::Manifest> = None;
    let mut wrote = false;
    let entries = outer
        .entries()
        .map_err(|e| bad(stemcell, format!("not a gzip tar: {e}")))?;
    for entry in entries {
        let mut e = entry.map_err(|e| bad(stemcell, e.to_string()))?;
        let name = crate::tarwrite::member_name(&e).map_err(|e| bad(stemcell, e.to_string()))?;
        if matches!(name.as_str(), "stemcell.MF" | "image") {
            // Only regular members, each once: a link or device named `image`, or a second
            // manifest after the first, is not a stemcell pistemcell reads.
            let kind = e.header().entry_type();
            if !(kind.is_file() || kind.is_gnu_sparse()) {
                return Err(bad(
                    stemcell,
                    format!("member {name} is not a regular file: not a stemcell boot-test reads"),
                ));
            }
            if (name == "image" && wrote) || (name == "stemcell.MF" && manifest.is_some()) {
                return Err(bad(stemcell, format!("member {name} appears twice")));
            }
        }
        match name.as_str() {
            "stemcell.MF" => {
                let text = read_manifest(&mut e).map_err(|m| bad(stemcell, m))?;
                manifest = Some(
                    serde_norway::from_str(&text)
                        .map_err(|e| bad(stemcell, format!("stemcell.MF: {e}")))?,
                );
            }
            "image" => {
                write_raw(&mut e, dest).map_err(|m| bad(stemcell, m))?;
                wrote = true;
            }
            _ => {}
        }
        crate::interrupt::check()?;
    }
    let m = manifest.ok_or_else(|| bad(stemcell, "no stemcell.MF: not a stemcell"))?;
    if !wrote {
        return Err(bad(stemcell, "no `image` member: not a stemcell"));
    }
    let cp = |k: &str| m.cloud_properties.get(k).cloned().unwrap_or_default();
    let name = format!("{} {}", m.name, m.version);
    partitions(dest, cp("architecture"), cp("infrastructure"), name)
        .map_err(|msg| bad(stemcell, msg))
}

/// Writes a stemcell's `image` (the file `bosh` extracted from the tarball: a `piimg` as is,
/// a `rawdisk` gzipped) raw to `dest`, and reads its partitions; `arch` and `infrastructure`
/// come from the stemcell's cloud properties.
pub fn import(
    image: &Path,
    dest: &Path,
    arch: &str,
    infrastructure: &str,
    name: &str,
) -> Result<Disk, VmError> {
    let bad = |msg: String| VmError::Stemcell {
        path: image.to_path_buf(),
        msg,
    };
    let mut f = crate::untrusted::open_regular(image).map_err(|e| bad(e.to_string()))?;
    write_raw(&mut f, dest).map_err(bad)?;
    partitions(dest, arch.into(), infrastructure.into(), name.into()).map_err(bad)
}

/// The Pi layout of the raw image at `dest`: partition 1 (boot) and 2 (root).
fn partitions(
    dest: &Path,
    arch: String,
    infrastructure: String,
    name: String,
) -> Result<Disk, String> {
    let mut sector = [0u8; 512];
    File::open(dest)
        .and_then(|mut img| img.read_exact(&mut sector))
        .map_err(|e| e.to_string())?;
    let (disk_id, parts) = crate::image::mbr::parse(&sector)
        .filter(|(_, p)| !p.is_empty())
        .ok_or("its image has no partition table")?;
    let part = |n: usize| parts.iter().find(|p| p.0 == n).map(|p| (p.2, p.3));
    let (Some(boot), Some(root)) = (part(1), part(2)) else {
        return Err(
            "its image lacks partition 1 (boot) or 2 (root); a VM boots the Pi layout".into(),
        );
    };
    Ok(Disk {
        image: dest.to_path_buf(),
        arch,
        infrastructure,
        name,
        disk_id,
        boot,
        root,
    })
}

/// The largest disk image boot-test unpacks (its logical size; zeros stay holes).
pub const IMAGE_MAX: u64 = 64 << 30;

/// Scratch space left free for everything else while the image is written.
const SCRATCH_RESERVE: u64 = 512 << 20;

/// Reads the manifest member under its size cap and nesting cap.
fn read_manifest(r: &mut impl Read) -> Result<String, String> {
    use crate::untrusted::{self, CappedRead, MANIFEST_MAX, YAML_DEPTH_MAX};
    let bytes = untrusted::read_stream_capped(r, MANIFEST_MAX).map_err(|e| match e {
        CappedRead::Io(e) => format!("stemcell.MF: {e}"),
        CappedRead::TooLarge => {
            format!("stemcell.MF: over the {MANIFEST_MAX}-byte limit for a manifest")
        }
    })?;
    let text = String::from_utf8(bytes).map_err(|_| "stemcell.MF: not UTF-8 text".to_string())?;
    untrusted::check_yaml_depth(&text, YAML_DEPTH_MAX).map_err(|e| format!("stemcell.MF: {e}"))?;
    Ok(text)
}

/// Writes the `image` member raw: as is (bakery's `piimg`), or gunzipped (raw's `rawdisk`). A
/// root filesystem tarball (warden) cannot boot. Zeros stay holes; the image's logical size is
/// capped at [`IMAGE_MAX`] and what it really writes at the scratch filesystem's free space.
fn write_raw(r: &mut impl Read, dest: &Path) -> Result<(), String> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).map_err(|e| format!("image: {e}"))?;
    let whole = std::io::Cursor::new(head).chain(r);
    let mut out = File::create(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let dir = dest.parent().unwrap_or(Path::new("."));
    let free = crate::untrusted::free_bytes(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let budget = free.saturating_sub(SCRATCH_RESERVE);
    let copy = |r: &mut dyn Read, out: &mut File| -> Result<(), String> {
        let mut buf = vec![0u8; 1 << 20];
        let (mut logical, mut written) = (0u64, 0u64);
        loop {
            crate::interrupt::check().map_err(|e| e.to_string())?;
            let n = r.read(&mut buf).map_err(|e| format!("image: {e}"))?;
            if n == 0 {
                return Ok(());
            }
            logical += n as u64;
            if logical > IMAGE_MAX {
                return Err(format!(
                    "image: larger than {IMAGE_MAX} bytes, the limit for a disk image boot-test unpacks"
                ));
            }
            // Runs of zeros stay holes: the image is mostly free space.
            if buf[..n].iter().all(|&b| b == 0) {
                out.seek(SeekFrom::Current(n as i64))
                    .map_err(|e| format!("{}: {e}", dest.display()))?;
            } else {
                written += n as u64;
                if written > budget {
                    return Err(format!(
                        "image: its data needs more scratch space than {} has free ({free} bytes, {SCRATCH_RESERVE} kept in reserve); free space there, or give the command another directory (boot-test: --work-dir; the CPI: its state_dir)",
                        dir.display()
                    ));
                }
                out.write_all(&buf[..n])
                    .map_err(|e| format!("{}: {e}", dest.display()))?;
            }
        }
    };
    if head == [0x1f, 0x8b] {
        let mut gz = flate2::read::MultiGzDecoder::new(whole);
        let mut block = [0u8; 512];
        gz.read_exact(&mut block)
            .map_err(|e| format!("image (gzip): {e}"))?;
        if &block[257..262] == b"ustar" {
            return Err("its image is a root filesystem tarball (warden): only disk stemcells (bakery, raw) boot".into());
        }
        let mut rest = std::io::Cursor::new(block).chain(gz);
        copy(&mut rest, &mut out)?;
    } else {
        let mut whole = whole;
        copy(&mut whole, &mut out)?;
    }
    let end = out
        .stream_position()
        .map_err(|e| format!("{}: {e}", dest.display()))?;
    out.set_len(end)
        .map_err(|e| format!("{}: {e}", dest.display()))
}

/// The boot files the firmware would load: the kernel and initramfs `config.txt` names.
pub struct BootFiles {
    /// The kernel's file name on the boot partition.
    pub kernel_name: String,
    /// The initramfs's file name.
    pub initramfs_name: String,
}

/// Copies the kernel and initramfs named by the boot partition's `config.txt` to `kernel` and
/// `initramfs`.
pub fn boot_files(disk: &Disk, kernel: &Path, initramfs: &Path) -> Result<BootFiles, VmError> {
    let err = |msg: String| VmError::BootPartition(msg);
    let f = File::open(&disk.image).map_err(|e| err(e.to_string()))?;
    let fs = fatfs::FileSystem::new(
        crate::image::fat::Window::new(&f, disk.boot.0, disk.boot.1),
        fatfs::FsOptions::new(),
    )
    .map_err(|e| err(format!("partition 1 is not a FAT filesystem: {e}")))?;
    let root = fs.root_dir();
    let mut config = String::new();
    root.open_file("config.txt")
        .and_then(|f| {
            f.take(crate::untrusted::SMALL_MAX)
                .read_to_string(&mut config)
        })
        .map_err(|e| err(format!("config.txt: {e}")))?;
    let (k, i) = crate::image::boot::config_settings(&config);
    let (Some(kernel_name), Some(initramfs_name)) = (k, i) else {
        return Err(err(
            "config.txt names no `kernel=` and `initramfs`: the boot test boots the kernel and initramfs the firmware would".into(),
        ));
    };
    for (name, to) in [(&kernel_name, kernel), (&initramfs_name, initramfs)] {
        let mut src = root
            .open_file(name)
            .map_err(|e| err(format!("{name} (named by config.txt): {e}")))?;
        let mut out = File::create(to).map_err(|e| err(format!("{}: {e}", to.display())))?;
        std::io::copy(&mut src, &mut out).map_err(|e| err(format!("{name}: {e}")))?;
    }
    Ok(BootFiles {
        kernel_name,
        initramfs_name,
    })
}

/// Whether a kernel (by its file name) is one of Debian's generic ARM flavours, which boot on
/// qemu's `virt` machine; the Raspberry Pi foundation's kernels (`kernel7.img`, …) do not.
pub fn boots_on_virt(kernel_name: &str) -> bool {
    [
        "-armmp",
        "-armmp-lpae",
        "-arm64",
        "-cloud-arm64",
        "-rt-armmp",
        "-rt-arm64",
    ]
    .iter()
    .any(|f| kernel_name.starts_with("vmlinuz-") && kernel_name.ends_with(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_kernels_boot_on_virt_and_pi_kernels_do_not() {
        assert!(boots_on_virt("vmlinuz-6.1.0-50-armmp"));
        assert!(boots_on_virt("vmlinuz-6.1.0-50-armmp-lpae"));
        assert!(boots_on_virt("vmlinuz-6.1.0-50-arm64"));
        assert!(!boots_on_virt("kernel7.img"));
        assert!(!boots_on_virt("kernel8.img"));
        assert!(!boots_on_virt("vmlinuz-6.1.0-rpi7-rpi-v8"));
    }
}
