//! What `pistemcell audit PATH` can read: a rootfs directory, a disk image (MBR; its largest
//! Linux partition is mounted read-only through a loop device at its offset), a bare ext4
//! filesystem image, a rootfs tarball (.tar, .tgz) or a stemcell tgz (its `image` is opened
//! the same way). Whatever is mounted or unpacked is removed when the [`Opened`] is dropped.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tree ready to audit, with what keeps it there.
pub struct Opened {
    /// The root of the tree.
    pub root: PathBuf,
    /// What it came from, for messages (`disk image X, partition 2`).
    pub what: String,
    mount: Option<PathBuf>,
    _temp: Vec<tempfile::TempDir>,
}

impl Drop for Opened {
    fn drop(&mut self) {
        if let Some(m) = self.mount.take() {
            let _ = Command::new("umount").arg(&m).status();
        }
    }
}

/// Reads the MBR partition table of a disk image (`None` when there is none).
pub fn mbr_partitions(file: &mut File) -> std::io::Result<Option<Vec<crate::image::mbr::Entry>>> {
    let mut sector = [0u8; 512];
    file.seek(SeekFrom::Start(0))?;
    if file.read(&mut sector)? < 512 {
        return Ok(None);
    }
    // A FAT boot sector also ends in 55 aa: without partitions it is not a table.
    Ok(crate::image::mbr::parse(&sector)
        .map(|(_, parts)| parts)
        .filter(|p| !p.is_empty()))
}

fn is_ext4(file: &mut File) -> std::io::Result<bool> {
    let mut magic = [0u8; 2];
    file.seek(SeekFrom::Start(0x438))?;
    Ok(file.read(&mut magic)? == 2 && magic == [0x53, 0xef])
}

/// Opens `path` for auditing.
pub fn open(path: &Path) -> Result<Opened, String> {
    if path.is_dir() {
        return Ok(Opened {
            root: path.to_path_buf(),
            what: format!("directory {}", path.display()),
            mount: None,
            _temp: Vec::new(),
        });
    }
    let mut f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut head = [0u8; 512];
    let n = f
        .read(&mut head)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if n >= 2 && head[..2] == [0x1f, 0x8b] || n >= 262 && &head[257..262] == b"ustar" {
        return open_tarball(path);
    }
    if let Some(parts) = mbr_partitions(&mut f).map_err(|e| format!("{}: {e}", path.display()))? {
        let linux = parts
            .iter()
            .filter(|p| p.1 == 0x83)
            .max_by_key(|p| p.3)
            .ok_or_else(|| {
                format!(
                    "{}: the partition table has no Linux (type 83) partition",
                    path.display()
                )
            })?;
        return mount(
            path,
            linux.2,
            linux.3,
            format!("disk image {}, partition {}", path.display(), linux.0),
        );
    }
    if is_ext4(&mut f).map_err(|e| format!("{}: {e}", path.display()))? {
        let len = f.metadata().map_err(|e| e.to_string())?.len();
        return mount(path, 0, len, format!("filesystem image {}", path.display()));
    }
    Err(format!(
        "{}: not a directory, tarball, stemcell, MBR disk image or ext4 image",
        path.display()
    ))
}

fn mount(image: &Path, offset: u64, size: u64, what: String) -> Result<Opened, String> {
    if !crate::rootfs::extract::is_root() {
        return Err(format!("auditing {what} mounts it read-only through a loop device: run as root, or audit an unpacked rootfs directory"));
    }
    let dir = tempfile::Builder::new()
        .prefix("pistemcell-audit-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let st = Command::new("mount")
        .args([
            "-o",
            &format!("ro,loop,noload,offset={offset},sizelimit={size}"),
        ])
        .arg(image)
        .arg(dir.path())
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if !st.status.success() {
        return Err(format!(
            "mounting {what}: {}",
            String::from_utf8_lossy(&st.stderr).trim()
        ));
    }
    Ok(Opened {
        root: dir.path().to_path_buf(),
        what,
        mount: Some(dir.path().to_path_buf()),
        _temp: vec![dir],
    })
}

fn open_tarball(path: &Path) -> Result<Opened, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let reader = || -> Result<Box<dyn Read>, String> {
        let mut f = File::open(path).map_err(err)?;
        let mut magic = [0u8; 2];
        let n = f.read(&mut magic).map_err(err)?;
        f.seek(SeekFrom::Start(0)).map_err(err)?;
        Ok(if n == 2 && magic == [0x1f, 0x8b] {
            Box::new(flate2::read::MultiGzDecoder::new(f))
        } else {
            Box::new(f)
        })
    };
    // A stemcell holds stemcell.MF and an `image`: open the image.
    let mut archive = tar::Archive::new(reader()?);
    let mut is_stemcell = false;
    let tmp = tempfile::Builder::new()
        .prefix("pistemcell-audit-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    for entry in archive.entries().map_err(err)? {
        let mut entry = entry.map_err(err)?;
        let name = crate::pack::tarball::member_name(&entry).map_err(err)?;
        if name == "stemcell.MF" {
            is_stemcell = true;
        }
        if name == "image" {
            let dest = tmp.path().join("image");
            let mut out = File::create(&dest).map_err(err)?;
            std::io::copy(&mut entry, &mut out).map_err(err)?;
            let mut opened = open(&dest).map_err(|e| format!("the stemcell's image: {e}"))?;
            opened.what = format!("stemcell {} ({})", path.display(), opened.what);
            opened._temp.push(tmp);
            return Ok(opened);
        }
    }
    if is_stemcell {
        return Err(format!("{}: a stemcell without an `image`", path.display()));
    }
    let root = tmp.path().join("rootfs");
    std::fs::create_dir(&root).map_err(err)?;
    crate::rootfs::extract::extract_tar(
        tar::Archive::new(reader()?),
        &root,
        &path.display().to_string(),
    )
    .map_err(|e| e.to_string())?;
    Ok(Opened {
        root,
        what: format!("tarball {}", path.display()),
        mount: None,
        _temp: vec![tmp],
    })
}
