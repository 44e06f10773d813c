//! The built-in `56-agent` stage: the BOSH agent at `/var/vcap/bosh/bin/bosh-agent`.
//!
//! The spec gives a prebuilt binary (URL or path with sha256) or a bosh-agent source tree (a
//! local directory, or a git repository at a pinned commit fetched into the cache; the default
//! is bosh-agent's pinned release from GitHub), cross-compiled here with the host's Go
//! toolchain (`CGO_ENABLED=0`, `GOARCH=arm GOARM=6|7` or `arm64`, by the spec's CPU floor)
//! after the project's patches (`assets/agent/patches/`) are applied to a copy of the tree. Either way the binary must be an ELF file for the
//! target: an x86 agent, or an ARMv7 one for an ARMv6 floor, is refused with what was given
//! and what is needed. The service definition (`/etc/sv/agent`) and the infrastructure's
//! `agent.json` come from the data stages.

use std::path::{Path, PathBuf};

use crate::context::BuildContext;
use crate::pipeline::{PipelineError, Stage};
use crate::spec::{Agent, Arch, Cpu};
use crate::steps::agent_build::{self, version_label};
use crate::steps::agent_fetch::{self, FetchError};
use crate::steps::artifact::{self, ArtifactError};
use crate::steps::gobuild::GoBuildError;

pub use crate::steps::gobuild::{go_env, go_env_text};

/// The stage's name: after the runit services, before the infrastructure stages.
pub const NAME: &str = "56-agent";
/// Where the agent lives in the image.
pub const AGENT_PATH: &str = "/var/vcap/bosh/bin/bosh-agent";
/// Bumped when the stage's behaviour changes (part of its cache key).
const FORMAT: &str = "3";

/// Errors of the agent stage.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No agent, or an unusable source tree or toolchain.
    #[error("{0}")]
    Input(String),
    /// The binary could not be fetched.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The source tree could not be fetched by git.
    #[error(transparent)]
    Fetch(Box<FetchError>),
    /// The binary is not for the target.
    #[error("{given} is not a BOSH agent this image can run: {why}\n  give an agent built for {needed}: `agent.source.path` (a bosh-agent tree, built here with {goenv}) or `agent.binary`")]
    Misfit {
        /// What was given.
        given: String,
        /// What is wrong with it.
        why: String,
        /// What the target needs.
        needed: String,
        /// The Go environment that builds one.
        goenv: String,
    },
    /// Building from source failed.
    #[error("building bosh-agent from {path}: {reason}\n  full log: {log}")]
    Build {
        /// The source tree.
        path: String,
        /// What failed.
        reason: String,
        /// The build log.
        log: PathBuf,
    },
    /// Installing failed.
    #[error("installing {AGENT_PATH}: {0}")]
    Install(String),
}

/// The `GOARM` a Go binary was built with, from its embedded build information.
pub fn goarm_of(bytes: &[u8]) -> Option<u8> {
    let needle = b"\tGOARM=";
    let i = bytes.windows(needle.len()).position(|w| w == needle)?;
    bytes
        .get(i + needle.len())
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
}

impl From<FetchError> for AgentError {
    fn from(e: FetchError) -> Self {
        AgentError::Fetch(Box::new(e))
    }
}

impl From<GoBuildError> for AgentError {
    fn from(e: GoBuildError) -> Self {
        match e {
            GoBuildError::Input(m) => AgentError::Input(m),
            GoBuildError::Build {
                path, reason, log, ..
            } => AgentError::Build { path, reason, log },
        }
    }
}

/// What the target needs, for messages: `linux/arm64`, or 32-bit hard-float ARM at the floor.
pub fn needed(arch: Arch, cpu: Cpu) -> String {
    match arch {
        Arch::Arm64 => "linux/arm64".to_string(),
        Arch::Armhf => format!("linux/arm (32-bit, hard float, {cpu:?} or older)").to_lowercase(),
    }
}

/// Why the Go program at `path` cannot run on the target (`Ok(None)` when it can): it must be
/// an ELF executable, native AArch64 on arm64, fit the audit's machine and float checks, and
/// for an ARMv6 floor carry ARMv6 attributes or `GOARM<=6`. `Err` when it cannot be read.
pub fn misfit_of(path: &Path, given: &str, arch: Arch, cpu: Cpu) -> Result<Option<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{given}: {e}"))?;
    let mut cursor = std::io::Cursor::new(&bytes[..]);
    let Some(info) = crate::audit::elf::read(&mut cursor).map_err(|e| format!("{given}: {e}"))?
    else {
        return Ok(Some("it is not an ELF executable".into()));
    };
    if info.kind != 2 && info.kind != 3 {
        return Ok(Some(format!(
            "it is an ELF file of type {}, not an executable",
            info.kind
        )));
    }
    // The audit lets 32-bit ARM helpers onto arm64 images; the agent itself must be native.
    if arch == Arch::Arm64 && info.machine != crate::audit::elf::EM_AARCH64 {
        return Ok(Some(format!(
            "machine: {}-bit {}; needs 64-bit LE AArch64",
            info.bits,
            crate::audit::elf::machine_name(info.machine)
        )));
    }
    if let Some(why) = artifact::misfit(path, arch, cpu)? {
        return Ok(Some(why));
    }
    // Go records no ARM build attributes; its build information names GOARM.
    if arch == Arch::Armhf && cpu == Cpu::Armv6 && info.cpu_arch.is_none() {
        return Ok(match goarm_of(&bytes) {
            Some(6) | Some(5) => None,
            Some(v) => Some(format!(
                "it was built with GOARM={v}: it dies with SIGILL on an ARMv6 Pi (Zero/1)"
            )),
            None => Some(
                "it records neither ARM build attributes nor GOARM, so it cannot be shown to run on ARMv6".into(),
            ),
        });
    }
    Ok(None)
}

