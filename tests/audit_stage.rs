//! The `95-audit` stage on a rootfs holding real binaries built here: x86-64 and i386 with
//! the host's gcc, armel soft-float with `arm-linux-gnueabi-gcc`, ARMv8 AArch32 and a good
//! ARMv7 one with `arm-linux-gnueabihf-gcc`, AArch64 with `aarch64-linux-gnu-gcc`. The audit
//! must find every offender with its package, fail with the complete list, swap in
//! `replacements:` and honour `audit.allow:`. A missing cross compiler skips what needs it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use pistemcell::context::{BuildContext, Settings};
use pistemcell::pipeline::Stage;
use pistemcell::progress::{Reporter, Verbosity};
use pistemcell::steps::audit::AuditStage;

fn compile(cc: &str, flags: &[&str], src: &str, out: &Path) -> Option<PathBuf> {
    if !pistemcell::cmd::on_path(cc) {
        eprintln!("SKIPPED part: {cc} is not installed");
        return None;
    }
    let dir = out.parent().unwrap();
    let c = dir.join(format!("{}.c", out.file_name().unwrap().to_string_lossy()));
    std::fs::write(&c, src).unwrap();
    let st = Command::new(cc)
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(&c)
        .status()
        .unwrap();
    assert!(st.success(), "{cc} {flags:?} failed");
    Some(out.to_path_buf())
}

const MAIN: &str = "int main(void) { return 0; }\n";
// No libc needed: links with the host toolchain alone (no multilib for i386).
const START: &str = "void _start(void) { for (;;) {} }\n";

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bins: PathBuf,
    /// (rootfs path, package or None) of every offender planted.
    offenders: Vec<(String, Option<&'static str>)>,
}

fn fixture() -> Option<Fixture> {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("SKIPPED: the host binaries must be foreign to ARM (x86_64 host)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let bins = dir.path().join("bins");
    for d in ["usr/bin", "usr/lib", "var/lib/dpkg/info", "opt"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::create_dir_all(&bins).unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    let good = compile("arm-linux-gnueabihf-gcc", &[], MAIN, &bins.join("good"))?;
    let planted: Vec<(&str, Option<&'static str>, Option<PathBuf>)> = vec![
        (
            "/usr/bin/x86tool",
            Some("x86pkg"),
            compile("gcc", &[], MAIN, &bins.join("x86")),
        ),
        (
            "/usr/lib/i386lib.so",
            Some("i386pkg"),
            compile(
                "gcc",
                &["-m32", "-nostdlib", "-static"],
                START,
                &bins.join("i386"),
            ),
        ),
        (
            "/usr/bin/softtool",
            Some("armelpkg"),
            compile("arm-linux-gnueabi-gcc", &[], MAIN, &bins.join("soft")),
        ),
        (
            "/usr/bin/v8tool",
            Some("v8pkg"),
            compile(
                "arm-linux-gnueabihf-gcc",
                &["-march=armv8-a", "-mfpu=crypto-neon-fp-armv8"],
                MAIN,
                &bins.join("v8"),
            ),
        ),
        (
            "/usr/bin/a64tool",
            Some("a64pkg"),
            compile("aarch64-linux-gnu-gcc", &[], MAIN, &bins.join("a64")),
        ),
        (
            "/opt/stray",
            None,
            compile("gcc", &[], MAIN, &bins.join("stray")),
        ),
    ];
    let mut offenders = Vec::new();
    for (path, pkg, bin) in planted {
        let Some(bin) = bin else { continue };
        let dest = root.join(path.trim_start_matches('/'));
        std::fs::copy(&bin, &dest).unwrap();
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o750)).unwrap();
        if let Some(p) = pkg {
            // Listed the way dpkg does on merged-/usr systems for /bin: through the link.
            let listed = path.replace("/usr/bin/", "/bin/");
            std::fs::write(
                root.join(format!("var/lib/dpkg/info/{p}.list")),
                format!("/.\n{listed}\n"),
            )
            .unwrap();
        }
        offenders.push((path.to_string(), pkg));
    }
    std::fs::copy(&good, root.join("usr/bin/good")).unwrap();
    std::fs::write(
        root.join("var/lib/dpkg/info/goodpkg.list"),
        "/.\n/usr/bin/good\n",
    )
    .unwrap();
    Some(Fixture {
        _dir: dir,
        root,
        bins,
        offenders,
    })
}

