//! Fixed inode timestamps in an ext4 filesystem made by `mkfs.ext4 -d`. mke2fs takes each
//! inode's atime, ctime and mtime from the source tree: the atime moves whenever the tree is
//! read and the ctime is when the tree was made, so two builds of the same inputs give
//! different filesystems. E2FSPROGS_FAKE_TIME fixes only what mke2fs stamps itself. This
//! rewrites every used inode's times in place: mtime clamped to `SOURCE_DATE_EPOCH` (like
//! the tar writer), and atime, ctime and crtime set to it; then the inode checksum
//! (`metadata_csum`, CRC32C) is recomputed. Nothing else in the filesystem changes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{io_err as io, ImageError};

const MAGIC: u16 = 0xEF53;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
const BG_INODE_UNINIT: u16 = 0x1;

/// CRC32C (Castagnoli) update without the initial and final inversion, as ext4 chains it.
pub fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    for &b in data {
        crc = table[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// The layout facts the rewrite needs, read from the superblock.
struct Super {
    block: u64,
    inodes_per_group: u32,
    groups: u32,
    inode_size: usize,
    desc_size: usize,
    gdt_block: u64,
    csum_seed: Option<u32>,
}

fn read_super(f: &File, offset: u64, path: &Path) -> Result<Super, ImageError> {
    let mut sb = [0u8; 1024];
    f.read_exact_at(&mut sb, offset + 1024)
        .map_err(io("reading the ext4 superblock of", path))?;
    let bad = |reason: &str| ImageError::Check {
        path: path.to_path_buf(),
        reason: format!("fixing ext4 timestamps: {reason}"),
    };
    if u16_at(&sb, 56) != MAGIC {
        return Err(bad("no ext4 superblock"));
    }
    let log = u32_at(&sb, 24);
    if log > 6 {
        return Err(bad("impossible block size"));
    }
    let block = 1024u64 << log;
    let inodes_per_group = u32_at(&sb, 40);
    let inodes = u32_at(&sb, 0);
    let inode_size = u16_at(&sb, 88) as usize;
    if inodes_per_group == 0 || !(128..=4096).contains(&inode_size) {
        return Err(bad("impossible inode geometry"));
    }
    let incompat = u32_at(&sb, 96);
    let desc_size = if incompat & INCOMPAT_64BIT != 0 {
        (u16_at(&sb, 254) as usize).max(32)
    } else {
        32
    };
    let csum_seed = (u32_at(&sb, 100) & RO_COMPAT_METADATA_CSUM != 0).then(|| {
        if incompat & INCOMPAT_CSUM_SEED != 0 {
            u32_at(&sb, 0x270)
        } else {
            crc32c_update(!0, &sb[104..120])
        }
    });
    Ok(Super {
        block,
        inodes_per_group,
        groups: inodes.div_ceil(inodes_per_group),
        inode_size,
        desc_size,
        gdt_block: u64::from(u32_at(&sb, 20)) + 1,
        csum_seed,
    })
}

/// The checksum of inode `num` (`raw`, the whole on-disk inode) as ext4 computes it.
fn inode_csum(seed: u32, num: u32, raw: &[u8]) -> (u32, bool) {
    let gen = u32_at(raw, 0x64);
    let mut crc = crc32c_update(seed, &num.to_le_bytes());
    crc = crc32c_update(crc, &gen.to_le_bytes());
    let mut copy = raw.to_vec();
    copy[0x7C..0x7E].fill(0);
    let hi = raw.len() > 128 && u16_at(raw, 0x80) >= 4;
    if hi {
        copy[0x82..0x84].fill(0);
    }
    (crc32c_update(crc, &copy), hi)
}

/// Rewrites the times of one inode; returns whether it changed.
fn fix_inode(raw: &mut [u8], epoch: u32) -> bool {
    let before = raw.to_vec();
    let mtime = u32_at(raw, 16);
    let extra = if raw.len() > 128 {
        u16_at(raw, 0x80) as usize
    } else {
        0
    };
    // Epoch bits of mtime (post-2038) make it later than any epoch we take.
    let mtime_epoch_bits = if extra >= 0x0C {
        u32_at(raw, 0x88) & 3
    } else {
        0
    };
    let t = if mtime_epoch_bits != 0 || (mtime as i32) < 0 {
        epoch
    } else {
        mtime.min(epoch)
    };
    for off in [8, 12, 16] {
        raw[off..off + 4].copy_from_slice(&t.to_le_bytes());
    }
    // ctime_extra 0x84, mtime_extra 0x88, atime_extra 0x8C, crtime 0x90, crtime_extra 0x94.
    for (off, v) in [(0x84, 0), (0x88, 0), (0x8C, 0), (0x90, t), (0x94, 0)] {
        if 128 + extra >= off + 4 {
            raw[off..off + 4].copy_from_slice(&u32::to_le_bytes(v));
        }
    }
    raw != before.as_slice()
}

/// Normalises the inode times of the ext4 filesystem at `offset` in `path` (a partition
/// file, an image or a block device). Returns how many inodes changed.
pub fn normalise(path: &Path, offset: u64, epoch: u64) -> Result<usize, ImageError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("opening", path))?;
    let sb = read_super(&f, offset, path)?;
    let epoch = u32::try_from(epoch.min(i32::MAX as u64)).unwrap_or(i32::MAX as u32);
    let mut gdt = vec![0u8; sb.groups as usize * sb.desc_size];
    f.read_exact_at(&mut gdt, offset + sb.gdt_block * sb.block)
        .map_err(io("reading the ext4 group descriptors of", path))?;
    let mut bitmap = vec![0u8; sb.block as usize];
    let mut changed = 0;
    for g in 0..sb.groups as usize {
        let d = &gdt[g * sb.desc_size..(g + 1) * sb.desc_size];
        if u16_at(d, 0x12) & BG_INODE_UNINIT != 0 {
            continue;
        }
        let hi = |o: usize| {
            if sb.desc_size >= 64 {
                u64::from(u32_at(d, o))
            } else {
                0
            }
        };
        let bitmap_block = u64::from(u32_at(d, 4)) | hi(0x24) << 32;
        let table_block = u64::from(u32_at(d, 8)) | hi(0x28) << 32;
        f.read_exact_at(&mut bitmap, offset + bitmap_block * sb.block)
            .map_err(io("reading an ext4 inode bitmap of", path))?;
        let ipg = sb.inodes_per_group as usize;
        let mut table = vec![0u8; ipg * sb.inode_size];
        let table_at = offset + table_block * sb.block;
        f.read_exact_at(&mut table, table_at)
            .map_err(io("reading an ext4 inode table of", path))?;
        let mut dirty = false;
        for i in 0..ipg {
            if bitmap[i / 8] & (1 << (i % 8)) == 0 {
                continue;
            }
            let num = (g * ipg + i + 1) as u32;
            let raw = &mut table[i * sb.inode_size..(i + 1) * sb.inode_size];
            if let Some(seed) = sb.csum_seed {
                // Our checksum must agree with the one mke2fs wrote before we change anything.
                let (c, hi) = inode_csum(seed, num, raw);
                let stored = u32::from(u16_at(raw, 0x7C))
                    | if hi {
                        u32::from(u16_at(raw, 0x82)) << 16
                    } else {
                        0
                    };
                let want = if hi { c } else { c & 0xFFFF };
                if stored != want {
                    return Err(ImageError::Check {
                        path: path.to_path_buf(),
                        reason: format!(
                            "fixing ext4 timestamps: inode {num}'s checksum {stored:08x} is not the computed {want:08x}; the filesystem was left as mke2fs wrote it"
                        ),
                    });
                }
            }
            if !fix_inode(raw, epoch) {
                continue;
            }
            if let Some(seed) = sb.csum_seed {
                let (c, hi) = inode_csum(seed, num, raw);
                raw[0x7C..0x7E].copy_from_slice(&(c as u16).to_le_bytes());
                if hi {
                    raw[0x82..0x84].copy_from_slice(&((c >> 16) as u16).to_le_bytes());
                }
            }
            changed += 1;
            dirty = true;
        }
        if dirty {
            f.write_all_at(&table, table_at)
                .map_err(io("writing an ext4 inode table of", path))?;
        }
    }
    f.sync_all().map_err(io("writing", path))?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // CRC-32C("123456789") = e3069283 with the usual inversions.
        assert_eq!(!crc32c_update(!0, b"123456789"), 0xe306_9283);
    }

    #[test]
    fn times_are_clamped_and_the_rest_kept() {
        let mut raw = vec![0u8; 256];
        raw[0x80..0x82].copy_from_slice(&32u16.to_le_bytes());
        raw[16..20].copy_from_slice(&2_000_000_000u32.to_le_bytes()); // mtime after the epoch
        raw[8..12].copy_from_slice(&5u32.to_le_bytes());
        raw[4..8].copy_from_slice(&77u32.to_le_bytes()); // size stays
        assert!(fix_inode(&mut raw, 1_700_000_000));
        for off in [8, 12, 16, 0x90] {
            assert_eq!(u32_at(&raw, off), 1_700_000_000, "{off:#x}");
        }
        assert_eq!(u32_at(&raw, 4), 77);
        assert!(
            !fix_inode(&mut raw, 1_700_000_000),
            "a second pass changes nothing"
        );
        // An older mtime is kept, and every other time follows it.
        raw[16..20].copy_from_slice(&1_000u32.to_le_bytes());
        fix_inode(&mut raw, 1_700_000_000);
        assert_eq!(u32_at(&raw, 12), 1_000);
    }
}
