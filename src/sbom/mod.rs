//! Software bills of materials, made from a rootfs (never from the build's memory, so any
//! rootfs, image or stemcell gets the same answer): every installed package of the dpkg
//! database (name, version, architecture, source package, the license its copyright file
//! states in machine-readable form, a purl) and the components installed from outside the
//! archive (monit, the agent: `record`) with the sha256 of the installed file and
//! where they came from. Written as SPDX 2.3 (`spdx`) and CycloneDX 1.5 (`cdx`) JSON, under
//! the names upstream stemcells use.

pub mod cdx;
pub mod license;
mod read;
pub mod spdx;

use std::path::{Path, PathBuf};

use crate::record::Component;

/// The SPDX file's name in a stemcell.
pub const SPDX_NAME: &str = "sbom.spdx.json";
/// The CycloneDX file's name in a stemcell.
pub const CDX_NAME: &str = "sbom.cdx.json";

/// Errors making an SBOM; each names the file, record or package and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// A file could not be written.
    #[error("{what} {}: {source}", crate::untrusted::escape_path(path))]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The tree has no dpkg database.
    #[error("{} has no dpkg database (var/lib/dpkg/status); sbom reads the rootfs of a Debian-family system, its disk image or its stemcell", crate::untrusted::escape_path(root))]
    NoStatus {
        /// The tree.
        root: PathBuf,
    },
    /// A file of the tree is not a regular file, too large, or its path leads outside.
    #[error("reading {what}: {source}; the image is damaged or hostile, sbom reads only regular files of the image, inside it")]
    Read {
        /// What was being read (`the dpkg database`, `the copyright file of bash`).
        what: String,
        /// Why it was not read.
        source: crate::inside::InsideError,
    },
    /// A dpkg status paragraph names no valid package.
    #[error("dpkg database {}, paragraph {paragraph}: {reason}; the image's dpkg database is damaged or was not written by dpkg", crate::untrusted::escape_path(path))]
    BadPackage {
        /// The status file.
        path: PathBuf,
        /// The paragraph's number, from 1.
        paragraph: usize,
        /// What is wrong, with the name escaped.
        reason: String,
    },
    /// The tree's os-release says something unusable.
    #[error(
        "{}: {reason}; the image's os-release is damaged or hostile",
        crate::untrusted::escape_path(path)
    )]
    OsRelease {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A component record cannot be used.
    #[error(
        "component record {}: {reason}; the image's records under /{} are damaged or hostile",
        crate::untrusted::escape_path(path),
        crate::record::DIR
    )]
    Component {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
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

pub use read::{epoch_of, inventory, valid_package_name};

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
        crate::atomic::write(&path, text.as_bytes()).map_err(|source| SbomError::Io {
            what: "writing",
            path: path.clone(),
            source,
        })?;
        Ok::<PathBuf, SbomError>(path)
    };
    // Both destinations are checked before either is written: a FIFO or device named like
    // the second does not leave the first written alone.
    for name in [SPDX_NAME, CDX_NAME] {
        let path = dir.join(name);
        crate::owned::check_destination(&path).map_err(|e| SbomError::Io {
            what: "writing",
            path,
            source: std::io::Error::other(e.to_string()),
        })?;
    }
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
