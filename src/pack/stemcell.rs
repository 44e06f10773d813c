//! The stemcell tarball: `stemcell.MF`, `image`, `packages.txt`, `dev_tools_file_list.txt` and
//! `audit.json` and `check-os.json`, packed by the deterministic writer, with `.sha1` and `.sha256` files beside
//! it (see BOSH-CONTRACT.md section 1: `version` a quoted string, `api_version` an integer,
//! `cloud_properties.infrastructure` and `hypervisor` strings).
//!
//! What `image` is depends on the infrastructure: Bakery streams the raw, uncompressed MBR
//! disk image (format `piimg`); `raw` ships a gzip of it; `warden` the rootfs as a tgz.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::{Infrastructure, Resolved};

/// `stemcell.MF`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The stemcell's name.
    pub name: String,
    /// Its version (always a string).
    pub version: String,
    /// Always 1.
    pub bosh_protocol: u32,
    /// Always 3 (an integer).
    pub api_version: u32,
    /// The sha1 of `image`.
    pub sha1: String,
    /// The OS name deployments ask for (`os:`): `PROFILE-ARCH` unless the spec names one.
    pub operating_system: String,
    /// The formats the infrastructure's CPI accepts.
    pub stemcell_formats: Vec<String>,
    /// What the CPI reads.
    pub cloud_properties: BTreeMap<String, String>,
}

/// What `image` is for an infrastructure: (format, hypervisor, disk_format, container_format).
pub fn image_kind(
    infra: Infrastructure,
) -> (&'static str, &'static str, &'static str, &'static str) {
    match infra {
        Infrastructure::Bakery => ("piimg", "pi", "rawdisk", "bare"),
        Infrastructure::Raw => ("rawdisk-gz", "pi", "rawdisk", "gzip"),
        Infrastructure::Warden => ("warden-tarball", "boshlite", "files", "bare"),
    }
}

/// The manifest for `spec` with `image`'s sha1.
pub fn manifest(spec: &Resolved, sha1: &str) -> Manifest {
    let (format, hypervisor, disk_format, container) = image_kind(spec.infrastructure);
    let mut cp = BTreeMap::new();
    for (k, v) in [
        ("name", spec.stemcell_name.as_str()),
        ("version", spec.stemcell_version.as_str()),
        ("infrastructure", spec.infrastructure.name()),
        ("hypervisor", hypervisor),
        ("architecture", spec.arch.debian()),
        ("disk_format", disk_format),
        ("container_format", container),
        ("os_type", "linux"),
        ("os_distro", spec.profile.distro.as_str()),
    ] {
        cp.insert(k.to_string(), v.to_string());
    }
    Manifest {
        name: spec.stemcell_name.clone(),
        version: spec.stemcell_version.clone(),
        bosh_protocol: 1,
        api_version: 3,
        sha1: sha1.to_string(),
        operating_system: spec.operating_system.clone(),
        stemcell_formats: vec![format.to_string()],
        cloud_properties: cp,
    }
}

/// The manifest as YAML, with both `version` values always quoted: an unquoted `1.10` is read
/// as the number 1.1 by some readers (BOSH-CONTRACT.md section 1).
pub fn manifest_yaml(m: &Manifest) -> Result<String, serde_norway::Error> {
    let text = serde_norway::to_string(m)?;
    Ok(text
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            match trimmed.strip_prefix("version: ") {
                Some(v) if !v.starts_with('\'') && !v.starts_with('"') => {
                    let indent = &line[..line.len() - trimmed.len()];
                    format!("{indent}version: '{}'", v.replace('\'', "''"))
                }
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n")
}

/// Whether every `version:` line of a manifest's text is a quoted string.
pub fn versions_quoted(text: &str) -> bool {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("version: "))
        .all(|v| v.starts_with('\'') || v.starts_with('"'))
}

/// `bosh-stemcell-VERSION-INFRA-HYPERVISOR-OS-go_agent.tgz`.
pub fn file_name(spec: &Resolved) -> String {
    let (_, hypervisor, ..) = image_kind(spec.infrastructure);
    format!(
        "bosh-stemcell-{}-{}-{hypervisor}-{}-{}-go_agent.tgz",
        spec.stemcell_version,
        spec.infrastructure.name(),
        spec.profile.name,
        spec.arch.debian()
    )
}

/// `packages.txt`: one `name version architecture` line per installed package.
pub fn packages_txt(root: &Path) -> String {
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap_or_default();
    let mut lines = Vec::new();
    for stanza in status.split("\n\n") {
        let field = |n: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{n}: ")))
                .unwrap_or("")
                .to_string()
        };
        if field("Status").ends_with(" installed") {
            lines.push(format!(
                "{} {} {}",
                field("Package"),
                field("Version"),
                field("Architecture")
            ));
        }
    }
    lines.sort();
    lines.join("\n") + "\n"
}

