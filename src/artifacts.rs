//! The subcommands that make or read one artifact outside a build: `pack` (a rootfs tgz),
//! `image` (a disk image), `sbom` (the SBOMs of any tree, image or stemcell), `inspect` and
//! `diff`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use pistemcell::epoch::epoch_for;
use pistemcell::progress::Reporter;

/// `pistemcell pack`.
pub fn pack(
    rootfs: &Path,
    output: &Path,
    mtime: Option<u64>,
    threads: Option<usize>,
    level: u32,
    reporter: &Reporter,
) -> Result<ExitCode> {
    tree_input(rootfs)?;
    pistemcell::owned::check_destination(output)?;
    pistemcell::owned::check_outside(output, rootfs)?;
    let mtime = mtime.unwrap_or_else(|| epoch_for(rootfs));
    // More workers than four per core gain nothing and cost address space: capped.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = threads.unwrap_or(cores).min(4 * cores);
    let t = std::time::Instant::now();
    let stats = pistemcell::pack::tarball::write_tgz(rootfs, output, mtime, level, threads)
        .with_context(|| format!("packing {}", rootfs.display()))?;
    reporter.step(&format!(
        "{}: {} entries, {:.1} MB of files, {} hard links ({} inode collisions stored as files), {:.1} s",
        output.display(),
        stats.entries,
        stats.bytes as f64 / 1e6,
        stats.hard_links,
        stats.false_links,
        t.elapsed().as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Refuses a ROOTFS that is not a directory (a regular file would pack as an empty tree).
fn tree_input(rootfs: &Path) -> Result<()> {
    match std::fs::metadata(rootfs) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) => bail!(
            "{}: is {}, not a directory; ROOTFS is an unpacked tree (to read a tarball or image, use inspect, audit or diff)",
            pistemcell::untrusted::escape_path(rootfs),
            pistemcell::untrusted::kind_of(m.file_type())
        ),
        Err(e) => bail!(
            "{}: {e}; ROOTFS is an unpacked tree",
            pistemcell::untrusted::escape_path(rootfs)
        ),
    }
}

/// The options of `pistemcell image`.
pub struct ImageArgs {
    /// Seeds the disk id and UUIDs.
    pub seed: String,
    /// Boot partition size.
    pub boot_mib: u64,
    /// Root partition size (None: from the tree).
    pub root_mib: Option<u64>,
    /// Where the tree keeps the firmware's files.
    pub boot_dir: String,
    /// The rootless way even as root.
    pub rootless: bool,
}

/// `pistemcell image`.
pub fn image(rootfs: &Path, output: &Path, a: &ImageArgs, reporter: &Reporter) -> Result<ExitCode> {
    tree_input(rootfs)?;
    pistemcell::owned::check_destination(output)?;
    pistemcell::owned::check_outside(output, rootfs)?;
    use pistemcell::image::disk::{build, ImageOptions, Method};
    let opts = ImageOptions {
        seed: a.seed.clone(),
        boot_bytes: a.boot_mib << 20,
        root_bytes: a.root_mib.map(|m| m << 20),
        epoch: epoch_for(rootfs),
        boot_dir: a.boot_dir.clone(),
        cmdline: None,
        fstab: None,
        method: if a.rootless {
            Method::Rootless
        } else {
            Method::default_for_host()
        },
    };
    // A tree without boot files still makes an image (for tests, or a root-only use); the
    // stemcell refuses it.
    let boot = pistemcell::image::boot::dir_in(rootfs, &a.boot_dir);
    if let Err(e) = pistemcell::image::boot::check(&boot, &a.boot_dir) {
        reporter.warn(&format!("this image will not boot on a Pi: {e}"));
    }
    let t = std::time::Instant::now();
    let layout = build(rootfs, output, &opts)
        .with_context(|| format!("making a disk image of {}", rootfs.display()))?;
    reporter.step(&format!(
        "{}: {} MiB; p1 FAT32 {} MiB at {} MiB (PARTUUID {}), p2 ext4 {} MiB at {} MiB (PARTUUID {}); {:.1} s",
        output.display(),
        layout.total() >> 20,
        layout.boot.1 >> 20,
        layout.boot.0 >> 20,
        layout.partuuid(1),
        layout.root.1 >> 20,
        layout.root.0 >> 20,
        layout.partuuid(2),
        t.elapsed().as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}

/// `pistemcell sbom`.
pub fn sbom(
    path: &Path,
    output: &Path,
    name: Option<&str>,
    version: &str,
    reporter: &Reporter,
) -> Result<ExitCode> {
    let opened = pistemcell::audit::input::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    report_swept(&opened.swept, reporter);
    let name = name.map(str::to_string).unwrap_or_else(|| {
        path.file_name()
            .map_or("rootfs".into(), |n| n.to_string_lossy().into_owned())
    });
    let epoch = pistemcell::sbom::epoch_of(&opened.root);
    let inv = pistemcell::sbom::inventory(&opened.root, &name, version, epoch)
        .with_context(|| format!("reading the packages of {}", opened.what))?;
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    let (a, b) = pistemcell::sbom::write_both(&inv, output)?;
    reporter.step(&format!(
        "{}: {} packages, {} other components",
        opened.what,
        inv.packages.len(),
        inv.components.len()
    ));
    println!("{}\n{}", a.display(), b.display());
    Ok(ExitCode::SUCCESS)
}

/// Says which scratch directories of a killed run were removed before this one.
pub fn report_swept(swept: &[std::path::PathBuf], reporter: &Reporter) {
    for p in swept {
        reporter.step(&format!(
            "removed what an interrupted run left: {}",
            pistemcell::untrusted::escape_path(p)
        ));
    }
}

/// `pistemcell inspect`: every name and value the stemcell gave is printed escaped.
pub fn inspect(stemcell: &Path, json: bool) -> Result<ExitCode> {
    use pistemcell::untrusted::{escape, escape_path};
    let i = match pistemcell::pack::inspect::inspect(stemcell) {
        Ok(i) => i,
        Err(reason) => bail!(
            "{}: {reason}; the stemcell was not accepted",
            escape_path(stemcell)
        ),
    };
    if json {
        println!("{}", i.to_json());
    } else {
        for line in pistemcell::pack::stemcell::manifest_yaml(&i.manifest)?.lines() {
            println!("{}", escape(line));
        }
        println!("members:");
        for (name, size) in &i.members {
            // Names were escaped when read.
            println!("  {name} ({size} bytes)");
        }
        println!("image: {}", escape(&i.image));
        if let Some(p) = &i.provenance {
            println!("provenance: {}", escape(p));
        }
        println!("ok: sha1 matches, every member reads to its end");
    }
    Ok(ExitCode::SUCCESS)
}

/// `pistemcell diff`: both sides are read at once, each on its own thread; scratch space a
/// killed run left is swept first.
pub fn diff(a: &Path, b: &Path, json: bool) -> Result<ExitCode> {
    use pistemcell::untrusted::escape_path;
    for p in pistemcell::audit::input::scratch::sweep_stale() {
        eprintln!(
            "pistemcell: removed what an interrupted run left: {}",
            escape_path(&p)
        );
    }
    let (sa, sb) = std::thread::scope(|s| {
        let ta = s.spawn(|| pistemcell::diff::read::snapshot(a));
        let tb = s.spawn(|| pistemcell::diff::read::snapshot(b));
        (ta.join(), tb.join())
    });
    let read =
        |r: std::thread::Result<Result<pistemcell::diff::Snapshot, String>>, p: &Path| match r {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(anyhow::anyhow!("reading {}: {e}", escape_path(p))),
            Err(_) => Err(anyhow::anyhow!(
                "reading {}: the reader panicked",
                escape_path(p)
            )),
        };
    let (sa, sb) = (read(sa, a)?, read(sb, b)?);
    let d = pistemcell::diff::compare(&sa, &sb);
    if json {
        println!("{}", serde_json::to_string_pretty(&d.json())?);
    } else {
        print!("{}", d.text());
    }
    Ok(ExitCode::SUCCESS)
}

/// The options of `pistemcell boot-test`.
pub struct BootTestArgs {
    /// The bound on every wait, from power-on.
    pub timeout: std::time::Duration,
    /// The VM's memory, MiB.
    pub memory_mib: u32,
    /// Run the deploy proof after the boot checks.
    pub deploy: bool,
    /// Print the report as JSON.
    pub json: bool,
}

/// Boots the stemcell under qemu and runs the boot test's checks (`boot-test`,
/// `build --boot-test`).
pub fn boot_test_report(
    work_dir: &Path,
    stemcell: &Path,
    a: &BootTestArgs,
    reporter: &Reporter,
) -> Result<pistemcell::boottest::Report> {
    let (work, swept) = pistemcell::workdir::WorkDir::open(work_dir)?;
    for p in swept {
        reporter.step(&format!(
            "removed what an interrupted run left: {}",
            p.display()
        ));
    }
    let opts = pistemcell::boottest::Options {
        stemcell: stemcell.to_path_buf(),
        scratch_parent: work.path().to_path_buf(),
        timeout: a.timeout,
        memory_mib: a.memory_mib,
        ephemeral_bytes: 4 << 30,
        deploy: a.deploy,
    };
    let report = pistemcell::boottest::run(&opts, &|l| reporter.step(&format!("boot-test: {l}")))
        .with_context(|| format!("boot-test of {}", stemcell.display()))?;
    Ok(report)
}

/// `pistemcell boot-test`: boots the stemcell and prints the report; exit 1 when a check
/// failed.
pub fn boot_test(
    work_dir: &Path,
    stemcell: &Path,
    a: &BootTestArgs,
    reporter: &Reporter,
) -> Result<ExitCode> {
    let report = boot_test_report(work_dir, stemcell, a, reporter)?;
    if a.json {
        println!("{}", pistemcell::boottest::report::json(&report));
    } else {
        print!("{}", pistemcell::boottest::report::text(&report));
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Parses a duration: `900`, `900s`, `15m`, `1h`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: give seconds (900), or 90s, 15m, 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{s}`: the unit must be s, m or h")),
    };
    Ok(std::time::Duration::from_secs(secs))
}
