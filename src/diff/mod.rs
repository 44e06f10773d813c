//! `pistemcell diff A B`: what changed between two stemcells (or two rootfs directories):
//! packages added, removed, upgraded and downgraded; files added, removed and changed (size,
//! mode, owner, type, content digest, link target); the manifest; monit and the agent; the
//! audit findings that appeared or went away. A readable summary, or JSON for release notes.
//!
//! File names are keyed and compared as raw bytes, never lossily. In the text report every
//! name and value from either side is escaped (`untrusted::escape_bytes`: `\n`, `\x1b`,
//! `\xff`, a backslash doubled), so no name can forge a report line or drive a terminal.
//! In the JSON report a file's `path` is its name as a JSON string when the name is valid
//! UTF-8; otherwise `path` is the escaped form and `path_hex` carries the exact bytes in
//! lowercase hex (e.g. `{"path": "/caf\\xe9", "path_hex": "2f636166e9"}`): a reader that
//! needs the bytes takes `path_hex` when present, else `path`.

pub mod read;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

/// One file as the diff sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// `f` file, `d` directory, `l` symlink, `c` device, `p` fifo or socket.
    pub kind: char,
    /// Size of a file's contents.
    pub size: u64,
    /// Permission bits (with setuid, setgid, sticky).
    pub mode: u32,
    /// Numeric owner and group.
    pub owner: (u32, u32),
    /// sha256 of a file, the target of a link (escaped, see `untrusted::escape_bytes`), the
    /// numbers of a device.
    pub digest: String,
}

/// One side of a diff.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// stemcell.MF flattened (`cloud_properties.version`); empty for a directory.
    pub manifest: BTreeMap<String, String>,
    /// (name, architecture) → version.
    pub packages: BTreeMap<(String, String), String>,
    /// Absolute path, as raw bytes → what it is.
    pub files: BTreeMap<Vec<u8>, FileInfo>,
    /// Components from outside the archive (monit, the agent) → their summary.
    pub components: BTreeMap<String, String>,
    /// Failing audit findings (`check path`).
    pub audit: BTreeSet<String>,
}

/// What changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Packages only in B: (name, arch, version).
    pub added: Vec<(String, String, String)>,
    /// Packages only in A.
    pub removed: Vec<(String, String, String)>,
    /// Newer in B: (name, arch, from, to).
    pub upgraded: Vec<(String, String, String, String)>,
    /// Older in B.
    pub downgraded: Vec<(String, String, String, String)>,
    /// Files only in B (path as raw bytes, size).
    pub files_added: Vec<(Vec<u8>, u64)>,
    /// Files only in A.
    pub files_removed: Vec<(Vec<u8>, u64)>,
    /// Files in both that differ: (path as raw bytes, what changed).
    pub files_changed: Vec<(Vec<u8>, Vec<String>)>,
    /// Manifest keys that differ: (key, A's, B's).
    pub manifest: Vec<(String, Option<String>, Option<String>)>,
    /// Components that differ: (name, A's, B's).
    pub components: Vec<(String, Option<String>, Option<String>)>,
    /// Audit findings only in B.
    pub audit_appeared: Vec<String>,
    /// Audit findings only in A.
    pub audit_gone: Vec<String>,
}

fn mode_text(m: u32) -> String {
    format!("{m:04o}")
}

/// What differs between two versions of one file.
fn file_changes(a: &FileInfo, b: &FileInfo) -> Vec<String> {
    let mut out = Vec::new();
    if a.kind != b.kind {
        out.push(format!("type {} -> {}", a.kind, b.kind));
    }
    if a.mode != b.mode {
        out.push(format!(
            "mode {} -> {}",
            mode_text(a.mode),
            mode_text(b.mode)
        ));
    }
    if a.owner != b.owner {
        out.push(format!(
            "owner {}:{} -> {}:{}",
            a.owner.0, a.owner.1, b.owner.0, b.owner.1
        ));
    }
    if a.size != b.size {
        out.push(format!("size {} -> {}", a.size, b.size));
    }
    if a.kind == b.kind && a.digest != b.digest {
        out.push(match a.kind {
            'l' => format!("target {} -> {}", a.digest, b.digest),
            'c' => format!("device {} -> {}", a.digest, b.digest),
            _ => "content".to_string(),
        });
    }
    out
}

