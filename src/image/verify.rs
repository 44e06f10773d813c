//! Reading an image back before it is kept: its partition table, FAT boot sector and ext4
//! superblock ([`check`]), and, where the root was filled through the kernel, the filesystem
//! itself: every entry of the mounted partition is compared with the tree it was made from
//! (type, mode, owner, size, link target, device number and every byte), so an image is kept
//! only when it holds exactly the tree ([`same_tree`]).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::{io_err as io, mbr, ImageError, Layout};

/// Compares the tree at `src` with `mounted` (which may also hold `lost+found`); returns how
/// many entries were compared, or the first difference.
pub fn same_tree(src: &Path, mounted: &Path) -> Result<u64, ImageError> {
    let differ = |rel: &Path, what: String| ImageError::Check {
        path: mounted.join(rel),
        reason: format!(
            "the partition does not hold the tree {}: {what}",
            src.display()
        ),
    };
    let mut count = 0;
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let names = |dir: &Path| -> Result<Vec<std::ffi::OsString>, ImageError> {
            let mut v: Vec<_> = std::fs::read_dir(dir)
                .map_err(io("reading", dir))?
                .flatten()
                .map(|e| e.file_name())
                .collect();
            v.sort();
            Ok(v)
        };
        let a = names(&src.join(&rel))?;
        let mut b = names(&mounted.join(&rel))?;
        if rel.as_os_str().is_empty() && !a.iter().any(|n| n == "lost+found") {
            b.retain(|n| n != "lost+found");
        }
        if a != b {
            let missing: Vec<_> = a.iter().filter(|n| !b.contains(n)).collect();
            let extra: Vec<_> = b.iter().filter(|n| !a.contains(n)).collect();
            return Err(differ(
                &rel,
                format!("entries missing {missing:?}, unexpected {extra:?}"),
            ));
        }
        for name in a {
            let r = rel.join(&name);
            let (p, q) = (src.join(&r), mounted.join(&r));
            let m = std::fs::symlink_metadata(&p).map_err(io("reading", &p))?;
            let n = std::fs::symlink_metadata(&q).map_err(io("reading", &q))?;
            count += 1;
            let (ft, gt) = (m.file_type(), n.file_type());
            let kind = |t: std::fs::FileType| {
                (
                    t.is_dir(),
                    t.is_file(),
                    t.is_symlink(),
                    t.is_block_device(),
                    t.is_char_device(),
                    t.is_fifo(),
                    t.is_socket(),
                )
            };
            if kind(ft) != kind(gt) {
                return Err(differ(&r, "a different file type".into()));
            }
            if (m.mode(), m.uid(), m.gid()) != (n.mode(), n.uid(), n.gid()) {
                return Err(differ(
                    &r,
                    format!(
                        "mode/owner {:o} {}:{} instead of {:o} {}:{}",
                        n.mode(),
                        n.uid(),
                        n.gid(),
                        m.mode(),
                        m.uid(),
                        m.gid()
                    ),
                ));
            }
            if ft.is_dir() {
                stack.push(r);
            } else if ft.is_symlink() {
                let (x, y) = (std::fs::read_link(&p), std::fs::read_link(&q));
                if x.map_err(io("reading", &p))? != y.map_err(io("reading", &q))? {
                    return Err(differ(&r, "a different link target".into()));
                }
            } else if ft.is_block_device() || ft.is_char_device() {
                if m.rdev() != n.rdev() {
                    return Err(differ(&r, "a different device number".into()));
                }
            } else if ft.is_file() && (m.len() != n.len() || !same_bytes(&p, &q)?) {
                return Err(differ(
                    &r,
                    format!("{} bytes that differ from the tree's {}", n.len(), m.len()),
                ));
            }
        }
    }
    Ok(count)
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool, ImageError> {
    let mut x = std::fs::File::open(a).map_err(io("reading", a))?;
    let mut y = std::fs::File::open(b).map_err(io("reading", b))?;
    let (mut bx, mut by) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = read_full(&mut x, &mut bx).map_err(io("reading", a))?;
        let m = read_full(&mut y, &mut by).map_err(io("reading", b))?;
        if n != m || bx[..n] != by[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
pub fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Reads the image back: the table, the FAT boot sector and the ext4 superblock.
pub fn check(image: &Path, layout: &Layout, uuid: &str) -> Result<(), ImageError> {
    let bad = |reason: String| ImageError::Check {
        path: image.to_path_buf(),
        reason,
    };
    let mut f = File::open(image).map_err(io("reading", image))?;
    let mut sector = [0u8; 512];
    f.read_exact(&mut sector).map_err(io("reading", image))?;
    let (id, parts) = mbr::parse(&sector).ok_or_else(|| bad("no MBR signature".into()))?;
    let want = vec![
        (1, mbr::TYPE_FAT32_LBA, layout.boot.0, layout.boot.1),
        (2, mbr::TYPE_LINUX, layout.root.0, layout.root.1),
    ];
    if id != layout.disk_id || parts != want {
        return Err(bad(format!(
            "the partition table reads {id:08x} {parts:?}, expected {:08x} {want:?}",
            layout.disk_id
        )));
    }
    f.seek(SeekFrom::Start(layout.boot.0))
        .map_err(io("reading", image))?;
    f.read_exact(&mut sector).map_err(io("reading", image))?;
    if &sector[82..90] != b"FAT32   " || sector[510..512] != [0x55, 0xaa] {
        return Err(bad("partition 1 does not hold a FAT32 boot sector".into()));
    }
    let mut sb = [0u8; 1024];
    f.seek(SeekFrom::Start(layout.root.0 + 1024))
        .map_err(io("reading", image))?;
    f.read_exact(&mut sb).map_err(io("reading", image))?;
    if sb[56..58] != [0x53, 0xef] {
        return Err(bad("partition 2 does not hold an ext4 superblock".into()));
    }
    let hex: String = sb[104..120].iter().map(|b| format!("{b:02x}")).collect();
    if hex != uuid.replace('-', "") {
        return Err(bad(format!(
            "the root filesystem's UUID is {hex}, expected {uuid}"
        )));
    }
    Ok(())
}
