//! Reading a filesystem back through the kernel: every entry of the mounted partition is
//! compared with the tree it was made from (type, mode, owner, size, link target, device
//! number and every byte), so an image is kept only when it holds exactly the tree.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::{io_err as io, ImageError};

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
        let n = super::disk::read_full(&mut x, &mut bx).map_err(io("reading", a))?;
        let m = super::disk::read_full(&mut y, &mut by).map_err(io("reading", b))?;
        if n != m || bx[..n] != by[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}
