//! The stemcell spec: one YAML file, unknown keys rejected, defaults from the OS profile.
//!
//! Errors name the file and, for YAML problems, the line and column. `--set key=value`
//! overrides are applied to the parsed document before the types are checked again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::profile::{self, Profile, ProfileError};

pub mod clients;
pub mod commit;
mod fields;
pub mod go_source;
pub mod inputs;
mod names;
pub mod raw;
mod read;
pub mod reference;
mod set;

pub use fields::FIELDS;
pub use names::{check_url, valid_package_name};
pub use read::SPEC_MAX;

pub use inputs::{
    Agent, AgentSpec, AllowEntry, Artifact, AuditSpec, ImageSpec, Monit, MonitFrom, MonitSpec,
};

/// Errors reading or validating a spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The spec file could not be read.
    #[error("cannot read spec {path}: {source}")]
    Read {
        /// The spec path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML does not match the spec's fields (the message carries line and column).
    #[error("spec {path}: {source}\n  (every field is documented in README.md, section \"Spec reference\")")]
    Parse {
        /// The spec path.
        path: String,
        /// The YAML error with its position.
        source: serde_norway::Error,
    },
    /// A `--set` flag is malformed or sets a value of the wrong type.
    #[error("--set {arg}: {reason}")]
    Set {
        /// The flag's argument.
        arg: String,
        /// What is wrong.
        reason: String,
    },
    /// The spec names an unknown profile.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The values parse but do not fit together.
    #[error("spec {path}: {reason}")]
    Invalid {
        /// The spec path.
        path: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

/// Target architecture (Debian's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// 32-bit ARM, hard float.
    #[default]
    Armhf,
    /// 64-bit ARM.
    Arm64,
}

impl Arch {
    /// The Debian architecture name.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::Armhf => "armhf",
            Arch::Arm64 => "arm64",
        }
    }

    /// The qemu-user emulator that runs this architecture's binaries.
    pub fn qemu(self) -> &'static str {
        match self {
            Arch::Armhf => "qemu-arm",
            Arch::Arm64 => "qemu-aarch64",
        }
    }
}

/// The oldest CPU the image must run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cpu {
    /// ARMv6 with VFP (Pi Zero, Pi 1): only Raspbian builds for it.
    Armv6,
    /// ARMv7 (Pi 2 and later in 32-bit mode).
    Armv7,
    /// ARMv8 / AArch64 (Pi 3 and later in 64-bit mode).
    Armv8,
}

/// Where the stemcell runs: decides the agent settings and infrastructure stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Infrastructure {
    /// PiFoundry's Bakery CPI: netbooted Pis, settings in `/piConfig/settings.json`.
    #[default]
    Bakery,
    /// An SD-card image for a Pi booting from its own card.
    Raw,
    /// A rootfs stemcell for bosh-lite/garden on a Pi.
    Warden,
}

impl Infrastructure {
    /// The name used in specs, stage `when:` lists and the environment.
    pub fn name(self) -> &'static str {
        match self {
            Infrastructure::Bakery => "bakery",
            Infrastructure::Raw => "raw",
            Infrastructure::Warden => "warden",
        }
    }
}

/// The stemcell's identity in its manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StemcellSpec {
    /// Stemcell name; default `bosh-pi-INFRASTRUCTURE-PROFILE-ARCH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Stemcell version (a string: `1.10` stays `1.10`); default `0.0.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The manifest's `operating_system`; default `PROFILE-ARCH` (see [`default_operating_system`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system: Option<String>,
}

/// The default `operating_system` of a stemcell: `PROFILE-ARCH` (`debian-bookworm-armhf`).
/// The director keys compiled packages by OS name and stemcell version only, so an ARM
/// stemcell must not share an x86 stemcell's OS name (BOSH-CONTRACT.md section 5).
pub fn default_operating_system(profile: &str, arch: Arch) -> String {
    format!("{profile}-{}", arch.debian())
}

/// Whether `name` is a valid `operating_system`: non-empty `[a-z0-9._-]`.
pub fn valid_operating_system(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c))
}

/// Which packages the bootstrap installs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VariantSpec {
    /// `Essential: yes` and `Priority: required` packages, with their dependencies.
    Required,
    /// Required plus apt: what `debootstrap --variant=minbase` installs.
    #[default]
    Minbase,
    /// Minbase plus `Priority: important`: debootstrap's default variant.
    Important,
    /// Exactly these packages and their dependencies (`variant: {packages: [..]}`).
    Packages(Vec<String>),
}

const VARIANT_NAMES: &[&str] = &["required", "minbase", "important"];

