//! The spec's pinned build inputs: monit, the agent, replacement files and the audit's
//! allow-list. Every artifact is a URL or a local path with the sha256 it must have.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::go_source::{check_git_url, is_commit_id, AgentSource};
pub use crate::rules::AllowEntry;

/// The monit version BOSH stemcells carry (newer ones refuse the agent's requests).
pub const MONIT_DEFAULT_VERSION: &str = "5.2.5";
/// Where monit 5.2.5's source tarball is published upstream.
pub const MONIT_DEFAULT_URL: &str = "https://mmonit.com/monit/dist/monit-5.2.5.tar.gz";
/// The sha256 of `monit-5.2.5.tar.gz`.
pub const MONIT_DEFAULT_SHA256: &str =
    "3c2496e9f653ff8a46b75b61126a86cb3861ad35e4eeb7379d64a0fc55c1fd8d";

/// A file the build needs: exactly one of `url` and `path`, and its sha256.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// An http, https or file URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A local path (relative paths are read from the current directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The sha256 the file must have (64 hex digits).
    #[serde(default)]
    pub sha256: String,
}

impl Artifact {
    /// The URL or path, for messages.
    pub fn location(&self) -> &str {
        self.url
            .as_deref()
            .or(self.path.as_deref())
            .unwrap_or("<nowhere>")
    }

    /// The lowercase sha256.
    pub fn digest(&self) -> String {
        self.sha256.to_ascii_lowercase()
    }

    /// Checks that exactly one location and a well-formed sha256 are given; `field` names
    /// the spec field in the message.
    pub fn check(&self, field: &str) -> Result<(), String> {
        match (&self.url, &self.path) {
            (Some(_), Some(_)) => {
                return Err(format!("`{field}` gives both `url` and `path`; keep one"))
            }
            (None, None) => {
                return Err(format!(
                    "`{field}` needs `url` or `path` (and `sha256`), e.g. --set {field}.path=FILE --set {field}.sha256=HEX"
                ))
            }
            (Some(u), None) => super::check_url(u).map_err(|r| format!("`{field}.url: {u}`: {r}"))?,
            (None, Some(p)) if p.is_empty() => return Err(format!("`{field}.path` is empty")),
            _ => {}
        }
        if self.sha256.len() != 64 || !self.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "`{field}.sha256` must be 64 hex digits (got `{}`); compute it with `sha256sum {}`",
                self.sha256,
                self.location()
            ));
        }
        Ok(())
    }
}

/// The monit pin as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MonitSpec {
    /// The version `monit -V` must report; default 5.2.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A monit source tarball, cross-compiled for the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Artifact>,
    /// A monit .deb for the target architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deb: Option<Artifact>,
    /// A monit binary for the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<Artifact>,
    /// Turn a failed monit proof into a warning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_proof: bool,
}

/// How monit reaches the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitFrom {
    /// Cross-compiled from this source tarball.
    Source(Artifact),
    /// Taken from this .deb.
    Deb(Artifact),
    /// This binary.
    Binary(Artifact),
}

impl MonitFrom {
    /// `source`, `deb` or `binary`.
    pub fn kind(&self) -> &'static str {
        match self {
            MonitFrom::Source(_) => "source",
            MonitFrom::Deb(_) => "deb",
            MonitFrom::Binary(_) => "binary",
        }
    }

    /// The artifact.
    pub fn artifact(&self) -> &Artifact {
        match self {
            MonitFrom::Source(a) | MonitFrom::Deb(a) | MonitFrom::Binary(a) => a,
        }
    }
}

/// The resolved monit pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monit {
    /// The version `monit -V` must report.
    pub version: String,
    /// Where it comes from.
    pub from: MonitFrom,
    /// Whether a failed proof only warns.
    pub skip_proof: bool,
}

/// Resolves the monit pin: the default is 5.2.5 from its upstream tarball.
pub fn resolve_monit(spec: Option<&MonitSpec>) -> Result<Monit, String> {
    let spec = spec.cloned().unwrap_or_default();
    let version = spec
        .version
        .clone()
        .unwrap_or_else(|| MONIT_DEFAULT_VERSION.into());
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-+~".contains(c))
    {
        return Err(format!("`monit.version: {version}` is not a version"));
    }
    let given: Vec<MonitFrom> = [
        spec.source.clone().map(MonitFrom::Source),
        spec.deb.clone().map(MonitFrom::Deb),
        spec.binary.clone().map(MonitFrom::Binary),
    ]
    .into_iter()
    .flatten()
    .collect();
    let from = match given.len() {
        0 if version == MONIT_DEFAULT_VERSION => MonitFrom::Source(Artifact {
            url: Some(MONIT_DEFAULT_URL.into()),
            path: None,
            sha256: MONIT_DEFAULT_SHA256.into(),
        }),
        0 => {
            return Err(format!(
                "`monit.version: {version}` needs one of `monit.source`, `monit.deb` or `monit.binary` (each {{url|path, sha256}})"
            ))
        }
        1 => given.into_iter().next().ok_or("unreachable")?,
        _ => {
            return Err(format!(
                "`monit` gives {}; give exactly one of source, deb and binary",
                given.iter().map(MonitFrom::kind).collect::<Vec<_>>().join(" and ")
            ))
        }
    };
    // A local copy of the default tarball needs no sha256 of its own: the pin stays.
    let from = match from {
        MonitFrom::Source(mut a) if a.sha256.is_empty() && version == MONIT_DEFAULT_VERSION => {
            a.sha256 = MONIT_DEFAULT_SHA256.into();
            MonitFrom::Source(a)
        }
        other => other,
    };
    from.artifact().check(&format!("monit.{}", from.kind()))?;
    Ok(Monit {
        version,
        from,
        skip_proof: spec.skip_proof,
    })
}

