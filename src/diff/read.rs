//! Reading one side of a diff into a [`Snapshot`], memory bounded by the number of files (never
//! by their size): a rootfs directory is walked; a stemcell is streamed member by member, a
//! rootfs tarball `image` entry by entry, and a disk `image` copied sparse to scratch and its
//! root partition mounted read-only (as `audit` does).
//!
//! The stemcell may be hostile: its members must be plain regular files, each once;
//! `stemcell.MF`, `packages.txt` and `audit.json` are read under the caps of `untrusted`
//! (the manifest's nesting checked before parsing); the `image` is classified from its first
//! bytes and refused at once when it is neither gzip nor an MBR or ext4 image. Names are kept
//! as raw bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::{FileInfo, Snapshot};
use crate::audit::input::scratch;
use crate::untrusted::members::{self, Members};
use crate::untrusted::{escape_bytes, escape_path, MANIFEST_MAX, RECORD_MAX, SMALL_MAX};

/// Reads `path`: a rootfs directory or a stemcell tgz.
pub fn snapshot(path: &Path) -> Result<Snapshot, String> {
    if path.is_dir() {
        let mut s = Snapshot::default();
        from_tree(path, &mut s)?;
        return Ok(s);
    }
    let shown = escape_path(path);
    let err = |e: std::io::Error| format!("{shown}: {e}");
    let f = crate::untrusted::open_regular(path).map_err(|e| e.to_string())?;
    let mut outer = tar::Archive::new(crate::untrusted::TarGuard::new(
        flate2::read::MultiGzDecoder::new(f),
    ));
    let mut s = Snapshot::default();
    let mut seen = Members::default();
    let mut saw_image = false;
    for entry in outer.entries().map_err(err)? {
        let mut e = entry.map_err(err)?;
        let Some(name) = seen
            .check(&e)
            .map_err(|m| format!("stemcell {shown}: {m}"))?
        else {
            continue;
        };
        match name.as_str() {
            "stemcell.MF" => {
                let text = members::read_text(&mut e, &name, MANIFEST_MAX, "a stemcell manifest")?;
                s.manifest = manifest(&text)?;
            }
            "packages.txt" => {
                let text = members::read_text(&mut e, &name, RECORD_MAX, "a package list")?;
                for l in text.lines() {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    if let [n, v, a] = f[..] {
                        s.packages
                            .insert((n.to_string(), a.to_string()), v.to_string());
                    }
                }
            }
            "audit.json" => {
                s.audit = audit(&members::read_text(
                    &mut e,
                    &name,
                    RECORD_MAX,
                    "a JSON record",
                )?)?
            }
            "image" => {
                saw_image = true;
                image(&mut e, &shown, &mut s)?;
            }
            _ => {}
        }
    }
    if !saw_image {
        return Err(format!(
            "{shown}: not a stemcell (no `image` member) and not a directory"
        ));
    }
    Ok(s)
}

