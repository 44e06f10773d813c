//! The stemcell the default build writes, read the way Bakery and a Pi read it: the image's
//! partition table through util-linux (`sfdisk --json`, `partx`), the boot partition through a
//! FAT reader (firmware, the kernel and initramfs `config.txt` names, the netboot
//! `cmdline.txt`), and the root partition mounted read-only by offset. Then the same build
//! again, from the same caches, must write the same stemcell byte for byte.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The root partition of an image, mounted read-only; unmounted on drop.
pub struct MountedRoot {
    /// Where it is mounted.
    pub path: PathBuf,
}

impl Drop for MountedRoot {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Extracts `members` of the stemcell into `into` (made if needed); whether tar succeeded.
pub fn extract_members(stemcell: &Path, into: &Path, members: &[&str]) -> bool {
    std::fs::create_dir_all(into).unwrap();
    Command::new("tar")
        .arg("-xzf")
        .arg(stemcell)
        .arg("-C")
        .arg(into)
        .args(members)
        .status()
        .unwrap()
        .success()
}

/// Extracts the stemcell's image into `dir`, checks its table and boot partition, and mounts
/// its root partition.
pub fn open(stemcell: &Path, dir: &Path) -> MountedRoot {
    let x = dir.join("stemcell");
    assert!(extract_members(stemcell, &x, &["image"]));
    let img = x.join("image");

    // util-linux reads the table we wrote: msdos, FAT32 (LBA) then Linux, 4 MiB aligned.
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: serde_norway::Value = serde_norway::from_slice(&out.stdout).unwrap();
    let t = &t["partitiontable"];
    assert_eq!(t["label"].as_str(), Some("dos"));
    let parts = t["partitions"].as_sequence().unwrap();
    assert_eq!(parts.len(), 2, "{t:?}");
    assert_eq!(
        (parts[0]["type"].as_str(), parts[1]["type"].as_str()),
        (Some("c"), Some("83"))
    );
    let sectors = |i: usize, k: &str| parts[i][k].as_u64().unwrap();
    assert_eq!(sectors(0, "start") % 8192, 0);
    assert_eq!(sectors(1, "start") % 8192, 0);
    let partx = Command::new("partx")
        .arg("--show")
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        partx.status.success(),
        "{}",
        String::from_utf8_lossy(&partx.stderr)
    );
    let (boot, root) = (
        (sectors(0, "start") * 512, sectors(0, "size") * 512),
        (sectors(1, "start") * 512, sectors(1, "size") * 512),
    );

