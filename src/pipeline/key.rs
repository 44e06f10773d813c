//! Cache keys as an explicit manifest of named inputs (mkosi's cache manifest idea).
//!
//! A stage's inputs are named values: `stage.yml` → `sha256:…`, `files/etc/x` →
//! `sha256:… mode 0644`, `spec.infrastructure` → `bakery`, `parent` → `10-base@KEY`,
//! `pipeline-format` → [`PIPELINE_FORMAT`]. The key is the sha256 of the sorted manifest, and
//! the manifest is kept next to the cached snapshot, so a stale cache entry can say which
//! input changed ([`diff`]).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tarwrite::tree::{self, Kind, TreeError};

/// Version of the snapshot format and key scheme; bumping it invalidates every cache entry.
pub const PIPELINE_FORMAT: &str = "1";

/// The named inputs of one stage, sorted by name.
pub type Inputs = BTreeMap<String, String>;

/// What is stored next to a snapshot: the stage, its key and the inputs that made the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The stage name (`20-users`).
    pub stage: String,
    /// The cache key (sha256 of the inputs).
    pub key: String,
    /// The named inputs.
    pub inputs: Inputs,
}

impl Manifest {
    /// A manifest for `stage` with `inputs` (plus `stage` → its name, so two stages never
    /// share a key); the key is computed.
    pub fn new(stage: &str, mut inputs: Inputs) -> Manifest {
        inputs.insert("stage".into(), stage.to_string());
        Manifest {
            stage: stage.to_string(),
            key: key_of(&inputs),
            inputs,
        }
    }
}

