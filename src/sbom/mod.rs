//! Software bills of materials, made from a rootfs (never from the build's memory, so any
//! rootfs, image or stemcell gets the same answer): every installed package of the dpkg
//! database (name, version, architecture, source package, the license its copyright file
//! states in machine-readable form, a purl) and the components installed from outside the
//! archive (monit, the agent: `steps::record`) with the sha256 of the installed file and
//! where they came from. Written as SPDX 2.3 (`spdx`) and CycloneDX 1.5 (`cdx`) JSON, under
//! the names upstream stemcells use.

pub mod cdx;
pub mod license;
pub mod spdx;

use std::path::{Path, PathBuf};

use crate::archive::packages::{field, parse_paragraphs};
use crate::steps::record::Component;

/// The SPDX file's name in a stemcell.
pub const SPDX_NAME: &str = "sbom.spdx.json";
/// The CycloneDX file's name in a stemcell.
pub const CDX_NAME: &str = "sbom.cdx.json";

/// Errors making an SBOM; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The binary package's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its architecture (`armhf`, `all`).
    pub arch: String,
    /// The source package (name, version), when dpkg records one.
    pub source: (String, String),
    /// Its declared license as an SPDX expression, when the copyright file states one.
    pub license: Option<String>,
}

/// A component from outside the archive, with the sha256 of its installed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The record the stage wrote.
    pub record: Component,
    /// sha256 of the file at `record.path` in the rootfs (None: missing).
    pub sha256: Option<String>,
}

/// What an SBOM lists.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// What the SBOM describes (the stemcell's name).
    pub name: String,
    /// Its version.
    pub version: String,
    /// The distribution (`ID` of `/etc/os-release`): the purl namespace.
    pub distro: String,
    /// When, in seconds since the epoch (`SOURCE_DATE_EPOCH`).
    pub epoch: u64,
    /// Installed packages, sorted by name and architecture.
    pub packages: Vec<Package>,
    /// Components from outside the archive.
    pub components: Vec<Installed>,
}

/// Reads the inventory of the rootfs at `root`.
pub fn inventory(
    root: &Path,
    name: &str,
    version: &str,
    epoch: u64,
) -> Result<Inventory, SbomError> {
    let status = root.join("var/lib/dpkg/status");
    let text = std::fs::read_to_string(&status).map_err(|source| SbomError::Io {
        what: "reading the dpkg database",
        path: status.clone(),
        source,
    })?;
    let mut packages = Vec::new();
    for para in parse_paragraphs(&text) {
        let f = |n: &str| field(&para, n).unwrap_or("").trim().to_string();
        if f("Status") != "install ok installed" {
            continue;
        }
        let (name, version, arch) = (f("Package"), f("Version"), f("Architecture"));
        let src = f("Source");
        // `Source: NAME` or `Source: NAME (VERSION)`; absent: the binary's own.
        let source = match src.split_once(' ') {
            _ if src.is_empty() => (name.clone(), version.clone()),
            Some((n, v)) => (
                n.to_string(),
                v.trim_matches(|c| c == '(' || c == ')').to_string(),
            ),
            None => (src.clone(), version.clone()),
        };
        let license =
            license::of_copyright_file(&root.join("usr/share/doc").join(&name).join("copyright"));
        packages.push(Package {
            name,
            version,
            arch,
            source,
            license,
        });
    }
    packages.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    let components = crate::steps::record::read_all(root)
        .into_iter()
        .map(|record| {
            let file = root.join(record.path.trim_start_matches('/'));
            let sha256 = crate::archive::cache::file_sha256(&file).ok();
            Installed { record, sha256 }
        })
        .collect();
    Ok(Inventory {
        name: name.to_string(),
        version: version.to_string(),
        distro: os_release_id(root).unwrap_or_else(|| "debian".into()),
        epoch,
        packages,
        components,
    })
}

/// `ID` of the rootfs's os-release.
fn os_release_id(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("etc/os-release"))
        .or_else(|_| std::fs::read_to_string(root.join("usr/lib/os-release")))
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("ID="))
        .map(|v| v.trim_matches('"').to_string())
}

/// The package URL of a Debian-format package.
pub fn purl(distro: &str, p: &Package) -> String {
    format!(
        "pkg:deb/{distro}/{}@{}?arch={}",
        encode(&p.name),
        encode(&p.version),
        encode(&p.arch)
    )
}

/// The package URL of a component from outside the archive.
pub fn generic_purl(c: &Component) -> String {
    format!("pkg:generic/{}@{}", encode(&c.name), encode(&c.version))
}

/// Percent-encodes what a purl segment may not carry (`:` of epochs, `+`, `~`).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `epoch` as an RFC 3339 UTC time (`2024-08-10T09:15:38Z`).
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Writes both SBOMs of `inv` into `dir`; returns their paths (SPDX, CycloneDX).
pub fn write_both(inv: &Inventory, dir: &Path) -> Result<(PathBuf, PathBuf), SbomError> {
    let write = |name: &str, value: serde_json::Value| {
        let path = dir.join(name);
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        std::fs::write(&path, text).map_err(|source| SbomError::Io {
            what: "writing",
            path: path.clone(),
            source,
        })?;
        Ok::<PathBuf, SbomError>(path)
    };
    Ok((
        write(SPDX_NAME, spdx::document(inv))?,
        write(CDX_NAME, cdx::document(inv))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_purls() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        let p = Package {
            name: "libstdc++6".into(),
            version: "1:12.2.0-14+deb12u1".into(),
            arch: "armhf".into(),
            source: ("gcc-12".into(), "12.2.0-14+deb12u1".into()),
            license: None,
        };
        assert_eq!(
            purl("debian", &p),
            "pkg:deb/debian/libstdc%2B%2B6@1%3A12.2.0-14%2Bdeb12u1?arch=armhf"
        );
    }
}
