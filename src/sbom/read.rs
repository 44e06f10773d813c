//! Reading an SBOM's inventory from a tree that may be hostile: every file is read through
//! `inside` (resolved inside the tree, regular files only, under a size cap), package
//! names are checked against Debian policy before they become paths or purls, and a component
//! record's `Path:` is resolved inside the tree or refused.

use std::io::Read;
use std::path::Path;

use sha2::Digest;

use super::{license, Installed, Inventory, Package, SbomError};
use crate::archive::packages::{field, parse_paragraphs};
use crate::inside;
use crate::untrusted::{self, escape};

/// The dpkg database, relative to the tree.
const STATUS: &str = "var/lib/dpkg/status";

/// The most installed packages an SBOM lists (Debian's whole archive has about 65,000 binary
/// packages per architecture; an image holds a few thousand): bounds the SBOM's memory.
pub const PACKAGES_MAX: usize = 50_000;

/// The paragraphs of a deb822 text, one at a time (blank lines separate them).
fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    let line_end = |s: &str, from: usize| s[from..].find('\n').map_or(s.len(), |i| from + i + 1);
    let mut rest = text;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            let end = line_end(rest, 0);
            if !rest[..end].trim().is_empty() {
                break;
            }
            rest = &rest[end..];
        }
        let mut end = 0;
        while end < rest.len() {
            let next = line_end(rest, end);
            if rest[end..next].trim().is_empty() {
                break;
            }
            end = next;
        }
        let (p, r) = rest.split_at(end);
        rest = r;
        Some(p)
    })
}

/// Whether `name` is a Debian package name: lower-case letters, digits, `+`, `-` and `.`, at
/// least two characters, starting with a letter or digit (Debian policy 5.6.1).
pub fn valid_package_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(c))
}

/// Reads the inventory of the tree at `root` (a rootfs, or an image or stemcell opened as
/// one), which may be hostile.
pub fn inventory(
    root: &Path,
    name: &str,
    version: &str,
    epoch: u64,
) -> Result<Inventory, SbomError> {
    let read_err = |what: String| move |source| SbomError::Read { what, source };
    let text = inside::read_text(root, STATUS, untrusted::DPKG_STATUS_MAX, "a dpkg database")
        .map_err(read_err("the dpkg database".into()))?
        .ok_or_else(|| SbomError::NoStatus {
            root: root.to_path_buf(),
        })?;
    let mut packages = Vec::new();
    // One paragraph parsed at a time: the database's text is the only large thing held.
    for (i, raw) in paragraphs(&text).enumerate() {
        let Some(para) = parse_paragraphs(raw).into_iter().next() else {
            continue;
        };
        let f = |n: &str| field(&para, n).unwrap_or("").trim().to_string();
        if f("Status") != "install ok installed" {
            continue;
        }
        if packages.len() == PACKAGES_MAX {
            return Err(SbomError::BadPackage {
                path: root.join(STATUS),
                paragraph: i + 1,
                reason: format!(
                    "more than {PACKAGES_MAX} installed packages, the limit for an SBOM"
                ),
            });
        }
        let (name, version, arch) = (f("Package"), f("Version"), f("Architecture"));
        let bad = |reason: String| SbomError::BadPackage {
            path: root.join(STATUS),
            paragraph: i + 1,
            reason,
        };
        if name.is_empty() {
            return Err(bad("an installed package without a `Package:` name".into()));
        }
        if !valid_package_name(&name) {
            return Err(bad(format!(
                "`{}` is not a Debian package name (lower-case letters, digits, `+`, `-`, `.`; two or more, starting with a letter or digit)",
                escape(&name)
            )));
        }
        if version.is_empty() {
            return Err(bad(format!("package {name} has no `Version:`")));
        }
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
        let copyright = inside::read_text(
            root,
            &format!("usr/share/doc/{name}/copyright"),
            untrusted::SMALL_MAX,
            "a copyright file",
        )
        .map_err(read_err(format!("the copyright file of package {name}")))?;
        packages.push(Package {
            license: copyright.as_deref().and_then(license::of_copyright_text),
            name,
            version,
            arch,
            source,
        });
    }
    packages.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    let records = crate::record::read_checked(root).map_err(|e| SbomError::Component {
        path: e.path,
        reason: e.reason,
    })?;
    let mut components = Vec::new();
    for record in records {
        let sha256 =
            installed_sha256(root, &record.path).map_err(|reason| SbomError::Component {
                path: root.join(crate::record::DIR).join(&record.name),
                reason: format!("component {}: {reason}", escape(&record.name)),
            })?;
        components.push(Installed { record, sha256 });
    }
    Ok(Inventory {
        name: name.to_string(),
        version: version.to_string(),
        distro: os_release_id(root)?,
        epoch,
        packages,
        components,
    })
}