/// Where the image lists its dev tools' files, one path a line: what the agent deletes for
/// `env.bosh.remove_dev_tools` (stage `02-dev-tools` writes it).
pub const DEV_TOOLS_LIST: &str = "/var/vcap/bosh/etc/dev_tools_file_list";

/// The tarball member with the same list (upstream's and the BOSH docs' name).
pub const DEV_TOOLS_MEMBER: &str = "dev_tools_file_list.txt";

/// The content of [`DEV_TOOLS_MEMBER`]: the image's [`DEV_TOOLS_LIST`] as it is (resolved
/// inside `root`, a regular file under the record cap), or empty when the image has none
/// (`dev_tools: false`).
pub fn dev_tools_file_list(root: &Path) -> Result<Vec<u8>, crate::inside::InsideError> {
    let list = crate::inside::read(
        root,
        DEV_TOOLS_LIST,
        crate::untrusted::RECORD_MAX,
        "a file list",
    )?;
    Ok(list.unwrap_or_default())
}

/// What a packed stemcell is made of, and where it went.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The stemcell tgz.
    pub path: PathBuf,
    /// Its sha1 and sha256.
    pub sha1: String,
    /// Its sha256.
    pub sha256: String,
    /// The manifest.
    pub manifest: Manifest,
    /// How long each part of packing took, in order: (what, seconds).
    pub phases: Vec<(&'static str, f64)>,
}

/// The sha1 of a file as lowercase hex.
pub fn file_sha1(path: &Path) -> std::io::Result<String> {
    use sha1::{Digest, Sha1};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha1::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The sha1 and sha256 of a file, read once.
pub fn file_digests(path: &Path) -> std::io::Result<(String, String)> {
    use sha1::Digest;
    let mut f = std::fs::File::open(path)?;
    let (mut a, mut b) = (sha1::Sha1::new(), sha2::Sha256::new());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        a.update(&buf[..n]);
        b.update(&buf[..n]);
    }
    let hex = |d: &[u8]| d.iter().map(|x| format!("{x:02x}")).collect::<String>();
    Ok((hex(&a.finalize()), hex(&b.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(sets: &[&str]) -> Resolved {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        crate::spec::resolve("t".into(), crate::spec::parse("t", "", &sets).unwrap()).unwrap()
    }

    #[test]
    fn operating_system_names_the_architecture_unless_the_spec_names_one() {
        assert_eq!(
            manifest(&spec(&[]), "x").operating_system,
            "debian-bookworm-armhf"
        );
        let arm64 = spec(&["architecture=arm64"]);
        assert_eq!(
            manifest(&arm64, "x").operating_system,
            "debian-bookworm-arm64"
        );
        let raspbian = spec(&["profile=raspbian-bookworm"]);
        assert_eq!(
            manifest(&raspbian, "x").operating_system,
            "raspbian-bookworm-armhf"
        );
        let named = spec(&["stemcell.operating_system=pi-os.1"]);
        let m = manifest(&named, "x");
        assert_eq!(m.operating_system, "pi-os.1");
        assert!(manifest_yaml(&m)
            .unwrap()
            .lines()
            .any(|l| l == "operating_system: pi-os.1"));
        // The file name keeps the profile and architecture.
        assert!(file_name(&named).contains("-debian-bookworm-armhf-"));
    }

    #[test]
    fn the_dev_tools_member_is_the_images_list_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(dev_tools_file_list(root).unwrap(), b"");
        let etc = root.join("var/vcap/bosh/etc");
        std::fs::create_dir_all(&etc).unwrap();
        let list = "/usr/bin/gcc-12\n/usr/bin/make\n";
        std::fs::write(etc.join("dev_tools_file_list"), list).unwrap();
        assert_eq!(dev_tools_file_list(root).unwrap(), list.as_bytes());
        // A symlink out of the tree is read inside it, never on the host.
        std::fs::remove_file(etc.join("dev_tools_file_list")).unwrap();
        let host = dir.path().join("host-file");
        std::fs::write(&host, "host\n").unwrap();
        std::os::unix::fs::symlink(&host, etc.join("dev_tools_file_list")).unwrap();
        assert_eq!(dev_tools_file_list(root).unwrap(), b"");
        // Not a regular file: an error naming it.
        std::fs::remove_file(etc.join("dev_tools_file_list")).unwrap();
        std::fs::create_dir(etc.join("dev_tools_file_list")).unwrap();
        let e = dev_tools_file_list(root).unwrap_err().to_string();
        assert!(e.contains("dev_tools_file_list"), "{e}");
    }
}
