//! OpenPGP verification of `InRelease` and `Release` + `Release.gpg` with `gpgv`.
//!
//! Why `gpgv`: it is what apt and debootstrap use, it is on every Debian-family host (the
//! `gpgv` package is Priority: required), it costs nothing to compile, and it only ever
//! reads the keyring it is given. We never touch the user's `~/.gnupg`: each check runs
//! with a fresh temporary home directory and a temporary binary copy of the keyring.
//!
//! `gpgv` only says which signatures are cryptographically good; the policy is ours, read
//! from its `--status-fd` lines: a signature counts only if it is good, its key is neither
//! expired nor revoked, its primary-key fingerprint is pinned in the profile, and its hash
//! is not SHA-1 (unless the keyring explicitly allows SHA-1, as Raspbian's must). Any BAD
//! signature rejects the file. Signatures by keys not in the keyring are ignored when
//! another one is acceptable, because Debian signs each InRelease with several keys.
//!
//! Clearsigned files are split here, as apt does, into the signed text and the signature,
//! and `gpgv` checks the detached pair: the text returned is then exactly the bytes gpgv
//! verified (dash-escaping undone, trailing whitespace removed as RFC 4880 §7.1 specifies),
//! and anything outside the signed part (text before or after, a second signed section)
//! is refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{self, CmdError};

mod armor;

pub use armor::dearmor;
use armor::{dearmor_named, split_clearsigned};

/// A keyring file plus the fingerprints of the keys trusted to sign the archive.
#[derive(Debug, Clone)]
pub struct Keyring {
    /// The keyring file (binary or ASCII-armored OpenPGP public keys).
    pub path: PathBuf,
    /// Full fingerprints (40 or 64 hex digits, spaces allowed) of the trusted primary keys.
    pub fingerprints: Vec<String>,
    /// Accept signatures made with SHA-1 (with a warning); needed for Raspbian only.
    pub allow_sha1: bool,
}

