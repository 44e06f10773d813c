//! Reading one side of a diff into a [`Snapshot`], memory bounded by the number of files (never
//! by their size): a rootfs directory is walked; a stemcell is streamed member by member, a
//! rootfs tarball `image` entry by entry, and a disk `image` written to a scratch file and its
//! root partition mounted read-only (as `audit` does).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::{FileInfo, Snapshot};

/// Reads `path`: a rootfs directory or a stemcell tgz.
pub fn snapshot(path: &Path) -> Result<Snapshot, String> {
    if path.is_dir() {
        let mut s = Snapshot::default();
        from_tree(path, &mut s)?;
        return Ok(s);
    }
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let f = std::fs::File::open(path).map_err(err)?;
    let mut outer = tar::Archive::new(flate2::read::MultiGzDecoder::new(f));
    let mut s = Snapshot::default();
    let mut saw_image = false;
    for entry in outer.entries().map_err(err)? {
        let mut e = entry.map_err(err)?;
        let name = e
            .path()
            .map_err(err)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        match name.as_str() {
            "stemcell.MF" => s.manifest = manifest(&read_text(&mut e, &name)?)?,
            "packages.txt" => {
                for l in read_text(&mut e, &name)?.lines() {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    if let [n, v, a] = f[..] {
                        s.packages
                            .insert((n.to_string(), a.to_string()), v.to_string());
                    }
                }
            }
            "audit.json" => s.audit = audit(&read_text(&mut e, &name)?)?,
            "image" => {
                saw_image = true;
                image(&mut e, path, &mut s)?;
            }
            _ => {}
        }
    }
    if !saw_image {
        return Err(format!(
            "{}: not a stemcell (no `image` member) and not a directory",
            path.display()
        ));
    }
    Ok(s)
}

fn read_text(r: &mut impl Read, name: &str) -> Result<String, String> {
    let mut t = String::new();
    r.read_to_string(&mut t)
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(t)
}

/// stemcell.MF flattened: `key` and `cloud_properties.key` to their text (without `sha1`).
fn manifest(text: &str) -> Result<BTreeMap<String, String>, String> {
    let v: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| format!("stemcell.MF: {e}"))?;
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
        serde_json::from_str(text).map_err(|e| format!("audit.json: {e}"))?;
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

/// The `image` member: a rootfs tarball (streamed) or a disk image (raw or gzip, mounted).
fn image(r: &mut impl Read, stemcell: &Path, s: &mut Snapshot) -> Result<(), String> {
    let mut head = vec![0u8; 2];
    r.read_exact(&mut head).map_err(|e| format!("image: {e}"))?;
    let whole = std::io::Cursor::new(head.clone()).chain(r);
    if head == [0x1f, 0x8b] {
        let mut gz = flate2::read::MultiGzDecoder::new(whole);
        let mut block = vec![0u8; 512];
        gz.read_exact(&mut block)
            .map_err(|e| format!("image (gzip): {e}"))?;
        let rest = std::io::Cursor::new(block.clone()).chain(gz);
        if &block[257..262] == b"ustar" {
            return from_tar(rest, s);
        }
        return from_disk(rest, stemcell, s);
    }
    from_disk(whole, stemcell, s)
}

/// Every entry of a rootfs tarball, content hashed as it streams by.
fn from_tar(r: impl Read, s: &mut Snapshot) -> Result<(), String> {
    let mut a = tar::Archive::new(r);
    for entry in a.entries().map_err(|e| format!("image: {e}"))? {
        let mut e = entry.map_err(|e| format!("image: {e}"))?;
        let h = e.header().clone();
        let path = format!(
            "/{}",
            e.path()
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .trim_start_matches("./")
                .trim_end_matches('/')
        );
        if path == "/" {
            continue;
        }
        let t = h.entry_type();
        let target = || {
            e.link_name()
                .ok()
                .flatten()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        if t.is_hard_link() {
            // The same file under a second name, as a directory walk sees it.
            let first = format!("/{}", target().trim_start_matches("./"));
            if let Some(info) = s.files.get(&first).cloned() {
                s.files.insert(path, info);
            }
            continue;
        }
        let (kind, digest) = if t.is_symlink() {
            ('l', target())
        } else if t.is_dir() {
            ('d', String::new())
        } else if t.is_file() || t.is_gnu_sparse() {
            let record = path.starts_with(&format!("/{}/", crate::steps::record::DIR));
            if record {
                // Records are tiny: read, hash and parse them.
                let mut text = String::new();
                e.read_to_string(&mut text)
                    .map_err(|er| format!("image {path}: {er}"))?;
                if let Some(c) = crate::steps::record::parse(&text) {
                    s.components.insert(c.name.clone(), c.summary());
                }
                (
                    'f',
                    hash(&mut text.as_bytes()).map_err(|er| er.to_string())?,
                )
            } else {
                (
                    'f',
                    hash(&mut e).map_err(|er| format!("image {path}: {er}"))?,
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
            path.clone(),
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

/// A disk image: written to a scratch file, its root partition mounted, walked.
fn from_disk(mut r: impl Read, stemcell: &Path, s: &mut Snapshot) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("pistemcell-diff-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let img = dir.path().join("image");
    let mut f = std::fs::File::create(&img).map_err(|e| format!("{}: {e}", img.display()))?;
    std::io::copy(&mut r, &mut f).map_err(|e| format!("{}: image: {e}", stemcell.display()))?;
    drop(f);
    let opened = crate::audit::input::open(&img)?;
    from_tree(&opened.root, s)
}

/// Walks a tree; packages from its dpkg database.
fn from_tree(root: &Path, s: &mut Snapshot) -> Result<(), String> {
    if s.packages.is_empty() {
        if let Ok(status) = crate::rootfs::dpkg::read_status(root) {
            for (name, (version, arch, st)) in status {
                if st == "install ok installed" {
                    s.packages.insert((name, arch), version);
                }
            }
        }
    }
    for c in crate::steps::record::read_all(root) {
        s.components.insert(c.name.clone(), c.summary());
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in rd.flatten() {
            let p = e.path();
            let rel = format!("/{}", p.strip_prefix(root).unwrap_or(&p).to_string_lossy());
            if rel == "/lost+found" {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let ft = m.file_type();
            let (kind, digest) = if ft.is_dir() {
                stack.push(p.clone());
                ('d', String::new())
            } else if ft.is_symlink() {
                (
                    'l',
                    std::fs::read_link(&p)
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            } else if ft.is_file() {
                let mut f = std::fs::File::open(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                (
                    'f',
                    hash(&mut f).map_err(|e| format!("{}: {e}", p.display()))?,
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
                rel,
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
