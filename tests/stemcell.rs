//! The stemcell tarball: written for warden (rootfs tgz), bakery (raw disk image) and raw (a gzip
//! of it), read back by `inspect`; a tree without boot files, a wrong sha1, a truncated archive and a corrupt gzip block are refused
//! with the reason; the manifest keeps the version a string.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use pistemcell::pack::inspect::inspect;
use pistemcell::pack::write::write_stemcell;

fn spec(yaml: &str) -> pistemcell::spec::Resolved {
    let s = pistemcell::spec::parse("test.yml", yaml, &[]).unwrap();
    pistemcell::spec::resolve("test.yml".into(), s).unwrap()
}

fn rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["etc", "usr/bin", "var/lib/dpkg", "boot/firmware"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("usr/bin/tool"), vec![3u8; 100_000]).unwrap();
    // What the firmware needs (as raspi-firmware and the kernel's hooks leave it).
    for (name, data) in [
        ("start.elf", "firmware"),
        ("bootcode.bin", "bootcode"),
        ("bcm2710-rpi-3-b.dtb", "dtb"),
        ("vmlinuz-6.1.0-9-armmp", "kernel"),
        ("initrd.img-6.1.0-9-armmp", "initramfs"),
        (
            "config.txt",
            "kernel=vmlinuz-6.1.0-9-armmp\ninitramfs initrd.img-6.1.0-9-armmp\n",
        ),
        ("cmdline.txt", "root=/dev/sda1 from the build host\n"),
    ] {
        std::fs::write(root.join("boot/firmware").join(name), data).unwrap();
    }
    // What stage 02-dev-tools leaves: the dev tools' files.
    std::fs::create_dir_all(root.join("var/vcap/bosh/etc")).unwrap();
    std::fs::write(
        root.join("var/vcap/bosh/etc/dev_tools_file_list"),
        DEV_TOOLS,
    )
    .unwrap();
    std::fs::write(
        root.join("var/lib/dpkg/status"),
        "Package: libc6\nStatus: install ok installed\nVersion: 2.36\nArchitecture: armhf\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: armhf\n",
    )
    .unwrap();
    root
}

const DEV_TOOLS: &str = "/usr/bin/arm-linux-gnueabihf-gcc-12\n/usr/bin/gcc\n/usr/bin/make\n";

fn members(tgz: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(tgz)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_warden_stemcell_reads_back_and_tampering_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    let spec = spec("infrastructure: warden\nstemcell: {version: \"1.10\"}\n");
    let out = dir.path().join("out");
    let packed = write_stemcell(&spec, &root, None, &out, 1_700_000_000, 2, &[]).unwrap();
    let name = packed
        .path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        name,
        "bosh-stemcell-1.10-warden-boshlite-debian-bookworm-armhf-go_agent.tgz"
    );
    for ext in ["sha1", "sha256"] {
        let line = std::fs::read_to_string(out.join(format!("{name}.{ext}"))).unwrap();
        assert!(line.ends_with(&format!("  {name}\n")), "{line}");
    }
    let st = Command::new("sha256sum")
        .arg("-c")
        .arg(format!("{name}.sha256"))
        .current_dir(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let i = inspect(&packed.path).unwrap();
    assert_eq!(i.manifest.stemcell_formats, ["warden-tarball"]);
    assert!(i.image.starts_with("rootfs tarball"), "{}", i.image);
    let names: Vec<&str> = i.members.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "check-os.json",
            "dev_tools_file_list.txt",
            "image",
            "packages.txt",
            "provenance.json",
            "sbom.cdx.json",
            "sbom.spdx.json",
            "stemcell.MF"
        ]
    );
    // Only what is installed, and the version stays a string ("1.10", not 1.1).
    let x = dir.path().join("x");
    members(&packed.path, &x);
    assert_eq!(
        std::fs::read_to_string(x.join("packages.txt")).unwrap(),
        "libc6 2.36 armhf\n"
    );
    // The image's dev tools list, under upstream's name.
    assert_eq!(
        std::fs::read_to_string(x.join("dev_tools_file_list.txt")).unwrap(),
        DEV_TOOLS
    );
    let mf = std::fs::read_to_string(x.join("stemcell.MF")).unwrap();
    assert!(
        mf.contains("version: '1.10'") || mf.contains("version: \"1.10\""),
        "{mf}"
    );
    // The OS name carries the architecture: an x86 stemcell's compiled packages never match.
    assert!(
        mf.lines()
            .any(|l| l == "operating_system: debian-bookworm-armhf"),
        "{mf}"
    );
    assert_eq!(i.manifest.operating_system, "debian-bookworm-armhf");
    assert!(
        mf.contains("api_version: 3\n") && mf.contains("infrastructure: warden"),
        "{mf}"
    );
    // Nothing else was left in the output directory.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 3);
    // The same tree gives the same stemcell, whatever the thread count.
    let again = write_stemcell(
        &spec,
        &root,
        None,
        &dir.path().join("again"),
        1_700_000_000,
        1,
        &[],
    )
    .unwrap();
    assert_eq!(packed.sha256, again.sha256);

    // A manifest whose sha1 is not the image's.
    let bad_mf = mf.replace(&i.manifest.sha1, &"0".repeat(40));
    std::fs::write(x.join("stemcell.MF"), bad_mf).unwrap();
    let tampered = dir.path().join("tampered.tgz");
    pistemcell::pack::tarball::write_tgz(&x, &tampered, 0, 6, 2).unwrap();
    let e = inspect(&tampered).unwrap_err();
    assert!(e.contains(&"0".repeat(40)) && e.contains("sha1"), "{e}");

    // A truncated archive, and a corrupt gzip block.
    let bytes = std::fs::read(&packed.path).unwrap();
    let cut = dir.path().join("cut.tgz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = inspect(&cut).unwrap_err();
    assert!(!e.is_empty(), "a truncated stemcell must be refused");
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    for b in &mut flipped[mid..mid + 16] {
        *b ^= 0x5a;
    }
    let corrupt = dir.path().join("corrupt.tgz");
    std::fs::write(&corrupt, &flipped).unwrap();
    assert!(
        inspect(&corrupt).is_err(),
        "a corrupt gzip block must be refused"
    );
    // The CLI says why and fails.
    let o = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .arg("inspect")
        .arg(&tampered)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("sha1"));
}

