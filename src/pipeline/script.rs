//! Running a data stage: its packages through the build context, then `apply.sh` on the host
//! or chrooted into the rootfs (with `/proc`, `/sys`, a private `/dev` and a `policy-rc.d`,
//! all released when it ends, fails or is interrupted). The full output goes to
//! `WORK/logs/stage-NAME.log`; a failure reports the exit status and the last lines.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::stage::{DataStage, RunIn};
use super::{env, PipelineError};
use crate::context::BuildContext;
use crate::rootfs::host_tools::{self, HostTools};
use crate::rootfs::{binfmt, dpkg, mounts};
use crate::tarwrite::tree::{self, Kind, TreeError};
use crate::workdir::{remove_tree, PARTIAL};

/// Where chroot stages find their copies, inside the rootfs.
pub const CHROOT_STAGE_DIR: &str = "/tmp/pistemcell-stage";
/// How many trailing output lines a script failure shows.
const TAIL_LINES: usize = 20;

/// A scratch directory removed (after unmounting anything below it) on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = remove_tree(&self.0);
    }
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> PipelineError + 'a {
    move |source| PipelineError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Copies the tree at `src` to `dst` (created): directories, files with their modes, symlinks.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), PipelineError> {
    tree::walk::<PipelineError>(src, &|_| true, &mut |e| {
        let to = if e.rel.as_os_str().is_empty() {
            dst.to_path_buf()
        } else {
            dst.join(&e.rel)
        };
        match &e.kind {
            Kind::Dir => {
                std::fs::create_dir_all(&to).map_err(io_err("create", &to))?;
                std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(e.mode))
                    .map_err(io_err("set the mode of", &to))?;
            }
            Kind::Symlink(t) => {
                std::os::unix::fs::symlink(t, &to).map_err(io_err("create", &to))?
            }
            Kind::File | Kind::HardLink(_) => {
                if let Some(p) = to.parent() {
                    std::fs::create_dir_all(p).map_err(io_err("create", p))?;
                }
                std::fs::copy(&e.path, &to).map_err(io_err("copy to", &to))?;
            }
            _ => {
                return Err(TreeError::Io {
                    op: "copy (special files are not allowed in stages and assets)",
                    path: e.path.clone(),
                    source: std::io::Error::other("not a file, directory or symlink"),
                }
                .into())
            }
        }
        Ok(())
    })
}

/// The ELF machine of this host's binaries (`e_machine`).
fn host_machine() -> u16 {
    match std::env::consts::ARCH {
        "x86_64" => 62,
        "aarch64" => 183,
        "arm" => 40,
        "x86" => 3,
        _ => 0,
    }
}

/// Whether the rootfs's `/bin/bash` is not a binary of this host's machine (so running it
/// needs emulation); true when it cannot be read.
fn foreign_shell(root: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 20];
    let read = std::fs::File::open(root.join("bin/bash")).and_then(|mut f| f.read_exact(&mut head));
    read.is_err()
        || &head[..4] != b"\x7fELF"
        || u16::from_le_bytes([head[18], head[19]]) != host_machine()
}

impl DataStage {
    /// Installs the stage's packages, then runs `apply.sh` (if any) on `root`.
    pub fn execute(&self, ctx: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        if !self.file.packages.is_empty() {
            ctx.reporter.step(&format!(
                "{}: installing {}",
                self.name,
                self.file.packages.join(" ")
            ));
            crate::bootstrap::packages::install(ctx, root, &self.file.packages, &self.name)
                .map_err(|source| PipelineError::Build {
                    stage: self.name.clone(),
                    source: Box::new(source),
                })?;
        }
        if !self.has_script {
            return Ok(());
        }
        crate::interrupt::check()?;
        match self.file.run {
            RunIn::Host => self.run_host(ctx, root),
            RunIn::Chroot => self.run_chroot(ctx, root),
        }
    }

    /// Copies the stage directory to `stage_to` and its assets to `assets_to`.
    fn stage_copies(&self, stage_to: &Path, assets_to: &Path) -> Result<(), PipelineError> {
        copy_tree(&self.dir, stage_to)?;
        std::fs::create_dir_all(assets_to).map_err(io_err("create", assets_to))?;
        for a in self.asset_paths() {
            let a = a.trim_end_matches('/');
            let (from, to) = if a.is_empty() {
                (self.assets_dir.clone(), assets_to.to_path_buf())
            } else {
                (self.assets_dir.join(a), assets_to.join(a))
            };
            if from.exists() {
                copy_tree(&from, &to)?;
            }
        }
        Ok(())
    }

    fn run_host(&self, ctx: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        let scratch = Scratch(ctx.work_dir.join(format!("stage-{}{PARTIAL}", self.name)));
        let _ = remove_tree(&scratch.0);
        let (stage_dir, assets) = (scratch.0.join("stage"), scratch.0.join("assets"));
        self.stage_copies(&stage_dir, &assets)?;
        let root = root.canonicalize().map_err(io_err("find", root))?;
        let mut vars = env::script_env(
            &ctx.spec,
            &self.name,
            &self.file.reads,
            &root.to_string_lossy(),
            &stage_dir.to_string_lossy(),
            &assets.to_string_lossy(),
        );
        vars.extend(env::epoch_var(&root));
        let mut cmd = Command::new("bash");
        cmd.args(["-euo", "pipefail", "apply.sh"])
            .current_dir(&stage_dir)
            .env_clear()
            .envs(vars);
        self.run_logged(ctx, &mut cmd)
    }