impl Serialize for VariantSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            VariantSpec::Required => s.serialize_str("required"),
            VariantSpec::Minbase => s.serialize_str("minbase"),
            VariantSpec::Important => s.serialize_str("important"),
            VariantSpec::Packages(list) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("packages", list)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for VariantSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = VariantSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`required`, `minbase`, `important` or `{packages: [..]}`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<VariantSpec, E> {
                match v {
                    "required" => Ok(VariantSpec::Required),
                    "minbase" => Ok(VariantSpec::Minbase),
                    "important" => Ok(VariantSpec::Important),
                    other => Err(E::unknown_variant(other, VARIANT_NAMES)),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<VariantSpec, A::Error> {
                let mut list = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "packages" || list.is_some() {
                        return Err(serde::de::Error::unknown_field(&key, &["packages"]));
                    }
                    list = Some(map.next_value::<Vec<String>>()?);
                }
                list.map(VariantSpec::Packages)
                    .ok_or_else(|| serde::de::Error::missing_field("packages"))
            }
        }
        d.deserialize_any(V)
    }
}

/// The spec file as written: every field optional, defaults come from the profile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// OS profile (`debian-bookworm`, `raspbian-bookworm`, `raspbian-buster`, `ubuntu-trusty`, `ubuntu-jammy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Target architecture: `armhf` or `arm64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Arch>,
    /// CPU floor: `armv6` (Pi Zero/1), `armv7`, `armv8`; default from the architecture and profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// Archive suite; default from the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// Archive components; default from the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
    /// Mirror URL (http, https or file); default from the profile (Debian: the host's apt sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// Archive key file (path or URL) replacing the profile's; its fingerprint must still be pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring: Option<String>,
    /// Fingerprints allowed to sign the archive, replacing the profile's (needed with a private archive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring_fingerprints: Option<Vec<String>>,
    /// The archive state the build must find (a changed archive stops it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_pin: Option<inputs::ArchivePin>,
    /// Archives read beside the main one, replacing the profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_archives: Option<Vec<crate::profile::ExtraArchive>>,
    /// Package selection: `required`, `minbase` (default), `important`, or `{packages: [..]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<VariantSpec>,
    /// Extra packages installed on top of the variant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Where the stemcell runs: `bakery` (default), `raw` or `warden`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure: Option<Infrastructure>,
    /// The stemcell's `name`, `version` and `operating_system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stemcell: Option<StemcellSpec>,
    /// Compilers and build tools (stage `02-dev-tools`); default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_tools: Option<bool>,
    /// The `raw` infrastructure's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<raw::RawSpec>,
    /// The monit pin: `version` and one of `source`, `deb`, `binary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monit: Option<MonitSpec>,
    /// The BOSH agent: `binary` or `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentSpec>,
    /// The blobstore clients by provider (`dav`, `s3`, `gcs`, `azure-storage`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub blobstore_clients: BTreeMap<String, clients::ClientSpec>,
    /// Files swapped in before the audit: rootfs path to an ARM artifact.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replacements: BTreeMap<String, Artifact>,
    /// The audit's accepted exceptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditSpec>,
    /// `check-os`'s accepted failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_os: Option<inputs::CheckOsSpec>,
    /// The disk image's partition sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSpec>,
}

/// A spec with the profile's defaults applied and checked.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Where the spec came from (a path, or `<default spec>`).
    pub source: String,
    /// The OS profile.
    pub profile: Profile,
    /// Target architecture.
    pub arch: Arch,
    /// CPU floor.
    pub cpu: Cpu,
    /// Archive suite.
    pub suite: String,
    /// Archive components.
    pub components: Vec<String>,
    /// Explicit mirror from the spec (the CLI's `--mirror` and the profile are applied later).
    pub mirror: Option<String>,
    /// Key file location.
    pub keyring: String,
    /// Pinned fingerprints.
    pub fingerprints: Vec<String>,
    /// The pinned archive state.
    pub archive_pin: Option<inputs::ArchivePin>,
    /// Archives read beside the main one.
    pub extra_archives: Vec<crate::profile::ExtraArchive>,
    /// Package selection.
    pub variant: VariantSpec,
    /// Extra packages.
    pub packages: Vec<String>,
    /// Where the stemcell runs.
    pub infrastructure: Infrastructure,
    /// Stemcell name.
    pub stemcell_name: String,
    /// Stemcell version.
    pub stemcell_version: String,
    /// The manifest's `operating_system`.
    pub operating_system: String,
    /// Whether the image gets compilers and build tools.
    pub dev_tools: bool,
    /// `raw.partition_card`: whether a raw stemcell's agent partitions its SD card.
    pub partition_card: bool,
    /// The monit pin.
    pub monit: Monit,
    /// The agent input, or why there is none.
    pub agent: Result<Agent, String>,
    /// The blobstore clients to install, in provider order.
    pub blobstore_clients: Vec<clients::Client>,
    /// Files swapped in before the audit.
    pub replacements: BTreeMap<String, Artifact>,
    /// Accepted audit exceptions: the profile's, then the spec's.
    pub audit_allow: Vec<AllowEntry>,
    /// `check-os` failures the spec accepts, each with a reason (ids checked by `checkos`).
    pub check_os_allow: Vec<crate::rules::OsAllow>,
    /// The disk image's partition sizes.
    pub image: ImageSpec,
    /// The spec as written plus overrides, for records.
    pub raw: Spec,
}