/// Checks that the agent at `path` runs on the target; `given` describes it for messages.
pub fn check_binary(path: &Path, given: &str, arch: Arch, cpu: Cpu) -> Result<(), AgentError> {
    match misfit_of(path, given, arch, cpu).map_err(AgentError::Input)? {
        None => Ok(()),
        Some(why) => Err(AgentError::Misfit {
            given: given.to_string(),
            why,
            needed: needed(arch, cpu),
            goenv: go_env_text(arch, cpu),
        }),
    }
}

/// The built-in agent stage.
#[derive(Debug, Clone, Default)]
pub struct AgentStage {
    /// The `assets/` directory (its `agent/patches/` are applied to source builds).
    pub assets_dir: PathBuf,
}

fn wrap(e: AgentError) -> PipelineError {
    PipelineError::Build {
        stage: NAME.into(),
        source: Box::new(e),
    }
}

fn agent_of(ctx: &BuildContext) -> Result<&Agent, AgentError> {
    ctx.spec
        .agent
        .as_ref()
        .map_err(|e| AgentError::Input(e.clone()))
}

impl Stage for AgentStage {
    fn stemcell_input(&self) -> bool {
        true
    }
    fn name(&self) -> &str {
        NAME
    }
    fn description(&self) -> &str {
        "the BOSH agent for the target (a checked ARM binary, or cross-compiled with the host's Go from a bosh-agent tree or a pinned git commit)"
    }
    fn applies(&self, _ctx: &BuildContext) -> bool {
        true
    }
    fn manifest(&self, ctx: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        let spec = &ctx.spec;
        let input = match &spec.agent {
            Ok(Agent::Binary(a)) => format!("binary sha256={}", a.digest()),
            // A git commit pins the tree's contents; a local tree is hashed whole. Then the
            // version label and the patches (the toolchain's version is part of the built
            // binary's cache key, which hashes the checked-out tree too, see agent_build).
            Ok(Agent::Source(s)) => format!(
                "source {} version={} patches={}",
                match s.git_rev() {
                    Some((g, r)) => format!("git={g} rev={r}"),
                    None => format!(
                        "tree={}",
                        agent_build::tree_digest(Path::new(&s.path))
                            .unwrap_or_else(|e| format!("unreadable ({e})"))
                    ),
                },
                version_label(s),
                agent_build::patches_digest(&self.assets_dir),
            ),
            Err(_) => "none given".into(),
        };
        Ok(vec![
            ("agent-format".into(), FORMAT.into()),
            ("agent".into(), input),
            ("target".into(), go_env_text(spec.arch, spec.cpu)),
        ])
    }
    fn prepare(&self, ctx: &BuildContext) -> Result<(), PipelineError> {
        match agent_of(ctx).map_err(wrap)? {
            Agent::Binary(a) => {
                artifact::fetch(&ctx.cache_dir, "agent.binary", a).map_err(|e| wrap(e.into()))?;
            }
            Agent::Source(s) => {
                if let Some((g, r)) = s.git_rev() {
                    if agent_fetch::cached(&ctx.cache_dir, r).is_none() {
                        ctx.reporter
                            .step(&format!("bosh-agent: fetching {g} at commit {r}"));
                    }
                }
                // The tree (fetched first) and the toolchain: both named when both miss.
                let problems = agent_build::problems(&ctx.cache_dir, s);
                if !problems.is_empty() {
                    return Err(wrap(AgentError::Input(problems.join("; also: "))));
                }
            }
        }
        Ok(())
    }
    fn has_prebuild(&self) -> bool {
        true
    }
    fn prebuild(&self, ctx: &BuildContext) {
        if let Ok(Agent::Source(s)) = agent_of(ctx) {
            if let Ok(local) = agent_fetch::localize(&ctx.cache_dir, s) {
                let _ = agent_build::build(ctx, &local, &self.assets_dir);
            }
        }
    }
    fn run(&self, ctx: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        let spec = &ctx.spec;
        let (binary, given) = match agent_of(ctx).map_err(wrap)? {
            Agent::Binary(a) => (
                artifact::fetch(&ctx.cache_dir, "agent.binary", a).map_err(|e| wrap(e.into()))?,
                format!("agent.binary {}", a.location()),
            ),
            Agent::Source(s) => {
                let local = agent_fetch::localize(&ctx.cache_dir, s).map_err(|e| wrap(e.into()))?;
                (
                    agent_build::build(ctx, &local, &self.assets_dir)
                        .map_err(|e| wrap(e.into()))?,
                    format!("the agent built from {}", s.describe()),
                )
            }
        };
        check_binary(&binary, &given, spec.arch, spec.cpu).map_err(wrap)?;
        if matches!(spec.agent, Ok(Agent::Binary(_))) && spec.arch == Arch::Armhf {
            ctx.reporter.warn(
                "agent.binary is a prebuilt 32-bit ARM agent: unless it was built with the project's patch (assets/agent/patches), it crash-loops on ephemeral disks of 2 GiB or more (strconv.Atoi of disk sizes); build it from source to be sure, or run `pistemcell boot-test` on the stemcell: its 4 GiB ephemeral disk shows whether it does",
            );
        }
        let sv = root.join("etc/sv/agent/run");
        if !sv.is_file() {
            return Err(wrap(AgentError::Install(
                "the agent's service /etc/sv/agent/run is missing: the stage 50-runit-services must run before this one".into(),
            )));
        }
        artifact::install_into(root, AGENT_PATH, &binary, 0o755, 0, 0)
            .map_err(|e| wrap(AgentError::Install(e)))?;
        let component = match agent_of(ctx).map_err(wrap)? {
            Agent::Binary(a) => crate::record::Component {
                name: "bosh-agent".into(),
                version: "unknown".into(),
                path: AGENT_PATH.into(),
                kind: "binary".into(),
                origin: crate::record::origin_of(a),
                input_sha256: a.digest(),
                patches: Vec::new(),
            },
            Agent::Source(s) => crate::record::Component {
                name: "bosh-agent".into(),
                version: version_label(s),
                path: AGENT_PATH.into(),
                kind: "go build".into(),
                origin: source_origin(s),
                input_sha256: agent_fetch::localize(&ctx.cache_dir, s)
                    .ok()
                    .and_then(|l| agent_build::tree_digest(Path::new(&l.path)).ok())
                    .unwrap_or_default(),
                patches: agent_build::patches(&self.assets_dir)
                    .iter()
                    .map(|p| crate::record::patch_entry(p))
                    .collect(),
            },
        };
        crate::record::write(root, &component).map_err(|e| wrap(AgentError::Install(e)))?;
        ctx.reporter
            .detail(&format!("installed {AGENT_PATH} from {given}"));
        Ok(())
    }
}

