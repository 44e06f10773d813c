//! Reading one suite of an archive: the signed Release, then each component's Packages
//! index for the target architecture, every index checked against the signed sha256.

use std::path::PathBuf;

use super::cache::{hex, Cache, CacheError};
use super::http::{join, Http, HttpError};
use super::packages::{self, Package};
use super::release::{self, parse_date, Release};
use super::signature::{self, Keyring};
use crate::progress::Reporter;

/// Kind directory in the cache for index files.
const INDICES: &str = "indices";
/// Kind directory in the cache for downloaded keys.
const KEYS: &str = "keys";

/// Errors reading the archive.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A download failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The signature did not verify.
    #[error(transparent)]
    Signature(#[from] signature::SignatureError),
    /// The Release file is malformed.
    #[error(transparent)]
    Release(#[from] release::ReleaseError),
    /// An index is malformed.
    #[error(transparent)]
    Packages(#[from] packages::PackagesError),
    /// Cache I/O or digest mismatch.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The archive lacks what the spec asks for.
    #[error("{mirror} suite {suite}: {reason}")]
    Missing {
        /// The mirror.
        mirror: String,
        /// The suite.
        suite: String,
        /// What is missing and what to do.
        reason: String,
    },
    /// The keyring file does not exist.
    #[error("archive keyring {path} does not exist; {hint}")]
    NoKeyring {
        /// The path.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },
}

/// Which suite to read, from where, verified by which keys.
#[derive(Debug, Clone)]
pub struct Source {
    /// Archive root URL.
    pub mirror: String,
    /// Suite name.
    pub suite: String,
    /// Components.
    pub components: Vec<String>,
    /// Debian architecture.
    pub arch: String,
    /// The verification keyring.
    pub keyring: Keyring,
}

/// The verified contents of a suite for one architecture.
#[derive(Debug, Clone)]
pub struct Index {
    /// The parsed, verified Release.
    pub release: Release,
    /// sha256 of the signed Release text.
    pub release_sha256: String,
    /// Every package of every component (arch and `all`).
    pub packages: Vec<Package>,
}

/// Puts the key file at `location` (path or URL) in place and checks it holds a pinned key.
pub fn prepare_keyring(
    http: &Http,
    cache: &Cache,
    location: &str,
    package: Option<&str>,
    fingerprints: &[String],
    allow_sha1: bool,
) -> Result<Keyring, ClientError> {
    let path = if location.starts_with("http://") || location.starts_with("https://") {
        let name = hex(&<sha2::Sha256 as sha2::Digest>::digest(location.as_bytes()));
        let p = cache.root().join(KEYS).join(format!("{name}.key"));
        if !p.is_file() {
            let data = http.get(location)?;
            let dir = cache.root().join(KEYS);
            std::fs::create_dir_all(&dir).map_err(|source| CacheError::Io {
                path: dir.clone(),
                source,
            })?;
            let mut tmp =
                tempfile::NamedTempFile::new_in(&dir).map_err(|source| CacheError::Io {
                    path: dir.clone(),
                    source,
                })?;
            std::io::Write::write_all(&mut tmp, &data).map_err(|source| CacheError::Io {
                path: dir.clone(),
                source,
            })?;
            tmp.persist(&p).map_err(|e| CacheError::Io {
                path: p.clone(),
                source: e.error,
            })?;
        }
        p
    } else {
        let p = PathBuf::from(location.strip_prefix("file://").unwrap_or(location));
        if p.exists() {
            // A directory, a device or a FIFO is there: say what it is, not "missing".
            signature::keyring_is_a_file(&p)?;
        } else {
            let hint = match package {
                Some(pkg) => format!("install it with `apt-get install {pkg}`, or point `keyring:` in the spec at a copy"),
                None => "point `keyring:` in the spec at the archive's key file".into(),
            };
            return Err(ClientError::NoKeyring { path: p, hint });
        }
        p
    };
    let keyring = Keyring {
        path,
        fingerprints: fingerprints.to_vec(),
        allow_sha1,
    };
    signature::check_keyring(&keyring)?;
    Ok(keyring)
}

/// Fetches and verifies the Release file and the Packages indices of `src`.
pub fn load_index(
    http: &Http,
    cache: &Cache,
    src: &Source,
    reporter: &Reporter,
) -> Result<Index, ClientError> {
    let dists = join(&src.mirror, &format!("dists/{}", src.suite));
    let inrelease_url = join(&dists, "InRelease");
    let text = match http.get(&inrelease_url) {
        Ok(data) => signature::verify_inrelease(&data, &src.keyring, &inrelease_url)?,
        Err(e) if e.is_not_found() => {
            let rel_url = join(&dists, "Release");
            let data = http.get(&rel_url).map_err(|e| match e {
                HttpError::NotFound { .. } => ClientError::Missing {
                    mirror: src.mirror.clone(),
                    suite: src.suite.clone(),
                    reason: format!("neither {inrelease_url} nor {rel_url} exists; check the suite name and --mirror"),
                },
                other => other.into(),
            })?;
            let sig = http.get(&join(&dists, "Release.gpg"))?;
            signature::verify_detached(&data, &sig, &src.keyring, &rel_url)?;
            String::from_utf8_lossy(&data).into_owned()
        }
        Err(e) => return Err(e.into()),
    };
    let release_sha256 = release::sha256_hex(text.as_bytes());
    let release = release::parse_release(&text, &inrelease_url)?;
    reporter.detail(&format!(
        "{} {} signed, dated {}",
        src.mirror,
        src.suite,
        release.date.as_deref().unwrap_or("(no Date)")
    ));
    if let Some(until) = release.valid_until.as_deref() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if parse_date(until).is_some_and(|t| t < now) {
            return Err(ClientError::Missing {
                mirror: src.mirror.clone(),
                suite: src.suite.clone(),
                reason: format!(
                    "the signed Release expired on {until} (Valid-Until): the mirror is stale or replays an old archive; use another mirror"
                ),
            });
        }
    }
    let missing = |reason: String| ClientError::Missing {
        mirror: src.mirror.clone(),
        suite: src.suite.clone(),
        reason,
    };
    if !release.architectures.is_empty() && !release.architectures.iter().any(|a| a == &src.arch) {
        return Err(missing(format!(
            "has no {} packages (it has: {}); choose another architecture or mirror",
            src.arch,
            release.architectures.join(", ")
        )));
    }
    let mut all = Vec::new();
    for comp in &src.components {
        if !release.components.is_empty()
            && !release
                .components
                .iter()
                .any(|c| c == comp || c.ends_with(&format!("/{comp}")))
        {
            return Err(missing(format!(
                "has no component `{comp}` (it has: {}); fix `components:` in the spec",
                release.components.join(", ")
            )));
        }
        let base = format!("{comp}/binary-{}/Packages", src.arch);
        let (name, size, sha) = ["xz", "gz", ""]
            .iter()
            .map(|ext| {
                if ext.is_empty() {
                    base.clone()
                } else {
                    format!("{base}.{ext}")
                }
            })
            .find_map(|n| {
                release
                    .index_entry(&n)
                    .map(|(size, sha)| (n, size, sha.to_string()))
            })
            .ok_or_else(|| {
                missing(format!(
                    "the signed Release lists no {base}{{.xz,.gz}}; the mirror may be incomplete"
                ))
            })?;
        let path = fetch_index(
            http,
            cache,
            &dists,
            &name,
            size,
            &sha,
            release
                .acquire_by_hash
                .then(|| release.by_hash_path(&name))
                .flatten(),
        )?;
        let data = std::fs::read(&path).map_err(|source| CacheError::Io {
            path: path.clone(),
            source,
        })?;
        let index_text = packages::decompress_index(&name, &data)?;
        let url = join(&dists, &name);
        let mut pkgs = packages::parse_packages(&index_text, &url)?;
        reporter.detail(&format!("{url}: {} packages", pkgs.len()));
        all.append(&mut pkgs);
    }
    Ok(Index {
        release,
        release_sha256,
        packages: all,
    })
}

/// Fetches one index into the cache, from its `by-hash` path first when the archive offers
/// one (`by_hash`, relative to dists/SUITE), verified.
fn fetch_index(
    http: &Http,
    cache: &Cache,
    dists: &str,
    name: &str,
    size: u64,
    sha: &str,
    by_hash: Option<String>,
) -> Result<PathBuf, ClientError> {
    if let Some(p) = cache.lookup(INDICES, sha, size) {
        return Ok(p);
    }
    let canonical = join(dists, name);
    let mut urls = Vec::new();
    if let Some(rel) = by_hash {
        urls.push(join(dists, &rel));
    }
    urls.push(canonical.clone());
    let mut last = None;
    for url in urls {
        match http.open(&url) {
            Ok((mut body, _)) => {
                return Ok(cache.store(INDICES, sha, size, &canonical, &mut body, &|_| {})?)
            }
            Err(e) if e.is_not_found() => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .map(ClientError::from)
        .unwrap_or_else(|| HttpError::NotFound { url: canonical }.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare(location: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let pin = ["A".repeat(40)];
        prepare_keyring(&Http::new(), &cache, location, Some("pkg"), &pin, false)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_keyring_is_called_missing_only_when_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let e = prepare(dir.path().to_str().unwrap());
        assert!(e.contains("is a directory, not a key file"), "{e}");
        let e = prepare("/dev/zero");
        assert!(e.contains("is a character device, not a key file"), "{e}");
        let e = prepare(dir.path().join("none.gpg").to_str().unwrap());
        assert!(
            e.contains("does not exist") && e.contains("apt-get install pkg"),
            "{e}"
        );
        let garbage = dir.path().join("garbage.gpg");
        std::fs::write(&garbage, b"\x99\x00\x0djunk-after-a-key-tag").unwrap();
        let e = prepare(garbage.to_str().unwrap());
        if crate::cmd::on_path("gpg") {
            assert!(e.contains("not a usable OpenPGP public keyring"), "{e}");
            assert!(!e.contains("install gnupg"), "{e}");
        }
        std::fs::write(&garbage, b"text, not a key\n").unwrap();
        let e = prepare(garbage.to_str().unwrap());
        assert!(
            e.contains("neither an armored nor a binary OpenPGP public key"),
            "{e}"
        );
    }
}