fn sha256(path: &Path) -> String {
    pistemcell::archive::cache::file_sha256(path).unwrap()
}

fn context(yaml: &str, cache: &Path) -> BuildContext {
    let spec = pistemcell::spec::parse("test.yml", yaml, &[]).unwrap();
    let spec = pistemcell::spec::resolve("test.yml".into(), spec).unwrap();
    BuildContext::new(
        spec,
        Settings::new(&cache.join("work"), cache),
        Reporter::new(Verbosity::Quiet),
    )
}

fn run(ctx: &BuildContext, root: &Path) -> Result<(), String> {
    AuditStage.prepare(ctx).map_err(|e| e.to_string())?;
    AuditStage.run(ctx, root).map_err(|e| e.to_string())
}

#[test]
fn every_offender_is_listed_with_its_package_and_fails_the_stage() {
    let Some(f) = fixture() else { return };
    let ctx = context("{}", &f.bins.join("cache"));
    let err = run(&ctx, &f.root).unwrap_err();
    assert!(
        err.contains(&format!(
            "{} files cannot run on armhf (cpu floor armv7)",
            f.offenders.len()
        )),
        "{err}"
    );
    for (path, pkg) in &f.offenders {
        let owner = pkg.map_or("not from a package".to_string(), |p| format!("package {p}"));
        assert!(
            err.contains(&format!("  {path} ({owner})")),
            "{path} missing:\n{err}"
        );
    }
    // What each offender is: the check that names it.
    for (path, check) in [
        ("/usr/bin/x86tool", "machine: 64-bit LE x86-64"),
        ("/usr/lib/i386lib.so", "machine: 32-bit LE i386"),
        ("/usr/bin/softtool", "float-abi: soft-float"),
        ("/usr/bin/v8tool", "cpu-arch: built for ARMv8"),
        ("/usr/bin/a64tool", "machine: 64-bit LE AArch64"),
    ] {
        if f.offenders.iter().any(|o| o.0 == path) {
            let at = err.find(&format!("  {path} (")).unwrap();
            assert!(
                err[at..].contains(check),
                "{path}: expected `{check}` in:\n{err}"
            );
        }
    }
    assert!(!err.contains("/usr/bin/good"), "{err}");
    assert!(
        err.contains("replacements:") && err.contains("audit.allow:"),
        "{err}"
    );
}

#[test]
fn replacements_are_swapped_in_and_allow_entries_accepted() {
    let Some(f) = fixture() else { return };
    let good = f.bins.join("good");
    let mut yaml = format!(
        "replacements:\n  /usr/bin/x86tool: {{path: {}, sha256: {}}}\naudit:\n  allow:\n",
        good.display(),
        sha256(&good)
    );
    for (path, _) in f.offenders.iter().filter(|o| o.0 != "/usr/bin/x86tool") {
        yaml.push_str(&format!(
            "    - {{path: {path}, reason: planted by the test}}\n"
        ));
    }
    let ctx = context(&yaml, &f.bins.join("cache"));
    run(&ctx, &f.root).unwrap();
    let swapped = f.root.join("usr/bin/x86tool");
    assert_eq!(
        std::fs::read(&swapped).unwrap(),
        std::fs::read(&good).unwrap()
    );
    assert_eq!(
        std::fs::metadata(&swapped).unwrap().mode() & 0o7777,
        0o750,
        "the replaced file's mode is kept"
    );
    // The report marks what the allow-list accepted.
    let report = pistemcell::steps::audit::report_for(&ctx.spec, &f.root).unwrap();
    assert_eq!(report.failing_files(), 0);
    assert!(report
        .findings
        .iter()
        .all(|x| x.allowed.as_deref() == Some("planted by the test")));
    let json = pistemcell::audit::to_json(&report, ctx.spec.arch, ctx.spec.cpu);
    assert!(
        json.contains("\"allowed\": \"planted by the test\""),
        "{json}"
    );

    // An allow entry limited to other checks does not accept a machine mismatch.
    let narrow =
        "audit:\n  allow:\n    - {path: /opt/stray, checks: [cpu-arch], reason: wrong check}\n";
    let e = run(&context(narrow, &f.bins.join("cache")), &f.root).unwrap_err();
    assert!(e.contains("/opt/stray (not from a package)"), "{e}");
}