#[test]
fn without_dev_tools_the_list_member_is_empty_and_the_os_name_may_be_set() {
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    std::fs::remove_file(root.join("var/vcap/bosh/etc/dev_tools_file_list")).unwrap();
    let spec = spec(
        "infrastructure: warden\narchitecture: arm64\ndev_tools: false\nstemcell: {operating_system: pi-bookworm}\n",
    );
    assert!(!spec.dev_tools);
    let packed = write_stemcell(&spec, &root, None, &dir.path().join("out"), 0, 2, &[]).unwrap();
    assert_eq!(packed.manifest.operating_system, "pi-bookworm");
    let x = dir.path().join("x");
    members(&packed.path, &x);
    assert_eq!(
        std::fs::read(x.join("dev_tools_file_list.txt")).unwrap(),
        b""
    );
    // An unusable OS name is refused when the spec is read, naming the field.
    let bad =
        pistemcell::spec::parse("t.yml", "stemcell: {operating_system: Debian 12}\n", &[]).unwrap();
    let e = pistemcell::spec::resolve("t.yml".into(), bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stemcell.operating_system") && e.contains("debian-bookworm-armhf"),
        "{e}"
    );
}

#[test]
fn a_bakery_stemcell_holds_the_raw_disk_image_with_the_netboot_cmdline() {
    if !pistemcell::cmd::on_path("mkfs.ext4") {
        eprintln!("SKIPPED: mkfs.ext4 is not installed (apt-get install e2fsprogs)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    let out = dir.path().join("out");
    let packed = write_stemcell(&spec("{}"), &root, None, &out, 0, 2, &[]).unwrap();
    let i = inspect(&packed.path).unwrap();
    assert_eq!(i.manifest.stemcell_formats, ["piimg"]);
    assert_eq!(i.manifest.cloud_properties["hypervisor"], "pi");
    assert!(
        i.image.starts_with("MBR disk image") && i.image.contains("p1 FAT32"),
        "{}",
        i.image
    );
    // Root is NFS: no root line in fstab.
    let fstab = std::fs::read_to_string(root.join("etc/fstab")).unwrap();
    assert!(
        !fstab
            .lines()
            .any(|l| !l.starts_with('#') && l.contains(" / ")),
        "{fstab}"
    );
}

#[test]
fn a_tree_without_boot_files_makes_no_disk_stemcell_and_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    std::fs::remove_file(root.join("boot/firmware/initrd.img-6.1.0-9-armmp")).unwrap();
    std::fs::remove_file(root.join("boot/firmware/start.elf")).unwrap();
    let out = dir.path().join("out");
    for infra in ["bakery", "raw"] {
        let e = write_stemcell(
            &spec(&format!("infrastructure: {infra}\n")),
            &root,
            None,
            &out,
            0,
            2,
            &[],
        )
        .unwrap_err()
        .to_string();
        for want in [
            "/boot/firmware",
            "start*.elf",
            "the initramfs initrd.img-6.1.0-9-armmp that config.txt names",
            "05-boot-firmware",
        ] {
            assert!(e.contains(want), "{infra}: {want}: {e}");
        }
        // Nothing was left behind.
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "{infra}");
    }
    // Warden ships the rootfs: no boot files needed.
    write_stemcell(
        &spec("infrastructure: warden\n"),
        &root,
        None,
        &out,
        0,
        2,
        &[],
    )
    .unwrap();
}

