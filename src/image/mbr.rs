//! The MBR: disk identifier at 440, four 16-byte entries at 446, signature 55 aa at 510.
//! CHS fields hold the "beyond 8 GiB" marker (fe ff ff) that sfdisk and the Pi firmware
//! accept; only LBA start and length matter to Linux, kpartx and the firmware.

use super::{Layout, SECTOR};

/// FAT32 with LBA addressing: what the Pi firmware looks for on partition 1.
pub const TYPE_FAT32_LBA: u8 = 0x0c;
/// Linux.
pub const TYPE_LINUX: u8 = 0x83;

fn entry(kind: u8, start: u64, len: u64) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[0] = 0x00; // not active: neither the firmware nor kpartx uses the flag (as on Pi OS)
    e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[4] = kind;
    e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[8..12].copy_from_slice(&((start / SECTOR) as u32).to_le_bytes());
    e[12..16].copy_from_slice(&((len / SECTOR) as u32).to_le_bytes());
    e
}

/// Boot code: `cli; hlt; jmp $-1`, a PC that boots the card halts. The Pi firmware never
/// runs it. It must not be empty: parted, which the agent runs to add swap and data
/// partitions to the card, replaces an empty boot code and with it the disk identifier, and
/// the next boot then finds no `root=PARTUUID=ID-02`.
pub const BOOT_CODE: [u8; 4] = [0xfa, 0xf4, 0xeb, 0xfd];

/// The first sector of the image for `layout`.
pub fn mbr(layout: &Layout) -> [u8; 512] {
    let mut s = [0u8; 512];
    s[..BOOT_CODE.len()].copy_from_slice(&BOOT_CODE);
    s[440..444].copy_from_slice(&layout.disk_id.to_le_bytes());
    s[446..462].copy_from_slice(&entry(TYPE_FAT32_LBA, layout.boot.0, layout.boot.1));
    s[462..478].copy_from_slice(&entry(TYPE_LINUX, layout.root.0, layout.root.1));
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// One partition as read back: (number, type, first byte, length).
pub type Entry = (usize, u8, u64, u64);

/// Reads the disk identifier and the partitions back.
pub fn parse(sector: &[u8]) -> Option<(u32, Vec<Entry>)> {
    if sector.len() < 512 || sector[510..512] != [0x55, 0xaa] {
        return None;
    }
    let id = u32::from_le_bytes(sector[440..444].try_into().ok()?);
    let mut parts = Vec::new();
    for i in 0..4 {
        let e = &sector[446 + 16 * i..462 + 16 * i];
        let start = u64::from(u32::from_le_bytes(e[8..12].try_into().ok()?)) * SECTOR;
        let len = u64::from(u32::from_le_bytes(e[12..16].try_into().ok()?)) * SECTOR;
        if e[4] != 0 && len > 0 {
            parts.push((i + 1, e[4], start, len));
        }
    }
    Some((id, parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_back() {
        let l = Layout::new(0xdeadbeef, 256 << 20, 1 << 30);
        let s = mbr(&l);
        let (id, parts) = parse(&s).unwrap();
        assert_eq!(id, 0xdeadbeef);
        assert_eq!(
            parts,
            vec![
                (1, TYPE_FAT32_LBA, l.boot.0, l.boot.1),
                (2, TYPE_LINUX, l.root.0, l.root.1)
            ]
        );
    }

    /// What the agent does to a Pi's card at first boot: parted adds a partition. The disk
    /// identifier (and so the root's PARTUUID in cmdline.txt and fstab) must survive it.
    #[test]
    fn parted_keeps_the_disk_identifier() {
        let Some(parted) = crate::cmd::find_on_path("parted") else {
            eprintln!(
                "SKIPPED: no parted on PATH (the agent's partitioner; apt-get install parted)"
            );
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("card.img");
        let l = Layout::new(0x2673d8d1, 64 << 20, 64 << 20);
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(512 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&mbr(&l), 0).unwrap();
        drop(f);
        let st = std::process::Command::new(parted)
            .arg("-s")
            .arg(&img)
            .args(["unit", "B", "mkpart", "primary", "268435456", "536870911"])
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let first = std::fs::read(&img).unwrap()[..512].to_vec();
        let (id, parts) = parse(&first).unwrap();
        assert_eq!(id, 0x2673d8d1, "parted replaced the disk identifier");
        assert_eq!(parts.len(), 3);
        assert_eq!(&first[..4], &BOOT_CODE);
    }
}