    // The boot partition: what the Pi firmware loads, and Bakery's cmdline.txt template.
    let mut f = std::fs::File::open(&img).unwrap();
    let mut bytes = vec![0u8; boot.1 as usize];
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(boot.0)).unwrap();
    f.read_exact(&mut bytes).unwrap();
    let fs = fatfs::FileSystem::new(std::io::Cursor::new(bytes), fatfs::FsOptions::new()).unwrap();
    let names: Vec<String> = fs
        .root_dir()
        .iter()
        .map(|e| e.unwrap().file_name())
        .collect();
    let read = |name: &str| {
        let mut s = String::new();
        fs.root_dir()
            .open_file(name)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    let config = read("config.txt");
    let (kernel, initramfs) = pistemcell::image::boot::config_settings(&config);
    let (kernel, initramfs) = (kernel.unwrap(), initramfs.unwrap());
    assert!(
        kernel.starts_with("vmlinuz-") && kernel.ends_with("-armmp"),
        "{config}"
    );
    for want in [
        &kernel,
        &initramfs,
        "start.elf",
        "bootcode.bin",
        "bcm2837-rpi-3-b.dtb",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    assert!(
        read("cmdline.txt").contains("root=/dev/nfs nfsroot={{.NfsServer}}:{{.NfsRoot}},vers=3"),
        "{}",
        read("cmdline.txt")
    );

    // The root partition mounted by offset, read-only.
    let mnt = dir.join("image-root");
    std::fs::create_dir_all(&mnt).unwrap();
    let st = Command::new("mount")
        .arg("-o")
        .arg(format!("ro,loop,offset={},sizelimit={}", root.0, root.1))
        .arg(&img)
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mounting the root partition by offset");
    MountedRoot { path: mnt }
}

/// Builds again from the same caches into another stemcell dir; the stemcell must be the
/// same bytes.
pub fn rebuild_is_identical(
    run: impl Fn(&[&str]) -> std::process::Output,
    first: &Path,
    dir: &Path,
) {
    let again_dir = dir.join("again");
    let o = run(&["build", "--stemcell-dir", again_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = again_dir.join(first.file_name().unwrap());
    let (a, b) = (
        pistemcell::archive::cache::file_sha256(first).unwrap(),
        pistemcell::archive::cache::file_sha256(&again).unwrap(),
    );
    assert_eq!(
        a, b,
        "two builds from the same caches wrote different stemcells"
    );
}

/// The stemcell's SBOMs list exactly what `dpkg-query -W` lists in the rootfs, plus monit, the
/// agent and the blobstore clients with the sha256 of the files installed; both pass the reference validators.
pub fn check_sboms(stemcell: &Path, rootfs: &Path, dir: &Path) {
    let x = dir.join("sboms");
    std::fs::create_dir_all(&x).unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(stemcell)
        .arg("-C")
        .arg(&x)
        .args(["sbom.spdx.json", "sbom.cdx.json"])
        .status()
        .unwrap();
    assert!(
        st.success(),
        "the stemcell carries sbom.spdx.json and sbom.cdx.json"
    );
    let q = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            rootfs.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f", "${Package} ${Version} ${Architecture}\\n"])
        .output()
        .unwrap();
    assert!(q.status.success());
    let mut want: Vec<String> = String::from_utf8_lossy(&q.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    want.sort();
    let text = std::fs::read_to_string(x.join("sbom.spdx.json")).unwrap();
    let spdx: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pkgs = spdx["packages"].as_array().unwrap();
    let mut got: Vec<String> = pkgs
        .iter()
        .filter(|p| {
            p["SPDXID"]
                .as_str()
                .unwrap()
                .starts_with("SPDXRef-Package-")
        })
        .map(|p| {
            let purl = p["externalRefs"][0]["referenceLocator"].as_str().unwrap();
            let arch = purl.rsplit("arch=").next().unwrap();
            format!(
                "{} {} {arch}",
                p["name"].as_str().unwrap(),
                p["versionInfo"].as_str().unwrap()
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want, "the SPDX packages are dpkg-query -W's");
    for (name, path) in [
        ("monit", "var/vcap/bosh/bin/monit"),
        ("bosh-agent", "var/vcap/bosh/bin/bosh-agent"),
        ("bosh-blobstore-dav", "var/vcap/bosh/bin/bosh-blobstore-dav"),
        ("bosh-blobstore-s3", "var/vcap/bosh/bin/bosh-blobstore-s3"),
        ("bosh-blobstore-gcs", "var/vcap/bosh/bin/bosh-blobstore-gcs"),
        (
            "bosh-blobstore-azure-storage",
            "var/vcap/bosh/bin/bosh-blobstore-azure-storage",
        ),
    ] {
        let c = pkgs
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in the SPDX"));
        let sha = pistemcell::archive::cache::file_sha256(&rootfs.join(path)).unwrap();
        assert_eq!(c["checksums"][0]["checksumValue"], sha.as_str(), "{name}");
    }
    crate::support::validate_sboms(&x.join("sbom.spdx.json"), &x.join("sbom.cdx.json"));
}

/// The stemcell's provenance.json: every installed package's .deb with its sha256, the
/// archive's signed Release digest and date, monit, the agent and the blobstore clients, every
/// stage's key.
pub fn check_provenance(stemcell: &Path, rootfs: &Path, dir: &Path) {
    let x = dir.join("provenance");
    std::fs::create_dir_all(&x).unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(stemcell)
        .arg("-C")
        .arg(&x)
        .arg("provenance.json")
        .status()
        .unwrap();
    assert!(st.success(), "the stemcell carries provenance.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(x.join("provenance.json")).unwrap()).unwrap();
    let installed = pistemcell::rootfs::dpkg::read_status(rootfs).unwrap();
    let debs = v["debs"].as_array().unwrap();
    let names: std::collections::BTreeSet<&str> =
        debs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    for name in installed.keys() {
        assert!(
            names.contains(name.as_str()),
            "{name} has no .deb in provenance.json"
        );
    }
    assert!(debs
        .iter()
        .all(|d| d["sha256"].as_str().is_some_and(|s| s.len() == 64)));
    let rec = &v["archive"]["recorded"];
    assert_eq!(
        rec["release_sha256"].as_str().map(str::len),
        Some(64),
        "{rec}"
    );
    assert!(rec["date"].as_str().is_some_and(|d| !d.is_empty()), "{rec}");
    let comps: Vec<&str> = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        comps,
        [
            "bosh-agent",
            "bosh-blobstore-azure-storage",
            "bosh-blobstore-dav",
            "bosh-blobstore-gcs",
            "bosh-blobstore-s3",
            "monit"
        ]
    );
    let stages = v["stages"].as_array().unwrap();
    assert!(
        stages.iter().any(
            |s| s["name"] == "00-bootstrap" && s["key"].as_str().is_some_and(|k| k.len() == 64)
        ),
        "{stages:?}"
    );
}

/// `check-os` on the stemcell itself (read back from the tarball, as an operator would run it):
/// every applicable hardening check passes, and the stemcell's own `check-os.json` says the
/// same, with the commit of this tree as `stemcell_git_sha1`.
pub fn check_os_passes(stemcell: &Path, dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .args(["check-os", "--json"])
        .arg(stemcell)
        .env("TMPDIR", dir)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let failed: Vec<String> = v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "fail")
        .map(|c| format!("{} {}: {}", c["id"], c["title"], c["detail"]))
        .collect();
    assert!(
        out.status.success() && failed.is_empty(),
        "check-os fails on the stemcell:\n{}\n{}",
        failed.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        v["passed"].as_u64().unwrap_or(0) >= 300,
        "check-os ran too few checks: {}",
        v["passed"]
    );
    let x = dir.join("check-os");
    std::fs::create_dir_all(&x).unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(stemcell)
        .arg("-C")
        .arg(&x)
        .arg("check-os.json")
        .status()
        .unwrap();
    assert!(st.success(), "the stemcell carries check-os.json");
    let inside: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(x.join("check-os.json")).unwrap()).unwrap();
    assert_eq!(inside["failed"], 0, "check-os.json: {inside}");
    assert_eq!(
        inside["passed"], v["passed"],
        "check-os.json and check-os agree"
    );
    let sha1 = inside["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == "stemcell-git-sha1-content")
        .map(|c| c["detail"].to_string())
        .unwrap_or_default();
    let head = pistemcell::spec::commit::builder_commit();
    assert!(
        head == "unknown" || sha1.contains(head.trim_end_matches('+')),
        "stemcell_git_sha1 is not this tree's commit {head}: {sha1}"
    );
}
