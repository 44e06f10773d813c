//! Cross-compiling monit from its source tarball with Debian's cross toolchain
//! (`gcc-arm-linux-gnueabihf` / `gcc-aarch64-linux-gnu`).
//!
//! Why cross and not in the chroot under emulation: the same monit 5.2.5 build took ~12 s
//! cross-compiled and ~165 s compiled in an armhf chroot under qemu-user (BOSH-CONTRACT.md,
//! section 4), and the rootfs stays free of compilers. `--build` is passed explicitly: with
//! qemu's binfmt handler registered, autoconf would otherwise run its test programs under
//! emulation and wrongly decide it is not cross-compiling. The answers autoconf cannot test
//! when cross-compiling are given as cache variables, so `config.h` matches a native build.
//!
//! It compiles and links against a sysroot of the *target's* C library: `libc6`, `libc6-dev`,
//! `linux-libc-dev`, `libcrypt1`, `libcrypt-dev` from the profile's archive, extracted (no
//! scripts) into `CACHE/monit/sysroot-<arch>-<release>` with absolute symlinks made relative.
//! The binary thus needs no newer glibc than the image has (an Ubuntu trusty image has 2.19),
//! and monit's `-lcrypt` is found (Debian's cross libc no longer carries libcrypt). Absolute
//! `.so` links in the debs are made relative, or the linker would quietly take the static `.a`.
//!
//! The build runs in `WORK/monit-build.partial` and the binary is cached as
//! `CACHE/monit/<key>/monit` (key: tarball sha256, recipe, toolchain version, target flags,
//! sysroot).

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::gobuild::logged;
use crate::context::BuildContext;
use crate::spec::{Arch, Cpu};

/// The recipe's version: part of the cache keys of the stage and of the built binary.
pub const RECIPE: &str = "cross-sysroot-2";

/// The target packages the sysroot is made of (those the archive has).
pub const SYSROOT_PACKAGES: &[&str] = &[
    "libc6",
    "libc6-dev",
    "linux-libc-dev",
    "libcrypt1",
    "libcrypt-dev",
];

/// Autoconf answers a cross build cannot find out by running a program (glibc's answers).
pub const CACHE_VARS: &[(&str, &str)] = &[
    ("ac_cv_func_malloc_0_nonnull", "yes"),
    ("ac_cv_func_realloc_0_nonnull", "yes"),
    ("ac_cv_func_fork_works", "yes"),
    ("ac_cv_func_vfork_works", "yes"),
    ("ac_cv_func_setpgrp_void", "yes"),
    ("ac_cv_func_lstat_dereferences_slashed_symlink", "yes"),
    ("ac_cv_func_stat_empty_string_bug", "no"),
    ("ac_cv_func_lstat_empty_string_bug", "no"),
    ("ac_cv_func_mktime", "yes"),
    ("ac_cv_func_memcmp_working", "yes"),
    ("ac_cv_func_strnlen_working", "yes"),
    ("ac_cv_func_closedir_void", "no"),
    ("ac_cv_func_getpgrp_void", "yes"),
    ("ac_cv_func_chown_works", "yes"),
    ("ac_cv_func_strtod", "yes"),
    ("ac_cv_func_mmap_fixed_mapped", "yes"),
    ("jm_cv_func_working_gnu_strftime", "yes"),
    ("ac_cv_prog_lex_yytext_pointer", "yes"),
    ("ac_cv_ipv6", "yes"),
    ("libmonit_cv_setjmp_available", "yes"),
    ("libmonit_cv_vsnprintf_c99_conformant", "yes"),
];

/// The GNU triplet of the cross compiler for `arch`.
pub fn triplet(arch: Arch) -> &'static str {
    match arch {
        Arch::Armhf => "arm-linux-gnueabihf",
        Arch::Arm64 => "aarch64-linux-gnu",
    }
}

/// The Debian package that provides the cross compiler.
pub fn cross_package(arch: Arch) -> &'static str {
    match arch {
        Arch::Armhf => "gcc-arm-linux-gnueabihf",
        Arch::Arm64 => "gcc-aarch64-linux-gnu",
    }
}

/// Compiler flags for the CPU floor (Debian's armhf default is ARMv7 + VFPv3-D16).
pub fn cpu_flags(arch: Arch, cpu: Cpu) -> &'static str {
    match (arch, cpu) {
        (Arch::Armhf, Cpu::Armv6) => "-march=armv6+fp -mfpu=vfp -mfloat-abi=hard -marm",
        _ => "",
    }
}

