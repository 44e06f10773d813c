//! Tests of the ELF audit: synthetic headers and attribute sections, and real binaries.

use super::elf::{parse_attributes, ElfInfo, EM_ARM, EM_X86_64};
use super::*;

fn arm(flags: u32, cpu: Option<u64>, fp: Option<u64>, simd: Option<u64>) -> ElfInfo {
    ElfInfo {
        bits: 32,
        little_endian: true,
        kind: 3,
        machine: EM_ARM,
        flags,
        cpu_arch: cpu,
        fp_arch: fp,
        simd_arch: simd,
        attributes_unreadable: None,
    }
}

fn checks(info: &ElfInfo, arch: Arch, cpu: Cpu) -> Vec<&'static str> {
    check(info, arch, cpu).into_iter().map(|c| c.0).collect()
}

const HARD: u32 = 0x0500_0400;

#[test]
fn attributes_section_gives_cpu_fp_and_neon() {
    // 'A', then one "aeabi" subsection holding a File sub-subsection:
    // Tag_CPU_name "7-A", Tag_CPU_arch v7, Tag_FP_arch VFPv3-D16, Tag_Advanced_SIMD_arch NEON.
    let tags: Vec<u8> = [&[5u8][..], b"7-A\0", &[6, 10, 10, 4, 12, 1]].concat();
    let mut file_sub = vec![1u8];
    file_sub.extend_from_slice(&((tags.len() + 5) as u32).to_le_bytes());
    file_sub.extend_from_slice(&tags);
    let mut sub = b"aeabi\0".to_vec();
    sub.extend_from_slice(&file_sub);
    let mut data = vec![b'A'];
    data.extend_from_slice(&((sub.len() + 4) as u32).to_le_bytes());
    data.extend_from_slice(&sub);
    assert_eq!(parse_attributes(&data), Some((Some(10), Some(4), Some(1))));
    assert_eq!(parse_attributes(b"B"), None);
    assert_eq!(
        parse_attributes(&data[..data.len() - 3]),
        None,
        "a cut section is unreadable, not a panic"
    );
}

#[test]
fn foreign_machines_are_refused_for_both_architectures() {
    let x86 = ElfInfo {
        bits: 64,
        little_endian: true,
        kind: 3,
        machine: EM_X86_64,
        ..Default::default()
    };
    assert_eq!(checks(&x86, Arch::Armhf, Cpu::Armv7), ["machine"]);
    assert_eq!(checks(&x86, Arch::Arm64, Cpu::Armv8), ["machine"]);
    let aarch64 = ElfInfo {
        bits: 64,
        little_endian: true,
        kind: 2,
        machine: elf::EM_AARCH64,
        ..Default::default()
    };
    assert_eq!(checks(&aarch64, Arch::Armhf, Cpu::Armv7), ["machine"]);
    assert!(checks(&aarch64, Arch::Arm64, Cpu::Armv8).is_empty());
}

#[test]
fn float_abi_and_cpu_floor_are_checked_for_32_bit_arm() {
    let v7 = arm(HARD, Some(10), Some(4), Some(1));
    assert!(checks(&v7, Arch::Armhf, Cpu::Armv7).is_empty());
    assert_eq!(
        checks(&v7, Arch::Armhf, Cpu::Armv6),
        ["cpu-arch", "fp-arch", "neon"]
    );
    let v6 = arm(HARD, Some(7), Some(2), None);
    assert!(checks(&v6, Arch::Armhf, Cpu::Armv6).is_empty());
    let thumb2 = arm(HARD, Some(8), Some(2), None);
    assert_eq!(checks(&thumb2, Arch::Armhf, Cpu::Armv6), ["cpu-arch"]);
    let armel = arm(0x0500_0200, Some(5), None, None);
    assert_eq!(checks(&armel, Arch::Armhf, Cpu::Armv7), ["float-abi"]);
    let go = arm(0x0500_0002, None, None, None);
    assert_eq!(checks(&go, Arch::Armhf, Cpu::Armv7), ["float-abi-unknown"]);
    assert_eq!(severity_of("float-abi-unknown"), Severity::Warn);
}

#[test]
fn every_check_a_rule_can_return_is_registered() {
    for name in [
        "machine",
        "float-abi",
        "float-abi-unknown",
        "cpu-arch",
        "fp-arch",
        "neon",
        "attributes",
    ] {
        assert!(CHECKS.iter().any(|c| c.0 == name), "{name}");
    }
}

#[test]
fn a_host_binary_in_a_rootfs_is_found_and_attributed_to_its_package() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in ["usr/bin", "usr/lib/firmware", "var/lib/dpkg/info", "etc"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap();
    // The host's own `true` (x86-64 here) posing as a package's file, listed under /bin.
    let host_true = crate::cmd::find_on_path("true").unwrap();
    std::fs::copy(&host_true, r.join("usr/bin/true")).unwrap();
    std::fs::copy(&host_true, r.join("usr/bin/stray")).unwrap();
    std::fs::copy(&host_true, r.join("usr/lib/firmware/blob.elf")).unwrap();
    std::fs::write(r.join("etc/not-elf"), "hello").unwrap();
    std::fs::write(
        r.join("var/lib/dpkg/info/coreutils.list"),
        "/.\n/bin\n/bin/true\n",
    )
    .unwrap();

    let report = audit_tree(r, Arch::Armhf, Cpu::Armv7).unwrap();
    if std::env::consts::ARCH == "arm" {
        return; // the host binary is the target's own
    }
    assert_eq!(report.elf_files, 2, "firmware is not audited: {report:?}");
    let found: Vec<(&str, Option<&str>)> = report
        .findings
        .iter()
        .map(|f| (f.path.as_str(), f.package.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            ("/usr/bin/stray", None),
            ("/usr/bin/true", Some("coreutils"))
        ]
    );
    assert!(report
        .findings
        .iter()
        .all(|f| f.check == "machine" && f.needed == "32-bit LE ARM"));
    let json = to_json(&report, Arch::Armhf, Cpu::Armv7);
    assert!(
        json.contains("\"failing_files\": 2") && json.contains("\"package\": \"coreutils\""),
        "{json}"
    );
}

/// Compiles a tiny C program with a cross compiler, or None when it is not installed.
fn cross_compile(cc: &str, flags: &[&str], dir: &Path) -> Option<PathBuf> {
    if !crate::cmd::on_path(cc) {
        eprintln!("SKIPPED: {cc} is not installed (apt-get install gcc-arm-linux-gnueabihf)");
        return None;
    }
    let src = dir.join("p.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let out = dir.join(format!("p-{}", flags.join("").replace(['-', '='], "")));
    crate::cmd::run(
        std::process::Command::new(cc)
            .args(flags)
            .arg("-o")
            .arg(&out)
            .arg(&src),
    )
    .unwrap();
    Some(out)
}

#[test]
fn cross_compiled_arm_binaries_are_judged_by_their_build_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let cc = "arm-linux-gnueabihf-gcc";
    let Some(v7) = cross_compile(cc, &["-march=armv7-a", "-mfpu=vfpv3-d16"], dir.path()) else {
        return;
    };
    let info = elf::read(&mut std::fs::File::open(&v7).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(info.cpu_arch, Some(10));
    assert!(checks(&info, Arch::Armhf, Cpu::Armv7).is_empty());
    assert!(checks(&info, Arch::Armhf, Cpu::Armv6).contains(&"cpu-arch"));
}