/// Both-sided differences of two maps: (key, A's, B's) where they differ.
fn map_diff(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| ((*k).clone(), a.get(k).cloned(), b.get(k).cloned()))
        .collect()
}

/// Compares two snapshots.
pub fn compare(a: &Snapshot, b: &Snapshot) -> Diff {
    let mut d = Diff::default();
    for ((name, arch), va) in &a.packages {
        match b.packages.get(&(name.clone(), arch.clone())) {
            None => d.removed.push((name.clone(), arch.clone(), va.clone())),
            Some(vb) => match crate::archive::version::compare(va, vb) {
                Ordering::Less => {
                    d.upgraded
                        .push((name.clone(), arch.clone(), va.clone(), vb.clone()))
                }
                Ordering::Greater => {
                    d.downgraded
                        .push((name.clone(), arch.clone(), va.clone(), vb.clone()))
                }
                Ordering::Equal => {}
            },
        }
    }
    for ((name, arch), vb) in &b.packages {
        if !a.packages.contains_key(&(name.clone(), arch.clone())) {
            d.added.push((name.clone(), arch.clone(), vb.clone()));
        }
    }
    for (path, fa) in &a.files {
        match b.files.get(path) {
            None => d.files_removed.push((path.clone(), fa.size)),
            Some(fb) => {
                let c = file_changes(fa, fb);
                if !c.is_empty() {
                    d.files_changed.push((path.clone(), c));
                }
            }
        }
    }
    for (path, fb) in &b.files {
        if !a.files.contains_key(path) {
            d.files_added.push((path.clone(), fb.size));
        }
    }
    d.manifest = map_diff(&a.manifest, &b.manifest);
    d.components = map_diff(&a.components, &b.components);
    d.audit_appeared = b.audit.difference(&a.audit).cloned().collect();
    d.audit_gone = a.audit.difference(&b.audit).cloned().collect();
    d
}

impl Diff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Diff::default()
    }

    /// The readable report: counts first, then each change.
    pub fn text(&self) -> String {
        let mut o = format!(
            "packages: {} added, {} removed, {} upgraded, {} downgraded\nfiles: {} added, {} removed, {} changed\nmanifest: {} changed; components: {} changed; audit: {} appeared, {} gone\n",
            self.added.len(),
            self.removed.len(),
            self.upgraded.len(),
            self.downgraded.len(),
            self.files_added.len(),
            self.files_removed.len(),
            self.files_changed.len(),
            self.manifest.len(),
            self.components.len(),
            self.audit_appeared.len(),
            self.audit_gone.len()
        );
        use crate::untrusted::{escape, escape_bytes};
        let none = |v: &Option<String>| v.as_deref().map_or_else(|| "(none)".into(), escape);
        let e = escape;
        for (n, a, v) in &self.added {
            o.push_str(&format!("+ package {} {} ({})\n", e(n), e(v), e(a)));
        }
        for (n, a, v) in &self.removed {
            o.push_str(&format!("- package {} {} ({})\n", e(n), e(v), e(a)));
        }
        for (n, a, x, y) in &self.upgraded {
            o.push_str(&format!(
                "^ package {} {} -> {} ({})\n",
                e(n),
                e(x),
                e(y),
                e(a)
            ));
        }
        for (n, a, x, y) in &self.downgraded {
            o.push_str(&format!(
                "v package {} {} -> {} ({})\n",
                e(n),
                e(x),
                e(y),
                e(a)
            ));
        }
        for (k, x, y) in &self.manifest {
            o.push_str(&format!(
                "~ manifest {}: {} -> {}\n",
                e(k),
                none(x),
                none(y)
            ));
        }
        for (k, x, y) in &self.components {
            o.push_str(&format!(
                "~ component {}: {} -> {}\n",
                e(k),
                none(x),
                none(y)
            ));
        }
        for f in &self.audit_appeared {
            o.push_str(&format!("+ audit {}\n", e(f)));
        }
        for f in &self.audit_gone {
            o.push_str(&format!("- audit {}\n", e(f)));
        }
        for (p, s) in &self.files_added {
            o.push_str(&format!("+ {} ({s} bytes)\n", escape_bytes(p)));
        }
        for (p, s) in &self.files_removed {
            o.push_str(&format!("- {} ({s} bytes)\n", escape_bytes(p)));
        }
        for (p, c) in &self.files_changed {
            let c: Vec<String> = c.iter().map(|x| e(x)).collect();
            o.push_str(&format!("~ {}: {}\n", escape_bytes(p), c.join(", ")));
        }
        o
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let pv = |v: &[(String, String, String)]| -> Vec<Value> {
            v.iter()
                .map(|(n, a, ver)| json!({"name": n, "architecture": a, "version": ver}))
                .collect()
        };
        let pc = |v: &[(String, String, String, String)]| -> Vec<Value> {
            v.iter()
                .map(|(n, a, x, y)| json!({"name": n, "architecture": a, "from": x, "to": y}))
                .collect()
        };
        let kv = |v: &[(String, Option<String>, Option<String>)]| -> Vec<Value> {
            v.iter()
                .map(|(k, x, y)| json!({"key": k, "from": x, "to": y}))
                .collect()
        };
        json!({
            "packages": {
                "added": pv(&self.added),
                "removed": pv(&self.removed),
                "upgraded": pc(&self.upgraded),
                "downgraded": pc(&self.downgraded),
            },
            "files": {
                "added": self.files_added.iter().map(|(p, s)| with_path(p, json!({"size": s}))).collect::<Vec<_>>(),
                "removed": self.files_removed.iter().map(|(p, s)| with_path(p, json!({"size": s}))).collect::<Vec<_>>(),
                "changed": self.files_changed.iter().map(|(p, c)| with_path(p, json!({"changes": c}))).collect::<Vec<_>>(),
            },
            "manifest": kv(&self.manifest),
            "components": kv(&self.components),
            "audit": {"appeared": self.audit_appeared, "gone": self.audit_gone},
        })
    }
}

