//! The doctor's archive checks: the keyring the build verifies with (there, a key file, a
//! usable OpenPGP key holding a pinned fingerprint) and the mirror it downloads from (the
//! global `--mirror` first, as the build takes it).

use std::path::Path;

use super::{finding, Finding, Level, Remedy};
use crate::archive::signature::{self, Keyring, SignatureError};
use crate::spec::Resolved;

/// The keyring finding for a local key file (a URL is checked when the build downloads it).
pub(super) fn keyring_check(spec: &Resolved) -> Option<Finding> {
    let key = &spec.keyring;
    if key.starts_with("http://") || key.starts_with("https://") {
        return None;
    }
    let path = Path::new(key.strip_prefix("file://").unwrap_or(key));
    if !path.exists() {
        return Some(keyring_missing(spec));
    }
    let keyring = Keyring {
        path: path.to_path_buf(),
        fingerprints: spec.fingerprints.clone(),
        allow_sha1: spec.profile.keyring.allow_sha1,
    };
    let checked = signature::keyring_is_a_file(path)
        .and_then(|()| signature::check_keyring(&keyring).map(|_| ()));
    Some(match checked {
        Ok(()) => finding(
            Level::Ok,
            "keyring",
            format!("{} archive key: {key}", spec.profile.name),
        ),
        // gpg itself is missing: the tool lines above say so and how to install it.
        Err(SignatureError::Tool(e)) => finding(
            Level::Warn,
            "keyring",
            format!("{key} was not checked: {e}"),
        ),
        Err(e) => finding(Level::Fail, "keyring", e.to_string()),
    })
}

/// The keyring finding when the spec's key file is missing: the profile's own key comes from
/// its package; a key the spec names itself has to be given by the user.
pub(super) fn keyring_missing(spec: &Resolved) -> Finding {
    let key = &spec.keyring;
    let profile_key = &spec.profile.keyring;
    match profile_key.package.as_deref() {
        Some(pkg) if *key == profile_key.location => finding(
            Level::Fail,
            "keyring",
            format!("{key} is missing: apt-get install {pkg}, or set `keyring:` in the spec"),
        )
        .with(Remedy::Apt(vec![pkg.to_string()])),
        _ => finding(
            Level::Fail,
            "keyring",
            format!(
                "{key} (the spec's `keyring:`) is missing: point `keyring:` at the archive's key file (a path or an http(s) URL), or drop it to use the profile's {}",
                profile_key.location
            ),
        ),
    }
}

/// The mirror finding: `--mirror` when given (as the build uses it), else the host's apt
/// sources when the profile takes its mirror from them and the spec names none.
pub(super) fn mirror_check(spec: &Resolved, cli_mirror: Option<&str>) -> Option<Finding> {
    let (distro, suite) = (&spec.profile.distro, &spec.suite);
    if let Some(url) = cli_mirror {
        return Some(match crate::spec::check_url(url) {
            Ok(()) => finding(
                Level::Ok,
                "mirror",
                format!("{distro} {suite} from --mirror: {url}"),
            ),
            Err(reason) => finding(
                Level::Fail,
                "mirror",
                format!(
                    "--mirror {url}: {reason}; pass an http(s) or file URL of the archive's root"
                ),
            ),
        });
    }
    if spec.profile.mirror != crate::profile::HOST_APT || spec.mirror.is_some() {
        return None;
    }
    Some(
        match crate::mirror::from_host(Path::new("/etc/apt"), distro, suite) {
            Some(m) => finding(
                Level::Ok,
                "mirror",
                format!("{distro} {suite} from the host's apt sources: {m}"),
            ),
            None => finding(
                Level::Warn,
                "mirror",
                format!(
                    "the host's apt sources have no {suite} line; pass --mirror URL to bootstrap"
                ),
            ),
        },
    )
}
