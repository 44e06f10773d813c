//! The initramfs, reused when nothing it was made from changed. Building it is 20 s of
//! `mkinitramfs` even with the host's tools, and the stage cache reruns it after any edit of a
//! stage before it (adding a package to `10-base-packages`), though few such edits touch a
//! file it reads. So the run is traced (`trace`, strace): every path `update-initramfs`, its
//! hooks and the programs they ran opened, stat'ed, tested, executed or read a link of, and
//! every directory they listed, is recorded with its state (absent; a directory, with its
//! entries when listed; a file's mode and sha256; a link's target and what it leads to) in
//! `CACHE/initramfs/`, beside the image. The next build of the same kernel with the same
//! toolbox looks the records up: when every recorded path is in the same state in its rootfs,
//! `mkinitramfs` copies the recorded image instead of making it (`update-initramfs` still runs
//! its own steps and hooks around it). Paths the run itself wrote, and the kernel's virtual
//! filesystems, scratch directories and the host toolbox, are not inputs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::trace::Accesses;
use crate::tarwrite::tree::hex;

/// Bumped when what a record holds or how states are taken changes.
const FORMAT: &str = "1";
/// Records kept per kernel and toolbox (the newest).
const KEEP: usize = 4;
/// Path prefixes that are never inputs: virtual filesystems, scratch space, the host toolbox.
const IGNORED: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/tmp",
    "/var/tmp",
    "/.pistemcell-host",
];
/// The environment variable that makes the toolbox's `mkinitramfs` copy an image.
pub const REUSE_ENV: &str = "PISTEMCELL_INITRAMFS_REUSE";

/// The records of one kernel version built with one toolbox.
#[derive(Debug)]
pub struct Records {
    dir: PathBuf,
}

/// One record: the states of what the run read, and what it wrote.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Record {
    /// (path, state) of every input.
    inputs: Vec<(String, String)>,
    /// Paths the run wrote (left out of directory listings).
    written: Vec<String>,
}

impl Records {
    /// The records under `cache_dir` for kernel `version` built with the toolbox `commands`.
    pub fn open(cache_dir: &Path, version: &str, commands: &[String]) -> Records {
        let mut h = Sha256::new();
        for part in [FORMAT, version, &commands.join(" ")] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        Records {
            dir: cache_dir.join("initramfs").join(hex(&h.finalize())),
        }
    }

    /// The image of a record whose every input is in the same state in `root` now, if any,
    /// and how many inputs it has.
    pub fn find(&self, root: &Path) -> Option<(PathBuf, usize)> {
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&self.dir)
            .ok()?
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        entries.sort();
        for (_, dir) in entries.iter().rev() {
            let Some(record) = std::fs::read(dir.join("record.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            else {
                continue;
            };
            let written: BTreeSet<String> = record.written.iter().cloned().collect();
            let same = record
                .inputs
                .iter()
                .all(|(p, s)| state(root, p, s.contains(":entries="), &written) == *s);
            let image = dir.join("initrd.img");
            if same && image.is_file() {
                // Recently used records are the last to go.
                let _ = std::fs::File::open(dir)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                return Some((image, record.inputs.len()));
            }
        }
        None
    }

