//! The built-in `56-agent` stage: the BOSH agent at `/var/vcap/bosh/bin/bosh-agent`.
//!
//! The spec gives a prebuilt binary (URL or path with sha256) or a bosh-agent source tree,
//! cross-compiled here with the host's Go toolchain (`CGO_ENABLED=0`, `GOARCH=arm GOARM=6|7`
//! or `arm64`, by the spec's CPU floor) after the project's patches (`assets/agent/patches/`)
//! are applied to a copy of the tree. Either way the binary must be an ELF file for the
//! target: an x86 agent, or an ARMv7 one for an ARMv6 floor, is refused with what was given
//! and what is needed. The service definition (`/etc/sv/agent`) and the infrastructure's
//! `agent.json` come from the data stages.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::context::BuildContext;
use crate::pipeline::{PipelineError, Stage};
use crate::spec::{Agent, Arch, Cpu};
use crate::steps::artifact::{self, ArtifactError};

/// The stage's name: after the runit services, before the infrastructure stages.
pub const NAME: &str = "56-agent";
/// Where the agent lives in the image.
pub const AGENT_PATH: &str = "/var/vcap/bosh/bin/bosh-agent";
/// Bumped when the stage's behaviour changes (part of its cache key).
const FORMAT: &str = "2";

/// Errors of the agent stage.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No agent, or an unusable source tree or toolchain.
    #[error("{0}")]
    Input(String),
    /// The binary could not be fetched.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
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

/// The Go target environment for an architecture and CPU floor.
pub fn go_env(arch: Arch, cpu: Cpu) -> Vec<(&'static str, &'static str)> {
    match (arch, cpu) {
        (Arch::Arm64, _) => vec![("GOOS", "linux"), ("GOARCH", "arm64")],
        (Arch::Armhf, Cpu::Armv6) => vec![("GOOS", "linux"), ("GOARCH", "arm"), ("GOARM", "6")],
        (Arch::Armhf, _) => vec![("GOOS", "linux"), ("GOARCH", "arm"), ("GOARM", "7")],
    }
}

fn go_env_text(arch: Arch, cpu: Cpu) -> String {
    go_env(arch, cpu)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
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

/// Checks that the agent at `path` runs on the target; `given` describes it for messages.
pub fn check_binary(path: &Path, given: &str, arch: Arch, cpu: Cpu) -> Result<(), AgentError> {
    let needed = match arch {
        Arch::Arm64 => "linux/arm64".to_string(),
        Arch::Armhf => format!("linux/arm (32-bit, hard float, {cpu:?} or older)").to_lowercase(),
    };
    let misfit = |why: String| AgentError::Misfit {
        given: given.to_string(),
        why,
        needed: needed.clone(),
        goenv: go_env_text(arch, cpu),
    };
    let bytes = std::fs::read(path).map_err(|e| AgentError::Input(format!("{given}: {e}")))?;
    let mut cursor = std::io::Cursor::new(&bytes[..]);
    let Some(info) = crate::audit::elf::read(&mut cursor)
        .map_err(|e| AgentError::Input(format!("{given}: {e}")))?
    else {
        return Err(misfit("it is not an ELF executable".into()));
    };
    if info.kind != 2 && info.kind != 3 {
        return Err(misfit(format!(
            "it is an ELF file of type {}, not an executable",
            info.kind
        )));
    }
    // The audit lets 32-bit ARM helpers onto arm64 images; the agent itself must be native.
    if arch == Arch::Arm64 && info.machine != crate::audit::elf::EM_AARCH64 {
        return Err(misfit(format!(
            "machine: {}-bit {}; needs 64-bit LE AArch64",
            info.bits,
            crate::audit::elf::machine_name(info.machine)
        )));
    }
    if let Some(why) = artifact::misfit(path, arch, cpu).map_err(AgentError::Input)? {
        return Err(misfit(why));
    }
    // Go records no ARM build attributes; its build information names GOARM.
    if arch == Arch::Armhf && cpu == Cpu::Armv6 && info.cpu_arch.is_none() {
        match goarm_of(&bytes) {
            Some(6) | Some(5) => {}
            Some(v) => {
                return Err(misfit(format!(
                    "it was built with GOARM={v}: it dies with SIGILL on an ARMv6 Pi (Zero/1)"
                )))
            }
            None => {
                return Err(misfit(
                    "it records neither ARM build attributes nor GOARM, so it cannot be shown to run on ARMv6".into(),
                ))
            }
        }
    }
    Ok(())
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
        "the BOSH agent for the target (a checked ARM binary, or cross-compiled from a bosh-agent tree with the host's Go)"
    }
    fn applies(&self, _ctx: &BuildContext) -> bool {
        true
    }
    fn manifest(&self, ctx: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        let spec = &ctx.spec;
        let input = match &spec.agent {
            Ok(Agent::Binary(a)) => format!("binary sha256={}", a.digest()),
            // The whole tree's contents and the patches (the toolchain's version is part of
            // the built binary's cache key, see agent_build).
            Ok(Agent::Source(s)) => format!(
                "source tree={} patches={}",
                super::agent_build::tree_digest(Path::new(&s.path))
                    .unwrap_or_else(|e| format!("unreadable ({e})")),
                super::agent_build::patches_digest(&self.assets_dir),
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
                super::agent_build::check_source(s).map_err(wrap)?;
            }
        }
        Ok(())
    }
    fn run(&self, ctx: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        let spec = &ctx.spec;
        let (binary, given) = match agent_of(ctx).map_err(wrap)? {
            Agent::Binary(a) => (
                artifact::fetch(&ctx.cache_dir, "agent.binary", a).map_err(|e| wrap(e.into()))?,
                format!("agent.binary {}", a.location()),
            ),
            Agent::Source(s) => (
                super::agent_build::build(ctx, s, &self.assets_dir).map_err(wrap)?,
                format!("the agent built from {}", s.path),
            ),
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
            Agent::Binary(a) => super::record::Component {
                name: "bosh-agent".into(),
                version: "unknown".into(),
                path: AGENT_PATH.into(),
                kind: "binary".into(),
                origin: super::record::origin_of(a),
                input_sha256: a.digest(),
            },
            Agent::Source(s) => super::record::Component {
                name: "bosh-agent".into(),
                version: s.version.clone().unwrap_or_else(|| "0.0.0-dev".into()),
                path: AGENT_PATH.into(),
                kind: "go build".into(),
                origin: "bosh-agent source tree".into(),
                input_sha256: super::agent_build::tree_digest(Path::new(&s.path))
                    .unwrap_or_default(),
            },
        };
        super::record::write(root, &component).map_err(|e| wrap(AgentError::Install(e)))?;
        ctx.reporter
            .detail(&format!("installed {AGENT_PATH} from {given}"));
        Ok(())
    }
}

/// Runs `cmd`, appending its output to `log`.
pub(super) fn logged(cmd: &mut Command, log: &Path) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goarm_is_read_from_build_info() {
        assert_eq!(goarm_of(b"xx\tbuild\tGOARM=7\n"), Some(7));
        assert_eq!(goarm_of(b"nothing here"), None);
    }
}
