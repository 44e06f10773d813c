//! The pistemcell command line: parses arguments, calls the library, prints errors.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use pistemcell::progress::{Reporter, Verbosity};
use pistemcell::{context, doctor, rootfs, spec, steps, workdir};

/// Builds BOSH stemcells for ARM boards (Raspberry Pi first).
#[derive(Debug, Parser)]
#[command(name = "pistemcell", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Cmd,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
struct Global {
    /// Work directory (rootfs trees, logs); one run at a time per work dir.
    #[arg(
        long,
        global = true,
        env = "PISTEMCELL_WORK_DIR",
        default_value = "/var/tmp/pistemcell"
    )]
    work_dir: PathBuf,
    /// Download cache shared between builds (content-addressed .debs and indices).
    #[arg(
        long,
        global = true,
        env = "PISTEMCELL_CACHE_DIR",
        default_value = "/var/cache/pistemcell"
    )]
    cache_dir: PathBuf,
    /// Archive mirror URL (http, https or file://), overriding the spec and the profile.
    #[arg(long, global = true)]
    mirror: Option<String>,
    /// Override a spec field: --set architecture=arm64 (repeatable; values are YAML).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// More output (every command and dpkg line).
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
    /// Errors only.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build a stemcell from a spec (arrives with the stage pipeline).
    Build {
        /// The spec file (default: the built-in default spec).
        spec: Option<PathBuf>,
    },
    /// Bootstrap a verified, configured ARM root filesystem from a spec.
    Bootstrap {
        /// The spec file (default: the built-in default spec).
        spec: Option<PathBuf>,
        /// Where to put the rootfs (default: WORK_DIR/rootfs); replaced only when the new one is complete.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Parallel downloads.
        #[arg(long, default_value_t = 8)]
        jobs: usize,
        /// Which dpkg configures the packages (default: the host's when usable).
        #[arg(long, value_enum)]
        dpkg: Option<DpkgChoice>,
    },
    /// List the build's stages and their cache state (arrives with the stage pipeline).
    Stages {
        /// The spec file.
        spec: Option<PathBuf>,
    },
    /// Show and check a stemcell tarball (arrives with packing).
    Inspect {
        /// The stemcell .tgz.
        stemcell: PathBuf,
    },
    /// Check this host for everything a build needs.
    Doctor {
        /// The spec file (its profile and architecture are checked).
        spec: Option<PathBuf>,
    },
    /// Remove what builds left in the work dir (and with --cache, the download cache).
    Clean {
        /// Also empty the download cache.
        #[arg(long)]
        cache: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DpkgChoice {
    /// The host's dpkg with --root (native unpacking).
    Host,
    /// The target's dpkg inside the chroot (emulated).
    Chroot,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    pistemcell::interrupt::install();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let mut shown = e.to_string();
            eprintln!("error: {shown}");
            for cause in e.chain().skip(1) {
                let text = cause.to_string();
                // Library errors already carry their cause in their message.
                if !shown.contains(&text) {
                    eprintln!("  caused by: {text}");
                    shown = text;
                }
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    let verbosity = if g.quiet {
        Verbosity::Quiet
    } else if g.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let reporter = Reporter::new(verbosity);
    match &cli.command {
        Cmd::Bootstrap { spec, output, jobs, dpkg } => {
            let spec = spec::load(spec.as_deref(), &g.sets)?;
            let (work, swept) = workdir::WorkDir::open(&g.work_dir)?;
            for p in swept {
                reporter.step(&format!("removed what an interrupted run left: {}", p.display()));
            }
            let mut settings = context::Settings::new(work.path(), &g.cache_dir);
            settings.mirror = g.mirror.clone();
            settings.jobs = *jobs;
            settings.dpkg_mode = dpkg.map(|d| match d {
                DpkgChoice::Host => rootfs::dpkg::Mode::Host,
                DpkgChoice::Chroot => rootfs::dpkg::Mode::Chroot,
            });
            let name = format!("{} ({})", spec.profile.name, spec.source);
            let ctx = context::BuildContext::new(spec, settings, reporter.clone());
            let out = steps::bootstrap::run(&ctx, &work, output.clone()).with_context(|| format!("bootstrap of {name} failed"))?;
            let times: Vec<String> = out.timings.iter().map(|(n, s)| format!("{n} {s:.1}s")).collect();
            reporter.step(&format!(
                "rootfs ready: {} ({} packages, {} from cache; {})",
                out.rootfs.display(),
                out.packages.len(),
                out.cache_hits,
                times.join(", ")
            ));
            println!("{}", out.rootfs.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Doctor { spec } => {
            let spec = spec::load(spec.as_deref(), &g.sets)?;
            let findings = doctor::check(&spec, &g.work_dir);
            for f in &findings {
                let tag = match f.level {
                    doctor::Level::Ok => "ok  ",
                    doctor::Level::Warn => "WARN",
                    doctor::Level::Fail => "FAIL",
                };
                println!("{tag} {:<10} {}", f.check, f.message);
            }
            let failed = findings.iter().filter(|f| f.level == doctor::Level::Fail).count();
            if failed > 0 {
                println!("{failed} problem(s) will stop a build; fix the FAIL lines above.");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Clean { cache } => {
            let removed = clean(&g.work_dir)?;
            reporter.step(&format!("work dir {}: removed {removed} entries", g.work_dir.display()));
            if *cache && g.cache_dir.exists() {
                let n = clean(&g.cache_dir)?;
                reporter.step(&format!("cache {}: removed {n} entries", g.cache_dir.display()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Build { .. } => bail!("`build` is not implemented yet: it arrives with the stage pipeline; use `pistemcell bootstrap` for the rootfs"),
        Cmd::Stages { .. } => bail!("`stages` is not implemented yet: it arrives with the stage pipeline"),
        Cmd::Inspect { .. } => bail!("`inspect` is not implemented yet: it arrives with stemcell packing"),
    }
}

/// Empties `dir` (under its lock, after unmounting leftovers), keeping the directory itself.
fn clean(dir: &std::path::Path) -> Result<usize> {
    if !dir.exists() {
        return Ok(0);
    }
    let (work, _) = workdir::WorkDir::open(dir)?;
    let mut n = 0;
    for e in std::fs::read_dir(work.path())
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
    {
        if e.file_name() == ".lock" {
            continue;
        }
        workdir::remove_tree(&e.path())
            .with_context(|| format!("removing {}", e.path().display()))?;
        n += 1;
    }
    Ok(n)
}
