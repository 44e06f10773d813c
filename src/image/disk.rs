//! Putting an image together: the partition files are made beside the destination, spliced
//! into a sparse image behind the MBR (all-zero chunks are skipped, so the image stays
//! sparse), read back and checked (`verify`), and only then renamed to the destination.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use super::{ext4, fat, io_err as io, mbr, uuid_from, ImageError, Layout};

/// What the image is made of.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// Seeds the disk identifier and UUIDs (the stemcell's name and version).
    pub seed: String,
    /// The boot partition's size in bytes.
    pub boot_bytes: u64,
    /// The root partition's size in bytes (`None`: from the tree's size).
    pub root_bytes: Option<u64>,
    /// Filesystem timestamps (`SOURCE_DATE_EPOCH`).
    pub epoch: u64,
    /// Where the tree keeps the firmware's files (copied to the boot partition).
    pub boot_dir: String,
    /// `cmdline.txt` (default: root on partition 2 by PARTUUID, see [`cmdline`]).
    pub cmdline: Option<String>,
    /// `/etc/fstab` (default: both partitions by PARTUUID, see [`fstab`]).
    pub fstab: Option<String>,
    /// How the root partition is filled.
    pub method: Method,
}

/// How the root partition is filled; both give the same files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `mkfs.ext4 -d` on a partition file spliced into the image: no root, no loop device.
    Rootless,
    /// A loop device at the partition's offset, `mkfs.ext4`, mount, copy (needs root).
    Loop,
}

impl Method {
    /// Loop devices when running as root, else the rootless way.
    pub fn default_for_host() -> Method {
        if crate::rootfs::extract::is_root() {
            Method::Loop
        } else {
            Method::Rootless
        }
    }
}

/// `/etc/fstab` for `layout`: root and boot by PARTUUID.
pub fn fstab(layout: &Layout, boot_dir: &str) -> String {
    format!(
        "# Written by pistemcell: the image's partitions by PARTUUID.\nPARTUUID={} / ext4 defaults,noatime 0 1\nPARTUUID={} {boot_dir} vfat defaults 0 2\n",
        layout.partuuid(2),
        layout.partuuid(1)
    )
}

/// The kernel command line for `layout`.
pub fn cmdline(layout: &Layout) -> String {
    format!(
        "console=serial0,115200 console=tty1 root=PARTUUID={} rootfstype=ext4 fsck.repair=yes rootwait\n",
        layout.partuuid(2)
    )
}

/// Makes the disk image `dest` from the tree at `root` (whose `/etc/fstab` is written for the
/// image). Returns the layout.
pub fn build(root: &Path, dest: &Path, opts: &ImageOptions) -> Result<Layout, ImageError> {
    crate::owned::check_destination(dest)?;
    let root_bytes = match opts.root_bytes {
        Some(b) => b,
        None => ext4::size_for(root)?,
    };
    let layout = Layout::new(super::id_from(&opts.seed), opts.boot_bytes, root_bytes);
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let scratch = tempfile::Builder::new()
        .prefix(".pistemcell-image-")
        .tempdir_in(dir)
        .map_err(io("creating a scratch dir in", dir))?;
    let etc = root.join("etc");
    let fstab_path = etc.join("fstab");
    let want = opts
        .fstab
        .clone()
        .unwrap_or_else(|| fstab(&layout, &opts.boot_dir));
    // Rewritten only when it differs: an unchanged tree keeps its ctimes (ext4 stores them).
    // Read and written inside the tree: an `etc/fstab` symlink to the host's is replaced, never
    // followed.
    let current = crate::inside::read(root, "etc/fstab", crate::untrusted::SMALL_MAX, "fstab")
        .ok()
        .flatten();
    if etc.is_dir() && current.as_deref() != Some(want.as_bytes()) {
        crate::inside::write(root, "etc/fstab", want.as_bytes(), 0o644)
            .map_err(|e| io("writing", &fstab_path)(std::io::Error::other(e.to_string())))?;
    }
    let boot_part = scratch.path().join("boot.vfat");
    let boot_files = root.join(opts.boot_dir.trim_start_matches('/'));
    let line = opts.cmdline.clone().unwrap_or_else(|| cmdline(&layout));
    let mut extra: Vec<(&str, Vec<u8>)> = vec![("cmdline.txt", line.into_bytes())];
    if !boot_files.join("config.txt").is_file() {
        extra.push((
            "config.txt",
            b"# Written by pistemcell.\n[all]\nenable_uart=1\n".to_vec(),
        ));
    }
    fat::make(
        &boot_part,
        layout.boot.1,
        layout.disk_id,
        Some(&boot_files),
        &extra,
    )?;
    let uuid = uuid_from(&format!("{}/rootfs", opts.seed));
    let root_part = scratch.path().join("root.ext4");
    if opts.method == Method::Rootless {
        ext4::make(&root_part, layout.root.1, root, &uuid, opts.epoch)?;
    }

    let tmp = scratch.path().join("disk.img");
    let mut img = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io("creating", &tmp))?;
    img.set_len(layout.total()).map_err(io("sizing", &tmp))?;
    img.write_all(&mbr::mbr(&layout))
        .map_err(io("writing", &tmp))?;
    splice(&boot_part, &mut img, layout.boot.0, &tmp)?;
    match opts.method {
        Method::Rootless => splice(&root_part, &mut img, layout.root.0, &tmp)?,
        Method::Loop => {
            img.sync_all().map_err(io("writing", &tmp))?;
            super::loopdev::fill_root(
                &tmp,
                (layout.root.0, layout.root.1),
                root,
                &uuid,
                opts.epoch,
                scratch.path(),
            )?;
        }
    }
    img.sync_all().map_err(io("writing", &tmp))?;
    super::verify::check(&tmp, &layout, &uuid)?;
    crate::owned::check_destination(dest)?;
    std::fs::rename(&tmp, dest).map_err(io("moving the image to", dest))?;
    Ok(layout)
}

/// Copies `part` into `img` at `offset`, leaving all-zero chunks as holes.
fn splice(part: &Path, img: &mut File, offset: u64, img_path: &Path) -> Result<(), ImageError> {
    let mut f = File::open(part).map_err(io("reading", part))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = offset;
    loop {
        let n = super::verify::read_full(&mut f, &mut buf).map_err(io("reading", part))?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n].iter().any(|&b| b != 0) {
            img.seek(SeekFrom::Start(pos))
                .map_err(io("writing", img_path))?;
            img.write_all(&buf[..n]).map_err(io("writing", img_path))?;
        }
        pos += n as u64;
    }
}