impl Resolved {
    /// The resolved value of a spec key as text (what stages read as `SPEC_<KEY>`); `None`
    /// for keys that do not exist.
    pub fn lookup(&self, key: &str) -> Option<String> {
        Some(match key {
            "profile" => self.profile.name.clone(),
            "architecture" => self.arch.debian().into(),
            "cpu" => format!("{:?}", self.cpu).to_lowercase(),
            "suite" => self.suite.clone(),
            "components" => self.components.join(" "),
            "packages" => self.packages.join(" "),
            "infrastructure" => self.infrastructure.name().into(),
            "stemcell.name" => self.stemcell_name.clone(),
            "stemcell.version" => self.stemcell_version.clone(),
            "stemcell.operating_system" => self.operating_system.clone(),
            "dev_tools" => self.dev_tools.to_string(),
            "raw.partition_card" => self.partition_card.to_string(),
            "monit.version" => self.monit.version.clone(),
            "builder.commit" => commit::builder_commit(),
            _ => return None,
        })
    }
}

/// Loads the spec at `path` (or the default spec when `None`), applies `--set` overrides,
/// fills defaults from the profile and validates.
pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Resolved, SpecError> {
    let (source, text) = match path {
        Some(p) => (p.display().to_string(), read::read_spec(p)?),
        None => ("<default spec>".to_string(), String::new()),
    };
    let spec = parse(&source, &text, sets)?;
    resolve(source, spec)
}

/// Parses spec text (errors carry line and column) and applies `--set key=value` overrides.
/// Text nested deeper than `untrusted::YAML_DEPTH_MAX` is refused before any parsing.
pub fn parse(source: &str, text: &str, sets: &[String]) -> Result<Spec, SpecError> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    crate::untrusted::check_yaml_depth(text, crate::untrusted::YAML_DEPTH_MAX).map_err(
        |reason| SpecError::Invalid {
            path: source.to_string(),
            reason: format!(
                "{reason}; a spec is a shallow document (see README.md, \"Spec reference\")"
            ),
        },
    )?;
    let spec: Spec = serde_norway::from_str(text).map_err(|source_err| SpecError::Parse {
        path: source.to_string(),
        source: source_err,
    })?;
    if sets.is_empty() {
        return Ok(spec);
    }
    let mut doc: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| SpecError::Parse {
            path: source.to_string(),
            source: e,
        })?;
    for arg in sets {
        set::apply_set(&mut doc, arg)?;
    }
    serde_norway::from_value(doc).map_err(|e| SpecError::Set {
        arg: sets.join(" --set "),
        reason: format!("{e} (see README.md, \"Spec reference\")"),
    })
}