/// Errors checking keyrings and signatures.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The keyring file cannot be read.
    #[error("cannot read keyring {path}: {source}; check `keyring:` in the spec or profile")]
    ReadKeyring {
        /// The keyring file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The keyring path names something that is not a file (a directory, a device, a FIFO).
    #[error("keyring {} is {kind}, not a key file; point `keyring:` at the archive's OpenPGP key file (binary .gpg or armored .asc, or an http(s) URL)", crate::untrusted::escape_path(path))]
    NotAFile {
        /// The keyring path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The key data is not a usable OpenPGP public keyring.
    #[error("{what} is not a usable OpenPGP public keyring: {reason}; re-download the key (check `keyring:`)")]
    BadKey {
        /// The key file or a description of the data.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A pinned fingerprint is not a full fingerprint.
    #[error("`{fingerprint}` is not a full key fingerprint (40 or 64 hex digits); pin the whole fingerprint in the profile")]
    BadPin {
        /// The pinned value as written.
        fingerprint: String,
    },
    /// The keyring does not hold any pinned key.
    #[error(
        "keyring {path} holds none of the pinned keys: expected one of [{}], it holds [{}]; \
         the key file is wrong or was replaced, check `keyring:` and its download location",
        .expected.join(", "), .found.join(", ")
    )]
    NotPinnedKeyring {
        /// The keyring file.
        path: PathBuf,
        /// The pinned fingerprints.
        expected: Vec<String>,
        /// The primary fingerprints the file holds.
        found: Vec<String>,
    },
    /// Temporary files for gpg could not be created.
    #[error("cannot prepare temporary files to run gpg: {0}; check that TMPDIR is writable")]
    Temp(std::io::Error),
    /// gpg or gpgv could not run or failed without saying anything about signatures.
    #[error("{0}; install gnupg and gpgv (`pistemcell doctor` checks host tools)")]
    Tool(CmdError),
    /// The clearsigned file is not well formed.
    #[error("{what} is not a valid clearsigned file: {reason}; the mirror may be serving an error page or a tampered file, check `--mirror`")]
    Malformed {
        /// The file (URL or name).
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A signature does not match the data.
    #[error("{what} has a BAD signature from key {key}: the file was changed after signing; the mirror is serving a corrupt or tampered file, try another `--mirror`")]
    BadSignature {
        /// The file (URL or name).
        what: String,
        /// The signing key.
        key: String,
    },
    /// Signed only by keys that are not in the keyring.
    #[error("{what} is signed by a key not in the profile keyring ({}); check `keyring:` and that `--mirror` serves this distribution", .keys.join(", "))]
    UnknownKey {
        /// The file (URL or name).
        what: String,
        /// Key ids or fingerprints of the signers.
        keys: Vec<String>,
    },
    /// Good signature from a key in the keyring file whose fingerprint is not pinned.
    #[error("{what} is signed by {key}, which is in keyring {} but not among the pinned fingerprints [{}]; pin it in the profile only if you trust it", .keyring.display(), .pinned.join(", "))]
    NotPinned {
        /// The file (URL or name).
        what: String,
        /// The signer's primary fingerprint.
        key: String,
        /// The keyring file.
        keyring: PathBuf,
        /// The pinned fingerprints.
        pinned: Vec<String>,
    },
    /// Signed by a pinned key that has expired or was revoked, or the signature expired.
    #[error("{what}: the signature by key {key} is not valid: {reason}; update the keyring (`keyring:`) to the distribution's current key")]
    InvalidKey {
        /// The file (URL or name).
        what: String,
        /// The signing key.
        key: String,
        /// `the key has expired`, `the key was revoked`, `the signature has expired`…
        reason: String,
    },
    /// Signed with SHA-1 while the keyring does not allow it.
    #[error("{what} is signed by {key} with SHA-1, which is refused; only profiles whose archive key needs it (Raspbian) set allow_sha1")]
    WeakDigest {
        /// The file (URL or name).
        what: String,
        /// The signer's fingerprint.
        key: String,
    },
    /// gpgv reported no signature at all.
    #[error("{what}: gpgv found no signature to check; the mirror may be serving a broken file, check `--mirror`. gpgv said:\n{detail}")]
    NoSignature {
        /// The file (URL or name).
        what: String,
        /// The tail of gpgv's output.
        detail: String,
    },
}

/// A fingerprint without spaces, uppercase, without a `0x` prefix.
fn normalize(fpr: &str) -> String {
    let s: String = fpr
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    match s.strip_prefix("0X") {
        Some(rest) => rest.to_string(),
        None => s,
    }
}

/// The keyring's pinned fingerprints, normalized; each must be a full fingerprint.
fn pinned(keyring: &Keyring) -> Result<Vec<String>, SignatureError> {
    let pins: Vec<String> = keyring
        .fingerprints
        .iter()
        .map(|f| {
            let n = normalize(f);
            let full = matches!(n.len(), 40 | 64) && n.bytes().all(|c| c.is_ascii_hexdigit());
            if full {
                Ok(n)
            } else {
                Err(SignatureError::BadPin {
                    fingerprint: f.clone(),
                })
            }
        })
        .collect::<Result<_, _>>()?;
    if pins.is_empty() {
        return Err(SignatureError::BadPin {
            fingerprint: "(none pinned)".to_string(),
        });
    }
    Ok(pins)
}

/// The most bytes read of a keyring file (an archive keyring is a few KiB to a few hundred).
pub const KEYRING_MAX: u64 = 16 << 20;

/// Checks that `path` names a regular file (symlinks followed: keyrings are often links
/// into `/usr/share/keyrings`), without reading it.
pub fn keyring_is_a_file(path: &Path) -> Result<(), SignatureError> {
    let m = std::fs::metadata(path).map_err(|source| SignatureError::ReadKeyring {
        path: path.to_path_buf(),
        source,
    })?;
    if m.is_file() {
        Ok(())
    } else {
        Err(SignatureError::NotAFile {
            path: path.to_path_buf(),
            kind: crate::untrusted::kind_of(m.file_type()),
        })
    }
}

/// Reads the keyring file at `path`: a regular file (after its symlinks) of at most
/// [`KEYRING_MAX`] bytes, never blocking on a FIFO.
fn read_keyring(path: &Path) -> Result<Vec<u8>, SignatureError> {
    use crate::untrusted::UntrustedError;
    let read_err = |source| SignatureError::ReadKeyring {
        path: path.to_path_buf(),
        source,
    };
    let real = std::fs::canonicalize(path).map_err(read_err)?;
    crate::untrusted::read_capped(&real, KEYRING_MAX, "a keyring").map_err(|e| match e {
        UntrustedError::Io { source, .. } => read_err(source),
        UntrustedError::NotRegular { kind, .. } => SignatureError::NotAFile {
            path: path.to_path_buf(),
            kind,
        },
        too_large @ UntrustedError::TooLarge { .. } => SignatureError::BadKey {
            what: format!("keyring {}", path.display()),
            reason: too_large.to_string(),
        },
    })
}

/// A temporary GnuPG home holding a binary copy of the keyring.
struct Scratch {
    dir: tempfile::TempDir,
    keyring: PathBuf,
}

impl Scratch {
    /// Reads, dearmors and copies `keyring` into a fresh temporary home.
    fn new(keyring: &Keyring) -> Result<Scratch, SignatureError> {
        let data = read_keyring(&keyring.path)?;
        let binary = dearmor_named(&data, &format!("keyring {}", keyring.path.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("pistemcell-gpg.")
            .tempdir()
            .map_err(SignatureError::Temp)?;
        let path = dir.path().join("keyring.gpg");
        std::fs::write(&path, binary).map_err(SignatureError::Temp)?;
        Ok(Scratch { dir, keyring: path })
    }

    /// Writes `data` to file `name` in the scratch directory.
    fn file(&self, name: &str, data: &[u8]) -> Result<PathBuf, SignatureError> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).map_err(SignatureError::Temp)?;
        Ok(path)
    }

    /// A gpg-family command confined to the scratch home.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("GNUPGHOME", self.dir.path())
            .env("LC_ALL", "C")
            .arg("--homedir")
            .arg(self.dir.path());
        cmd
    }
}