    fn run_chroot(&self, ctx: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        let fail = |reason: String| PipelineError::Chroot {
            stage: self.name.clone(),
            reason,
        };
        if foreign_shell(root) {
            if let Some(done) = binfmt::ensure(ctx.spec.arch).map_err(|e| fail(e.to_string()))? {
                ctx.reporter.step(&done);
            }
        }
        let tmp = root.join("tmp");
        if !tmp.exists() {
            std::fs::create_dir(&tmp).map_err(io_err("create", &tmp))?;
            std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
                .map_err(io_err("set the mode of", &tmp))?;
        }
        // Never write through a symlink the rootfs may hold at /tmp: it would lead to the host.
        if !std::fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_dir()) {
            return Err(fail(format!(
                "{} is not a directory; the rootfs's /tmp must be a real directory",
                tmp.display()
            )));
        }
        let rel = CHROOT_STAGE_DIR.trim_start_matches('/');
        let scratch = Scratch(root.join(rel));
        let _ = remove_tree(&scratch.0);
        self.stage_copies(&scratch.0.join(&self.name), &scratch.0.join("assets"))?;
        let inside = format!("{CHROOT_STAGE_DIR}/{}", self.name);
        let mut vars = env::script_env(
            &ctx.spec,
            &self.name,
            &self.file.reads,
            "/",
            &inside,
            &format!("{CHROOT_STAGE_DIR}/assets"),
        );
        vars.extend(env::epoch_var(root));
        let _mounts = mounts::ChrootMounts::setup(root).map_err(|e| fail(e.to_string()))?;
        let _policy = dpkg::PolicyRcD::install(root).map_err(|e| fail(e.to_string()))?;
        // Where the rootfs is foreign, the script runs under the host's bash with the host's
        // toolbox first on PATH (rootfs::host_tools): its sed, grep, cp, ... run natively, the
        // target's own programs (dpkg, useradd, auditctl, ...) emulated.
        let tools = if foreign_shell(root) {
            HostTools::install(root)
                .map_err(|why| {
                    ctx.reporter
                        .detail(&format!("{}: apply.sh runs emulated: {why}", self.name))
                })
                .ok()
        } else {
            None
        };
        let native_bash = tools
            .as_ref()
            .is_some_and(|t| t.commands.iter().any(|c| c == "bash"));
        let shell = if native_bash {
            format!("{}/bash", host_tools::BIN)
        } else {
            "/bin/bash".to_string()
        };
        let mut cmd = Command::new("chroot");
        cmd.arg(root)
            .args([shell.as_str(), "-euo", "pipefail"])
            .arg(format!("{inside}/apply.sh"))
            .current_dir("/")
            .env_clear()
            .envs(vars);
        if tools.is_some() {
            cmd.env("PATH", host_tools::path_with_toolbox());
        }
        let result = self.run_logged(ctx, &mut cmd);
        if let Some(t) = tools {
            t.remove().map_err(io_err(
                "remove the host tools from",
                &root.join(host_tools::DIR),
            ))?;
        }
        result
    }

    /// Runs `cmd` with its output in `WORK/logs/stage-NAME.log`, keeping the last lines.
    fn run_logged(&self, ctx: &BuildContext, cmd: &mut Command) -> Result<(), PipelineError> {
        let logs = ctx.work_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(io_err("create", &logs))?;
        let log = logs.join(format!("stage-{}.log", self.name));
        let mut file = std::fs::File::create(&log).map_err(io_err("create", &log))?;
        let argv = crate::cmd::argv_of(cmd);
        let _ = writeln!(file, "$ {argv}");
        let spawn = |source| PipelineError::Spawn {
            stage: self.name.clone(),
            argv: argv.clone(),
            source,
        };
        let (reader, writer) = std::io::pipe().map_err(spawn)?;
        let writer2 = writer.try_clone().map_err(spawn)?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer2)
            .spawn()
            .map_err(spawn)?;
        // Drop the Command's copies of the write end so the reader sees end-of-file.
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let mut tail: std::collections::VecDeque<String> = Default::default();
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if crate::interrupt::requested() {
                let _ = child.kill();
            }
            let _ = writeln!(file, "{line}");
            ctx.reporter.detail(&format!("{}: {line}", self.name));
            tail.push_back(line);
            if tail.len() > TAIL_LINES {
                tail.pop_front();
            }
        }
        let status = child.wait().map_err(|source| PipelineError::Spawn {
            stage: self.name.clone(),
            argv: argv.clone(),
            source,
        })?;
        crate::interrupt::check()?;
        if status.success() {
            return Ok(());
        }
        let status = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => status.to_string(),
        };
        let tail: Vec<String> = tail.into_iter().collect();
        let hint = if tail.iter().any(|l| l.contains("unbound variable")) {
            "\n  hint: spec values (and INFRASTRUCTURE) are set only for keys listed in `reads:`"
        } else {
            ""
        };
        Err(PipelineError::Script {
            stage: self.name.clone(),
            script: self.dir.join("apply.sh"),
            status,
            tail: format!("{}{hint}", tail.join("\n")),
            log,
        })
    }
}
