//! The initramfs, built once. Installing a Debian kernel normally builds its initramfs in the
//! kernel's postinst and again when initramfs-tools' trigger fires (and again for each hook
//! package such as raspi-firmware): under qemu-user each `mkinitramfs` takes minutes. dpkg runs
//! maintainer scripts with `INITRD=No` ([`super::dpkg::DEFER_ENV`]), which makes initramfs-tools' kernel hook
//! skip the build (and leaves nothing for `update-initramfs -u` to update); after the
//! packages are configured, [`build_missing`] runs `update-initramfs -c` once per kernel that
//! has none, which also runs the `post-update.d` hooks (raspi-firmware copies the kernel,
//! initramfs and device trees to `/boot/firmware` there). It runs with `SOURCE_DATE_EPOCH`
//! (the build's epoch), so the same inputs give the same initramfs.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The built-in stage that builds the initramfs of every kernel the stages before it
/// installed: after the OS stages (whose packages add hooks and whose files, such as
/// `/etc/modprobe.d`, go into it), before monit and the agent. The kernel and firmware stages
/// come early (they rarely change), so editing a package or OS stage reruns this stage
/// (about 20 s) and not the kernel's dpkg run.
pub const STAGE: &str = "54-initramfs";

/// Whether the package stage `label` leaves its kernels' initramfs to [`STAGE`]: every stage
/// numbered before it (`00`–`53`). `bootstrap` (the spec's `packages:`) and later stages build
/// it themselves, right after dpkg.
pub fn deferred_to_stage(label: &str) -> bool {
    let digits = label.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && label.as_bytes().get(digits) == Some(&b'-') && label < STAGE
}

use super::dpkg::{run_captured, DpkgError};
use super::host_tools::{script_command, HostTools, BIN};
use super::initramfs_reuse;
use crate::progress::Reporter;

/// Kernel versions with `/boot/vmlinuz-VERSION` but no `/boot/initrd.img-VERSION`, sorted.
pub fn kernels_without_initramfs(root: &Path) -> Vec<String> {
    let boot = root.join("boot");
    let Ok(rd) = std::fs::read_dir(&boot) else {
        return Vec::new();
    };
    let mut versions: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("vmlinuz-").map(str::to_string)
        })
        .filter(|v| !v.ends_with(".dpkg-bak") && !v.ends_with(".old-dkms"))
        .filter(|v| !boot.join(format!("initrd.img-{v}")).exists())
        .collect();
    versions.sort();
    versions
}