    /// Records a run that read and wrote `accesses` in `root` and made `image`; keeps the
    /// newest [`KEEP`] records. Returns how many inputs it recorded.
    pub fn record(&self, root: &Path, accesses: &Accesses, image: &Path) -> Result<usize, String> {
        let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
        let written = &accesses.written;
        let inputs: Vec<(String, String)> = accesses
            .read
            .iter()
            .chain(accesses.listed.iter())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|p| !written.contains(*p) && !ignored(p))
            .map(|p| {
                let listed = accesses.listed.contains(p);
                (p.clone(), state(root, p, listed, written))
            })
            .collect();
        let record = Record {
            inputs,
            written: written.iter().cloned().collect(),
        };
        let text = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        let name = hex(&Sha256::digest(&text));
        std::fs::create_dir_all(&self.dir).map_err(|e| io("creating", &self.dir, e))?;
        let tmp = self.dir.join(format!(".new-{name}"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).map_err(|e| io("creating", &tmp, e))?;
        std::fs::write(tmp.join("record.json"), &text).map_err(|e| io("writing", &tmp, e))?;
        std::fs::copy(image, tmp.join("initrd.img")).map_err(|e| io("copying", image, e))?;
        let dest = self.dir.join(&name);
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&tmp, &dest).map_err(|e| io("renaming", &tmp, e))?;
        self.evict();
        Ok(record.inputs.len())
    }

    /// Removes all but the newest [`KEEP`] records.
    fn evict(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = rd
            .flatten()
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        entries.sort();
        let excess = entries.len().saturating_sub(KEEP);
        for (_, p) in entries.into_iter().take(excess) {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Whether `path` is under one of the [`IGNORED`] prefixes.
fn ignored(path: &str) -> bool {
    IGNORED
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// The state of `path` (absolute inside `root`): its parent resolved inside the rootfs, the
/// path itself not followed; a link's state holds its target and what it leads to.
/// Directory states hold their entries (but those in `written`) when `listed`.
pub fn state(root: &Path, path: &str, listed: bool, written: &BTreeSet<String>) -> String {
    if path == "/" {
        return dir_state_at(root, path, listed, written);
    }
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    let host_parent = if parent.is_empty() {
        Ok(Some(root.to_path_buf()))
    } else {
        crate::inside::resolve(root, parent)
    };
    let host = match host_parent {
        Ok(Some(p)) if p.is_dir() => p.join(name),
        Ok(_) => return "absent".into(),
        Err(e) => return format!("unresolvable: {e}"),
    };
    let Ok(meta) = std::fs::symlink_metadata(&host) else {
        return "absent".into();
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(&host).unwrap_or_default();
        let followed = match crate::inside::resolve(root, path) {
            Ok(Some(p)) if p.is_dir() => "dir".to_string(),
            Ok(Some(p)) => file_state(&p),
            Ok(None) => "absent".to_string(),
            Err(e) => format!("unresolvable: {e}"),
        };
        return format!("link:{};{followed}", target.display());
    }
    if ft.is_dir() {
        return dir_state_at(&host, path, listed, written);
    }
    file_state(&host)
}

/// `dir`, and with `listed` the sha256 of its sorted entries (but those in `written`).
fn dir_state_at(host: &Path, path: &str, listed: bool, written: &BTreeSet<String>) -> String {
    if !listed {
        return "dir".into();
    }
    let prefix = if path == "/" {
        String::new()
    } else {
        path.to_string()
    };
    let mut names: Vec<String> = std::fs::read_dir(host)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !written.contains(&format!("{prefix}/{n}")))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    format!("dir:entries={}", hex(&Sha256::digest(names.join("\0"))))
}

/// A file's type, mode and (regular files) sha256.
fn file_state(host: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(host) else {
        return "absent".into();
    };
    if !meta.is_file() {
        return format!("special:{:o}", meta.mode());
    }
    match crate::archive::cache::file_sha256(host) {
        Ok(sum) => format!("file:{:o}:{sum}", meta.mode()),
        Err(e) => format!("unreadable: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_the_tree_and_ignore_what_the_run_wrote() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("usr/lib/hooks")).unwrap();
        std::fs::write(root.join("usr/lib/hooks/udev"), "a").unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib/hooks/udev", root.join("usr/lib/u")).unwrap();
        let none = BTreeSet::new();
        let file = state(root, "/lib/hooks/udev", false, &none);
        assert!(file.starts_with("file:100644:"), "{file}");
        assert_eq!(state(root, "/usr/lib/hooks/udev", false, &none), file);
        assert_eq!(state(root, "/lib/hooks/nothing", false, &none), "absent");
        assert_eq!(state(root, "/nothing/at/all", false, &none), "absent");
        assert_eq!(
            state(root, "/usr/lib/u", false, &none),
            format!("link:/usr/lib/hooks/udev;{file}")
        );
        assert_eq!(state(root, "/usr/lib/hooks", false, &none), "dir");
        let listed = state(root, "/usr/lib/hooks", true, &none);
        std::fs::write(root.join("usr/lib/hooks/new"), "b").unwrap();
        assert_ne!(state(root, "/usr/lib/hooks", true, &none), listed);
        let written: BTreeSet<String> = ["/usr/lib/hooks/new".to_string()].into();
        assert_eq!(state(root, "/usr/lib/hooks", true, &written), listed);
        std::fs::write(root.join("usr/lib/hooks/udev"), "changed").unwrap();
        assert_ne!(state(root, "/lib/hooks/udev", false, &none), file);
        assert!(ignored("/var/tmp/mkinitramfs_x/a") && ignored("/proc") && !ignored("/procx"));
    }

    #[test]
    fn a_record_is_found_only_while_its_inputs_are_unchanged() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let cache = t.path().join("cache");
        std::fs::create_dir_all(root.join("etc/initramfs-tools")).unwrap();
        std::fs::create_dir_all(root.join("boot")).unwrap();
        std::fs::write(root.join("etc/initramfs-tools/modules"), "m").unwrap();
        std::fs::write(root.join("boot/initrd.img-6"), "image").unwrap();
        let accesses = Accesses {
            read: [
                "/etc/initramfs-tools/modules",
                "/usr/bin/busybox",
                "/boot/initrd.img-6",
                "/proc/cmdline",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            listed: ["/boot".to_string()].into(),
            written: ["/boot/initrd.img-6".to_string()].into(),
        };
        let commands = vec!["sh".to_string()];
        let r = Records::open(&cache, "6", &commands);
        assert_eq!(
            r.record(&root, &accesses, &root.join("boot/initrd.img-6"))
                .unwrap(),
            3
        );
        // Before the stage runs again: no image yet, nothing else changed.
        std::fs::remove_file(root.join("boot/initrd.img-6")).unwrap();
        let (image, inputs) = r.find(&root).unwrap();
        assert_eq!(
            (std::fs::read(image).unwrap(), inputs),
            (b"image".to_vec(), 3)
        );
        // Another toolbox or kernel has its own records.
        assert!(Records::open(&cache, "7", &commands).find(&root).is_none());
        // A file that was absent appears: the image is made again.
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/busybox"), "x").unwrap();
        assert!(r.find(&root).is_none());
        std::fs::remove_file(root.join("usr/bin/busybox")).unwrap();
        assert!(r.find(&root).is_some());
        std::fs::write(root.join("etc/initramfs-tools/modules"), "m2").unwrap();
        assert!(r.find(&root).is_none());
    }
}