#[test]
fn a_replacement_must_fit_the_target_and_match_its_digest() {
    let Some(f) = fixture() else { return };
    let x86 = f.bins.join("x86");
    let yaml = format!(
        "replacements:\n  /usr/bin/x86tool: {{path: {}, sha256: {}}}\n",
        x86.display(),
        sha256(&x86)
    );
    let e = run(&context(&yaml, &f.bins.join("cache")), &f.root).unwrap_err();
    assert!(
        e.contains("/usr/bin/x86tool") && e.contains("does not fit the target either"),
        "{e}"
    );
    let yaml = format!(
        "replacements:\n  /usr/bin/x86tool: {{path: {}, sha256: {}}}\n",
        x86.display(),
        "0".repeat(64)
    );
    let e = run(&context(&yaml, &f.bins.join("cache")), &f.root).unwrap_err();
    assert!(
        e.contains(&"0".repeat(64)) && e.contains(&sha256(&x86)),
        "{e}"
    );
}

#[test]
fn the_cli_audits_a_directory_as_json_and_for_an_armv6_floor() {
    let Some(f) = fixture() else { return };
    let bin = env!("CARGO_BIN_EXE_pistemcell");
    let out = Command::new(bin)
        .arg("audit")
        .arg(&f.root)
        .arg("--json")
        .output()
        .unwrap();
    assert!(!out.status.success(), "offenders make the command fail");
    let json: serde_norway::Value = serde_norway::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["failing_files"].as_u64(),
        Some(f.offenders.len() as u64)
    );
    // The good ARMv7 binary fails an ARMv6 floor.
    let out = Command::new(bin)
        .arg("audit")
        .arg(&f.root)
        .args(["--cpu", "armv6", "--json"])
        .output()
        .unwrap();
    let json: serde_norway::Value = serde_norway::from_slice(&out.stdout).unwrap();
    let good = json["findings"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|x| x["path"].as_str() == Some("/usr/bin/good"))
        .expect("/usr/bin/good is reported for armv6");
    assert_eq!(good["check"].as_str(), Some("cpu-arch"));
    assert_eq!(good["package"].as_str(), Some("goodpkg"));
}

#[test]
fn the_agent_must_be_an_executable_for_the_target() {
    use pistemcell::spec::{Arch, Cpu};
    use pistemcell::steps::agent::check_binary;
    let Some(f) = fixture() else { return };
    let good = f.bins.join("good");
    check_binary(&good, "agent.binary good", Arch::Armhf, Cpu::Armv7).unwrap();
    let e = check_binary(
        &f.bins.join("x86"),
        "agent.binary x86",
        Arch::Armhf,
        Cpu::Armv7,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("agent.binary x86 is not a BOSH agent this image can run")
            && e.contains("machine: 64-bit LE x86-64; needs 32-bit LE ARM")
            && e.contains("GOARCH=arm GOARM=7"),
        "{e}"
    );
    // Debian's cross compiler emits ARMv7 code: not for a Pi Zero/1.
    let e = check_binary(&good, "agent.binary good", Arch::Armhf, Cpu::Armv6)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cpu-arch") && e.contains("GOARM=6"), "{e}");
    let e = check_binary(&good, "agent.binary good", Arch::Arm64, Cpu::Armv8)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("needs 64-bit LE AArch64") && e.contains("GOARCH=arm64"),
        "{e}"
    );
    let text = f.bins.join("script");
    std::fs::write(&text, "#!/bin/sh\n").unwrap();
    let e = check_binary(&text, "agent.binary script", Arch::Armhf, Cpu::Armv7)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an ELF executable"), "{e}");
}

