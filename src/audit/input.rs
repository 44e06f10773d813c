//! What `pistemcell audit PATH` (and `sbom`) can read: a rootfs directory, a disk image (MBR;
//! its largest Linux partition is mounted read-only through a loop device at its offset), a
//! bare ext4 filesystem image, a rootfs tarball (.tar, .tgz) or a stemcell tgz (its `image` is
//! opened the same way). Whatever is mounted or unpacked is removed when the [`Opened`] is
//! dropped; what a killed run left in TMPDIR is swept first (see [`scratch`]).
//!
//! A stemcell's `image` is classified from its first bytes before anything is written: gzip
//! is unpacked as a rootfs tarball (or, holding a disk image, copied sparse), an MBR or ext4
//! image is copied sparse (zero blocks as holes, free space checked), anything else is refused.

pub mod scratch;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::untrusted::{escape, escape_path};
use scratch::{Head, Scratch};

/// A tree ready to audit, with what keeps it there.
pub struct Opened {
    /// The root of the tree.
    pub root: PathBuf,
    /// What it came from, for messages (`disk image X, partition 2`).
    pub what: String,
    /// Scratch directories a killed run had left, removed before this one opened.
    pub swept: Vec<PathBuf>,
    mount: Option<PathBuf>,
    _temp: Vec<Scratch>,
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

/// Opens `path` for auditing, after sweeping what a killed run left in TMPDIR.
pub fn open(path: &Path) -> Result<Opened, String> {
    let swept = scratch::sweep_stale();
    let mut opened = open_unswept(path)?;
    opened.swept = swept;
    Ok(opened)
}

fn open_unswept(path: &Path) -> Result<Opened, String> {
    let shown = escape_path(path);
    let m = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if m.is_dir() {
        return Ok(Opened {
            root: path.to_path_buf(),
            what: format!("directory {shown}"),
            swept: Vec::new(),
            mount: None,
            _temp: Vec::new(),
        });
    }
    let mut f = crate::untrusted::open_regular(path).map_err(|e| e.to_string())?;
    let head = scratch::peek(&mut f, scratch::HEAD_LEN).map_err(|e| format!("{shown}: {e}"))?;
    match scratch::classify(&head) {
        Head::Gzip | Head::Tar => open_tarball(path),
        Head::Mbr | Head::Ext4 => open_disk(path, &mut f, &shown, Vec::new()),
        Head::Other => Err(format!(
            "{shown}: not a directory, tarball, stemcell, MBR disk image or ext4 image (it starts {})",
            scratch::head_hex(&head)
        )),
    }
}

/// Mounts the disk or filesystem image `path` (already known to be one); `temp` keeps the
/// scratch it lives in.
fn open_disk(path: &Path, f: &mut File, what: &str, temp: Vec<Scratch>) -> Result<Opened, String> {
    if let Some(parts) = mbr_partitions(f).map_err(|e| format!("{what}: {e}"))? {
        let linux = parts
            .iter()
            .filter(|p| p.1 == 0x83)
            .max_by_key(|p| p.3)
            .ok_or_else(|| {
                format!("{what}: the partition table has no Linux (type 83) partition")
            })?;
        return mount(
            path,
            linux.2,
            linux.3,
            format!("disk image {what}, partition {}", linux.0),
            temp,
        );
    }
    if is_ext4(f).map_err(|e| format!("{what}: {e}"))? {
        let len = f.metadata().map_err(|e| format!("{what}: {e}"))?.len();
        return mount(path, 0, len, format!("filesystem image {what}"), temp);
    }
    Err(format!(
        "{what}: neither an MBR disk image with partitions nor an ext4 image"
    ))
}

fn mount(
    image: &Path,
    offset: u64,
    size: u64,
    what: String,
    mut temp: Vec<Scratch>,
) -> Result<Opened, String> {
    if !crate::rootfs::extract::is_root() {
        return Err(format!("auditing {what} mounts it read-only through a loop device: run as root, or audit an unpacked rootfs directory"));
    }
    let dir = scratch::create("pistemcell-audit-")?;
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).map_err(|e| format!("{}: {e}", escape_path(&mnt)))?;
    let st = Command::new("mount")
        .args([
            "-o",
            &format!("ro,loop,noload,offset={offset},sizelimit={size}"),
        ])
        .arg(image)
        .arg(&mnt)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if !st.status.success() {
        return Err(format!(
            "mounting {what}: {}",
            escape(String::from_utf8_lossy(&st.stderr).trim())
        ));
    }
    // The mount is released before the scratch directories go (`Drop`, then the fields).
    temp.insert(0, dir);
    Ok(Opened {
        root: mnt.clone(),
        what,
        swept: Vec::new(),
        mount: Some(mnt),
        _temp: temp,
    })
}