/// Lists the primary fingerprints in the keyring file and checks that a pinned one is there.
pub fn check_keyring(keyring: &Keyring) -> Result<Vec<String>, SignatureError> {
    let pins = pinned(keyring)?;
    let scratch = Scratch::new(keyring)?;
    let mut cmd = scratch.command("gpg");
    cmd.args([
        "--no-default-keyring",
        "--batch",
        "--no-tty",
        "--with-colons",
        "--show-keys",
    ])
    .arg(&scratch.keyring);
    // gpg that ran and failed found no key in the file: the file is at fault, not the host.
    let out = cmd::run(&mut cmd).map_err(|e| match e {
        CmdError::Failed { tail, .. } => SignatureError::BadKey {
            what: format!("keyring {}", keyring.path.display()),
            reason: format!(
                "gpg found no usable OpenPGP public key in it (gpg said: {})",
                tail.lines()
                    .filter(|l| !l.contains("WARNING: unsafe permissions"))
                    .collect::<Vec<_>>()
                    .join("; ")
                    .trim()
            ),
        },
        spawn => SignatureError::Tool(spawn),
    })?;
    let mut found = Vec::new();
    let mut after_pub = false;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.first() {
            Some(&"pub") => after_pub = true,
            Some(&"fpr") if after_pub => {
                if let Some(f) = fields.get(9).filter(|f| !f.is_empty()) {
                    found.push(normalize(f));
                }
                after_pub = false;
            }
            _ => {}
        }
    }
    if found.iter().any(|f| pins.contains(f)) {
        Ok(found)
    } else {
        Err(SignatureError::NotPinnedKeyring {
            path: keyring.path.clone(),
            expected: pins,
            found,
        })
    }
}

