//! dpkg-statoverride entries in numeric form while the host's dpkg works on a rootfs.
//!
//! The host's dpkg (`--root`) looks up the owners named in the rootfs's
//! `var/lib/dpkg/statoverride` in the HOST's user database, and aborts on a system user only
//! the rootfs has (`_chrony`). dpkg also accepts `#UID`/`#GID` there, so for the length of a
//! host dpkg run every name is written as the rootfs's own id for it ([`Numeric::apply`]) and
//! turned back into the name afterwards ([`Numeric::restore`], or on drop), which is what the
//! target's `dpkg-statoverride` writes. Entries a maintainer script adds meanwhile (with the
//! target's `dpkg-statoverride`, by name) are kept as written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The statoverride database inside a rootfs.
pub const DB: &str = "var/lib/dpkg/statoverride";

/// Why the entries cannot be made numeric (an owner the rootfs does not know).
#[derive(Debug, thiserror::Error)]
pub enum StatoverrideError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An entry names a user or group the rootfs's passwd/group does not have.
    #[error("{path}: the entry `{line}` names the {what} `{name}`, which the rootfs's /etc/{db} does not have")]
    Unknown {
        /// The statoverride file.
        path: PathBuf,
        /// The entry.
        line: String,
        /// `user` or `group`.
        what: &'static str,
        /// The name.
        name: String,
        /// `passwd` or `group`.
        db: &'static str,
    },
}

/// `name -> id` from a colon-separated database of the rootfs (`etc/passwd`, `etc/group`).
fn ids(root: &Path, db: &str) -> Result<BTreeMap<String, String>, StatoverrideError> {
    let path = root.join("etc").join(db);
    let text = std::fs::read_to_string(&path).map_err(|source| StatoverrideError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2].parse::<u32>().is_ok()).then(|| (f[0].to_string(), f[2].into()))
        })
        .collect())
}

/// The entries of a statoverride file, each `owner group mode path` rewritten by `map` on its
/// owner and group (lines that are not four fields are kept as they are).
fn rewrite(
    text: &str,
    mut map: impl FnMut(&str, &str, bool) -> Result<String, StatoverrideError>,
) -> Result<String, StatoverrideError> {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(4, ' ').collect();
        if f.len() == 4 {
            let user = map(f[0], line, true)?;
            let group = map(f[1], line, false)?;
            out.push_str(&format!("{user} {group} {} {}\n", f[2], f[3]));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The rootfs's statoverride entries in numeric form; names again after [`Numeric::restore`]
/// or on drop.
#[derive(Debug)]
pub struct Numeric {
    root: PathBuf,
    /// `#ID -> name`, users then groups, for what was rewritten.
    users: BTreeMap<String, String>,
    groups: BTreeMap<String, String>,
    done: bool,
}

impl Numeric {
    /// Rewrites every named owner in `root`'s statoverride database as `#ID` (the rootfs's
    /// id). Nothing is written when there are no entries.
    pub fn apply(root: &Path) -> Result<Numeric, StatoverrideError> {
        let mut me = Numeric {
            root: root.to_path_buf(),
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            done: true,
        };
        let Some(numeric) = me.numeric()? else {
            return Ok(me);
        };
        let path = root.join(DB);
        crate::atomic::write(&path, numeric.as_bytes())
            .map_err(|source| StatoverrideError::Io { path, source })?;
        me.done = false;
        Ok(me)
    }

    /// Checks, without writing, that every owner the entries name is in the rootfs's own
    /// passwd and group.
    pub fn check(root: &Path) -> Result<(), StatoverrideError> {
        let mut me = Numeric {
            root: root.to_path_buf(),
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            done: true,
        };
        me.numeric().map(|_| ())
    }

    /// The database with every name as `#ID` (None when it is absent or empty), remembering
    /// how to turn each back.
    fn numeric(&mut self) -> Result<Option<String>, StatoverrideError> {
        let path = self.root.join(DB);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => t,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StatoverrideError::Io { path, source }),
        };
        let (passwd, group) = (ids(&self.root, "passwd")?, ids(&self.root, "group")?);
        let (users, groups) = (&mut self.users, &mut self.groups);
        rewrite(&text, |name, line, is_user| {
            if name.starts_with('#') {
                return Ok(name.to_string());
            }
            let (db, what, ids, back) = if is_user {
                ("passwd", "user", &passwd, &mut *users)
            } else {
                ("group", "group", &group, &mut *groups)
            };
            match ids.get(name) {
                Some(id) => {
                    back.insert(format!("#{id}"), name.to_string());
                    Ok(format!("#{id}"))
                }
                None => Err(StatoverrideError::Unknown {
                    path: path.clone(),
                    line: line.to_string(),
                    what,
                    name: name.to_string(),
                    db,
                }),
            }
        })
        .map(Some)
    }

    /// Writes the names back (ids this rewrite made; `#ID` entries that were there before
    /// stay numeric).
    pub fn restore(mut self) -> Result<(), StatoverrideError> {
        self.put_back()
    }

    fn put_back(&mut self) -> Result<(), StatoverrideError> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        let path = self.root.join(DB);
        let text = std::fs::read_to_string(&path).map_err(|source| StatoverrideError::Io {
            path: path.clone(),
            source,
        })?;
        let named = rewrite(&text, |v, _, is_user| {
            let back = if is_user { &self.users } else { &self.groups };
            Ok(back.get(v).cloned().unwrap_or_else(|| v.to_string()))
        })?;
        crate::atomic::write(&path, named.as_bytes())
            .map_err(|source| StatoverrideError::Io { path, source })
    }
}

impl Drop for Numeric {
    fn drop(&mut self) {
        let _ = self.put_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs(statoverride: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::create_dir_all(root.path().join("var/lib/dpkg")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\n_chrony:x:101:104::/run/chrony:/usr/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(
            root.path().join("etc/group"),
            "root:x:0:\ncrontab:x:102:\n_chrony:x:104:\n",
        )
        .unwrap();
        std::fs::write(root.path().join(DB), statoverride).unwrap();
        root
    }

    #[test]
    fn names_become_the_rootfs_ids_and_come_back() {
        let before = "_chrony _chrony 750 /var/log/chrony\nroot crontab 2755 /usr/bin/crontab\n";
        let root = rootfs(before);
        let n = Numeric::apply(root.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join(DB)).unwrap(),
            "#101 #104 750 /var/log/chrony\n#0 #102 2755 /usr/bin/crontab\n"
        );
        // What a maintainer script adds meanwhile, by name, stays as written.
        let mut during = std::fs::read_to_string(root.path().join(DB)).unwrap();
        during.push_str("root _chrony 640 /etc/chrony/chrony.keys\n");
        std::fs::write(root.path().join(DB), during).unwrap();
        n.restore().unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join(DB)).unwrap(),
            format!("{before}root _chrony 640 /etc/chrony/chrony.keys\n")
        );
    }

    #[test]
    fn drop_restores_and_unknown_owners_are_named() {
        let before = "_chrony root 750 /var/log/chrony\n";
        let root = rootfs(before);
        drop(Numeric::apply(root.path()).unwrap());
        assert_eq!(
            std::fs::read_to_string(root.path().join(DB)).unwrap(),
            before
        );
        let root = rootfs("nobody root 750 /x\n");
        let e = Numeric::apply(root.path()).unwrap_err().to_string();
        assert!(e.contains("`nobody`") && e.contains("/etc/passwd"), "{e}");
        assert_eq!(
            std::fs::read_to_string(root.path().join(DB)).unwrap(),
            "nobody root 750 /x\n"
        );
    }
}