/// The bosh-agent repository the default agent is fetched from.
pub const AGENT_DEFAULT_GIT: &str = "https://github.com/cloudfoundry/bosh-agent";
/// The default agent's commit: tag `v2.874.0` (2026-08-08), the newest v2 release when this
/// was pinned; its tree has `go.mod` (`go 1.25.0`) and `vendor/`, and the project's patches
/// apply to it.
pub const AGENT_DEFAULT_REV: &str = "232dc82f19034c5c7e9848d6c9cd05e127af240b";
/// The version the default agent reports: its tag without the `v`.
pub const AGENT_DEFAULT_VERSION: &str = "2.874.0";

/// The agent as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// A prebuilt bosh-agent for the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<Artifact>,
    /// A bosh-agent source tree, cross-compiled with the host's Go toolchain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<AgentSource>,
}

/// The resolved agent input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agent {
    /// A prebuilt binary.
    Binary(Artifact),
    /// Built from a source tree.
    Source(AgentSource),
}

/// Resolves the agent input; the default is bosh-agent's pinned release fetched by git and
/// built from source (it is not published for ARM).
pub fn resolve_agent(spec: Option<&AgentSpec>) -> Result<Agent, String> {
    let spec = spec.cloned().unwrap_or_default();
    match (spec.binary, spec.source) {
        (Some(_), Some(_)) => Err("`agent` gives both `binary` and `source`; keep one".into()),
        (Some(b), None) => {
            b.check("agent.binary")?;
            Ok(Agent::Binary(b))
        }
        (None, s) => resolve_agent_source(s.unwrap_or_default()).map(Agent::Source),
    }
}

/// Checks `agent.source`; with neither `path` nor `git` (as when only `go` is set) it is the
/// default: bosh-agent's pinned release by git. Empty strings count as not given, so
/// `--set agent.source.git= --set agent.source.rev=` clears a spec's git source.
fn resolve_agent_source(s: AgentSource) -> Result<AgentSource, String> {
    super::go_source::resolve(
        s,
        "agent",
        (AGENT_DEFAULT_GIT, AGENT_DEFAULT_REV, AGENT_DEFAULT_VERSION),
    )
}

/// The archive state a spec is pinned to: the signed Release's sha256 (and, for messages,
/// its `Date`), as `provenance.json` records them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ArchivePin {
    /// sha256 of the signed Release text (64 hex digits).
    pub release_sha256: String,
    /// The Release's `Date`, as it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

impl ArchivePin {
    /// Checks the digest's form.
    pub fn check(&self) -> Result<(), String> {
        let d = &self.release_sha256;
        if d.len() != 64 || !d.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "`archive_pin.release_sha256: {d}` is not 64 hex digits (take it from a stemcell's provenance.json, archive.recorded.release_sha256)"
            ));
        }
        Ok(())
    }
}

/// The disk image's partition sizes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// The FAT32 boot partition in MiB (default 256; at least 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_size_mib: Option<u64>,
    /// The ext4 root partition in MiB (default: the tree's size plus a quarter and 128 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_size_mib: Option<u64>,
    /// How the root partition is filled: `loop` (default as root) or `rootless`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<ImageMethod>,
}

/// `image.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageMethod {
    /// Loop devices by offset, mkfs, mount, copy (needs root).
    Loop,
    /// `mkfs.ext4 -d` into a partition file, spliced in.
    Rootless,
}

impl ImageSpec {
    /// Checks the sizes.
    pub fn check(&self) -> Result<(), String> {
        if self
            .boot_size_mib
            .is_some_and(|m| !(64..=4096).contains(&m))
        {
            return Err(
                "`image.boot_size_mib` must be between 64 and 4096 (FAT32 needs 64 MiB at least)"
                    .into(),
            );
        }
        if self.root_size_mib.is_some_and(|m| m < 64) {
            return Err("`image.root_size_mib` must be at least 64".into());
        }
        Ok(())
    }
}

/// The audit's settings as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    /// Accepted exceptions, each with a reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<AllowEntry>,
}

/// `check-os`'s settings as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CheckOsSpec {
    /// Checks that may fail, each with a reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<crate::rules::OsAllow>,
}

