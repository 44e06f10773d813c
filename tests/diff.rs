//! `pistemcell diff` on two fixture stemcells that differ in exactly three ways (a package
//! upgraded, a file's mode changed, a file added): it reports those (and the dpkg database the
//! upgrade rewrote) and nothing else, for rootfs-tarball stemcells (streamed), for disk-image
//! stemcells (mounted, as root) and for two rootfs directories.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pistemcell::pack::write::write_stemcell;

fn spec(infra: &str) -> pistemcell::spec::Resolved {
    let s = pistemcell::spec::parse(
        "t.yml",
        &format!("infrastructure: {infra}\nimage: {{method: rootless}}\n"),
        &[],
    )
    .unwrap();
    pistemcell::spec::resolve("t.yml".into(), s).unwrap()
}

fn tree(root: &Path, bash: &str, newer: bool) {
    for d in ["etc", "usr/bin", "var/lib/dpkg", "boot/firmware"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("var/lib/dpkg/status"),
        format!("Package: bash\nStatus: install ok installed\nVersion: {bash}\nArchitecture: armhf\n\nPackage: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: armhf\n"),
    )
    .unwrap();
    std::fs::write(root.join("usr/bin/tool"), vec![5u8; 50_000]).unwrap();
    std::fs::write(root.join("etc/config"), "x=1\n").unwrap();
    std::fs::set_permissions(
        root.join("etc/config"),
        std::fs::Permissions::from_mode(if newer { 0o600 } else { 0o644 }),
    )
    .unwrap();
    if newer {
        std::fs::write(root.join("usr/bin/new-tool"), "#!/bin/sh\n").unwrap();
    }
    for (name, data) in [
        ("start.elf", "fw"),
        ("bcm2710-rpi-3-b.dtb", "dtb"),
        ("vmlinuz-6", "k"),
        ("config.txt", "kernel=vmlinuz-6\n"),
    ] {
        std::fs::write(root.join("boot/firmware").join(name), data).unwrap();
    }
}

fn diff(a: &Path, b: &Path) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .args(["-q", "diff", "--json"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn assert_exactly_the_three_changes(d: &serde_json::Value) {
    let p = &d["packages"];
    assert_eq!(
        p["upgraded"],
        serde_json::json!([{"name": "bash", "architecture": "armhf", "from": "5.2.15-2", "to": "5.2.15-3"}])
    );
    for k in ["added", "removed", "downgraded"] {
        assert_eq!(p[k], serde_json::json!([]), "{k}");
    }
    let f = &d["files"];
    assert_eq!(
        f["added"],
        serde_json::json!([{"path": "/usr/bin/new-tool", "size": 10}])
    );
    assert_eq!(f["removed"], serde_json::json!([]));
    let changed = f["changed"].as_array().unwrap();
    let paths: Vec<&str> = changed
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/etc/config", "/var/lib/dpkg/status"],
        "{changed:?}"
    );
    assert_eq!(
        changed[0]["changes"],
        serde_json::json!(["mode 0644 -> 0600"])
    );
    assert_eq!(changed[1]["changes"], serde_json::json!(["content"]));
    assert_eq!(d["manifest"], serde_json::json!([]));
    assert_eq!(d["components"], serde_json::json!([]));
}

fn pair(dir: &Path) -> (PathBuf, PathBuf) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    tree(&a, "5.2.15-2", false);
    tree(&b, "5.2.15-3", true);
    (a, b)
}

#[test]
fn two_rootfs_stemcells_and_two_directories_differ_in_exactly_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(dir.path());
    assert_exactly_the_three_changes(&diff(&a, &b));
    let sa = write_stemcell(&spec("warden"), &a, None, &dir.path().join("sa"), 0, 2, &[]).unwrap();
    let sb = write_stemcell(&spec("warden"), &b, None, &dir.path().join("sb"), 0, 2, &[]).unwrap();
    assert_exactly_the_three_changes(&diff(&sa.path, &sb.path));
    // The same stemcell twice: nothing.
    let same = diff(&sa.path, &sa.path);
    assert_eq!(same["files"]["changed"], serde_json::json!([]));
    // The text report leads with the counts.
    let o = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .arg("diff")
        .arg(&sa.path)
        .arg(&sb.path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("packages: 0 added, 0 removed, 1 upgraded, 0 downgraded\nfiles: 1 added, 0 removed, 2 changed\n"), "{text}");
    assert!(
        text.contains("^ package bash 5.2.15-2 -> 5.2.15-3 (armhf)")
            && text.contains("~ /etc/config: mode 0644 -> 0600"),
        "{text}"
    );
    // Not a stemcell: the error names the file.
    let junk = dir.path().join("junk.tgz");
    std::fs::write(&junk, b"not gzip").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .arg("diff")
        .arg(&junk)
        .arg(&sa.path)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("junk.tgz"));
}

#[test]
fn two_disk_image_stemcells_differ_in_exactly_what_changed() {
    if !pistemcell::rootfs::extract::is_root() || !pistemcell::cmd::on_path("mkfs.ext4") {
        eprintln!("SKIPPED: reading a disk image mounts it (needs root and e2fsprogs)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(dir.path());
    let sa = write_stemcell(&spec("bakery"), &a, None, &dir.path().join("sa"), 0, 2, &[]).unwrap();
    let sb = write_stemcell(&spec("bakery"), &b, None, &dir.path().join("sb"), 0, 2, &[]).unwrap();
    let d = diff(&sa.path, &sb.path);
    // The image step writes fstab into both trees alike: no change there.
    assert_exactly_the_three_changes(&d);
}
