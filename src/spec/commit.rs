//! The commit pistemcell's source tree is at: the stages and assets a build runs come from
//! that tree, so the image records it (`/var/vcap/bosh/etc/stemcell_git_sha1`, as upstream
//! records its builder's commit). Stages read it as the spec key `builder.commit`.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// `git rev-parse HEAD` of the source tree, with `+` when tracked files have changes; `unknown`
/// when the tree is no git checkout or git is missing.
pub fn builder_commit() -> String {
    static COMMIT: OnceLock<String> = OnceLock::new();
    COMMIT
        .get_or_init(|| commit_of(Path::new(env!("CARGO_MANIFEST_DIR"))))
        .clone()
}

/// The commit of the git checkout at `dir` (see [`builder_commit`]).
pub fn commit_of(dir: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_OPTIONAL_LOCKS", "0")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "--verify", "HEAD"])
        .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return "unknown".into();
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if s.is_empty() => head,
        _ => format!("{head}+"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkout_gives_its_head_and_a_plus_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(commit_of(dir.path()), "unknown");
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@localhost")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@localhost")
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        std::fs::write(dir.path().join("f"), "a").unwrap();
        git(&["add", "f"]);
        git(&["commit", "-qm", "m"]);
        let head = commit_of(dir.path());
        assert!(head.len() == 40 && !head.ends_with('+'), "{head}");
        std::fs::write(dir.path().join("f"), "b").unwrap();
        assert_eq!(commit_of(dir.path()), format!("{head}+"));
        std::fs::write(dir.path().join("untracked"), "x").unwrap();
        std::fs::write(dir.path().join("f"), "a").unwrap();
        assert_eq!(commit_of(dir.path()), head);
    }
}