/// Where a source tree came from, as the component record keeps it: an SPDX-style VCS
/// location (`git+URL@COMMIT`, without credentials) for a remote git source; never a build
/// machine's directory (a `file://` repository is named by its last component).
pub fn source_origin(s: &crate::spec::inputs::AgentSource) -> String {
    tree_origin(s, "bosh-agent")
}

/// [`source_origin`] for the program `module` (a path source is a "`module` source tree").
pub fn tree_origin(s: &crate::spec::inputs::AgentSource, module: &str) -> String {
    let Some((url, rev)) = s.git_rev() else {
        return format!("{module} source tree");
    };
    if let Some(path) = url.strip_prefix("file://") {
        let name = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(path);
        // A mirror's generic name (`.../cloudfoundry+bosh-davcli/repo`) says which program.
        if !name.contains(module) {
            return format!("git repository {name} ({module}) at commit {rev}");
        }
        return format!("git repository {name} at commit {rev}");
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..host_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("git+{scheme}://{rest}@{rev}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_git_source_is_recorded_by_url_and_commit() {
        let s = crate::spec::inputs::AgentSource {
            git: Some("https://github.com/cloudfoundry/bosh-agent".into()),
            rev: Some("232dc82f19034c5c7e9848d6c9cd05e127af240b".into()),
            ..Default::default()
        };
        let rev = "232dc82f19034c5c7e9848d6c9cd05e127af240b";
        assert_eq!(
            source_origin(&s),
            format!("git+https://github.com/cloudfoundry/bosh-agent@{rev}")
        );
        let with = |url: &str| crate::spec::inputs::AgentSource {
            git: Some(url.into()),
            ..s.clone()
        };
        assert_eq!(
            source_origin(&with("https://me:token@example.org/a/bosh-agent.git")),
            format!("git+https://example.org/a/bosh-agent.git@{rev}")
        );
        assert_eq!(
            source_origin(&with("file:///home/me/src/bosh-agent/")),
            format!("git repository bosh-agent at commit {rev}")
        );
        assert_eq!(
            tree_origin(
                &with("file:///srv/mirror/cloudfoundry+bosh-davcli/repo"),
                "bosh-davcli"
            ),
            format!("git repository repo (bosh-davcli) at commit {rev}")
        );
    }

    #[test]
    fn goarm_is_read_from_build_info() {
        assert_eq!(goarm_of(b"xx\tbuild\tGOARM=7\n"), Some(7));
        assert_eq!(goarm_of(b"nothing here"), None);
    }
}