/// `rest` (a JSON object) with the file name `p` added losslessly: `path` is the name when it
/// is valid UTF-8; otherwise `path` is its escaped form and `path_hex` its bytes in hex.
pub fn with_path(p: &[u8], mut rest: Value) -> Value {
    if let Value::Object(m) = &mut rest {
        match std::str::from_utf8(p) {
            Ok(s) => {
                m.insert("path".into(), Value::String(s.to_string()));
            }
            Err(_) => {
                let hex: String = p.iter().map(|b| format!("{b:02x}")).collect();
                m.insert(
                    "path".into(),
                    Value::String(crate::untrusted::escape_bytes(p)),
                );
                m.insert("path_hex".into(), Value::String(hex));
            }
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(digest: &str) -> FileInfo {
        FileInfo {
            kind: 'f',
            size: 1,
            mode: 0o644,
            owner: (0, 0),
            digest: digest.into(),
        }
    }

    #[test]
    fn names_are_compared_as_bytes_and_shown_escaped() {
        let mut a = Snapshot::default();
        let mut b = Snapshot::default();
        // Two names that differ only in invalid UTF-8 stay two files.
        a.files.insert(b"/x\xff".to_vec(), file("1"));
        a.files.insert(b"/x\xfe".to_vec(), file("2"));
        b.files.insert(b"/x\xff".to_vec(), file("1"));
        b.files.insert(b"/x\xfe".to_vec(), file("3"));
        b.files
            .insert(b"/evil\n+ forged line\x1b[2J".to_vec(), file("4"));
        let d = compare(&a, &b);
        assert_eq!(d.files_changed.len(), 1);
        assert_eq!(d.files_changed[0].0, b"/x\xfe");
        let t = d.text();
        assert!(t.contains("~ /x\\xfe: content\n"), "{t}");
        assert!(
            t.contains("+ /evil\\n+ forged line\\x1b[2J (1 bytes)\n"),
            "{t}"
        );
        assert!(
            !t.contains('\x1b') && !t.lines().any(|l| l.starts_with("+ forged")),
            "{t}"
        );
        let j = d.json();
        assert_eq!(j["files"]["changed"][0]["path_hex"], "2f78fe");
        assert_eq!(
            j["files"]["added"][0]["path"],
            "/evil\n+ forged line\x1b[2J"
        );
        assert!(j["files"]["added"][0].get("path_hex").is_none());
    }
}
