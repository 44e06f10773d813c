//! Disk images: the partition table as partx and sfdisk read it (what kpartx reads on
//! Bakery's side), the boot partition's files through a FAT reader, the root partition
//! mounted by offset (root) holding the tree, and the same tree giving the same image
//! whichever way and whenever it is made.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use pistemcell::image::disk::{build, ImageOptions};
use pistemcell::image::mbr;
use pistemcell::tarwrite::tree::{tree_manifest, Mtimes};

fn tree(root: &Path) {
    for d in ["etc", "usr/bin", "boot/firmware/overlays", "var/vcap/bosh"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("etc/hostname"), "pi\n").unwrap();
    std::fs::write(root.join("usr/bin/tool"), vec![7u8; 300_000]).unwrap();
    std::fs::write(root.join("boot/firmware/start4.elf"), b"firmware").unwrap();
    std::fs::write(root.join("boot/firmware/overlays/a.dtbo"), b"overlay").unwrap();
    std::os::unix::fs::symlink("../usr/bin/tool", root.join("etc/link")).unwrap();
}

fn opts() -> ImageOptions {
    ImageOptions {
        seed: "bosh-pi-test/1.0".into(),
        boot_bytes: 64 << 20,
        root_bytes: None,
        epoch: 1_700_000_000,
        boot_dir: "/boot/firmware".into(),
        cmdline: None,
        fstab: None,
        method: pistemcell::image::disk::Method::Rootless,
    }
}

