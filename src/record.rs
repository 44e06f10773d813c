//! What the build records inside the rootfs, so that the SBOM, provenance and the build's
//! timestamp come from the rootfs alone, for a build or for any image later:
//! - what a built-in stage installed from outside the archive (monit, the agent), as
//!   `var/lib/pistemcell/components/NAME` (deb822 fields);
//! - every .deb installed ([`DEBS`]);
//! - the archive the rootfs was bootstrapped from ([`ARCHIVE_RECORD`]).

use std::path::{Path, PathBuf};

use crate::spec::inputs::Artifact;

/// The record of every .deb installed (`NAME VERSION ARCH SHA256` lines, sorted), relative to
/// the rootfs: what `provenance.json` lists.
pub const DEBS: &str = "var/lib/pistemcell/debs";

/// Where the rootfs records the archive state it was bootstrapped from (deb822 fields:
/// `Suite`, `Components`, `Release-SHA256`, `Date`), so that a cached build, which never
/// opens the archive, still knows it.
pub const ARCHIVE_RECORD: &str = "var/lib/pistemcell/archive";

/// Adds `debs` (name, version, arch, sha256) to the rootfs's [`DEBS`] record.
pub fn add_debs(root: &Path, debs: &[(String, String, String, String)]) -> Result<(), String> {
    let path = root.join(DEBS);
    let mut lines: std::collections::BTreeSet<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    for (n, v, a, sha) in debs {
        lines.insert(format!("{n} {v} {a} {}", sha.to_ascii_lowercase()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let text: String = lines.into_iter().map(|l| l + "\n").collect();
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The directory of component records, relative to the rootfs.
pub const DIR: &str = "var/lib/pistemcell/components";

/// One recorded component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// `monit`, `bosh-agent`.
    pub name: String,
    /// Its version (`unknown` when the input does not say).
    pub version: String,
    /// Where it is installed, absolute in the image.
    pub path: String,
    /// How it was given (`source tarball`, `deb`, `binary`, `go build`).
    pub kind: String,
    /// Where it came from: a URL, or a file name (never a build machine's path).
    pub origin: String,
    /// The sha256 of the input it was made from.
    pub input_sha256: String,
    /// The project's patches applied to its source (`NAME sha256:HEX`), in order.
    pub patches: Vec<String>,
}

/// Where an artifact came from, without the build machine's directories.
pub fn origin_of(a: &Artifact) -> String {
    match (&a.url, &a.path) {
        (Some(u), _) => u.clone(),
        (None, Some(p)) => format!(
            "file {}",
            Path::new(p)
                .file_name()
                .map_or(p.clone(), |n| n.to_string_lossy().into_owned())
        ),
        _ => "unknown".into(),
    }
}

/// Writes the record of `c` into the rootfs at `root`.
pub fn write(root: &Path, c: &Component) -> Result<PathBuf, String> {
    let dir = root.join(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(&c.name);
    let one_line = |s: &str| s.replace('\n', " ");
    let mut text = format!(
        "Name: {}\nVersion: {}\nPath: {}\nKind: {}\nOrigin: {}\nInput-SHA256: {}\n",
        one_line(&c.name),
        one_line(&c.version),
        one_line(&c.path),
        one_line(&c.kind),
        one_line(&c.origin),
        one_line(&c.input_sha256)
    );
    if !c.patches.is_empty() {
        let list: Vec<String> = c
            .patches
            .iter()
            .map(|p| one_line(p).replace(';', ","))
            .collect();
        text.push_str(&format!("Patches: {}\n", list.join("; ")));
    }
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Parses one record's text.
pub fn parse(text: &str) -> Option<Component> {
    let f = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}: ")))
            .map(str::to_string)
    };
    Some(Component {
        name: f("Name")?,
        version: f("Version").unwrap_or_else(|| "unknown".into()),
        path: f("Path").unwrap_or_default(),
        kind: f("Kind").unwrap_or_default(),
        origin: f("Origin").unwrap_or_default(),
        input_sha256: f("Input-SHA256").unwrap_or_default(),
        patches: f("Patches")
            .map(|l| l.split("; ").map(str::to_string).collect())
            .unwrap_or_default(),
    })
}

/// The record of patch file `path`: `NAME sha256:HEX`.
pub fn patch_entry(path: &Path) -> String {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let sha = crate::archive::cache::file_sha256(path).unwrap_or_else(|_| "unreadable".into());
    format!("{name} sha256:{sha}")
}

impl Component {
    /// One line for people: version, how and where from.
    pub fn summary(&self) -> String {
        format!(
            "{} ({} {}, input sha256 {})",
            self.version, self.kind, self.origin, self.input_sha256
        )
    }
}

/// Why a component record of a tree was not read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", crate::untrusted::escape_path(path))]
pub struct RecordError {
    /// The record (or the records' directory).
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

/// Reads every component record of the tree at `root`, which may be hostile: the records'
/// directory is resolved inside the tree, each record must be a regular file of at most
/// `untrusted::SMALL_MAX` bytes with a `Name:`; sorted by name. No directory: no records.
pub fn read_checked(root: &Path) -> Result<Vec<Component>, RecordError> {
    let mut out = Vec::new();
    for (path, read) in each(root)? {
        let text = read.map_err(|reason| RecordError {
            path: path.clone(),
            reason,
        })?;
        out.push(parse(&text).ok_or_else(|| RecordError {
            path,
            reason: "it has no `Name:` field".into(),
        })?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Reads the component records of the rootfs at `root` that can be read (see
/// [`read_checked`]; unreadable ones are left out), sorted by name.
pub fn read_all(root: &Path) -> Vec<Component> {
    let mut out: Vec<Component> = each(root)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .filter_map(|text| parse(&text))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Each record file of the tree with its text, or why it was not read.
type Each = Vec<(PathBuf, Result<String, String>)>;

fn each(root: &Path) -> Result<Each, RecordError> {
    let dir_err = |reason: String| RecordError {
        path: root.join(DIR),
        reason,
    };
    let Some(dir) = crate::inside::resolve(root, DIR).map_err(|e| dir_err(e.to_string()))? else {
        return Ok(Vec::new());
    };
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(dir_err(e.to_string())),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| dir_err(e.to_string()))?;
        let path = e.path();
        // Not followed: a record is a regular file of its own (see `untrusted`).
        let text =
            crate::untrusted::read_text(&path, crate::untrusted::SMALL_MAX, "a component record")
                .map_err(|e| e.to_string());
        out.push((path, text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_hide_local_paths() {
        let t = tempfile::tempdir().unwrap();
        let a = Artifact {
            url: None,
            path: Some("/home/me/dl/monit-5.2.5.tar.gz".into()),
            sha256: "ab".repeat(32),
        };
        let c = Component {
            name: "monit".into(),
            version: "5.2.5".into(),
            path: "/var/vcap/bosh/bin/monit".into(),
            kind: "source".into(),
            origin: origin_of(&a),
            input_sha256: a.digest(),
            patches: Vec::new(),
        };
        assert_eq!(c.origin, "file monit-5.2.5.tar.gz");
        write(t.path(), &c).unwrap();
        assert_eq!(read_all(t.path()), vec![c.clone()]);
        assert!(read_all(&t.path().join("none")).is_empty());
        assert_eq!(read_checked(t.path()).unwrap(), read_all(t.path()));
        // A patched build keeps its patches, in order.
        let patched = Component {
            name: "bosh-agent".into(),
            patches: vec![
                "0001-a.patch sha256:aa".into(),
                "0002-b.patch sha256:bb".into(),
            ],
            ..c
        };
        write(t.path(), &patched).unwrap();
        let text = std::fs::read_to_string(t.path().join(DIR).join("bosh-agent")).unwrap();
        assert!(
            text.contains("Patches: 0001-a.patch sha256:aa; 0002-b.patch sha256:bb\n"),
            "{text}"
        );
        assert!(read_all(t.path()).contains(&patched));
    }
}