#[test]
fn a_raw_stemcell_is_a_gzip_of_a_disk_that_boots_its_own_root() {
    if !pistemcell::cmd::on_path("mkfs.ext4") {
        eprintln!("SKIPPED: mkfs.ext4 is not installed (apt-get install e2fsprogs)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    let out = dir.path().join("out");
    let spec = spec("infrastructure: raw\nimage: {method: rootless}\n");
    let packed = write_stemcell(&spec, &root, None, &out, 0, 2, &[]).unwrap();
    assert!(packed
        .path
        .to_string_lossy()
        .ends_with("-raw-pi-debian-bookworm-armhf-go_agent.tgz"));
    let i = inspect(&packed.path).unwrap();
    assert_eq!(i.manifest.stemcell_formats, ["rawdisk-gz"]);
    assert_eq!(i.manifest.cloud_properties["container_format"], "gzip");
    assert!(
        i.image.starts_with("gzip of an MBR disk image") && i.image.contains("p2 ext4"),
        "{}",
        i.image
    );
    // The disk inside: cmdline.txt names partition 2 by PARTUUID (not the build host's root),
    // the firmware's files are on partition 1, and fstab mounts both.
    let x = dir.path().join("x");
    members(&packed.path, &x);
    let mut disk = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(x.join("image")).unwrap())
        .read_to_end(&mut disk)
        .unwrap();
    let (id, parts) = pistemcell::image::mbr::parse(&disk[..512]).unwrap();
    let (start, len) = (parts[0].2 as usize, parts[0].3 as usize);
    let fs = fatfs::FileSystem::new(
        std::io::Cursor::new(disk[start..start + len].to_vec()),
        fatfs::FsOptions::new(),
    )
    .unwrap();
    let read = |name: &str| {
        let mut s = String::new();
        fs.root_dir()
            .open_file(name)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    let cmdline = read("cmdline.txt");
    assert!(
        cmdline.contains(&format!("root=PARTUUID={id:08x}-02")),
        "{cmdline}"
    );
    assert_eq!(read("vmlinuz-6.1.0-9-armmp"), "kernel");
    assert!(read("config.txt").contains("initramfs initrd.img-6.1.0-9-armmp"));
    let fstab = std::fs::read_to_string(root.join("etc/fstab")).unwrap();
    assert!(
        fstab.contains(&format!("PARTUUID={id:08x}-02 / ext4"))
            && fstab.contains(&format!("PARTUUID={id:08x}-01 /boot/firmware vfat")),
        "{fstab}"
    );
}

#[test]
fn provenance_records_the_archive_the_debs_the_components_and_the_stage_keys() {
    let dir = tempfile::tempdir().unwrap();
    let root = rootfs(dir.path());
    std::fs::create_dir_all(root.join("var/lib/pistemcell")).unwrap();
    std::fs::write(
        root.join(pistemcell::record::ARCHIVE_RECORD),
        "Profile: debian-bookworm\nSuite: bookworm\nComponents: main non-free-firmware\nArchitecture: armhf\nRelease-SHA256: abc123\nDate: Sat, 01 Nov 2025 00:00:00 UTC\n",
    )
    .unwrap();
    pistemcell::record::add_debs(
        &root,
        &[(
            "libc6".into(),
            "2.36".into(),
            "armhf".into(),
            "AA".repeat(32),
        )],
    )
    .unwrap();
    let stages = [
        ("00-bootstrap".to_string(), "k0".to_string()),
        ("10-x".into(), "k1".into()),
    ];
    let out = dir.path().join("out");
    let spec = spec("infrastructure: warden\n");
    let packed = write_stemcell(&spec, &root, None, &out, 1_761_955_200, 2, &stages).unwrap();
    let x = dir.path().join("x");
    members(&packed.path, &x);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(x.join("provenance.json")).unwrap()).unwrap();
    assert_eq!(v["archive"]["recorded"]["release_sha256"], "abc123");
    assert_eq!(
        v["archive"]["recorded"]["date"],
        "Sat, 01 Nov 2025 00:00:00 UTC"
    );
    assert_eq!(v["debs"][0]["sha256"], "aa".repeat(32));
    assert_eq!(
        v["stages"][1],
        serde_json::json!({"name": "10-x", "key": "k1"})
    );
    assert_eq!(v["source_date_epoch"], 1_761_955_200u64);
    assert_eq!(v["resolved"]["infrastructure"], "warden");
    assert_eq!(
        v["resolved"]["stemcell"]["operating_system"],
        "debian-bookworm-armhf"
    );
    assert_eq!(v["resolved"]["dev_tools"], true);
    assert!(v["archive"]["signing_keys"].as_array().unwrap().len() >= 2);
    let i = inspect(&packed.path).unwrap();
    let summary = i.provenance.unwrap();
    assert!(
        summary.contains("debian-bookworm bookworm dated Sat, 01 Nov 2025 00:00:00 UTC (Release sha256 abc123); 1 .debs, 0 components, 2 stages"),
        "{summary}"
    );
}
