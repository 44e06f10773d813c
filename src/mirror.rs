//! Choosing the mirror: `--mirror`, then the spec, then the profile; the Debian profile
//! reads the host's apt sources (one-line `.list` and deb822 `.sources` files).

use std::path::{Path, PathBuf};

use crate::profile::HOST_APT;
use crate::spec::Resolved;

/// The host's apt source files, in the order apt reads them.
pub fn host_source_files(etc_apt: &Path) -> Vec<PathBuf> {
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(rd) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut extra: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("list" | "sources")
                )
            })
            .collect();
        extra.sort();
        files.extend(extra);
    }
    files.into_iter().filter(|p| p.is_file()).collect()
}

/// One `deb` source: a URI and the suites it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The archive root URI.
    pub uri: String,
    /// Suites listed for it.
    pub suites: Vec<String>,
}

/// Parses apt source files (both formats), keeping `deb` entries only.
pub fn parse_sources(path: &Path, text: &str) -> Vec<Source> {
    let is_deb822 = path.extension().and_then(|e| e.to_str()) == Some("sources");
    if is_deb822 || (text.contains("URIs:") && text.contains("Suites:")) {
        return parse_deb822(text);
    }
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace().peekable();
        if words.next() != Some("deb") {
            continue;
        }
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            for w in words.by_ref() {
                if w.ends_with(']') {
                    break;
                }
            }
        }
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            out.push(Source {
                uri: uri.to_string(),
                suites: vec![suite.to_string()],
            });
        }
    }
    out
}

/// Parses deb822-style `.sources` stanzas.
fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut types = Vec::new();
        let mut uris = Vec::new();
        let mut suites = Vec::new();
        let mut enabled = true;
        for line in stanza.lines().filter(|l| !l.trim_start().starts_with('#')) {
            if let Some((k, v)) = line.split_once(':') {
                let vals: Vec<String> = v.split_whitespace().map(str::to_string).collect();
                match k.trim().to_ascii_lowercase().as_str() {
                    "types" => types = vals,
                    "uris" => uris = vals,
                    "suites" => suites = vals,
                    "enabled" => enabled = v.trim() != "no",
                    _ => {}
                }
            }
        }
        if enabled && types.iter().any(|t| t == "deb") {
            out.extend(uris.into_iter().map(|uri| Source {
                uri,
                suites: suites.clone(),
            }));
        }
    }
    out
}

/// Finds the host's mirror for `suite` of `distro`: the first `deb` source listing that
/// suite, preferring one whose path ends in `/DISTRO`.
pub fn from_host(etc_apt: &Path, distro: &str, suite: &str) -> Option<String> {
    let mut found: Vec<Source> = Vec::new();
    for f in host_source_files(etc_apt) {
        if let Ok(text) = std::fs::read_to_string(&f) {
            found.extend(
                parse_sources(&f, &text)
                    .into_iter()
                    .filter(|s| s.suites.iter().any(|x| x == suite)),
            );
        }
    }
    let tail = format!("/{distro}");
    found
        .iter()
        .find(|s| s.uri.trim_end_matches('/').ends_with(&tail))
        .or(found.first())
        .map(|s| s.uri.trim_end_matches('/').to_string())
}

/// Errors choosing a mirror.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// No mirror was given and the host's apt sources have none for the suite.
    #[error(
        "profile {profile} takes its mirror from the host's apt sources, but none of {files} has a `deb` line for suite `{suite}`.\n  Pass --mirror URL (any {distro} mirror that carries {suite} for {arch}), or set `mirror:` in the spec."
    )]
    NoHostMirror {
        /// The profile name.
        profile: String,
        /// The distribution.
        distro: String,
        /// The suite.
        suite: String,
        /// The architecture.
        arch: String,
        /// The files that were read.
        files: String,
    },
    /// The given mirror is not a URL pistemcell can fetch from.
    #[error("mirror `{url}`: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// Chooses the mirror: the CLI's `--mirror`, the spec's `mirror:`, the profile's, or the host's.
pub fn choose(spec: &Resolved, cli: Option<&str>, etc_apt: &Path) -> Result<String, MirrorError> {
    if let Some(url) = cli.or(spec.mirror.as_deref()) {
        crate::spec::check_url(url).map_err(|reason| MirrorError::BadUrl {
            url: url.into(),
            reason,
        })?;
        return Ok(url.trim_end_matches('/').to_string());
    }
    if spec.profile.mirror != HOST_APT {
        return Ok(spec.profile.mirror.trim_end_matches('/').to_string());
    }
    from_host(etc_apt, &spec.profile.distro, &spec.suite).ok_or_else(|| MirrorError::NoHostMirror {
        profile: spec.profile.name.clone(),
        distro: spec.profile.distro.clone(),
        suite: spec.suite.clone(),
        arch: spec.arch.debian().into(),
        files: format!("{}/sources.list{{,.d/*}}", etc_apt.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_line_and_deb822_sources_and_prefers_the_distro_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sources.list"),
            "# comment\ndeb-src http://src.example/debian bookworm main\ndeb [arch=amd64 signed-by=/x] http://other.example/repo bookworm main\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n",
        )
        .unwrap();
        assert_eq!(
            from_host(dir.path(), "debian", "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            from_host(dir.path(), "debian", "bookworm-security").as_deref(),
            Some("http://mirror.example/debian-security")
        );
        assert_eq!(from_host(dir.path(), "debian", "trixie"), None);
    }

    #[test]
    fn missing_host_mirror_says_what_to_pass() {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::spec::resolve("t".into(), Default::default()).unwrap();
        let e = choose(&spec, None, dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("--mirror") && e.contains("bookworm") && e.contains("armhf"),
            "{e}"
        );
        assert_eq!(
            choose(&spec, Some("file:///srv/m/"), dir.path()).unwrap(),
            "file:///srv/m"
        );
        assert!(choose(&spec, Some("srv/m"), dir.path()).is_err());
    }
}