/// Opens a disk image streamed from `r` (a stemcell's `image`, raw or already gunzipped):
/// classified from its first bytes, copied sparse into a new scratch directory named with
/// `prefix`, then mounted read-only. `what` names it in errors.
pub fn open_disk_stream(r: &mut dyn Read, prefix: &str, what: &str) -> Result<Opened, String> {
    let head = scratch::peek(r, scratch::HEAD_LEN).map_err(|e| format!("reading {what}: {e}"))?;
    if !matches!(scratch::classify(&head), Head::Mbr | Head::Ext4) {
        return Err(format!(
            "{what} is neither an MBR disk image nor an ext4 image (it starts {}); refused without copying it",
            scratch::head_hex(&head)
        ));
    }
    let tmp = scratch::create(prefix)?;
    let dest = tmp.path().join("image");
    scratch::copy_sparse(&mut std::io::Cursor::new(head).chain(r), &dest, what)?;
    let mut f = File::open(&dest).map_err(|e| format!("{}: {e}", escape_path(&dest)))?;
    let mut opened = open_disk(&dest, &mut f, what, vec![tmp])?;
    opened.what = format!("{what} ({})", opened.what);
    Ok(opened)
}

/// Unpacks the tar stream `r` (a rootfs) into a new scratch directory, under the safety rules
/// of `rootfs::extract` and the size limit and free-space checks of [`scratch::Budget`].
fn unpack_tree(r: &mut dyn Read, what: &str) -> Result<Opened, String> {
    let tmp = scratch::create("pistemcell-audit-")?;
    let root = tmp.path().join("rootfs");
    std::fs::create_dir(&root).map_err(|e| format!("{}: {e}", escape_path(&root)))?;
    let budget = scratch::Budget::new(r, &root, what);
    crate::rootfs::extract::extract_tar(
        tar::Archive::new(
            crate::untrusted::TarGuard::new(budget)
                .limit_entries(crate::untrusted::TREE_ENTRIES_MAX, "a rootfs tarball"),
        ),
        &root,
        what,
    )
    .map_err(|e| e.to_string())?;
    Ok(Opened {
        root,
        what: what.to_string(),
        swept: Vec::new(),
        mount: None,
        _temp: vec![tmp],
    })
}

/// A stemcell's `image` member, classified from its first bytes before anything is written.
fn open_image_member(r: &mut dyn Read, what: &str) -> Result<Opened, String> {
    match scratch::classify_image(r, what, true)? {
        scratch::ImageStream::Tree(mut t, label) => unpack_tree(&mut t, &label),
        scratch::ImageStream::Disk(mut d, label) => {
            open_disk_stream(&mut d, "pistemcell-audit-", &label)
        }
    }
}

fn open_tarball(path: &Path) -> Result<Opened, String> {
    let shown = escape_path(path);
    let err = |e: std::io::Error| format!("{shown}: {e}");
    let reader = || -> Result<Box<dyn Read>, String> {
        let mut f = crate::untrusted::open_regular(path).map_err(|e| e.to_string())?;
        let mut magic = [0u8; 2];
        let n = f.read(&mut magic).map_err(err)?;
        f.seek(SeekFrom::Start(0)).map_err(err)?;
        Ok(if n == 2 && magic == [0x1f, 0x8b] {
            Box::new(flate2::read::MultiGzDecoder::new(f))
        } else {
            Box::new(f)
        })
    };
    // A stemcell holds stemcell.MF and an `image`: open the image. Its members must be plain
    // regular files, each once; a rootfs tarball's entries go to the extractor's rules.
    let mut archive = tar::Archive::new(crate::untrusted::TarGuard::new(reader()?));
    let mut is_stemcell = false;
    let mut stemcell_members = crate::untrusted::members::Members::default();
    let mut pending: Option<String> = None;
    for entry in archive.entries().map_err(err)? {
        let mut entry = entry.map_err(err)?;
        let name = crate::untrusted::members::raw_name(&entry);
        let member = stemcell_members.check(&entry);
        if name == b"stemcell.MF" || name == b"image" {
            is_stemcell = true;
        }
        if is_stemcell {
            if let Some(e) = pending.take() {
                return Err(format!("stemcell {shown}: {e}"));
            }
            member.map_err(|e| format!("stemcell {shown}: {e}"))?;
        } else if let Err(e) = member {
            // Refused only once it is known to be a stemcell.
            pending.get_or_insert(e);
        }
        if name == b"image" {
            let t = entry.header().entry_type();
            if !t.is_file() && !t.is_gnu_sparse() {
                return Err(format!(
                    "stemcell {shown}: member `image` is not a regular file"
                ));
            }
            let mut opened =
                open_image_member(&mut entry, &format!("the `image` of stemcell {shown}"))?;
            opened.what = format!("stemcell {shown}: {}", opened.what);
            return Ok(opened);
        }
    }
    if is_stemcell {
        return Err(format!("{shown}: a stemcell without an `image` member"));
    }
    let mut opened = unpack_tree(&mut reader()?, &format!("tarball {shown}"))?;
    opened.what = format!("tarball {shown}");
    Ok(opened)
}
