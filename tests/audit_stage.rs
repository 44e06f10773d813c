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