/// Fills defaults from the profile and checks that the values fit together.
pub fn resolve(source: String, spec: Spec) -> Result<Resolved, SpecError> {
    let profile = profile::load(spec.profile.as_deref().unwrap_or(profile::DEFAULT_PROFILE))?;
    let invalid = |reason: String| SpecError::Invalid {
        path: source.clone(),
        reason,
    };
    let arch = spec.architecture.unwrap_or_default();
    if !profile.architectures.iter().any(|a| a == arch.debian()) {
        return Err(invalid(format!(
            "profile {} has no {} packages (it has: {}); set `architecture:` to one of those or choose another profile",
            profile.name,
            arch.debian(),
            profile.architectures.join(", ")
        )));
    }
    let default_cpu = match (arch, profile.distro.as_str()) {
        (Arch::Arm64, _) => Cpu::Armv8,
        (Arch::Armhf, "raspbian") => Cpu::Armv6,
        (Arch::Armhf, _) => Cpu::Armv7,
    };
    let cpu = spec.cpu.unwrap_or(default_cpu);
    match (arch, cpu) {
        (Arch::Arm64, Cpu::Armv6 | Cpu::Armv7) => {
            return Err(invalid(format!("cpu {cpu:?} cannot run arm64; use `architecture: armhf` or `cpu: armv8`").to_lowercase()))
        }
        (Arch::Armhf, Cpu::Armv6) if profile.distro != "raspbian" => {
            return Err(invalid(format!(
                "{} armhf is built for ARMv7 and will not run on an ARMv6 Pi (Zero/1); use a raspbian-* profile for `cpu: armv6`",
                profile.name
            )))
        }
        _ => {}
    }
    for (field, list) in [("packages", &spec.packages)] {
        if let Some(bad) = list.iter().find(|p| !valid_package_name(p)) {
            return Err(invalid(format!(
                "`{field}` entry `{bad}` is not a valid Debian package name"
            )));
        }
    }
    if let Some(VariantSpec::Packages(list)) = &spec.variant {
        if list.is_empty() {
            return Err(invalid(
                "`variant: {packages: []}` names no packages".into(),
            ));
        }
        if let Some(bad) = list.iter().find(|p| !valid_package_name(p)) {
            return Err(invalid(format!(
                "`variant.packages` entry `{bad}` is not a valid Debian package name"
            )));
        }
    }
    if let Some(m) = &spec.mirror {
        check_url(m).map_err(|r| invalid(format!("`mirror: {m}`: {r}")))?;
    }
    let fingerprints = spec
        .keyring_fingerprints
        .clone()
        .unwrap_or_else(|| profile.keyring.fingerprints.clone());
    for f in &fingerprints {
        let clean: String = f.chars().filter(|c| !c.is_whitespace()).collect();
        if clean.len() != 40 || !clean.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "keyring fingerprint `{f}` is not a full 40-hex-digit fingerprint"
            )));
        }
    }
    let extra_archives = spec
        .extra_archives
        .clone()
        .unwrap_or_else(|| profile.extra_archives.clone());
    for a in &extra_archives {
        a.check().map_err(&invalid)?;
    }
    if let Some(p) = &spec.archive_pin {
        p.check().map_err(&invalid)?;
    }
    let infrastructure = spec.infrastructure.unwrap_or_default();
    let stemcell = spec.stemcell.clone().unwrap_or_default();
    let stemcell_name = stemcell.name.unwrap_or_else(|| {
        format!(
            "bosh-pi-{}-{}-{}",
            infrastructure.name(),
            profile.name,
            arch.debian()
        )
    });
    let stemcell_version = stemcell.version.unwrap_or_else(|| "0.0.1".into());
    let operating_system = stemcell
        .operating_system
        .unwrap_or_else(|| default_operating_system(&profile.name, arch));
    if !valid_operating_system(&operating_system) {
        return Err(invalid(format!(
            "`stemcell.operating_system: {operating_system}` must be non-empty lower-case letters, digits and . _ - (e.g. {})",
            default_operating_system(&profile.name, arch)
        )));
    }
    let monit = inputs::resolve_monit(spec.monit.as_ref()).map_err(&invalid)?;
    let agent = inputs::resolve_agent(spec.agent.as_ref());
    if let (Err(e), Some(_)) = (&agent, &spec.agent) {
        return Err(invalid(e.clone()));
    }
    let blobstore_clients = clients::resolve_clients(&spec.blobstore_clients).map_err(&invalid)?;
    inputs::check_audit(&spec.replacements, spec.audit.as_ref()).map_err(&invalid)?;
    let image = spec.image.unwrap_or_default();
    image.check().map_err(&invalid)?;
    let partition_card =
        raw::partition_card(spec.raw.as_ref(), infrastructure).map_err(&invalid)?;
    let check_os_allow = inputs::check_os_allow(spec.check_os.as_ref()).map_err(&invalid)?;
    let mut audit_allow = profile.audit_allow.clone();
    audit_allow.extend(spec.audit.iter().flat_map(|a| a.allow.iter().cloned()));
    for (field, value) in [
        ("stemcell.name", &stemcell_name),
        ("stemcell.version", &stemcell_version),
    ] {
        if value.is_empty()
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
        {
            return Err(invalid(format!(
                "`{field}: {value}` must be non-empty letters, digits and . _ + -"
            )));
        }
    }
    Ok(Resolved {
        arch,
        cpu,
        suite: spec.suite.clone().unwrap_or_else(|| profile.suite.clone()),
        components: spec
            .components
            .clone()
            .unwrap_or_else(|| profile.components.clone()),
        mirror: spec.mirror.clone(),
        keyring: spec
            .keyring
            .clone()
            .unwrap_or_else(|| profile.keyring.location.clone()),
        fingerprints,
        extra_archives,
        archive_pin: spec.archive_pin.clone(),
        variant: spec.variant.clone().unwrap_or_default(),
        packages: spec.packages.clone(),
        infrastructure,
        stemcell_name,
        stemcell_version,
        operating_system,
        dev_tools: spec.dev_tools.unwrap_or(true),
        partition_card,
        monit,
        agent,
        blobstore_clients,
        replacements: spec.replacements.clone(),
        audit_allow,
        check_os_allow,
        image,
        raw: spec,
        profile,
        source,
    })
}

#[cfg(test)]
mod tests;