/// The key of a set of inputs: sha256 over every (name, value), length-prefixed, in order.
pub fn key_of(inputs: &Inputs) -> String {
    let mut h = Sha256::new();
    for (name, value) in inputs {
        for part in [name, value] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    tree::hex(&h.finalize())
}

/// The `parent` input: the previous stage's name and key (none for the first stage).
pub fn parent_value(name: &str, key: &str) -> String {
    format!("{name}@{key}")
}

/// Says which inputs differ between a cached manifest and the current one, one line each:
/// `apply.sh changed`, `parent 10-base rebuilt`, `spec.infrastructure changed: bakery → raw`,
/// `files/etc/x added`.
pub fn diff(old: &Inputs, new: &Inputs) -> Vec<String> {
    let mut why = Vec::new();
    for (name, value) in new {
        match old.get(name) {
            None => why.push(format!("{name} added")),
            Some(o) if o == value => {}
            Some(o) => why.push(changed(name, o, value)),
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        why.push(format!("{name} removed"));
    }
    why
}

fn changed(name: &str, old: &str, new: &str) -> String {
    if name == "parent" {
        let (on, _) = old.split_once('@').unwrap_or((old, ""));
        let (nn, _) = new.split_once('@').unwrap_or((new, ""));
        return if on == nn {
            format!("parent {nn} rebuilt")
        } else {
            format!("parent changed: {on} → {nn}")
        };
    }
    if old.starts_with("sha256:") || new.starts_with("sha256:") || old.len() + new.len() > 120 {
        format!("{name} changed")
    } else {
        format!("{name} changed: {old} → {new}")
    }
}

/// Adds every entry under `dir` to `inputs` as `PREFIX/rel`: files by content digest and
/// mode, symlinks by target, directories by mode (so an empty directory counts too).
/// `dir` itself is not an input; a missing `dir` adds nothing.
pub fn add_tree(dir: &Path, prefix: &str, inputs: &mut Inputs) -> Result<(), TreeError> {
    if fs::symlink_metadata(dir).is_err() {
        return Ok(());
    }
    tree::walk::<TreeError>(dir, &|_| true, &mut |e| {
        if e.rel.as_os_str().is_empty() {
            return Ok(());
        }
        let name = if prefix.is_empty() {
            e.rel.display().to_string()
        } else {
            format!("{prefix}/{}", e.rel.display())
        };
        inputs.insert(name, describe(e)?);
        Ok(())
    })
}

/// One input value for a walked entry.
fn describe(e: &tree::TreeEntry) -> Result<String, TreeError> {
    Ok(match &e.kind {
        Kind::File | Kind::HardLink(_) => {
            format!("sha256:{} mode {:04o}", tree::file_sha256(&e.path)?, e.mode)
        }
        Kind::Dir => format!("dir mode {:04o}", e.mode),
        Kind::Symlink(t) => format!("symlink {}", t.display()),
        other => format!("special {other:?}"),
    })
}

/// The input value of one file: `sha256:HEX mode MODE`.
pub fn file_input(path: &Path) -> Result<String, TreeError> {
    let meta = fs::symlink_metadata(path).map_err(|source| TreeError::Io {
        op: "inspect",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(format!(
        "sha256:{} mode {:04o}",
        tree::file_sha256(path)?,
        meta.mode() & 0o7777
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn key_depends_on_every_name_and_value_and_nothing_else() {
        let a = inputs(&[("apply.sh", "sha256:1"), ("spec.x", "a")]);
        assert_eq!(key_of(&a), key_of(&a.clone()));
        assert_ne!(
            key_of(&a),
            key_of(&inputs(&[("apply.sh", "sha256:1"), ("spec.x", "b")]))
        );
        assert_ne!(
            key_of(&a),
            key_of(&inputs(&[("apply.sh", "sha256:1"), ("spec.y", "a")]))
        );
        // Length prefixes: moving a byte between name and value changes the key.
        assert_ne!(
            key_of(&inputs(&[("ab", "c")])),
            key_of(&inputs(&[("a", "bc")]))
        );
        assert_eq!(key_of(&a).len(), 64);
    }

    #[test]
    fn diff_names_what_changed() {
        let old = inputs(&[
            ("apply.sh", "sha256:1"),
            ("parent", "10-base@k1"),
            ("spec.infrastructure", "bakery"),
            ("files/gone", "sha256:3 mode 0644"),
        ]);
        let new = inputs(&[
            ("apply.sh", "sha256:2"),
            ("parent", "10-base@k2"),
            ("spec.infrastructure", "raw"),
            ("files/new", "sha256:3 mode 0644"),
        ]);
        assert_eq!(
            diff(&old, &new),
            [
                "apply.sh changed",
                "files/new added",
                "parent 10-base rebuilt",
                "spec.infrastructure changed: bakery → raw",
                "files/gone removed",
            ]
        );
        let moved = inputs(&[("parent", "15-x@k3")]);
        assert_eq!(
            diff(&inputs(&[("parent", "10-base@k1")]), &moved),
            ["parent changed: 10-base → 15-x"]
        );
        assert!(diff(&old, &old).is_empty());
    }

    #[test]
    fn tree_inputs_cover_content_mode_links_and_empty_dirs() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc/empty")).unwrap();
        fs::write(d.path().join("etc/x"), "1").unwrap();
        std::os::unix::fs::symlink("x", d.path().join("etc/l")).unwrap();
        let mut a = Inputs::new();
        add_tree(d.path(), "files", &mut a).unwrap();
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            ["files/etc", "files/etc/empty", "files/etc/l", "files/etc/x"]
        );
        assert_eq!(a["files/etc/l"], "symlink x");
        let key = key_of(&a);
        fs::set_permissions(d.path().join("etc/x"), fs::Permissions::from_mode(0o755)).unwrap();
        let mut b = Inputs::new();
        add_tree(d.path(), "files", &mut b).unwrap();
        assert_ne!(key, key_of(&b), "a mode change is a change");
        assert_eq!(diff(&a, &b), ["files/etc/x changed"]);
        let mut none = Inputs::new();
        add_tree(&d.path().join("missing"), "files", &mut none).unwrap();
        assert!(none.is_empty());
    }
}
