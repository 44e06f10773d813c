//! Class 3 for `boot-test`: it writes the test's settings and probe into an overlay of the
//! stemcell's root partition. A hostile image whose `/etc/systemd/system`, settings directory
//! and agent are absolute symlinks to the host's directories must get those files inside the
//! image, never on the host. Also: a stemcell whose `image` or manifest is not a regular
//! member, or appears twice, is refused before anything is unpacked.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pistemcell::pack::write::write_stemcell;

use super::common::{tar_of, Case};

fn spec(yaml: &str) -> pistemcell::spec::Resolved {
    let s = pistemcell::spec::parse("test.yml", yaml, &[]).unwrap();
    pistemcell::spec::resolve("test.yml".into(), s).unwrap()
}

fn missing_tools() -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (loop devices, mounts)".into());
    }
    for t in [
        "qemu-system-arm",
        "qemu-img",
        "qemu-storage-daemon",
        "mkfs.ext4",
    ] {
        if !pistemcell::cmd::on_path(t) {
            return Some(format!("{t} is not installed"));
        }
    }
    (!Path::new("/dev/fuse").exists()).then(|| "/dev/fuse is missing".into())
}

/// The image's tree: the firmware's files (a kernel that is not one), and the places boot-test
/// writes to planted as absolute symlinks to `host` directories. The same paths exist inside
/// the image, so resolving them there is what lets the test go on.
fn hostile_rootfs(dir: &Path, host: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in [
        "lib/systemd",
        "var/lib/dpkg",
        "boot/firmware",
        "var/vcap/bosh/bin",
        "etc/systemd",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap());
    for sub in ["systemd", "piconfig"] {
        std::fs::create_dir_all(host.join(sub)).unwrap();
        std::fs::create_dir_all(inside(&host.join(sub))).unwrap();
    }
    symlink(host.join("systemd"), root.join("etc/systemd/system")).unwrap();
    symlink(host.join("piconfig"), root.join("piConfig")).unwrap();
    // The agent "is" the host's /etc/passwd: never read.
    symlink("/etc/passwd", root.join("var/vcap/bosh/bin/bosh-agent")).unwrap();
    std::fs::write(root.join("lib/systemd/systemd"), "not systemd").unwrap();
    for (name, data) in [
        ("start.elf", "firmware"),
        ("bcm2710-rpi-3-b.dtb", "dtb"),
        ("vmlinuz-6.1.0-9-armmp", "not a kernel"),
        ("initrd.img-6.1.0-9-armmp", "not an initramfs"),
        (
            "config.txt",
            "kernel=vmlinuz-6.1.0-9-armmp\ninitramfs initrd.img-6.1.0-9-armmp\n",
        ),
    ] {
        std::fs::write(root.join("boot/firmware").join(name), data).unwrap();
    }
    std::fs::write(
        root.join("var/vcap/bosh/agent.json"),
        r#"{"Infrastructure":{"Settings":{"Sources":[{"Type":"File","SettingsPath":"/piConfig/settings.json"}]}}}"#,
    )
    .unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    root
}

#[test]
fn boot_test_writes_only_inside_the_image_whatever_its_symlinks_say() {
    if let Some(why) = missing_tools() {
        eprintln!("SKIPPED boot_test_writes_only_inside_the_image: {why}");
        return;
    }
    let c = Case::new();
    let host = c.root().join("host");
    let root = hostile_rootfs(&c.input("tree"), &host);
    let packed =
        write_stemcell(&spec("{}"), &root, None, &c.root().join("out"), 0, 2, &[]).unwrap();
    let r = c.run(
        &[
            "boot-test",
            "--timeout",
            "20s",
            packed.path.to_str().unwrap(),
        ],
        Duration::from_secs(180),
    );
    let all = format!("{}{}", r.stdout(), r.stderr());
    assert_eq!(r.code(), 1, "{all}");
    assert!(!all.contains("panicked"), "{all}");
    // The probe unit and the settings went into the image: the host's directories are empty.
    for sub in ["systemd", "piconfig"] {
        let left: Vec<_> = std::fs::read_dir(host.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "boot-test wrote {left:?} into the host's {sub}: {all}"
        );
    }
    // The planted agent was not taken for a real one (nor read as the host's passwd).
    assert!(
        all.contains("no agent binary") || all.contains("is a symlink"),
        "{all}"
    );
}

/// A minimal stemcell.MF.
const MF: &[u8] = b"name: x\nversion: '1'\nbosh_protocol: 1\napi_version: 3\noperating_system: debian\nsha1: '0'\nstemcell_formats: [piimg]\ncloud_properties: {architecture: armhf, infrastructure: bakery}\n";

#[test]
fn boot_test_refuses_irregular_and_duplicate_members() {
    let c = Case::new();
    let reg = tar::EntryType::Regular;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "image-symlink",
            tar_of(
                &[
                    (b"stemcell.MF", reg, MF, None),
                    (b"image", tar::EntryType::Symlink, b"", Some(b"/dev/sda")),
                ],
                true,
            ),
            "member image is not a regular file",
        ),
        (
            "image-fifo",
            tar_of(
                &[
                    (b"stemcell.MF", reg, MF, None),
                    (b"image", tar::EntryType::Fifo, b"", None),
                ],
                true,
            ),
            "member image is not a regular file",
        ),
        (
            "manifest-chardev",
            tar_of(&[(b"stemcell.MF", tar::EntryType::Char, b"", None)], true),
            "member stemcell.MF is not a regular file",
        ),
        (
            "two-manifests",
            tar_of(
                &[
                    (b"stemcell.MF", reg, MF, None),
                    (b"./stemcell.MF", reg, MF, None),
                ],
                true,
            ),
            "member stemcell.MF appears twice",
        ),
        (
            "deep-manifest",
            tar_of(
                &[(b"stemcell.MF", reg, "[".repeat(10_000).as_bytes(), None)],
                true,
            ),
            "nested deeper than 64",
        ),
        (
            "huge-manifest",
            tar_of(&[(b"stemcell.MF", reg, &vec![b'#'; 2 << 20], None)], true),
            "over the 1048576-byte limit for a manifest",
        ),
    ];
    for (name, bytes, needle) in cases {
        let p = c.input(&format!("{name}.tgz"));
        std::fs::write(&p, bytes).unwrap();
        let r = c.run(&["boot-test", p.to_str().unwrap()], Duration::from_secs(60));
        r.fails_with(&[&format!("{name}.tgz"), needle]);
        let leftovers: Vec<_> = std::fs::read_dir(c.root().join("work"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".pistemcell-boot-test-"))
            .collect();
        assert!(leftovers.is_empty(), "{name}: {leftovers:?}");
    }
}
