//! The pistemcell command line: parses arguments, calls the library, prints errors.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

mod artifacts;
mod build;
mod cpi_cmd;
mod doctor_cmd;
mod reproducible;

use pistemcell::progress::{Reporter, Verbosity};
use pistemcell::{audit, checkos, context, owned, pipeline, rootfs, spec, steps, workdir};

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
    /// Build the stemcell through every stage (cached, resumable), then its disk image and tarball.
    Build(build::BuildArgs),
    /// Bootstrap a verified, configured ARM root filesystem from a spec.
    Bootstrap {
        /// The spec file (default: the built-in default spec).
        spec: Option<PathBuf>,
        /// Where to put the rootfs (default: WORK_DIR/rootfs); replaced only when the new one is complete.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// List the build's stages in order with their cache state, and why a stage is stale.
    Stages {
        /// The spec file.
        spec: Option<PathBuf>,
        #[command(flatten)]
        stages: StageArgs,
    },
    /// Pack a rootfs directory into a deterministic .tgz (the stemcell's tar writer).
    Pack {
        /// The rootfs directory.
        rootfs: PathBuf,
        /// The .tgz to write (replaced only once complete).
        #[arg(short, long)]
        output: PathBuf,
        /// Every entry's mtime (default: SOURCE_DATE_EPOCH, else the date of the archive the rootfs was bootstrapped from, else 0).
        #[arg(long)]
        mtime: Option<u64>,
        /// Compression threads, 1 to 256, at most four per core (default: every core).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: Option<u16>,
        /// gzip level, 1 (fastest) to 9 (smallest).
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9))]
        level: u32,
    },
    /// Make a Raspberry Pi disk image (FAT32 boot + ext4 root, MBR) from a rootfs directory
    /// (its /etc/fstab is written for the image).
    Image {
        /// The rootfs directory.
        rootfs: PathBuf,
        /// The image to write (replaced only once complete and checked).
        #[arg(short, long)]
        output: PathBuf,
        /// Seeds the disk identifier and filesystem UUIDs (e.g. the stemcell's name/version).
        #[arg(long, default_value = "pistemcell")]
        seed: String,
        /// Boot partition size in MiB.
        #[arg(long, default_value_t = 256)]
        boot_mib: u64,
        /// Root partition size in MiB (default: from the tree's size).
        #[arg(long)]
        root_mib: Option<u64>,
        /// Where the rootfs keeps the firmware's files (copied into the boot partition).
        #[arg(long, default_value = "/boot/firmware")]
        boot_dir: String,
        /// Fill the root partition without root (mkfs.ext4 -d) instead of through a loop device.
        #[arg(long)]
        rootless: bool,
    },
    /// Show and check a stemcell tarball: manifest, members, sha1, the image's partitions.
    Inspect {
        /// The stemcell .tgz.
        stemcell: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find every ELF file that cannot run on the target board (rootfs, image, tarball or stemcell).
    Audit {
        /// A rootfs directory, disk image, ext4 image, rootfs tarball or stemcell tgz.
        path: PathBuf,
        /// Take the architecture, CPU floor and `audit.allow` exceptions (with the profile's)
        /// from this spec.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Target architecture (default: the spec's).
        #[arg(long, value_enum)]
        arch: Option<ArchChoice>,
        /// CPU floor (default: the spec's).
        #[arg(long, value_enum)]
        cpu: Option<CpuChoice>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the hardening upstream BOSH stemcells are built to (STIG, CIS and upstream's OS
    /// specs) on a rootfs, image, tarball or stemcell; exits 1 when a check fails.
    CheckOs {
        /// A rootfs directory, disk image, ext4 image, rootfs tarball or stemcell tgz.
        #[arg(required_unless_present = "list")]
        path: Option<PathBuf>,
        /// Accept the failures this spec's `check_os.allow` names.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// List every check (id, upstream file, what it looks at) and exit.
        #[arg(long, conflicts_with_all = ["spec", "json"])]
        list: bool,
    },
    /// What changed between two stemcells (or two rootfs directories): packages, files,
    /// manifest, monit and the agent, audit findings.
    Diff {
        /// The older stemcell .tgz or rootfs directory.
        a: PathBuf,
        /// The newer one.
        b: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the SBOMs (sbom.spdx.json, sbom.cdx.json) of a rootfs, image or stemcell.
    Sbom {
        /// A rootfs directory, disk image, ext4 image, rootfs tarball or stemcell tgz.
        path: PathBuf,
        /// Directory to write the two files into.
        #[arg(short, long, default_value = ".")]
        output: PathBuf,
        /// The name the SBOMs describe (default: the path's file name).
        #[arg(long)]
        stemcell_name: Option<String>,
        /// The version they describe.
        #[arg(long, default_value = "0.0.0")]
        stemcell_version: String,
    },
    /// Boot a disk stemcell under qemu (software emulation) and check that its kernel mounts the
    /// root, the agent starts, monit is the pinned version, and a real agent answers ping and
    /// get_state and formats the ephemeral disk. The stemcell is never modified.
    BootTest {
        /// The stemcell .tgz (bakery or raw).
        stemcell: PathBuf,
        #[command(flatten)]
        boot: BootArgs,
        /// Print the boot test's report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check this host for everything a build needs (with --fix, install what is missing).
    Doctor(doctor_cmd::DoctorArgs),
    /// A BOSH CPI (API 2) for ARM VMs under qemu: one JSON request on stdin, the response on
    /// stdout, a log on stderr. What `bosh create-env` runs as the CPI release's `bin/cpi`.
    Cpi {
        /// The CPI's config (JSON: state_dir, agent, vm).
        #[arg(long)]
        config: PathBuf,
    },
    /// Remove what builds left in the work dir (and with --cache, the download cache).
    Clean {
        /// Also empty the download cache.
        #[arg(long)]
        cache: bool,
        /// Instead of emptying: keep the N newest cached results of each stage, remove the rest.
        #[arg(long, value_name = "N", conflicts_with = "cache")]
        keep: Option<usize>,
    },
}

/// How the boot test runs.
#[derive(Debug, Args)]
struct BootArgs {
    /// Bound on every wait from power-on (seconds, or 90s, 15m, 1h).
    #[arg(long, default_value = "15m", value_parser = artifacts::parse_duration)]
    timeout: std::time::Duration,
    /// The VM's memory in MiB (a Pi 3 has 1024).
    #[arg(long, default_value_t = 1024)]
    memory: u32,
    /// After the boot checks, play the director over the agent's mbus: compile a package with
    /// the image's gcc, apply and start a job, mount a persistent disk, reboot, fetch logs.
    #[arg(long)]
    deploy: bool,
}

impl BootArgs {
    fn args(&self, json: bool) -> artifacts::BootTestArgs {
        artifacts::BootTestArgs {
            timeout: self.timeout,
            memory_mib: self.memory,
            deploy: self.deploy,
            json,
        }
    }
}

/// Where the data stages and assets come from.
#[derive(Debug, Args)]
struct StageArgs {
    /// The stages directory (default: PISTEMCELL_STAGES_DIR, else the source tree's stages/).
    #[arg(long)]
    stages_dir: Option<PathBuf>,
    /// The assets directory (default: PISTEMCELL_ASSETS_DIR, else the source tree's assets/).
    #[arg(long)]
    assets_dir: Option<PathBuf>,
}

/// How packages are fetched and configured.
#[derive(Debug, Args)]
struct RunArgs {
    /// Parallel downloads.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Which dpkg configures the packages (default: the host's when usable).
    #[arg(long, value_enum)]
    dpkg: Option<DpkgChoice>,
    /// Build even when the archive no longer serves the spec's `archive_pin`.
    #[arg(long)]
    allow_archive_change: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ArchChoice {
    /// 32-bit ARM, hard float.
    Armhf,
    /// 64-bit ARM.
    Arm64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CpuChoice {
    /// Pi Zero / Pi 1.
    Armv6,
    /// Pi 2 and later, 32-bit.
    Armv7,
    /// Pi 3 and later, 64-bit.
    Armv8,
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
        Cmd::Bootstrap { spec, output, run } => {
            let spec = spec::load(spec.as_deref(), &g.sets)?;
            if let Some(out) = output {
                owned::check_tree_destination(out)?;
            }
            let (work, ctx) = open_build(g, &g.work_dir, spec, run, &reporter)?;
            let name = format!("{} ({})", ctx.spec.profile.name, ctx.spec.source);
            let out = pistemcell::bootstrap::run(&ctx, &work, output.clone())
                .with_context(|| format!("bootstrap of {name} failed"))?;
            let times: Vec<String> = out
                .timings
                .iter()
                .map(|(n, s)| format!("{n} {s:.1}s"))
                .collect();
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
        Cmd::Build(args) => build::command(g, args, &reporter),
        Cmd::Stages { spec, stages } => {
            let spec = spec::load(spec.as_deref(), &g.sets)?;
            let ctx = context::BuildContext::new(
                spec,
                context::Settings::new(&g.work_dir, &g.cache_dir),
                reporter.clone(),
            );
            let source = pipeline::StageSource::new(
                stages.stages_dir.as_deref(),
                stages.assets_dir.as_deref(),
            );
            let list = steps::stages(&ctx, &source)?;
            let plan = pipeline::runner::plan(&ctx, &list)?;
            print!("{}", pipeline::runner::render_plan(&plan));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Audit {
            path,
            spec: spec_path,
            arch,
            cpu,
            json,
        } => {
            let from_spec = match spec_path {
                Some(p) => Some(spec::load(Some(p), &g.sets)?),
                None => None,
            };
            let arch = match (arch, &from_spec) {
                (Some(ArchChoice::Arm64), _) => spec::Arch::Arm64,
                (Some(ArchChoice::Armhf), _) => spec::Arch::Armhf,
                (None, Some(s)) => s.arch,
                (None, None) => spec::Arch::Armhf,
            };
            let cpu = match (cpu, &from_spec) {
                (None, Some(s)) if s.arch == arch => Some(match s.cpu {
                    spec::Cpu::Armv6 => CpuChoice::Armv6,
                    spec::Cpu::Armv7 => CpuChoice::Armv7,
                    spec::Cpu::Armv8 => CpuChoice::Armv8,
                }),
                (c, _) => *c,
            };
            let cpu = &cpu;
            let cpu = match (cpu, arch) {
                (Some(CpuChoice::Armv6), spec::Arch::Armhf) => spec::Cpu::Armv6,
                (Some(CpuChoice::Armv6 | CpuChoice::Armv7), spec::Arch::Arm64) => {
                    bail!("--cpu armv6/armv7 cannot run arm64; use --arch armhf")
                }
                (Some(CpuChoice::Armv8), _) | (None, spec::Arch::Arm64) => spec::Cpu::Armv8,
                _ => spec::Cpu::Armv7,
            };
            let opened = audit::input::open(path).map_err(anyhow::Error::msg)?;
            artifacts::report_swept(&opened.swept, &reporter);
            let mut report = audit::audit_tree(&opened.root, arch, cpu)?;
            if let Some(s) = &from_spec {
                report.apply_allow(&s.audit_allow);
            }
            if *json {
                print!("{}", audit::to_json(&report, arch, cpu));
            } else {
                print!("{}", audit::to_text(&report, &opened.what, arch, cpu));
            }
            Ok(if report.failures().count() > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::CheckOs {
            path,
            spec: spec_path,
            json,
            list,
        } => {
            if *list {
                print!("{}", checkos::registry::list_text());
                return Ok(ExitCode::SUCCESS);
            }
            let allow = match spec_path {
                Some(p) => spec::load(Some(p), &g.sets)?.check_os_allow,
                None => Vec::new(),
            };
            checkos::check_allow(&allow).map_err(anyhow::Error::msg)?;
            let Some(path) = path else {
                bail!("check-os needs a PATH (or --list)");
            };
            let opened = audit::input::open(path).map_err(anyhow::Error::msg)?;
            artifacts::report_swept(&opened.swept, &reporter);
            let report = checkos::run(&opened.root, &allow);
            if *json {
                print!("{}", report.to_json());
            } else {
                print!("{}", report.to_text(&opened.what));
            }
            Ok(if report.failures().next().is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Doctor(args) => doctor_cmd::command(g, args),
        Cmd::Cpi { config } => cpi_cmd::command(config),
        Cmd::Clean { keep: Some(n), .. } => {
            if g.cache_dir.exists() {
                owned::check(&g.cache_dir, owned::Kind::Cache)?;
            }
            let removed = pipeline::runner::evict(&g.cache_dir, *n)?;
            reporter.step(&format!(
                "stage cache: kept the {n} newest results per stage, removed {}",
                removed.len()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Clean { cache, keep: None } => {
            // Both are checked before either is touched.
            if g.work_dir.exists() {
                owned::check(&g.work_dir, owned::Kind::WorkDir)?;
            }
            if *cache && g.cache_dir.exists() {
                owned::check(&g.cache_dir, owned::Kind::Cache)?;
            }
            let removed = clean(&g.work_dir, owned::Kind::WorkDir)?;
            reporter.step(&format!(
                "work dir {}: removed {removed} entries",
                g.work_dir.display()
            ));
            if *cache && g.cache_dir.exists() {
                let n = clean(&g.cache_dir, owned::Kind::Cache)?;
                reporter.step(&format!(
                    "cache {}: removed {n} entries",
                    g.cache_dir.display()
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sbom {
            path,
            output,
            stemcell_name,
            stemcell_version,
        } => artifacts::sbom(
            path,
            output,
            stemcell_name.as_deref(),
            stemcell_version,
            &reporter,
        ),
        Cmd::Pack {
            rootfs,
            output,
            mtime,
            threads,
            level,
        } => artifacts::pack(
            rootfs,
            output,
            *mtime,
            threads.map(usize::from),
            *level,
            &reporter,
        ),
        Cmd::Image {
            rootfs,
            output,
            seed,
            boot_mib,
            root_mib,
            boot_dir,
            rootless,
        } => artifacts::image(
            rootfs,
            output,
            &artifacts::ImageArgs {
                seed: seed.clone(),
                boot_mib: *boot_mib,
                root_mib: *root_mib,
                boot_dir: boot_dir.clone(),
                rootless: *rootless,
            },
            &reporter,
        ),
        Cmd::Inspect { stemcell, json } => artifacts::inspect(stemcell, *json),
        Cmd::Diff { a, b, json } => artifacts::diff(a, b, *json),
        Cmd::BootTest {
            stemcell,
            boot,
            json,
        } => {
            let args = boot.args(*json);
            artifacts::boot_test(&g.work_dir, stemcell, &args, &reporter)
        }
    }
}

/// Opens (locks, sweeps) the work dir and makes the build context.
fn open_build(
    g: &Global,
    work_dir: &std::path::Path,
    spec: spec::Resolved,
    run: &RunArgs,
    reporter: &Reporter,
) -> Result<(workdir::WorkDir, context::BuildContext)> {
    let (work, swept) = workdir::WorkDir::open(work_dir)?;
    for p in swept {
        reporter.step(&format!(
            "removed what an interrupted run left: {}",
            p.display()
        ));
    }
    let mut settings = context::Settings::new(work.path(), &g.cache_dir);
    settings.mirror = g.mirror.clone();
    settings.jobs = run.jobs;
    settings.allow_archive_change = run.allow_archive_change;
    settings.dpkg_mode = run.dpkg.map(|d| match d {
        DpkgChoice::Host => rootfs::dpkg::Mode::Host,
        DpkgChoice::Chroot => rootfs::dpkg::Mode::Chroot,
    });
    let ctx = context::BuildContext::new(spec, settings, reporter.clone());
    Ok((work, ctx))
}

/// Empties `dir`, a marked directory of `kind` (under its lock, after unmounting leftovers),
/// keeping the directory, its lock and its marker.
fn clean(dir: &std::path::Path, kind: owned::Kind) -> Result<usize> {
    if !dir.exists() {
        return Ok(0);
    }
    owned::check(dir, kind)?;
    let (work, _) = workdir::WorkDir::open_as(dir, kind)?;
    let mut n = 0;
    for e in std::fs::read_dir(work.path())
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
    {
        if e.file_name() == ".lock" || e.file_name() == kind.marker() {
            continue;
        }
        workdir::remove_tree(&e.path())
            .with_context(|| format!("removing {}", e.path().display()))?;
        n += 1;
    }
    Ok(n)
}
