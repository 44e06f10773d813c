//! The host's perl in the host toolbox (see `host_tools`). Maintainer scripts call a few perl
//! programs by name many times per dpkg run: `deb-systemd-helper` three times per service unit,
//! `adduser` once per system user, `update-rc.d` once per init script. Each emulated start of
//! perl with its modules costs 0.1–0.4 s (34 calls of `deb-systemd-helper` in
//! `10-base-packages` alone). Where the target's perl is the host's version, the toolbox holds
//! the host's perl, its core modules (`perl-base`, copied to the host's own directory inside the
//! rootfs) and copies of those target programs with their `#!` line naming the toolbox's perl:
//! the program is the target's text, only the interpreter is the host's. Every other module
//! comes from the target's own directories (`/usr/share/perl5`: Debconf, Debian::Adduser*).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target's perl programs that run under the host's perl when called by name.
pub const PROGRAMS: &[&str] = &[
    "addgroup",
    "adduser",
    "deb-systemd-helper",
    "deb-systemd-invoke",
    "delgroup",
    "deluser",
    "update-rc.d",
];

/// The modules those programs load from perl-base: the toolbox's perl must load them all.
pub const CHECK: &str = "use strict; use warnings; use constant; use Fcntl; use File::Basename; \
use File::Path; use File::Temp; use Getopt::Long; use POSIX; 1";

/// The host's perl: its program, version (`5.36.0`) and module directories.
#[derive(Debug, Clone)]
pub struct HostPerl {
    /// `/usr/bin/perl`.
    pub binary: PathBuf,
    /// `$^V` as `5.36.0`.
    pub version: String,
    /// The existing `@INC` directories of perl's own packages: `perl-base` (perl-base) and
    /// `perl/5.36` (libperl5.36), never `perl5/...` (other packages' modules).
    pub core_dirs: Vec<PathBuf>,
}

/// The host's perl, if it runs and names a `perl-base` directory in `@INC`.
pub fn host_perl() -> Option<HostPerl> {
    let binary = PathBuf::from("/usr/bin/perl");
    let out = Command::new(&binary)
        .args([
            "-e",
            r#"printf "%vd\n", $^V; print "$_\n" for grep { m{^/usr/lib/[^/]+/(perl-base|perl/5\.[0-9.]+)$} && -d } @INC"#,
        ])
        .env_clear()
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let mut lines = text.lines();
    let version = lines.next()?.trim().to_string();
    let core_dirs: Vec<PathBuf> = lines.map(PathBuf::from).collect();
    let has_base = core_dirs.iter().any(|d| d.ends_with("perl-base"));
    (!version.is_empty() && has_base).then_some(HostPerl {
        binary,
        version,
        core_dirs,
    })
}

/// The upstream version of the target's installed `perl-base` (`5.36.0-7+deb12u3` gives
/// `5.36.0`), from its dpkg database.
pub fn target_perl_version(root: &Path) -> Option<String> {
    let status = super::dpkg::read_status(root).ok()?;
    let (version, _, state) = status.get("perl-base")?;
    if state != "install ok installed" {
        return None;
    }
    let v = version.split_once(':').map_or(version.as_str(), |(_, r)| r);
    Some(v.rsplit_once('-').map_or(v, |(u, _)| u).to_string())
}

/// `text` (a perl program) with its `#!` line naming `perl` instead of `/usr/bin/perl`, its
/// switches kept; None when it does not start with `#!/usr/bin/perl`.
pub fn rewrite_shebang(text: &str, perl: &str) -> Option<String> {
    let (first, rest) = text.split_once('\n')?;
    let switches = first
        .strip_prefix("#!")?
        .trim_start()
        .strip_prefix("/usr/bin/perl")?;
    if !(switches.is_empty() || switches.starts_with(' ')) {
        return None;
    }
    Some(format!("#!{perl}{switches}\n{rest}"))
}

/// Where the target keeps its counterpart of the host's module directory `host_dir`
/// (`/usr/lib/x86_64-linux-gnu/perl/5.36` → `ROOT/usr/lib/arm-linux-gnueabihf/perl/5.36`),
/// if it has one.
pub fn target_counterpart(root: &Path, host_dir: &Path) -> Option<PathBuf> {
    let rel = host_dir.strip_prefix("/usr/lib").ok()?;
    let suffix: PathBuf = rel.components().skip(1).collect();
    std::fs::read_dir(root.join("usr/lib"))
        .ok()?
        .flatten()
        .map(|e| e.path().join(&suffix))
        .find(|p| p.is_dir())
}

/// Copies the host's module directory `src` to `dst` inside the rootfs: a symlinked directory
/// (`perl/5.36` → `5.36.0`) as the link and its target beside it.
pub fn copy_module_dir(src: &Path, dst: &Path) -> std::io::Result<()> {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::fs::symlink_metadata(src)?.file_type().is_symlink() {
        let real = std::fs::canonicalize(src)?;
        let name = real.file_name().ok_or(std::io::ErrorKind::InvalidInput)?;
        let real_dst = dst.with_file_name(name);
        if std::fs::symlink_metadata(&real_dst).is_err() {
            copy_tree(&real, &real_dst)?;
        }
    }
    copy_tree(src, dst)
}

/// Copies the tree `src` (directories, regular files, symlinks as they are) to `dst`, which
/// must not exist.
pub fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(src)?;
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)
    } else if meta.is_dir() {
        std::fs::create_dir(dst)?;
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        Ok(())
    } else if meta.is_file() {
        std::fs::copy(src, dst).map(|_| ())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs_are_rewritten_with_their_switches_and_others_refused() {
        let p = "/.pistemcell-host/bin/perl";
        assert_eq!(
            rewrite_shebang("#! /usr/bin/perl -w\nprint 1;\n", p).unwrap(),
            "#!/.pistemcell-host/bin/perl -w\nprint 1;\n"
        );
        assert_eq!(
            rewrite_shebang("#!/usr/bin/perl\nuse strict;\n", p).unwrap(),
            "#!/.pistemcell-host/bin/perl\nuse strict;\n"
        );
        assert_eq!(rewrite_shebang("#!/bin/sh\necho\n", p), None);
        assert_eq!(rewrite_shebang("#!/usr/bin/perl5.36\n1;\n", p), None);
        assert_eq!(rewrite_shebang("no shebang", p), None);
    }

    #[test]
    fn the_target_perl_version_is_perl_bases_upstream_version() {
        let root = tempfile::tempdir().unwrap();
        super::super::dpkg::init_database(root.path()).unwrap();
        assert_eq!(target_perl_version(root.path()), None);
        std::fs::write(
            root.path().join("var/lib/dpkg/status"),
            "Package: perl-base\nStatus: install ok installed\nVersion: 5.36.0-7+deb12u3\nArchitecture: armhf\n",
        )
        .unwrap();
        assert_eq!(target_perl_version(root.path()).as_deref(), Some("5.36.0"));
    }
}