#[test]
fn the_image_reads_back_with_the_host_tools_and_its_table_and_boot_are_reproducible() {
    if !pistemcell::cmd::on_path("mkfs.ext4") {
        eprintln!("SKIPPED: mkfs.ext4 is not installed (apt-get install e2fsprogs)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    tree(&root);
    let img = dir.path().join("disk.img");
    let layout = build(&root, &img, &opts()).unwrap();
    assert!(std::fs::read_to_string(root.join("etc/fstab"))
        .unwrap()
        .contains(&format!("PARTUUID={} / ext4", layout.partuuid(2))));

    // Our reading of the table, then util-linux's.
    let mut sector = [0u8; 512];
    std::fs::File::open(&img)
        .unwrap()
        .read_exact(&mut sector)
        .unwrap();
    let (id, parts) = mbr::parse(&sector).unwrap();
    assert_eq!(id, layout.disk_id);
    assert_eq!(parts[0], (1, 0x0c, 4 << 20, 64 << 20));
    assert_eq!(parts[1].1, 0x83);
    let partx = String::from_utf8(
        Command::new("partx")
            .args(["--show", "--bytes", "-o", "NR,START,SECTORS,UUID"])
            .arg(&img)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let rows: Vec<Vec<&str>> = partx
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "1",
            "8192",
            &(64u64 * 2048).to_string(),
            &layout.partuuid(1)
        ],
        "{partx}"
    );
    assert_eq!(
        rows[1][0..2],
        ["2", &(layout.root.0 / 512).to_string()],
        "{partx}"
    );
    if pistemcell::cmd::on_path("sfdisk") {
        let json = Command::new("sfdisk")
            .arg("--json")
            .arg(&img)
            .output()
            .unwrap();
        let v: serde_norway::Value = serde_norway::from_slice(&json.stdout).unwrap();
        let t = &v["partitiontable"];
        assert_eq!(t["label"].as_str(), Some("dos"));
        assert_eq!(
            t["id"].as_str(),
            Some(format!("0x{:08x}", layout.disk_id).as_str())
        );
        assert_eq!(t["partitions"][0]["type"].as_str(), Some("c"));
        assert_eq!(t["partitions"][1]["type"].as_str(), Some("83"));
    } else {
        eprintln!("SKIPPED sfdisk check: sfdisk is not installed (apt-get install fdisk)");
    }

    // The boot partition through a FAT reader.
    let file = std::fs::File::open(&img).unwrap();
    let part = pistemcell_slice(file, layout.boot.0, layout.boot.1);
    let fs = fatfs::FileSystem::new(part, fatfs::FsOptions::new()).unwrap();
    assert_eq!(fs.fat_type(), fatfs::FatType::Fat32);
    let read = |path: &str| {
        let mut s = String::new();
        fs.root_dir()
            .open_file(path)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    assert!(read("cmdline.txt").contains(&format!("root=PARTUUID={}", layout.partuuid(2))));
    assert_eq!(read("start4.elf"), "firmware");
    assert_eq!(read("overlays/a.dtbo"), "overlay");
    drop(fs);

    // The root partition mounted by offset holds the tree.
    if pistemcell::rootfs::extract::is_root() {
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let st = Command::new("mount")
            .arg("-o")
            .arg(format!(
                "ro,loop,offset={},sizelimit={}",
                layout.root.0, layout.root.1
            ))
            .arg(&img)
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(st.success());
        let got = tree_manifest(&mnt, Mtimes::Ignore).unwrap();
        let _ = Command::new("umount").arg(&mnt).status();
        let want = tree_manifest(&root, Mtimes::Ignore).unwrap();
        // ext4's lost+found is the only addition.
        let got: Vec<String> = got
            .into_iter()
            .filter(|l| !l.starts_with("/lost+found"))
            .collect();
        assert_eq!(got[1..], want[1..]);
    } else {
        eprintln!("SKIPPED mount check: needs root");
    }

    // The root filesystem is sound (e2fsck verifies every inode checksum we rewrote), and
    // every inode's times are the epoch: the tree's were all later.
    let root_part = dir.path().join("root.ext4");
    let bytes = std::fs::read(&img).unwrap();
    std::fs::write(
        &root_part,
        &bytes[layout.root.0 as usize..(layout.root.0 + layout.root.1) as usize],
    )
    .unwrap();
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(&root_part)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let stat = Command::new("debugfs")
        .args(["-R", "stat /usr/bin/tool"])
        .arg(&root_part)
        .output()
        .unwrap();
    let stat = String::from_utf8_lossy(&stat.stdout);
    for field in ["ctime:", "atime:", "mtime:", "crtime:"] {
        let line = stat.lines().find(|l| l.contains(field)).unwrap_or("");
        assert!(
            line.contains("0x6553f100:00000000"),
            "{field} {line}\n{stat}"
        );
    }

    // The same tree copied elsewhere later (new ctimes, atimes and mtimes), imaged again:
    // the same image, byte for byte.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let copy = dir.path().join("copy");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&root)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(copy.join("etc/hostname"), "pi\n").unwrap();
    let again = dir.path().join("again.img");
    build(&copy, &again, &opts()).unwrap();
    assert!(
        std::fs::read(&again).unwrap() == bytes,
        "two images of one tree differ"
    );
}

/// A window of a file as a `Read + Write + Seek` for the FAT reader.
fn pistemcell_slice(file: std::fs::File, start: u64, len: u64) -> Slice {
    Slice {
        file,
        start,
        len,
        pos: 0,
    }
}

struct Slice {
    file: std::fs::File,
    start: u64,
    len: u64,
    pos: u64,
}

impl std::io::Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let left = (self.len - self.pos.min(self.len)) as usize;
        let take = buf.len().min(left);
        let n = self.file.read_at(&mut buf[..take], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::Write for Slice {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("read only"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::io::Seek for Slice {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        self.pos = match to {
            std::io::SeekFrom::Start(n) => n,
            std::io::SeekFrom::End(d) => self.len.saturating_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
        };
        Ok(self.pos)
    }
}

/// The files of partition 2 of `img`, mounted read-only by offset.
fn root_files(img: &Path, layout: &pistemcell::image::Layout, mnt: &Path) -> Vec<String> {
    std::fs::create_dir_all(mnt).unwrap();
    let st = Command::new("mount")
        .arg("-o")
        .arg(format!(
            "ro,loop,offset={},sizelimit={}",
            layout.root.0, layout.root.1
        ))
        .arg(img)
        .arg(mnt)
        .status()
        .unwrap();
    assert!(st.success());
    let got = tree_manifest(mnt, Mtimes::Ignore).unwrap();
    let _ = Command::new("umount").arg(mnt).status();
    got.into_iter()
        .filter(|l| !l.starts_with("/lost+found"))
        .collect()
}

#[test]
fn the_loop_device_way_and_the_rootless_way_give_the_same_files() {
    if !pistemcell::rootfs::extract::is_root() || !pistemcell::cmd::on_path("losetup") {
        eprintln!("SKIPPED: the loop-device way needs root and losetup");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    tree(&root);
    // Owners, a device node, a hard link, a sparse file and an xattr travel too.
    std::os::unix::fs::lchown(root.join("usr/bin/tool"), Some(1000), Some(1000)).unwrap();
    std::fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool2")).unwrap();
    let p = std::ffi::CString::new(root.join("etc/null").to_str().unwrap()).unwrap();
    unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    let sparse = std::fs::File::create(root.join("etc/sparse")).unwrap();
    sparse.set_len(4 << 20).unwrap();
    let rootless = dir.path().join("rootless.img");
    let layout = build(&root, &rootless, &opts()).unwrap();
    let looped = dir.path().join("loop.img");
    let mut o = opts();
    o.method = pistemcell::image::disk::Method::Loop;
    let layout2 = build(&root, &looped, &o).unwrap();
    assert_eq!(layout, layout2);
    let a = root_files(&rootless, &layout, &dir.path().join("a"));
    let b = root_files(&looped, &layout, &dir.path().join("b"));
    assert_eq!(a, b);
    let want: Vec<String> = tree_manifest(&root, Mtimes::Ignore).unwrap();
    assert_eq!(b[1..], want[1..]);
    // The two ways give the same image, byte for byte; nothing is left attached.
    let (x, y) = (
        std::fs::read(&rootless).unwrap(),
        std::fs::read(&looped).unwrap(),
    );
    assert!(
        x == y,
        "the loop-device image differs from the rootless one"
    );
    let attached =
        String::from_utf8(Command::new("losetup").arg("-a").output().unwrap().stdout).unwrap();
    assert!(
        !attached.contains(looped.to_str().unwrap()) && !attached.contains("disk.img"),
        "{attached}"
    );
}