/// Verifies a clearsigned InRelease (`what` names it in errors) and returns the signed text.
///
/// Each line of the returned text ends with `'\n'`, as `gpg --output` writes it.
pub fn verify_inrelease(
    inrelease: &[u8],
    keyring: &Keyring,
    what: &str,
) -> Result<String, SignatureError> {
    let pins = pinned(keyring)?;
    let malformed = |reason: &str| SignatureError::Malformed {
        what: what.to_string(),
        reason: reason.to_string(),
    };
    let text = std::str::from_utf8(inrelease).map_err(|_| malformed("it is not UTF-8 text"))?;
    let (message, signature) = split_clearsigned(text).map_err(|r| malformed(&r))?;
    let scratch = Scratch::new(keyring)?;
    let data = scratch.file("signed.txt", message.as_bytes())?;
    let sig = scratch.file("signed.txt.asc", signature.as_bytes())?;
    run_gpgv(&scratch, &sig, &data, keyring, &pins, what)?;
    Ok(if message.is_empty() {
        message
    } else {
        message + "\n"
    })
}

/// Verifies `Release` against its detached signature `Release.gpg` (`what` names it in errors).
pub fn verify_detached(
    release: &[u8],
    signature: &[u8],
    keyring: &Keyring,
    what: &str,
) -> Result<(), SignatureError> {
    let pins = pinned(keyring)?;
    let scratch = Scratch::new(keyring)?;
    let data = scratch.file("Release", release)?;
    let sig = scratch.file("Release.gpg", signature)?;
    run_gpgv(&scratch, &sig, &data, keyring, &pins, what)
}

/// Runs `gpgv` on a detached signature and applies the policy to its status lines.
fn run_gpgv(
    scratch: &Scratch,
    sig: &Path,
    data: &Path,
    keyring: &Keyring,
    pins: &[String],
    what: &str,
) -> Result<(), SignatureError> {
    let mut cmd = scratch.command("gpgv");
    cmd.args(["--status-fd", "1", "--keyring"])
        .arg(&scratch.keyring)
        .arg(sig)
        .arg(data);
    // Not cmd::run: gpgv exits non-zero as soon as one of several signatures cannot be
    // checked (Debian signs with more than one key), and the status lines are needed then.
    let argv = cmd::argv_of(&cmd);
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| {
            SignatureError::Tool(CmdError::Spawn {
                argv: argv.clone(),
                source,
            })
        })?;
    let status = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let sigs = parse_status(&status);
    if sigs.is_empty() {
        let detail = cmd::tail(&format!("{status}{stderr}"), 20);
        if out.status.success() {
            return Err(SignatureError::NoSignature {
                what: what.to_string(),
                detail,
            });
        }
        return Err(SignatureError::Tool(CmdError::Failed {
            argv,
            status: out.status.to_string(),
            tail: detail,
        }));
    }
    evaluate(&sigs, keyring, pins, what)
}

/// What gpgv reported about one signature.
#[derive(Debug, Default)]
struct SigStatus {
    /// Key id or fingerprint named by the first status line.
    key: String,
    /// GOODSIG, BADSIG, EXPSIG, EXPKEYSIG, REVKEYSIG or ERRSIG.
    verdict: String,
    /// VALIDSIG: (primary-key fingerprint, hash algorithm number).
    valid: Option<(String, String)>,
    /// ERRSIG's return code (9: no public key, 4: unsupported algorithm).
    errsig_rc: Option<String>,
}