/// The sha256 of the file a record's `Path:` names, resolved inside the tree (`None`: it is
/// not there); a path that leads outside or to something not a regular file is an error.
fn installed_sha256(root: &Path, path: &str) -> Result<Option<String>, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "`Path: {}` is not an absolute path in the image",
            escape(path)
        ));
    }
    let Some(host) = inside::resolve(root, path).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let f = match untrusted::open_regular(&host) {
        Ok(f) => f,
        Err(untrusted::UntrustedError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(None)
        }
        Err(e) => return Err(format!("`Path: {}`: {e}", escape(path))),
    };
    let mut h = sha2::Sha256::new();
    let mut r = std::io::BufReader::with_capacity(1 << 16, f);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| format!("reading {}: {e}", untrusted::escape_path(&host)))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Some(crate::archive::cache::hex(&h.finalize())))
}

/// `ID` of the tree's os-release (the purl namespace), `debian` when there is none.
fn os_release_id(root: &Path) -> Result<String, SbomError> {
    let mut text = None;
    for rel in ["etc/os-release", "usr/lib/os-release"] {
        text = inside::read_text(root, rel, untrusted::SMALL_MAX, "an os-release file").map_err(
            |source| SbomError::Read {
                what: format!("/{rel}"),
                source,
            },
        )?;
        if text.is_some() {
            break;
        }
    }
    let Some(id) = text.as_deref().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("ID="))
            .map(|v| v.trim().trim_matches('"').to_string())
    }) else {
        return Ok("debian".into());
    };
    // os-release(5): 0-9, a-z, `.`, `_` and `-`.
    let ok = !id.is_empty()
        && id
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c));
    if !ok {
        return Err(SbomError::OsRelease {
            path: root.join("etc/os-release"),
            reason: format!(
                "`ID={}` is not an os-release ID (lower-case letters, digits, `.`, `_`, `-`)",
                escape(&id)
            ),
        });
    }
    Ok(id)
}

/// The time an SBOM of the tree at `root` carries: `SOURCE_DATE_EPOCH`, else the date of the
/// archive the tree was bootstrapped from (read inside the tree, capped), else 0.
pub fn epoch_of(root: &Path) -> u64 {
    crate::epoch::source_date_epoch()
        .or_else(|| {
            let text = inside::read_text(
                root,
                crate::record::ARCHIVE_RECORD,
                untrusted::SMALL_MAX,
                "the archive record",
            )
            .ok()??;
            let date = text.lines().find_map(|l| l.strip_prefix("Date: "))?;
            crate::archive::release::parse_date(date.trim()).and_then(|t| u64::try_from(t).ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_are_split_at_blank_lines() {
        let t = "\n\nA: 1\nB: 2\n \t\nC: 3\n continued\n\n\nD: 4";
        let p: Vec<&str> = paragraphs(t).collect();
        assert_eq!(p, ["A: 1\nB: 2\n", "C: 3\n continued\n", "D: 4"]);
        assert_eq!(paragraphs("").count(), 0);
        assert_eq!(paragraphs("\n \n").count(), 0);
    }

    #[test]
    fn package_names_follow_debian_policy() {
        for ok in ["bash", "libstdc++6", "g++-12", "python3.11", "0ad"] {
            assert!(valid_package_name(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "/etc/passwd",
            "../x",
            "Bash",
            "-x",
            ".x",
            "a b",
            "a/b",
            "é1",
        ] {
            assert!(!valid_package_name(bad), "{bad}");
        }
    }
}
