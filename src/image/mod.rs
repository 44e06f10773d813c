//! Raspberry Pi disk images: an MBR with partition 1 FAT32 (the firmware's boot partition)
//! and partition 2 ext4 (the root), laid out like Raspberry Pi OS images (4 MiB aligned,
//! types `0c` and `83`, PARTUUIDs `DISKID-01`/`-02`), which is what Bakery's `kpartx -av`
//! and the Pi firmware read.
//!
//! This is the rootless way: each partition is made as a file (`mkfs.ext4 -d` for the root,
//! the `fatfs` crate for the boot partition) and spliced into a sparse image at its offset,
//! behind an MBR written here. Every id is derived from the stemcell's name and version and
//! every timestamp is fixed, so the same tree gives the same image.
//!
//! - `mbr`: the partition table;
//! - `fat`: the boot partition;
//! - `ext4`: the root partition, and `ext4_times` its fixed inode times;
//! - `boot`: the boot files the firmware needs;
//! - `disk`: putting them together, and reading an image back.

pub mod boot;
pub mod disk;
pub mod ext4;
pub mod ext4_times;
pub mod fat;
pub mod loopdev;
pub mod mbr;
pub mod verify;

use std::path::PathBuf;

/// Errors making an image; each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The destination is not ours to replace (a device, FIFO, directory, symlink).
    #[error(transparent)]
    Owned(#[from] crate::owned::OwnedError),
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A host tool failed or is missing.
    #[error(transparent)]
    Cmd(#[from] crate::cmd::CmdError),
    /// The tree does not fit, or the layout is impossible.
    #[error("{0}")]
    Layout(String),
    /// The tree's boot directory lacks what the Pi firmware needs.
    #[error("the boot directory {boot_dir} ({dir}) cannot boot a Pi: missing {missing}. The profile's boot stages put the firmware and kernel there (Debian: 05-boot-firmware and 06-boot-kernel-ARCH, and 54-initramfs the initramfs); a profile without them needs a stage that installs its board's kernel and firmware packages (README \"Boot files\")")]
    Boot {
        /// The directory in the tree.
        dir: PathBuf,
        /// Where the image mounts it (`/boot/firmware`).
        boot_dir: String,
        /// Everything missing.
        missing: String,
    },
    /// An image read back is not what was written.
    #[error("checking {path}: {reason}")]
    Check {
        /// The image.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Maps an I/O error on `path` to [`ImageError::Io`].
pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl Fn(std::io::Error) -> ImageError + 'a {
    move |source| ImageError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Bytes per sector.
pub const SECTOR: u64 = 512;
/// Partitions start on 4 MiB boundaries, like Raspberry Pi OS images.
pub const ALIGN: u64 = 4 * 1024 * 1024;

/// Where the partitions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The disk identifier (PARTUUIDs are `{id:08x}-01` and `-02`).
    pub disk_id: u32,
    /// Boot partition: first byte and length.
    pub boot: (u64, u64),
    /// Root partition: first byte and length.
    pub root: (u64, u64),
}

impl Layout {
    /// The layout for a boot partition of `boot_bytes` and a root partition of `root_bytes`
    /// (each rounded up to the alignment).
    pub fn new(disk_id: u32, boot_bytes: u64, root_bytes: u64) -> Layout {
        let up = |n: u64| n.div_ceil(ALIGN) * ALIGN;
        let boot = (ALIGN, up(boot_bytes));
        let root = (boot.0 + boot.1, up(root_bytes));
        Layout {
            disk_id,
            boot,
            root,
        }
    }

    /// The image's total size.
    pub fn total(&self) -> u64 {
        self.root.0 + self.root.1
    }

    /// The PARTUUID of partition `n` (1 or 2).
    pub fn partuuid(&self, n: u8) -> String {
        format!("{:08x}-{n:02}", self.disk_id)
    }
}

/// A stable 32-bit id from `seed` (non-zero: Linux ignores a zero disk identifier).
pub fn id_from(seed: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(seed.as_bytes());
    u32::from_le_bytes([d[0], d[1], d[2], d[3]]).max(1)
}

/// A stable UUID (RFC 4122 version 4 layout) from `seed`.
pub fn uuid_from(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut b: [u8; 16] = Sha256::digest(seed.as_bytes())[..16]
        .try_into()
        .unwrap_or([1; 16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_aligned_and_ids_stable() {
        let l = Layout::new(0x1234abcd, 256 << 20, (700 << 20) + 1);
        assert_eq!(l.boot, (4 << 20, 256 << 20));
        assert_eq!(l.root.0, 260 << 20);
        assert_eq!(l.root.1, 704 << 20);
        assert_eq!(l.partuuid(2), "1234abcd-02");
        assert_eq!(id_from("a"), id_from("a"));
        assert_ne!(id_from("a"), id_from("b"));
        let u = uuid_from("x");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