/// The host tools building monit from source needs and does not find, each with the Debian
/// package that provides it (`doctor --fix` installs these).
pub fn missing_tools(arch: Arch) -> Vec<(String, &'static str)> {
    let gcc = format!("{}-gcc", triplet(arch));
    [
        (gcc.as_str(), cross_package(arch)),
        ("make", "make"),
        ("flex", "flex"),
        ("bison", "bison"),
        ("tar", "tar"),
    ]
    .into_iter()
    .filter(|(tool, _)| !crate::cmd::on_path(tool))
    .map(|(t, p)| (t.to_string(), p))
    .collect()
}

/// Checks that the host has what the build runs, naming the packages to install.
pub fn check_tools(arch: Arch) -> Result<(), String> {
    let missing = missing_tools(arch);
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "monit.source: building monit needs {} on the host: apt-get install {} (or give monit.deb or monit.binary)",
        missing.iter().map(|m| m.0.as_str()).collect::<Vec<_>>().join(", "),
        missing.iter().map(|m| m.1).collect::<Vec<_>>().join(" ")
    ))
}

fn tool_version(cmd: &str) -> String {
    Command::new(cmd)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// The compiler command: `--sysroot` alone does not keep Debian's cross gcc away from an
/// installed `libc6-dev-ARCH-cross` (its own include and lib directories come first), so the
/// standard include and library paths are given explicitly, all inside the sysroot except
/// gcc's own headers, crtbegin/crtend and libgcc.
fn compiler_line(gcc: &str, triplet: &str, sysroot: &Path) -> String {
    let gcc_include = Command::new(gcc)
        .arg("-print-file-name=include")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let sr = sysroot.display();
    format!(
        "{gcc} --sysroot={sr} -nostdinc -isystem {gcc_include} -isystem {sr}/usr/include/{triplet} -isystem {sr}/usr/include -B{sr}/usr/lib/{triplet}/ -L{sr}/lib/{triplet} -L{sr}/usr/lib/{triplet}"
    )
}

/// The build machine's triplet (`gcc -dumpmachine`, else from the architecture).
fn build_triplet() -> String {
    Command::new("gcc")
        .arg("-dumpmachine")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{}-pc-linux-gnu", std::env::consts::ARCH))
}

/// Builds monit from `tarball` for the spec's target (or returns the cached build).
pub fn build(ctx: &BuildContext, tarball: &Path) -> Result<PathBuf, String> {
    let spec = &ctx.spec;
    let host = triplet(spec.arch);
    let gcc = format!("{host}-gcc");
    let flags = cpu_flags(spec.arch, spec.cpu);
    let sha = crate::archive::cache::file_sha256(tarball)
        .map_err(|e| format!("{}: {e}", tarball.display()))?;
    let sysroot = sysroot(ctx)?;
    let mut h = Sha256::new();
    h.update(
        format!(
            "{sha}\n{RECIPE}\n{}\n{flags}\n{CACHE_VARS:?}\n{}\n",
            tool_version(&gcc),
            sysroot.display()
        )
        .as_bytes(),
    );
    let key = crate::tarwrite::tree::hex(&h.finalize());
    let out_dir = ctx.cache_dir.join("monit").join(&key);
    let out = out_dir.join("monit");
    if out.is_file() {
        ctx.reporter
            .detail(&format!("monit: cached build {}", out.display()));
        return Ok(out);
    }
    let log = ctx
        .log_dir()
        .map_err(|e| e.to_string())?
        .join("monit-build.log");
    let _ = std::fs::remove_file(&log);
    let with_log = |e: String| format!("{e}\n  full log: {}", log.display());
    let work = ctx.work_dir.join("monit-build.partial");
    let _ = crate::workdir::remove_tree(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let t = std::time::Instant::now();
    ctx.reporter.step(&format!(
        "monit: cross-compiling {} with {gcc}",
        tarball.display()
    ));
    logged(
        Command::new("tar")
            .arg("-xf")
            .arg(tarball)
            .arg("-C")
            .arg(&work)
            .arg("--no-same-owner"),
        &log,
    )
    .map_err(|e| with_log(format!("unpacking: {e}")))?;
    let src = find_configure(&work).ok_or_else(|| {
        "the tarball has no configure script at its top (is it a monit release tarball?)"
            .to_string()
    })?;
    let help = Command::new("sh")
        .arg("./configure")
        .arg("--help")
        .current_dir(&src)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut configure = Command::new("sh");
    configure
        .arg("./configure")
        .arg(format!("--host={host}"))
        .arg(format!("--build={}", build_triplet()))
        .arg("--prefix=/var/vcap/bosh");
    for opt in ["--without-ssl", "--without-pam", "--without-zlib"] {
        if help.contains(opt) || opt == "--without-ssl" {
            configure.arg(opt);
        }
    }
    configure
        .current_dir(&src)
        .env("CC", compiler_line(&gcc, host, &sysroot))
        .env("CFLAGS", format!("-O2 -fcommon {flags}").trim())
        .env("LC_ALL", "C");
    for (k, v) in CACHE_VARS {
        configure.env(k, v);
    }
    logged(&mut configure, &log).map_err(|e| with_log(format!("configure: {e}")))?;
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    logged(
        Command::new("make")
            .arg(format!("-j{jobs}"))
            .current_dir(&src)
            .env("LC_ALL", "C"),
        &log,
    )
    .map_err(|e| with_log(format!("make: {e}")))?;
    let built = src.join("monit");
    if !built.is_file() {
        return Err(with_log("make finished but left no ./monit".into()));
    }
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let staged = out_dir.join(".monit.partial");
    std::fs::copy(&built, &staged).map_err(|e| format!("{}: {e}", staged.display()))?;
    std::fs::rename(&staged, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    let _ = crate::workdir::remove_tree(&work);
    ctx.reporter.step(&format!(
        "monit: built in {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    Ok(out)
}

/// The directory holding `configure`: the tarball's top directory.
fn find_configure(dir: &Path) -> Option<PathBuf> {
    if dir.join("configure").is_file() {
        return Some(dir.to_path_buf());
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    subdirs.into_iter().find(|p| p.join("configure").is_file())
}

/// The target's C library as a sysroot (built once per archive state and architecture).
pub fn sysroot(ctx: &BuildContext) -> Result<PathBuf, String> {
    let archive = ctx.archive().map_err(|e| e.to_string())?;
    let arch = ctx.spec.arch.debian();
    let dir = ctx.cache_dir.join("monit").join(format!(
        "sysroot-{}-{arch}-{}",
        ctx.spec.profile.name,
        archive.release_sha256.get(..16).unwrap_or("unknown")
    ));
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    let packages: Vec<_> = SYSROOT_PACKAGES
        .iter()
        .filter_map(|n| archive.universe.get(n).cloned())
        .collect();
    if !packages.iter().any(|p| p.name == "libc6-dev") {
        return Err(format!(
            "the archive has no libc6-dev for {arch}: cannot make a sysroot to build monit"
        ));
    }
    ctx.reporter.step(&format!(
        "monit: sysroot of {} for {arch}",
        packages
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let items = crate::bootstrap::download_items(&archive.mirror, &packages);
    let fetched = crate::archive::download::fetch_all(
        &archive.http,
        &archive.cache,
        &items,
        ctx.settings.jobs,
        &ctx.reporter,
    )
    .map_err(|e| e.to_string())?;
    let partial = dir.with_extension("partial");
    let _ = crate::workdir::remove_tree(&partial);
    std::fs::create_dir_all(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;
    for (p, path) in packages.iter().zip(&fetched.paths) {
        let deb = crate::deb::Deb::open(path).map_err(|e| format!("{}: {e}", p.name))?;
        crate::rootfs::extract::extract_deb(&deb, &partial)
            .map_err(|e| format!("{}: {e}", p.name))?;
    }
    relativize_links(&partial, &partial).map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::write(partial.join(".complete"), b"").map_err(|e| e.to_string())?;
    let _ = crate::workdir::remove_tree(&dir);
    std::fs::rename(&partial, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Rewrites absolute symlinks under `dir` (such as `libcrypt.so -> /lib/...`) relative to
/// `root`, so the linker resolves them inside the sysroot.
fn relativize_links(root: &Path, dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            relativize_links(root, &path)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path)?;
            if let Ok(abs) = target.strip_prefix("/") {
                let depth = path
                    .strip_prefix(root)
                    .map_or(0, |r| r.components().count() - 1);
                let mut rel = PathBuf::new();
                for _ in 0..depth {
                    rel.push("..");
                }
                rel.push(abs);
                std::fs::remove_file(&path)?;
                std::os::unix::fs::symlink(&rel, &path)?;
            }
        }
    }
    Ok(())
}
