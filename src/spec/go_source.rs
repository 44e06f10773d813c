//! A Go program's source as the spec gives it (the agent's `agent.source`, a blobstore
//! client's `blobstore_clients.PROVIDER.source`): a local tree or a git repository at a
//! pinned commit, and its resolution against the program's default.

use serde::{Deserialize, Serialize};

/// A Go source tree (bosh-agent, a blobstore client): a local directory (`path`) or a git repository at a commit
/// (`git` and `rev`), exactly one of them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentSource {
    /// The directory holding the program's `go.mod` (with its `vendor/`); empty when `git` is
    /// given.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// A git URL of the program, fetched at `rev` into the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<String>,
    /// The commit to fetch from `git`: its full 40-hex-digit id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    /// The `go` binary; default `go` on PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go: Option<String>,
    /// The version the program reports (`bosh-agent -v`); default `0.0.0-dev` (the default
    /// source's: its release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl AgentSource {
    /// The git URL and commit, when the tree is fetched by git.
    pub fn git_rev(&self) -> Option<(&str, &str)> {
        Some((self.git.as_deref()?, self.rev.as_deref()?))
    }

    /// Where the tree comes from, for messages: `URL at commit REV`, or the path.
    pub fn describe(&self) -> String {
        match self.git_rev() {
            Some((g, r)) => format!("{g} at commit {r}"),
            None => self.path.clone(),
        }
    }
}

/// Checks `FIELD.source`; with neither `path` nor `git` (as when only `go` is set) it is the
/// default `(git, rev, version)`. Empty strings count as not given, so
/// `--set FIELD.source.git= --set FIELD.source.rev=` clears a spec's git source.
pub fn resolve(
    mut s: AgentSource,
    field: &str,
    default: (&str, &str, &str),
) -> Result<AgentSource, String> {
    let (default_git, default_rev, default_version) = default;
    s.git = s.git.filter(|g| !g.is_empty());
    s.rev = s.rev.filter(|r| !r.is_empty());
    let refused = match (s.path.is_empty(), s.git.clone(), s.rev.clone()) {
        (true, None, None) => {
            s.git = Some(default_git.into());
            s.rev = Some(default_rev.into());
            s.version.get_or_insert_with(|| default_version.into());
            None
        }
        (false, None, None) => None,
        (false, Some(g), _) => Some(format!(
            "`{field}.source` gives both `path: {}` and `git: {g}`; keep one (a local tree, or a repository fetched at `rev`)",
            s.path
        )),
        (false, None, Some(_)) => Some(format!(
            "`{field}.source.rev` goes with `{field}.source.git`, not with `path`; remove it"
        )),
        (true, None, Some(r)) => Some(format!(
            "`{field}.source.rev: {r}` needs `{field}.source.git`, the repository's URL (e.g. {default_git})"
        )),
        (true, Some(g), None) => Some(format!(
            "`{field}.source.git: {g}` needs `{field}.source.rev`, the full 40-hex-digit commit id to build (a tag can move; `git rev-list -n1 TAG` in a clone gives its commit)"
        )),
        (true, Some(g), Some(r)) => {
            check_git_url(&g).map_err(|why| {
                let why = why.replace("`agent.source.path`", &format!("`{field}.source.path`"));
                format!("`{field}.source.git: {g}`: {why}")
            })?;
            s.rev = Some(r.to_ascii_lowercase());
            (!is_commit_id(&r)).then(|| format!(
                "`{field}.source.rev: {r}` is not a full commit id (40 hex digits): a tag or branch can move, the commit pins the content; `git rev-list -n1 TAG` in a clone, or `git ls-remote {g} TAG`, gives it"
            ))
        }
    };
    refused.map_or(Ok(s), Err)
}

/// Whether `rev` is a full commit id: 40 hex digits.
pub fn is_commit_id(rev: &str) -> bool {
    rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit())
}

/// Checks that `url` is a git URL this build fetches from: https, http, ssh, git or file.
pub fn check_git_url(url: &str) -> Result<(), String> {
    let ok = ["https://", "http://", "ssh://", "git://", "file://"]
        .iter()
        .any(|p| url.starts_with(p) && url.len() > p.len());
    if ok && !url.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err("expected an https://, http://, ssh://, git:// or file:// URL (for a local tree, give `agent.source.path` instead)".into())
    }
}
