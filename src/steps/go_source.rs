//! Fetching a Go program's source tree by git (the agent's `agent.source.git`, a blobstore
//! client's `blobstore_clients.PROVIDER.source.git`) at a pinned commit.
//!
//! The commit is fetched once into `CACHE/KIND/COMMIT` and used from there exactly as a
//! `source.path` tree (same patches, same build, same cache of built binaries). The
//! checkout is made in a temporary directory beside it (`git init`, `git fetch --depth 1 URL
//! COMMIT`, `git checkout --detach FETCH_HEAD`, `git rev-parse HEAD` must be the commit), its
//! `.git` removed, and renamed into place when complete: a directory named by the commit is
//! whole, and is reused without git or the network. Git runs without templates, hooks,
//! prompts or line-ending conversion from the user's configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::spec::inputs::{is_commit_id, AgentSource};

/// Where a fetched tree is kept and how errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The cache kind checkouts are kept under (`agent-src`).
    pub kind: String,
    /// The spec field of the source, for messages (`agent.source`).
    pub field: String,
    /// What a closed network can do instead of fetching.
    pub hint: String,
}

/// Errors fetching a source tree by git; `field` is the source's spec field, `hint` what a
/// closed network can do instead.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// `git` is not installed.
    #[error("{field}.git: fetching {url} at commit {rev} needs git, which cannot be run ({reason}): apt-get install git; or {hint}")]
    NoGit {
        /// The source's spec field.
        field: String,
        /// The closed-network hint.
        hint: String,
        /// The repository.
        url: String,
        /// The commit.
        rev: String,
        /// Why it cannot be run.
        reason: String,
    },
    /// The repository could not be reached.
    #[error("{field}.git: cannot fetch {url} at commit {rev}: {reason}; {hint}")]
    Unavailable {
        /// The source's spec field.
        field: String,
        /// The closed-network hint.
        hint: String,
        /// The repository.
        url: String,
        /// The commit.
        rev: String,
        /// What git said.
        reason: String,
    },
    /// The repository has no such commit.
    #[error("{field}.git: {url} has no commit {rev} ({reason}); set {field}.rev to the full id of one of its commits (`git ls-remote {url} TAG` gives a tag's)")]
    NoCommit {
        /// The source's spec field.
        field: String,
        /// The repository.
        url: String,
        /// The commit.
        rev: String,
        /// What git said.
        reason: String,
    },
    /// The checkout is not the commit asked for.
    #[error("{field}.git: {url} at commit {rev} checked out as {actual}; the fetched tree is not used. Check the URL, or give a local checkout: --set {field}.path=DIR")]
    Mismatch {
        /// The source's spec field.
        field: String,
        /// The repository.
        url: String,
        /// The commit asked for.
        rev: String,
        /// The commit checked out.
        actual: String,
    },
    /// The spec's `rev` is not a commit id (resolution refuses it; this guards the path).
    #[error("{field}.rev: `{rev}` is not a full commit id (40 hex digits)")]
    BadRev {
        /// The source's spec field.
        field: String,
        /// The value.
        rev: String,
    },
    /// The cache directory is not usable.
    #[error("{field}.git: cache {path}: {reason}; check permissions and free space, or choose another with --cache-dir")]
    Cache {
        /// The source's spec field.
        field: String,
        /// The path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// Where the checkout of `rev` is kept (whether or not it is there yet).
pub fn checkout_dir(cache_dir: &Path, o: &Origin, rev: &str) -> PathBuf {
    cache_dir.join(&o.kind).join(rev.to_ascii_lowercase())
}

/// The complete checkout of `rev` in the cache, if it is there.
pub fn cached(cache_dir: &Path, o: &Origin, rev: &str) -> Option<PathBuf> {
    let dir = checkout_dir(cache_dir, o, rev);
    (is_commit_id(rev) && dir.is_dir()).then_some(dir)
}

/// How old a fetch's temporary dir must be before a later fetch removes it: a fetch killed
/// before it finished (an interrupted build, a power cut) leaves one behind.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes `.tmp-*` dirs in `parent` last changed more than `age` ago; best effort (a dir
/// that cannot be read or removed is left for the next time).
pub fn sweep_stale(parent: &Path, age: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(".tmp-") {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|elapsed| elapsed >= age);
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `s` with `path` naming a local tree: `s` itself for a path source, else a copy whose
/// `path` is the cached checkout of `git` at `rev`, fetched first when it is not there.
pub fn localize(cache_dir: &Path, o: &Origin, s: &AgentSource) -> Result<AgentSource, FetchError> {
    let Some((url, rev)) = s.git_rev() else {
        return Ok(s.clone());
    };
    let dir = fetch_with("git", cache_dir, o, url, rev)?;
    Ok(AgentSource {
        path: dir.display().to_string(),
        ..s.clone()
    })
}

/// Returns the checkout of `url` at the commit `rev` in the cache, fetching it with the git
/// program `git` when needed (tests name a missing one).
pub fn fetch_with(
    git: &str,
    cache_dir: &Path,
    o: &Origin,
    url: &str,
    rev: &str,
) -> Result<PathBuf, FetchError> {
    let field = o.field.clone();
    if !is_commit_id(rev) {
        return Err(FetchError::BadRev {
            field,
            rev: rev.into(),
        });
    }
    let rev = rev.to_ascii_lowercase();
    if let Some(dir) = cached(cache_dir, o, &rev) {
        return Ok(dir);
    }
    let parent = cache_dir.join(&o.kind);
    let cache = |path: &Path, e: std::io::Error| FetchError::Cache {
        field: field.clone(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    crate::owned::claim(cache_dir, crate::owned::Kind::Cache).map_err(|e| FetchError::Cache {
        field: field.clone(),
        path: cache_dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    std::fs::create_dir_all(&parent).map_err(|e| cache(&parent, e))?;
    sweep_stale(&parent, STALE_AFTER);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".tmp-{rev}-"))
        .tempdir_in(&parent)
        .map_err(|e| cache(&parent, e))?;
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).map_err(|e| cache(&tree, e))?;
    let run = |args: &[&str]| run_git(git, &tree, args);
    run(&["init", "-q", "--template="]).map_err(|e| match e {
        GitFailure::Spawn(reason) => FetchError::NoGit {
            field: field.clone(),
            hint: o.hint.clone(),
            url: url.into(),
            rev: rev.clone(),
            reason,
        },
        GitFailure::Failed(reason) => FetchError::Cache {
            field: field.clone(),
            path: tree.clone(),
            reason: format!("git init: {reason}"),
        },
    })?;
    run(&["fetch", "-q", "--depth", "1", "--no-tags", url, &rev]).map_err(|e| {
        let reason = match e {
            GitFailure::Spawn(r) | GitFailure::Failed(r) => r,
        };
        if reason.contains("not our ref")
            || reason.contains("couldn't find remote ref")
            || reason.contains("no such remote ref")
        {
            FetchError::NoCommit {
                field: field.clone(),
                url: url.into(),
                rev: rev.clone(),
                reason,
            }
        } else {
            FetchError::Unavailable {
                field: field.clone(),
                hint: o.hint.clone(),
                url: url.into(),
                rev: rev.clone(),
                reason,
            }
        }
    })?;
    let local = |what: &str, e: GitFailure| FetchError::Cache {
        field: field.clone(),
        path: tree.clone(),
        reason: format!(
            "{what}: {}",
            match e {
                GitFailure::Spawn(r) | GitFailure::Failed(r) => r,
            }
        ),
    };
    run(&["checkout", "-q", "--detach", "FETCH_HEAD"]).map_err(|e| local("git checkout", e))?;
    let head = run(&["rev-parse", "HEAD"]).map_err(|e| local("git rev-parse", e))?;
    if head != rev {
        return Err(FetchError::Mismatch {
            field,
            url: url.into(),
            rev,
            actual: head,
        });
    }
    let dot_git = tree.join(".git");
    std::fs::remove_dir_all(&dot_git).map_err(|e| cache(&dot_git, e))?;
    let dest = checkout_dir(cache_dir, o, &rev);
    if let Err(e) = std::fs::rename(&tree, &dest) {
        // Another build may have put the same commit there meanwhile: it is as good.
        if !dest.is_dir() {
            return Err(cache(&dest, e));
        }
    }
    Ok(dest)
}

/// Why a git command failed.
enum GitFailure {
    /// It could not be started.
    Spawn(String),
    /// It failed; its last lines.
    Failed(String),
}

/// Runs `git ARGS` in `dir` and returns its trimmed stdout.
fn run_git(git: &str, dir: &Path, args: &[&str]) -> Result<String, GitFailure> {
    let out = Command::new(git)
        .current_dir(dir)
        .args([
            "-c",
            "core.autocrlf=false",
            "-c",
            "core.eol=lf",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| GitFailure::Spawn(format!("`{git}`: {e}")))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let last = lines[lines.len().saturating_sub(3)..].join(" / ");
    let last = last.trim_end_matches('.');
    Err(GitFailure::Failed(format!(
        "`git {}` failed ({}): {last}",
        args.first().copied().unwrap_or_default(),
        out.status
    )))
}
