//! SSH host keys the image never keeps, never made.
//!
//! openssh-server's postinst generates the host keys sshd_config names (RSA 3072, ECDSA,
//! Ed25519) when their files do not exist: about 14 s under qemu-user, most of it RSA. A
//! stemcell must not carry host keys (every VM would share them): `40-sshd` and `90-cleanup`
//! delete them and each VM makes its own. While dpkg runs, [`Placeholders`] puts an empty file
//! where each key would go, so the postinst skips it; afterwards each placeholder that is still
//! the empty file it put there is removed (and `/etc/ssh`, if it made the directory and it is
//! still empty), so the tree is as if the keys had been made and deleted.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The host keys openssh-server's postinst makes by default, inside the rootfs.
pub const KEYS: &[&str] = &[
    "etc/ssh/ssh_host_rsa_key",
    "etc/ssh/ssh_host_ecdsa_key",
    "etc/ssh/ssh_host_ed25519_key",
];

/// The empty files standing in for the host keys during one dpkg run.
#[derive(Debug)]
pub struct Placeholders {
    /// Each placeholder with its inode.
    files: Vec<(PathBuf, u64)>,
    /// `/etc/ssh`, when this made it.
    made_dir: Option<PathBuf>,
}

impl Placeholders {
    /// Puts an empty file (mode 0600) where each missing host key would be made.
    pub fn put(root: &Path) -> std::io::Result<Placeholders> {
        let dir = root.join("etc/ssh");
        let made_dir = match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => None,
            // Something else there, or no /etc yet: leave it to the package.
            Ok(_) => {
                return Ok(Placeholders {
                    files: Vec::new(),
                    made_dir: None,
                })
            }
            Err(_) if !root.join("etc").is_dir() => {
                return Ok(Placeholders {
                    files: Vec::new(),
                    made_dir: None,
                })
            }
            Err(_) => {
                std::fs::create_dir(&dir)?;
                Some(dir)
            }
        };
        let mut me = Placeholders {
            files: Vec::new(),
            made_dir,
        };
        for k in KEYS {
            let p = root.join(k);
            let f = match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&p)
            {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            me.files.push((p, f.metadata()?.ino()));
        }
        Ok(me)
    }

    /// Removes each placeholder still in place and empty, and the directory if this made it
    /// and nothing else is in it.
    pub fn remove(mut self) {
        self.clear();
    }

    fn clear(&mut self) {
        for (p, ino) in self.files.drain(..) {
            if let Ok(m) = std::fs::symlink_metadata(&p) {
                if m.is_file() && m.len() == 0 && m.ino() == ino {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        if let Some(d) = self.made_dir.take() {
            // Fails, and keeps it, when the package put files there.
            let _ = std::fs::remove_dir(&d);
        }
    }
}

impl Drop for Placeholders {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_held_empty_and_only_ours_are_removed() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        let p = Placeholders::put(root.path()).unwrap();
        for k in KEYS {
            let m = std::fs::metadata(root.path().join(k)).unwrap();
            assert_eq!((m.len(), m.mode() & 0o777), (0, 0o600), "{k}");
        }
        // The package writes its config; a script replaces one key with a real one.
        std::fs::write(root.path().join("etc/ssh/sshd_config"), "Port 22\n").unwrap();
        std::fs::write(root.path().join(KEYS[2]), "a real key\n").unwrap();
        p.remove();
        assert!(!root.path().join(KEYS[0]).exists() && !root.path().join(KEYS[1]).exists());
        assert!(root.path().join(KEYS[2]).exists());
        assert!(root.path().join("etc/ssh/sshd_config").exists());

        // Nothing installed: the directory it made goes too; keys already there stay.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        drop(Placeholders::put(root.path()).unwrap());
        assert!(!root.path().join("etc/ssh").exists());
        std::fs::create_dir_all(root.path().join("etc/ssh")).unwrap();
        std::fs::write(root.path().join(KEYS[0]), "").unwrap();
        Placeholders::put(root.path()).unwrap().remove();
        assert!(root.path().join(KEYS[0]).exists());
    }
}
