//! OS profiles (`assets/os/*.yml`): where a distribution's archive is and how it is signed.
//!
//! Profiles are compiled into the binary so a build never depends on the working directory.

use serde::Deserialize;

/// A profile file compiled into the binary: (name, YAML text).
const BUILTIN: &[(&str, &str)] = &[
    (
        "debian-bookworm",
        include_str!("../assets/os/debian-bookworm.yml"),
    ),
    (
        "raspbian-bookworm",
        include_str!("../assets/os/raspbian-bookworm.yml"),
    ),
    (
        "raspbian-buster",
        include_str!("../assets/os/raspbian-buster.yml"),
    ),
    (
        "ubuntu-trusty",
        include_str!("../assets/os/ubuntu-trusty.yml"),
    ),
    (
        "ubuntu-jammy",
        include_str!("../assets/os/ubuntu-jammy.yml"),
    ),
];

/// The profile used when the spec names none.
pub const DEFAULT_PROFILE: &str = "debian-bookworm";

/// The `mirror:` value meaning "take it from the host's apt sources".
pub const HOST_APT: &str = "host-apt";

/// Errors loading a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The spec names a profile that does not exist.
    #[error("unknown OS profile `{name}`; known profiles: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// A built-in profile file does not parse (a bug in pistemcell).
    #[error("built-in profile assets/os/{name}.yml is invalid: {source}")]
    Invalid {
        /// The profile name.
        name: String,
        /// The YAML error.
        source: serde_norway::Error,
    },
}

/// The archive signing key of a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyringSpec {
    /// A host path or an http(s) URL of the key file (binary or ASCII-armored).
    pub location: String,
    /// The host package that provides `location` when it is a path.
    #[serde(default)]
    pub package: Option<String>,
    /// Full fingerprints of the primary keys allowed to sign the archive.
    pub fingerprints: Vec<String>,
    /// Accept SHA-1 signatures (only for keys that have nothing better; warns).
    #[serde(default)]
    pub allow_sha1: bool,
}

/// An OS profile: one distribution release and its archive.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The profile name (`debian-bookworm`).
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// The distribution (`debian`, `raspbian`, `ubuntu`), used in package URLs (purl) and sources.
    pub distro: String,
    /// The archive suite.
    pub suite: String,
    /// Archive components to read.
    pub components: Vec<String>,
    /// Architectures this archive carries.
    pub architectures: Vec<String>,
    /// The public mirror URL, or `host-apt` to take it from the host's apt sources.
    pub mirror: String,
    /// The archive key.
    pub keyring: KeyringSpec,
    /// Whether /bin, /sbin and /lib are symlinks into /usr (merged /usr).
    pub merged_usr: bool,
    /// The init system (`systemd`, `upstart`).
    pub init: String,
    /// Where the boot partition (FAT, the Pi firmware's) is mounted in the image.
    #[serde(default = "default_boot_dir")]
    pub boot_dir: String,
    /// Audit exceptions every build of this profile accepts, each with its reason.
    #[serde(default)]
    pub audit_allow: Vec<crate::spec::AllowEntry>,
}

fn default_boot_dir() -> String {
    "/boot/firmware".into()
}

/// The names of every built-in profile.
pub fn names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

/// Loads the built-in profile called `name`.
pub fn load(name: &str) -> Result<Profile, ProfileError> {
    let (_, text) =
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ProfileError::Unknown {
                name: name.to_string(),
                known: names().join(", "),
            })?;
    serde_norway::from_str(text).map_err(|source| ProfileError::Invalid {
        name: name.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_parses_and_is_named_for_its_file() {
        for name in names() {
            let p = load(name).unwrap();
            assert_eq!(p.name, name);
            assert!(!p.keyring.fingerprints.is_empty(), "{name}");
            for f in &p.keyring.fingerprints {
                assert_eq!(
                    f.len(),
                    40,
                    "{name}: fingerprint {f} must be a full v4 fingerprint"
                );
            }
        }
    }

    #[test]
    fn unknown_profile_lists_the_known_ones() {
        let e = load("fedora").unwrap_err().to_string();
        assert!(e.contains("fedora") && e.contains("debian-bookworm"), "{e}");
    }

    #[test]
    fn only_raspbian_accepts_sha1() {
        for name in names() {
            assert_eq!(
                load(name).unwrap().keyring.allow_sha1,
                name.starts_with("raspbian"),
                "{name}"
            );
        }
    }
}