/// Builds the initramfs of every kernel in `root` that has none, with the rootfs's own
/// `update-initramfs` in the chroot (the caller holds the chroot mounts). Where the rootfs is of
/// another architecture, the scripts and the tools they run per file are the host's
/// ([`HostTools`]); where that toolbox cannot be set up, everything runs emulated, as the
/// log says. Each initramfs is then read back and must hold no x86 or host program. Does
/// nothing where the rootfs has no initramfs-tools (such a kernel boots without one). Returns
/// the versions built; the output goes to `log`. With `cache_dir`, the host's tools and strace,
/// an image is reused when nothing it was made from changed, and each image made is recorded
/// for that (`initramfs_reuse`).
pub fn build_missing(
    root: &Path,
    tools: Option<&HostTools>,
    log: &Path,
    reporter: &Reporter,
    cache_dir: Option<&Path>,
) -> Result<Vec<String>, DpkgError> {
    let versions = kernels_without_initramfs(root);
    if versions.is_empty() || !root.join("usr/sbin/update-initramfs").exists() {
        return Ok(Vec::new());
    }
    let mut file = std::fs::File::create(log).map_err(|source| DpkgError::Io {
        path: log.to_path_buf(),
        source,
    })?;
    let tools = match tools.map(add_mkinitramfs) {
        Some(Ok(t)) => {
            let _ = writeln!(file, "host tools in {BIN}: {}", t.commands.join(" "));
            Some(t)
        }
        Some(Err(why)) => {
            let _ = writeln!(file, "no host tools, everything runs emulated: {why}");
            None
        }
        None => {
            let _ = writeln!(file, "no host tools, everything runs emulated");
            None
        }
    };
    for v in &versions {
        let how = if tools.is_some() {
            "with the host's shell and tools"
        } else {
            "emulated"
        };
        reporter.step(&format!(
            "building the initramfs of kernel {v} ({how}, once, after every package is configured)"
        ));
        let started = std::time::Instant::now();
        let mut cmd = script_command(root, tools, "/usr/sbin/update-initramfs");
        cmd.args(["-c", "-k", v]);
        // Reuse (or record) only with the host's tools: they run the toolbox's mkinitramfs.
        let records = match (cache_dir, tools) {
            (Some(c), Some(t)) if super::trace::available() => {
                Some(initramfs_reuse::Records::open(c, v, &t.commands))
            }
            _ => None,
        };
        let reused = records.as_ref().and_then(|r| r.find(root));
        let trace_dir = match (&records, &reused) {
            (Some(_), None) => Some(TraceDir::new(root)?),
            _ => None,
        };
        if let Some((image, inputs)) = &reused {
            let inside = format!("/{}/initrd.reuse", super::host_tools::DIR);
            let dest = root.join(inside.trim_start_matches('/'));
            std::fs::copy(image, &dest).map_err(|source| DpkgError::Io {
                path: dest.clone(),
                source,
            })?;
            cmd.env(initramfs_reuse::REUSE_ENV, &inside);
            let _ = writeln!(
                file,
                "reusing {}: none of the {inputs} paths it was made from changed",
                image.display()
            );
        }
        // mkinitramfs makes a reproducible image (fixed times, no gzip name or time, one
        // compression thread) when SOURCE_DATE_EPOCH is set.
        match crate::epoch::epoch_for(root) {
            0 => {}
            epoch => {
                cmd.env("SOURCE_DATE_EPOCH", epoch.to_string());
            }
        }
        let mut run = match &trace_dir {
            Some(d) => super::trace::traced(&cmd, &d.0),
            None => cmd,
        };
        let (argv, status, text) = run_captured(&mut run)?;
        let _ = writeln!(file, "$ {argv}\n{text}");
        crate::interrupt::check().map_err(|_| DpkgError::Interrupted)?;
        if !status.success() {
            return Err(DpkgError::Initramfs {
                version: v.clone(),
                status: status.to_string(),
                log: log.to_path_buf(),
                tail: crate::cmd::tail(&text, 25),
            });
        }
        let members = check_built(root, v, log)?;
        if let (Some(r), Some(d)) = (&records, &trace_dir) {
            let image = root.join(format!("boot/initrd.img-{v}"));
            let recorded = super::trace::read(&d.0).and_then(|a| r.record(root, &a, &image));
            let _ = match recorded {
                Ok(n) => writeln!(file, "recorded the {n} paths it was made from, for reuse"),
                Err(e) => writeln!(file, "not recorded for reuse: {e}"),
            };
        }
        let how = if reused.is_some() {
            "reused: nothing it is made from changed"
        } else {
            how
        };
        reporter.detail(&format!(
            "initramfs of {v} built in {:.0} s ({how}; {members} files, no x86 or host program)",
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(versions)
}

/// What the toolbox's `mkinitramfs` does first: with [`initramfs_reuse::REUSE_ENV`] set, it
/// copies that image to its `-o` file instead of making one.
const REUSE_BLOCK: &str = r#"# pistemcell: reuse an image made from the same files (rootfs::initramfs_reuse)
if [ -n "${PISTEMCELL_INITRAMFS_REUSE:-}" ]; then
	pistemcell_out=
	while [ $# -gt 0 ]; do
		if [ "$1" = -o ] && [ $# -gt 1 ]; then pistemcell_out="$2"; fi
		shift
	done
	[ -n "$pistemcell_out" ] || { echo "mkinitramfs: no -o file to copy the reused image to" >&2; exit 1; }
	# What making it leaves in the tree: its scratch directory came and went in TMPDIR.
	pistemcell_tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/mkinitramfs_XXXXXX") || exit 1
	rmdir "$pistemcell_tmp" || exit 1
	cp "$PISTEMCELL_INITRAMFS_REUSE" "$pistemcell_out" || exit 1
	exit 0
fi
"#;

/// A scratch directory for one traced run's strace files, removed on drop.
struct TraceDir(std::path::PathBuf);

impl TraceDir {
    /// A new directory beside the rootfs (in its work directory, never inside it), named
    /// `*.partial` so that opening the work dir sweeps one a killed build left.
    fn new(root: &Path) -> Result<TraceDir, DpkgError> {
        let parent = root.parent().unwrap_or(root);
        let dir = parent.join(format!(".initramfs-trace-{}.partial", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|source| DpkgError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(TraceDir(dir))
    }
}

impl Drop for TraceDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Adds `mkinitramfs` to the host toolbox: the target's script, run by the host's shell, with
/// the toolbox first in the `PATH` it sets.
fn add_mkinitramfs(tools: &HostTools) -> Result<&HostTools, super::host_tools::Unavailable> {
    tools.add_script("mkinitramfs", "/usr/sbin/mkinitramfs", |body| {
        let body = format!("{REUSE_BLOCK}{body}");
        let mut found = 0;
        let lines: Vec<String> = body
            .lines()
            .map(|l| match l.strip_prefix("export PATH='") {
                Some(rest) => {
                    found += 1;
                    format!("export PATH='{BIN}:{rest}")
                }
                None => l.to_string(),
            })
            .collect();
        (found == 1).then(|| lines.join("\n") + "\n")
    })?;
    Ok(tools)
}

/// Reads the initramfs of kernel `version` back: it must hold no x86 program and none of the
/// host's machine. Returns its number of files.
fn check_built(root: &Path, version: &str, log: &Path) -> Result<usize, DpkgError> {
    let path = root.join(format!("boot/initrd.img-{version}"));
    let data = std::fs::read(&path).map_err(|source| DpkgError::Io {
        path: path.clone(),
        source,
    })?;
    let mut forbidden = vec![EM_386, EM_X86_64];
    if let Some(host) = super::elf_interp::host_machine() {
        forbidden.push(host);
    }
    forbidden.retain(|m| Some(*m) != target_machine(root));
    super::initramfs_scan::check(&data, &forbidden).map_err(|source| DpkgError::InitramfsCheck {
        path,
        source,
        log: log.to_path_buf(),
    })
}

/// `e_machine` of 32-bit x86.
const EM_386: u16 = 3;
/// `e_machine` of x86-64.
const EM_X86_64: u16 = 62;

/// The rootfs's ELF machine, read from its shell.
fn target_machine(root: &Path) -> Option<u16> {
    super::elf_interp::machine_of_file(&root.join("usr/bin/dash"))
}

/// Where [`build_missing`] writes its log for a stage labelled `label`.
pub fn log_path(log_dir: &Path, label: &str) -> PathBuf {
    log_dir.join(format!("{label}-initramfs.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_before_the_initramfs_stage_leave_it_to_that_stage() {
        for (label, deferred) in [
            ("06-boot-kernel-armhf", true),
            ("10-base-packages", true),
            ("53-x", true),
            ("54-initramfs", false),
            ("70-infra-bakery", false),
            ("bootstrap", false),
        ] {
            assert_eq!(deferred_to_stage(label), deferred, "{label}");
        }
    }

    #[test]
    fn finds_kernels_that_lack_an_initramfs() {
        let t = tempfile::tempdir().unwrap();
        let boot = t.path().join("boot");
        std::fs::create_dir(&boot).unwrap();
        for f in [
            "vmlinuz-6.1.0-9-armmp",
            "vmlinuz-6.1.0-8-armmp",
            "initrd.img-6.1.0-8-armmp",
            "vmlinuz-6.1.0-7-armmp.dpkg-bak",
            "config-6.1.0-9-armmp",
        ] {
            std::fs::write(boot.join(f), b"x").unwrap();
        }
        assert_eq!(kernels_without_initramfs(t.path()), ["6.1.0-9-armmp"]);
        assert!(kernels_without_initramfs(&t.path().join("none")).is_empty());
        // No initramfs-tools in the rootfs: nothing to run, nothing fails.
        let log = t.path().join("log");
        let r = build_missing(
            t.path(),
            None,
            &log,
            &Reporter::new(crate::progress::Verbosity::Quiet),
            None,
        )
        .unwrap();
        assert!(r.is_empty());
    }
}