/// Groups gpgv status lines into one record per signature (each starts at NEWSIG).
fn parse_status(status: &str) -> Vec<SigStatus> {
    let mut sigs: Vec<SigStatus> = Vec::new();
    for line in status.lines() {
        let Some(rest) = line.strip_prefix("[GNUPG:] ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let Some(&kind) = f.first() else { continue };
        if kind == "NEWSIG" {
            sigs.push(SigStatus::default());
            continue;
        }
        let verdicts = [
            "GOODSIG",
            "BADSIG",
            "EXPSIG",
            "EXPKEYSIG",
            "REVKEYSIG",
            "ERRSIG",
        ];
        if !verdicts.contains(&kind) && kind != "VALIDSIG" {
            continue;
        }
        if sigs.is_empty() {
            sigs.push(SigStatus::default());
        }
        let Some(cur) = sigs.last_mut() else { continue };
        if kind == "VALIDSIG" {
            let primary = f.get(10).or(f.get(1)).copied().unwrap_or_default();
            cur.valid = Some((
                normalize(primary),
                f.get(8).copied().unwrap_or_default().to_string(),
            ));
        } else if cur.verdict.is_empty() {
            cur.verdict = kind.to_string();
            // ERRSIG names the issuer fingerprint in its 7th argument when gpg knows it.
            let fpr = if kind == "ERRSIG" {
                f.get(7).filter(|s| s.len() >= 40)
            } else {
                None
            };
            cur.key = fpr.or(f.get(1)).copied().unwrap_or("unknown").to_string();
            if kind == "ERRSIG" {
                cur.errsig_rc = f.get(6).map(|s| s.to_string());
            }
        }
    }
    sigs
}

/// Applies the policy (see the module doc) to gpgv's verdicts.
fn evaluate(
    sigs: &[SigStatus],
    keyring: &Keyring,
    pins: &[String],
    what: &str,
) -> Result<(), SignatureError> {
    let what_s = what.to_string();
    if let Some(bad) = sigs.iter().find(|s| s.verdict == "BADSIG") {
        return Err(SignatureError::BadSignature {
            what: what_s,
            key: bad.key.clone(),
        });
    }
    let pinned_fpr = |s: &SigStatus| {
        s.valid
            .as_ref()
            .filter(|(f, _)| pins.contains(f))
            .map(|(f, h)| (f.clone(), h.clone()))
    };
    let good: Vec<(String, String)> = sigs
        .iter()
        .filter(|s| s.verdict == "GOODSIG")
        .filter_map(pinned_fpr)
        .collect();
    if good.iter().any(|(_, hash)| hash != "2") {
        return Ok(());
    }
    if let Some((fpr, _)) = good.first() {
        if keyring.allow_sha1 {
            eprintln!("warning: {what} is signed by {fpr} with SHA-1; accepted because this profile allows SHA-1 for its keyring");
            return Ok(());
        }
        return Err(SignatureError::WeakDigest {
            what: what_s,
            key: fpr.clone(),
        });
    }
    for s in sigs {
        let reason = match s.verdict.as_str() {
            "EXPKEYSIG" => "the key has expired",
            "REVKEYSIG" => "the key was revoked",
            "EXPSIG" => "the signature has expired",
            _ => continue,
        };
        if let Some((fpr, _)) = pinned_fpr(s) {
            return Err(SignatureError::InvalidKey {
                what: what_s,
                key: fpr,
                reason: reason.to_string(),
            });
        }
    }
    if let Some((fpr, _)) = sigs
        .iter()
        .filter(|s| s.verdict == "GOODSIG")
        .find_map(|s| s.valid.clone())
    {
        return Err(SignatureError::NotPinned {
            what: what_s,
            key: fpr,
            keyring: keyring.path.clone(),
            pinned: pins.to_vec(),
        });
    }
    let unknown: Vec<String> = sigs
        .iter()
        .filter(|s| {
            s.verdict == "ERRSIG" && !matches!(s.errsig_rc.as_deref(), Some(rc) if rc != "9")
        })
        .map(|s| s.key.clone())
        .collect();
    if !unknown.is_empty() {
        return Err(SignatureError::UnknownKey {
            what: what_s,
            keys: unknown,
        });
    }
    match sigs.iter().find(|s| !s.verdict.is_empty()) {
        Some(s) => {
            let key = s.valid.as_ref().map_or(s.key.clone(), |(f, _)| f.clone());
            let reason = match &s.errsig_rc {
                Some(rc) if rc == "4" => "gpgv does not support its algorithm".to_string(),
                Some(rc) => format!("gpgv could not check it (ERRSIG code {rc})"),
                None => format!("gpgv reported {}", s.verdict),
            };
            Err(SignatureError::InvalidKey {
                what: what_s,
                key,
                reason,
            })
        }
        None => Err(SignatureError::NoSignature {
            what: what_s,
            detail: "no signature verdict".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests;