/// Runs `pistemcell audit PATH --json` and returns the number of failing files.
fn audited_failures(path: &Path) -> u64 {
    let out = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .arg("audit")
        .arg(path)
        .arg("--json")
        .output()
        .unwrap();
    let json: serde_norway::Value = serde_norway::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    json["failing_files"].as_u64().unwrap()
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_cli_audits_tarballs_stemcells_and_disk_images() {
    let Some(f) = fixture() else { return };
    let n = f.offenders.len() as u64;
    let dir = f.bins.join("forms");
    std::fs::create_dir_all(&dir).unwrap();
    // A rootfs tarball, and a stemcell holding it as its image.
    let tgz = dir.join("image");
    sh(Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&f.root)
        .arg("."));
    assert_eq!(audited_failures(&tgz), n, "rootfs tarball");
    std::fs::write(dir.join("stemcell.MF"), "name: test\n").unwrap();
    let stemcell = f.bins.join("stemcell.tgz");
    sh(Command::new("tar")
        .arg("-czf")
        .arg(&stemcell)
        .arg("-C")
        .arg(&dir)
        .args(["stemcell.MF", "image"]));
    assert_eq!(audited_failures(&stemcell), n, "stemcell");
    // A Pi-style MBR disk image: FAT boot partition, ext4 root at its offset.
    if !pistemcell::rootfs::extract::is_root()
        || !pistemcell::cmd::on_path("mkfs.ext4")
        || !pistemcell::cmd::on_path("sfdisk")
    {
        eprintln!("SKIPPED disk image audit: needs root, mkfs.ext4 and sfdisk");
        return;
    }
    let part = dir.join("root.ext4");
    sh(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&f.root)
        .arg(&part)
        .arg("32M"));
    assert_eq!(audited_failures(&part), n, "ext4 image");
    let disk = dir.join("disk.img");
    sh(Command::new("truncate").args(["-s", "48M"]).arg(&disk));
    let mut sfdisk = Command::new("sfdisk");
    sfdisk
        .arg("-q")
        .arg(&disk)
        .stdin(std::process::Stdio::piped());
    let mut child = sfdisk.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"label: dos\nstart=2048, size=16384, type=c\nstart=18432, size=65536, type=83\n",
        )
        .unwrap();
    assert!(child.wait().unwrap().success());
    sh(Command::new("dd")
        .arg(format!("if={}", part.display()))
        .arg(format!("of={}", disk.display()))
        .args(["bs=512", "seek=18432", "conv=notrunc", "status=none"]));
    assert_eq!(audited_failures(&disk), n, "disk image");
    let left = pistemcell::rootfs::mounts::mounts_under(Path::new("/tmp"));
    assert!(
        !left
            .iter()
            .any(|m| m.to_string_lossy().contains("pistemcell-audit")),
        "{left:?}"
    );
}

#[test]
fn go_programs_are_judged_by_their_goarm() {
    let Some(f) = fixture() else { return };
    if !pistemcell::cmd::on_path("arm-linux-gnueabihf-objcopy") {
        eprintln!("SKIPPED: arm-linux-gnueabihf-objcopy is not installed");
        return;
    }
    // Go records no ARM build attributes; its build information names GOARM.
    let root = f.bins.join("goroot");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    for goarm in [6, 7] {
        let out = root.join(format!("usr/bin/go{goarm}"));
        sh(Command::new("arm-linux-gnueabihf-objcopy")
            .args(["--remove-section=.ARM.attributes"])
            .arg(f.bins.join("good"))
            .arg(&out));
        let mut bytes = std::fs::read(&out).unwrap();
        bytes.extend_from_slice(format!("\tbuild\tGOARM={goarm}\n").as_bytes());
        std::fs::write(&out, bytes).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .arg("audit")
        .arg(&root)
        .args(["--cpu", "armv6"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL cpu-arch           /usr/bin/go7 (not from a package): built for ARMv7"),
        "{text}"
    );
    assert!(
        !text.contains("FAIL cpu-arch           /usr/bin/go6"),
        "{text}"
    );
}