/// `check_os.allow` as given, each entry with both a check id and a reason (the ids are checked
/// against `check-os`'s registry by `checkos::check_allow`, before a build runs).
pub fn check_os_allow(c: Option<&CheckOsSpec>) -> Result<Vec<crate::rules::OsAllow>, String> {
    let allow: Vec<crate::rules::OsAllow> =
        c.iter().flat_map(|c| c.allow.iter().cloned()).collect();
    match allow
        .iter()
        .enumerate()
        .find(|(_, a)| a.reason.trim().is_empty() || a.check.trim().is_empty())
    {
        Some((i, a)) => Err(format!(
            "`check_os.allow[{i}]` ({}) needs both `check` and `reason`: say why this check may fail",
            a.check
        )),
        None => Ok(allow),
    }
}

/// Checks the replacements map and the allow-list.
pub fn check_audit(
    replacements: &BTreeMap<String, Artifact>,
    audit: Option<&AuditSpec>,
) -> Result<(), String> {
    for (path, a) in replacements {
        check_rootfs_path(path).map_err(|r| format!("`replacements` key `{path}`: {r}"))?;
        a.check(&format!("replacements.{path}"))?;
    }
    for (i, e) in audit
        .map(|a| a.allow.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if !e.path.starts_with('/') {
            return Err(format!(
                "`audit.allow[{i}].path: {}` must be absolute",
                e.path
            ));
        }
        if e.reason.trim().is_empty() {
            return Err(format!(
                "`audit.allow[{i}]` ({}) has no `reason`: say why this file may stay",
                e.path
            ));
        }
        if let Some(c) = e
            .checks
            .iter()
            .find(|c| !crate::rules::CHECKS.iter().any(|k| k.0 == c.as_str()))
        {
            return Err(format!(
                "`audit.allow[{i}].checks` names `{c}`; the checks are {}",
                crate::rules::CHECKS
                    .iter()
                    .map(|k| k.0)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

/// Checks that `path` is an absolute rootfs path without `.`/`..` parts.
pub fn check_rootfs_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path == "/" {
        return Err("must be an absolute file path such as /usr/bin/tool".into());
    }
    if path[1..]
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err("must not contain empty, `.` or `..` parts".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monit_defaults_to_the_pinned_tarball() {
        let m = resolve_monit(None).unwrap();
        assert_eq!(m.version, "5.2.5");
        assert_eq!(m.from.artifact().sha256, MONIT_DEFAULT_SHA256);
        let other = MonitSpec {
            version: Some("5.33.0".into()),
            ..Default::default()
        };
        assert!(resolve_monit(Some(&other))
            .unwrap_err()
            .contains("needs one of"));
        let two = MonitSpec {
            deb: Some(Artifact {
                path: Some("a".into()),
                sha256: "0".repeat(64),
                url: None,
            }),
            binary: Some(Artifact {
                path: Some("b".into()),
                sha256: "0".repeat(64),
                url: None,
            }),
            ..Default::default()
        };
        assert!(resolve_monit(Some(&two))
            .unwrap_err()
            .contains("deb and binary"));
        let bad = MonitSpec {
            binary: Some(Artifact {
                path: Some("b".into()),
                sha256: "xyz".into(),
                url: None,
            }),
            ..Default::default()
        };
        assert!(resolve_monit(Some(&bad))
            .unwrap_err()
            .contains("monit.binary.sha256"));
    }

    #[test]
    fn the_default_agent_is_the_pinned_release_by_git() {
        let Agent::Source(s) = resolve_agent(None).unwrap() else {
            panic!("the default agent is not built from source")
        };
        assert_eq!(s.git_rev(), Some((AGENT_DEFAULT_GIT, AGENT_DEFAULT_REV)));
        assert_eq!(s.version.as_deref(), Some(AGENT_DEFAULT_VERSION));
        assert!(s.path.is_empty() && is_commit_id(AGENT_DEFAULT_REV));
        // Only the toolchain given (--set agent.source.go=GO): still the default tree.
        let go = AgentSource {
            go: Some("/opt/go/bin/go".into()),
            ..Default::default()
        };
        assert!(
            matches!(resolve_agent_source(go), Ok(s) if s.rev.as_deref() == Some(AGENT_DEFAULT_REV) && s.go.is_some())
        );
    }

    #[test]
    fn allow_entries_need_reasons_and_known_checks() {
        let mut audit = AuditSpec {
            allow: vec![AllowEntry {
                path: "/x".into(),
                checks: vec![],
                reason: " ".into(),
            }],
        };
        assert!(check_audit(&BTreeMap::new(), Some(&audit))
            .unwrap_err()
            .contains("reason"));
        audit.allow[0].reason = "ok".into();
        audit.allow[0].checks = vec!["nope".into()];
        assert!(check_audit(&BTreeMap::new(), Some(&audit))
            .unwrap_err()
            .contains("cpu-arch"));
        let mut r = BTreeMap::new();
        r.insert("/usr/../etc/x".to_string(), Artifact::default());
        assert!(check_audit(&r, None).unwrap_err().contains("`..`"));
    }
}
