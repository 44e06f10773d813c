//! The boot partition's contents, checked before an image is made: what the Pi firmware needs
//! to start the kernel. The firmware (`start*.elf`, `bootcode.bin`) reads `config.txt`, loads
//! the `kernel=` file (default `kernel*.img`), the `initramfs` file it names and a device tree
//! (`*.dtb`), all from the partition's top level (Bakery serves only top-level files over
//! TFTP). The files come from the profile's boot stages (Debian: `05-boot-firmware` installs
//! raspi-firmware, `06-boot-kernel-ARCH` the kernel, `54-initramfs` its initramfs; raspi-firmware's
//! hooks copy both).

use std::path::{Path, PathBuf};

use super::ImageError;

/// What the boot directory holds, as the firmware will read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    /// The kernel the firmware loads (a file name in the boot directory).
    pub kernel: String,
    /// The initramfs `config.txt` names, if any.
    pub initramfs: Option<String>,
    /// The firmware's `start*.elf` files.
    pub firmware: Vec<String>,
    /// How many device trees there are.
    pub device_trees: usize,
}

/// The `kernel=` and `initramfs` settings of a `config.txt` (the first of each).
pub fn config_settings(text: &str) -> (Option<String>, Option<String>) {
    let mut kernel = None;
    let mut initramfs = None;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(v) = line.strip_prefix("kernel=") {
            kernel.get_or_insert_with(|| v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("initramfs ") {
            if let Some(file) = v.split_whitespace().next() {
                initramfs.get_or_insert_with(|| file.to_string());
            }
        }
    }
    (kernel, initramfs)
}

/// Checks that `dir` (the tree's boot directory, `boot_dir` as the image sees it) holds what
/// the firmware boots; the error lists everything missing and how to get it.
pub fn check(dir: &Path, boot_dir: &str) -> Result<BootFiles, ImageError> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    let has = |n: &str| names.iter().any(|x| x == n);
    let mut missing = Vec::new();
    let firmware: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("start") && n.ends_with(".elf"))
        .cloned()
        .collect();
    if firmware.is_empty() {
        missing.push("the firmware (start*.elf, fixup*.dat, bootcode.bin)".to_string());
    }
    let config = std::fs::read_to_string(dir.join("config.txt")).ok();
    if config.is_none() {
        missing.push("config.txt".into());
    }
    let (kernel, initramfs) = config.as_deref().map(config_settings).unwrap_or_default();
    let kernel = match kernel {
        Some(k) if has(&k) => Some(k),
        Some(k) => {
            missing.push(format!("the kernel {k} that config.txt names"));
            None
        }
        None => {
            let k = names
                .iter()
                .find(|n| n.starts_with("kernel") && n.ends_with(".img"))
                .cloned();
            if k.is_none() {
                missing.push(
                    "a kernel (config.txt has no kernel= and there is no kernel*.img)".into(),
                );
            }
            k
        }
    };
    if let Some(i) = &initramfs {
        if !has(i) {
            missing.push(format!("the initramfs {i} that config.txt names"));
        }
    }
    let device_trees = names.iter().filter(|n| n.ends_with(".dtb")).count();
    if device_trees == 0 {
        missing.push("device trees (*.dtb)".into());
    }
    match kernel {
        Some(kernel) if missing.is_empty() => Ok(BootFiles {
            kernel,
            initramfs,
            firmware,
            device_trees,
        }),
        _ => Err(ImageError::Boot {
            dir: dir.to_path_buf(),
            boot_dir: boot_dir.to_string(),
            missing: missing.join("; "),
        }),
    }
}

/// The tree's boot directory for `boot_dir` (`/boot/firmware`).
pub fn dir_in(root: &Path, boot_dir: &str) -> PathBuf {
    root.join(boot_dir.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(dir).unwrap();
        for (n, c) in files {
            std::fs::write(dir.join(n), c).unwrap();
        }
    }

    #[test]
    fn reads_config_txt_like_the_firmware() {
        let (k, i) = config_settings(
            "# comment\nenable_uart=1\nkernel=vmlinuz-6.1.0-9-armmp # the kernel\ninitramfs initrd.img-6.1.0-9-armmp followkernel\nkernel=other\n",
        );
        assert_eq!(k.as_deref(), Some("vmlinuz-6.1.0-9-armmp"));
        assert_eq!(i.as_deref(), Some("initrd.img-6.1.0-9-armmp"));
        assert_eq!(config_settings("arm_64bit=1\n"), (None, None));
    }

    #[test]
    fn a_complete_boot_directory_passes_and_each_gap_is_named() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("boot/firmware");
        write(
            &d,
            &[
                ("start.elf", "x"),
                ("bootcode.bin", "x"),
                ("bcm2710-rpi-3-b.dtb", "x"),
                ("vmlinuz-6", "x"),
                ("initrd.img-6", "x"),
                ("config.txt", "kernel=vmlinuz-6\ninitramfs initrd.img-6\n"),
            ],
        );
        let b = check(&d, "/boot/firmware").unwrap();
        assert_eq!(b.kernel, "vmlinuz-6");
        assert_eq!(b.initramfs.as_deref(), Some("initrd.img-6"));
        assert_eq!((b.firmware.len(), b.device_trees), (1, 1));

        std::fs::remove_file(d.join("initrd.img-6")).unwrap();
        let e = check(&d, "/boot/firmware").unwrap_err().to_string();
        assert!(
            e.contains("the initramfs initrd.img-6 that config.txt names"),
            "{e}"
        );

        // Raspbian's way: no kernel=, the firmware's default kernel*.img.
        write(
            &d,
            &[("config.txt", "dtparam=audio=on\n"), ("kernel7.img", "x")],
        );
        assert_eq!(check(&d, "/boot/firmware").unwrap().kernel, "kernel7.img");

        let e = check(&t.path().join("none"), "/boot/firmware")
            .unwrap_err()
            .to_string();
        for want in [
            "start*.elf",
            "config.txt",
            "a kernel",
            "*.dtb",
            "/boot/firmware",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
