//! OS profiles (`assets/os/*.yml`): where a distribution's archive is and how it is signed.
//!
//! Profiles are compiled into the binary so a build never depends on the working directory.

use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyringSpec {
    /// A host path or an http(s) URL of the key file (binary or ASCII-armored).
    pub location: String,
    /// The host package that provides `location` when it is a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Full fingerprints of the primary keys allowed to sign the archive.
    pub fingerprints: Vec<String>,
    /// Accept SHA-1 signatures (only for keys that have nothing better; warns).
    #[serde(default)]
    pub allow_sha1: bool,
}

/// A second archive read beside the profile's own (Raspberry Pi's, for its kernel and boot
/// firmware): its packages join the same index (the highest version of a name wins, as with
/// apt), each verified against this archive's own key and downloaded from it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExtraArchive {
    /// A short name: the image's `/etc/apt/sources.list.d/NAME.list` and key file.
    pub name: String,
    /// The archive's URL (http, https or file).
    pub mirror: String,
    /// Its suite.
    pub suite: String,
    /// Its components.
    pub components: Vec<String>,
    /// Its signing key.
    pub keyring: KeyringSpec,
}

impl ExtraArchive {
    /// Checks the name, URL and fingerprints; the message names the archive.
    pub fn check(&self) -> Result<(), String> {
        let bad = |why: String| Err(format!("extra archive `{}`: {why}", self.name));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return bad("`name` must be lower-case letters, digits and -".into());
        }
        if !["http://", "https://", "file://"]
            .iter()
            .any(|p| self.mirror.starts_with(p))
        {
            return bad(format!(
                "`mirror: {}` is not an http, https or file URL",
                self.mirror
            ));
        }
        if self.suite.is_empty() || self.components.is_empty() {
            return bad("needs a `suite` and at least one component".into());
        }
        if self.keyring.fingerprints.is_empty()
            || self
                .keyring
                .fingerprints
                .iter()
                .any(|f| f.len() != 40 || !f.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return bad("`keyring.fingerprints` must list full 40-hex-digit fingerprints".into());
        }
        Ok(())
    }
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
    /// Archives read beside the profile's own (Raspberry Pi's kernel and firmware).
    #[serde(default)]
    pub extra_archives: Vec<ExtraArchive>,
    /// Where the boot partition (FAT, the Pi firmware's) is mounted in the image.
    #[serde(default = "default_boot_dir")]
    pub boot_dir: String,
    /// Audit exceptions every build of this profile accepts, each with its reason.
    #[serde(default)]
    pub audit_allow: Vec<crate::rules::AllowEntry>,
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
    fn extra_archives_are_checked() {
        for name in names() {
            for a in load(name).unwrap().extra_archives {
                a.check().unwrap();
            }
        }
        let mut a = load("raspbian-bookworm").unwrap().extra_archives[0].clone();
        a.name = "Raspberry Pi".into();
        assert!(a
            .check()
            .unwrap_err()
            .contains("extra archive `Raspberry Pi`"));
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
