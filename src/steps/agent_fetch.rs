//! Fetching a bosh-agent tree by git: `agent.source.git` at the commit `agent.source.rev`,
//! into `CACHE/agent-src/COMMIT` (the shared mechanism is [`super::go_source`]).

use std::path::{Path, PathBuf};

use crate::spec::inputs::AgentSource;

pub use super::go_source::{sweep_stale, FetchError, STALE_AFTER};

/// The cache kind checkouts are kept under.
pub const KIND: &str = "agent-src";

/// What a closed network can do instead of fetching.
pub const OFFLINE_HINT: &str = "on a closed network give a local checkout: --set agent.source.path=DIR (a bosh-agent tree with vendor/) --set agent.source.go=GO, or --set agent.binary.path=FILE --set agent.binary.sha256=HEX";

/// The agent's place in the cache and its messages.
pub fn origin() -> super::go_source::Origin {
    super::go_source::Origin {
        kind: KIND.into(),
        field: "agent.source".into(),
        hint: OFFLINE_HINT.into(),
    }
}

/// Where the checkout of `rev` is kept (whether or not it is there yet).
pub fn checkout_dir(cache_dir: &Path, rev: &str) -> PathBuf {
    super::go_source::checkout_dir(cache_dir, &origin(), rev)
}

/// The complete checkout of `rev` in the cache, if it is there.
pub fn cached(cache_dir: &Path, rev: &str) -> Option<PathBuf> {
    super::go_source::cached(cache_dir, &origin(), rev)
}

/// `s` with `path` naming a local tree: `s` itself for a path source, else a copy whose
/// `path` is the cached checkout of `git` at `rev`, fetched first when it is not there.
pub fn localize(cache_dir: &Path, s: &AgentSource) -> Result<AgentSource, FetchError> {
    super::go_source::localize(cache_dir, &origin(), s)
}

/// Returns the checkout of `url` at the commit `rev` in the cache, fetching it when needed.
pub fn fetch(cache_dir: &Path, url: &str, rev: &str) -> Result<PathBuf, FetchError> {
    fetch_with("git", cache_dir, url, rev)
}

/// [`fetch`] with the git program named (tests name a missing one).
pub fn fetch_with(
    git: &str,
    cache_dir: &Path,
    url: &str,
    rev: &str,
) -> Result<PathBuf, FetchError> {
    super::go_source::fetch_with(git, cache_dir, &origin(), url, rev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_git_says_how_to_install_it() {
        let dir = tempfile::tempdir().unwrap();
        let rev = "0123456789abcdef0123456789abcdef01234567";
        let e = fetch_with("pistemcell-no-such-git", dir.path(), "file:///nowhere", rev)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("apt-get install git") && e.contains("file:///nowhere") && e.contains(rev),
            "{e}"
        );
        // Nothing half-made is left as the checkout.
        assert!(cached(dir.path(), rev).is_none());
        let left: Vec<_> = std::fs::read_dir(dir.path().join(KIND)).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_bad_rev_never_names_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let e = fetch(dir.path(), "file:///x", "../../etc").unwrap_err();
        assert!(matches!(e, FetchError::BadRev { .. }), "{e}");
        assert!(cached(dir.path(), "..").is_none());
    }

    #[test]
    fn a_killed_fetchs_temporary_dir_is_swept_once_stale() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path();
        let rev = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(parent.join(".tmp-old/tree/.git")).unwrap();
        std::fs::create_dir_all(parent.join(rev)).unwrap();
        // Not stale yet: a fetch may still be writing it.
        sweep_stale(parent, STALE_AFTER);
        assert!(parent.join(".tmp-old").is_dir());
        // Stale: removed, and the finished checkout beside it kept.
        sweep_stale(parent, std::time::Duration::ZERO);
        assert!(!parent.join(".tmp-old").exists());
        assert!(parent.join(rev).is_dir());
    }
}