/// stemcell.MF flattened: `key` and `cloud_properties.key` to their text (without `sha1`).
fn manifest(text: &str) -> Result<BTreeMap<String, String>, String> {
    let v: serde_norway::Value = members::parse_yaml(text, "stemcell.MF")?;
    let mut out = BTreeMap::new();
    fn walk(prefix: &str, v: &serde_norway::Value, out: &mut BTreeMap<String, String>) {
        match v {
            serde_norway::Value::Mapping(m) => {
                for (k, v) in m {
                    let k = k.as_str().unwrap_or("?");
                    let key = if prefix.is_empty() {
                        k.to_string()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                let text = serde_norway::to_string(other).unwrap_or_default();
                out.insert(prefix.to_string(), text.trim().to_string());
            }
        }
    }
    walk("", &v, &mut out);
    // The image's sha1 changes with any file: the file list says what changed.
    out.remove("sha1");
    Ok(out)
}

/// The audit's failing findings (not the accepted ones) as `check path`.
fn audit(text: &str) -> Result<BTreeSet<String>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("member audit.json: {e}"))?;
    Ok(v["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["allowed"].is_null())
        .map(|f| {
            format!(
                "{} {}",
                f["check"].as_str().unwrap_or("?"),
                f["path"].as_str().unwrap_or("?")
            )
        })
        .collect())
}

/// The `image` member, classified from its first bytes: gzip of a tar (a rootfs tarball,
/// streamed), gzip of a disk image or a raw disk/ext4 image (copied sparse and mounted), or
/// refused at once.
fn image(r: &mut dyn Read, stemcell: &str, s: &mut Snapshot) -> Result<(), String> {
    let what = format!("the `image` of stemcell {stemcell}");
    match scratch::classify_image(r, &what, false)? {
        scratch::ImageStream::Tree(t, _) => from_tar(t, s),
        scratch::ImageStream::Disk(mut d, label) => from_disk(&mut d, &label, s),
    }
}

/// A tar entry's name as `/path`, raw bytes (`./` and a trailing `/` removed).
fn tar_key(raw: &[u8]) -> Vec<u8> {
    let mut b = raw;
    while let Some(rest) = b.strip_prefix(b"./") {
        b = rest;
    }
    while let Some(rest) = b.strip_suffix(b"/") {
        b = rest;
    }
    let mut key = Vec::with_capacity(b.len() + 1);
    key.push(b'/');
    key.extend_from_slice(b.strip_prefix(b"/").unwrap_or(b));
    key
}

/// Every entry of a rootfs tarball, content hashed as it streams by.
fn from_tar(r: impl Read, s: &mut Snapshot) -> Result<(), String> {
    let mut a = tar::Archive::new(
        crate::untrusted::TarGuard::new(r)
            .limit_entries(crate::untrusted::TREE_ENTRIES_MAX, "a rootfs tarball"),
    );
    let record_dir = format!("/{}/", crate::record::DIR).into_bytes();
    for entry in a.entries().map_err(|e| format!("image: {e}"))? {
        let mut e = entry.map_err(|e| format!("image: {e}"))?;
        let h = e.header().clone();
        let path = tar_key(&e.path_bytes());
        if path == b"/" {
            continue;
        }
        let shown = escape_bytes(&path);
        let t = h.entry_type();
        let target = e
            .link_name_bytes()
            .map(|c| c.into_owned())
            .unwrap_or_default();
        if t.is_hard_link() {
            // The same file under a second name, as a directory walk sees it.
            if let Some(info) = s.files.get(&tar_key(&target)).cloned() {
                s.files.insert(path, info);
            }
            continue;
        }
        let (kind, digest) = if t.is_symlink() {
            ('l', escape_bytes(&target))
        } else if t.is_dir() {
            ('d', String::new())
        } else if t.is_file() || t.is_gnu_sparse() {
            if path.starts_with(&record_dir) {
                // Records are small: read (capped), hash and parse them.
                let data = crate::untrusted::read_stream_capped(&mut e, SMALL_MAX).map_err(
                    |er| match er {
                        crate::untrusted::CappedRead::Io(er) => format!("image {shown}: {er}"),
                        crate::untrusted::CappedRead::TooLarge => format!(
                            "image {shown}: over the {SMALL_MAX}-byte limit for a component record"
                        ),
                    },
                )?;
                if let Some(c) = crate::record::parse(&String::from_utf8_lossy(&data)) {
                    s.components.insert(c.name.clone(), c.summary());
                }
                ('f', hash(&mut &data[..]).map_err(|er| er.to_string())?)
            } else {
                (
                    'f',
                    hash(&mut e).map_err(|er| format!("image {shown}: {er}"))?,
                )
            }
        } else {
            (
                'c',
                format!(
                    "{:?}",
                    (
                        h.device_major().ok().flatten(),
                        h.device_minor().ok().flatten()
                    )
                ),
            )
        };
        let size = if kind == 'f' { e.size() } else { 0 };
        s.files.insert(
            path,
            FileInfo {
                kind,
                size,
                mode: h.mode().unwrap_or(0) & 0o7777,
                owner: (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32),
                digest,
            },
        );
    }
    Ok(())
}

/// A disk image: copied sparse to scratch (free space checked), its root partition mounted,
/// walked.
fn from_disk(r: &mut dyn Read, what: &str, s: &mut Snapshot) -> Result<(), String> {
    let opened = crate::audit::input::open_disk_stream(r, "pistemcell-diff-", what)?;
    from_tree(&opened.root, s)
}

/// Walks a tree; packages from its dpkg database.
fn from_tree(root: &Path, s: &mut Snapshot) -> Result<(), String> {
    if s.packages.is_empty() {
        // A tree without a dpkg database has no packages; one that is a FIFO, a device, a
        // link out of the tree or over the cap is an error, not an empty list.
        let status = match crate::rootfs::dpkg::read_status(root) {
            Ok(status) => status,
            Err(crate::rootfs::dpkg::DpkgError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Default::default()
            }
            Err(e) => return Err(e.to_string()),
        };
        for (name, (version, arch, st)) in status {
            if st == "install ok installed" {
                s.packages.insert((name, arch), version);
            }
        }
    }
    for c in crate::record::read_all(root) {
        s.components.insert(c.name.clone(), c.summary());
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", escape_path(&dir)))?;
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).as_os_str().as_bytes();
            let mut key = Vec::with_capacity(rel.len() + 1);
            key.push(b'/');
            key.extend_from_slice(rel);
            if key == b"/lost+found" {
                continue;
            }
            let m =
                std::fs::symlink_metadata(&p).map_err(|e| format!("{}: {e}", escape_path(&p)))?;
            let ft = m.file_type();
            let (kind, digest) = if ft.is_dir() {
                stack.push(p.clone());
                ('d', String::new())
            } else if ft.is_symlink() {
                (
                    'l',
                    std::fs::read_link(&p)
                        .map(|t| escape_bytes(t.as_os_str().as_bytes()))
                        .unwrap_or_default(),
                )
            } else if ft.is_file() {
                let mut f = crate::untrusted::open_regular(&p).map_err(|e| e.to_string())?;
                (
                    'f',
                    hash(&mut f).map_err(|e| format!("{}: {e}", escape_path(&p)))?,
                )
            } else if ft.is_block_device() || ft.is_char_device() {
                (
                    'c',
                    format!("{:?}", (libc::major(m.rdev()), libc::minor(m.rdev()))),
                )
            } else {
                ('p', String::new())
            };
            s.files.insert(
                key,
                FileInfo {
                    kind,
                    size: if kind == 'f' { m.len() } else { 0 },
                    mode: m.mode() & 0o7777,
                    owner: (m.uid(), m.gid()),
                    digest,
                },
            );
        }
    }
    Ok(())
}

fn hash(r: &mut impl Read) -> std::io::Result<String> {
    crate::archive::cache::reader_sha256(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_names_become_raw_absolute_keys() {
        assert_eq!(tar_key(b"./etc/x/"), b"/etc/x");
        assert_eq!(tar_key(b"./"), b"/");
        assert_eq!(tar_key(b"a\xff"), b"/a\xff");
        assert_eq!(tar_key(b"/abs"), b"/abs");
    }
}
