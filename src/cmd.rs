//! Running external programs with errors that carry the argv and the tail of their output.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

/// How many trailing lines of a failed command's output an error keeps.
const TAIL_LINES: usize = 20;

/// A failed or unstartable external command.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program could not be started at all (missing, not executable).
    #[error("could not run `{argv}`: {source}; is it installed and on PATH? (`pistemcell doctor` checks host tools)")]
    Spawn {
        /// The command line.
        argv: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{argv}` failed ({status}); last lines of its output:\n{tail}")]
    Failed {
        /// The command line.
        argv: String,
        /// The exit status as text.
        status: String,
        /// The last lines of stdout and stderr.
        tail: String,
    },
}

/// Renders a command's program and arguments for messages.
pub fn argv_of(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(
        cmd.get_args()
            .map(|a: &OsStr| a.to_string_lossy().into_owned()),
    );
    parts.join(" ")
}

/// Keeps the last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// Runs `cmd` capturing stdout and stderr; a non-zero exit is an error with the output's tail.
pub fn run(cmd: &mut Command) -> Result<Output, CmdError> {
    let argv = argv_of(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| CmdError::Spawn {
            argv: argv.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Err(CmdError::Failed {
            argv,
            status: out.status.to_string(),
            tail: tail(&text, TAIL_LINES),
        })
    }
}

/// Whether `program` can be found on PATH.
pub fn on_path(program: &str) -> bool {
    find_on_path(program).is_some()
}

/// The full path of `program` on PATH, if any.
pub fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(std::path::PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_command_error_names_argv_and_output_tail() {
        let err =
            run(Command::new("sh").args(["-c", "echo one; echo two >&2; exit 3"])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sh -c"), "{msg}");
        assert!(msg.contains("one") && msg.contains("two"), "{msg}");
        assert!(msg.contains("3"), "{msg}");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = run(&mut Command::new("/nonexistent/prog")).unwrap_err();
        assert!(matches!(err, CmdError::Spawn { .. }));
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
    }
}
