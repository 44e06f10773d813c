//! The `57-blobstore-clients` stage: stand-in client trees (tiny Go modules named as the real
//! repositories) cross-compiled with the host's Go for armhf and arm64, installed as
//! `/var/vcap/bosh/bin/bosh-blobstore-PROVIDER` 0755 root and recorded as components; the spec's
//! `--set blobstore_clients.PROVIDER...` flags, skipped and unknown providers; an x86 client and
//! a `GOARM=7` one on an ARMv6 floor refused; a closed network named with the exact flags.
//!
//! With `PISTEMCELL_TEST_BLOBSTORE_MIRRORS=DIR` (holding `cloudfoundry+bosh-davcli/repo` etc.,
//! git directories with upstream's pinned commits) the real clients are built from them for
//! armv7 and arm64, and the build times printed.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pistemcell::context::{BuildContext, Settings};
use pistemcell::pipeline::Stage;
use pistemcell::progress::{Reporter, Verbosity};
use pistemcell::spec::clients::PROVIDERS;
use pistemcell::steps::agent::goarm_of;
use pistemcell::steps::blobstore::{BlobstoreClientsStage, NAME};

fn context(sets: &[String], dir: &Path) -> BuildContext {
    let spec = pistemcell::spec::load(None, sets).unwrap();
    BuildContext::new(
        spec,
        Settings::new(&dir.join("work"), &dir.join("cache")),
        Reporter::new(Verbosity::Quiet),
    )
}

/// A rootfs with the directory the clients go into.
fn rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("var/vcap/bosh/bin")).unwrap();
    root
}

fn run(ctx: &BuildContext, root: &Path) -> Result<(), String> {
    let stage = BlobstoreClientsStage;
    stage.prepare(ctx).map_err(|e| e.to_string())?;
    stage.run(ctx, root).map_err(|e| e.to_string())
}

fn elf_machine(path: &Path) -> u16 {
    pistemcell::audit::elf::read(&mut std::fs::File::open(path).unwrap())
        .unwrap()
        .unwrap()
        .machine
}

#[test]
fn stand_in_sources_are_built_installed_and_recorded_for_armhf_and_arm64() {
    let Some(go) = support::clients::go() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut sets = support::clients::sets(tmp.path(), &go);
    sets.push("blobstore_clients.s3.source.version=9.9.9".into());
    let ctx = context(&sets, tmp.path());
    let root = rootfs(tmp.path());
    run(&ctx, &root).unwrap();
    for p in PROVIDERS {
        let rel = format!("var/vcap/bosh/bin/bosh-blobstore-{}", p.name);
        let bin = root.join(&rel);
        let m = std::fs::metadata(&bin).unwrap_or_else(|e| panic!("/{rel}: {e}"));
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o755, 0, 0),
            "/{rel}"
        );
        assert_eq!(elf_machine(&bin), pistemcell::audit::elf::EM_ARM, "/{rel}");
        assert_eq!(goarm_of(&std::fs::read(&bin).unwrap()), Some(7), "/{rel}");
        let record = std::fs::read_to_string(
            root.join("var/lib/pistemcell/components")
                .join(format!("bosh-blobstore-{}", p.name)),
        )
        .unwrap();
        let version = if p.name == "s3" { "9.9.9" } else { "0.0.0-dev" };
        for want in [
            format!("Name: bosh-blobstore-{}\n", p.name),
            format!("Version: {version}\n"),
            format!("Path: /{rel}\n"),
            "Kind: go build\n".to_string(),
            format!("Origin: {} source tree\n", p.module),
        ] {
            assert!(record.contains(&want), "{want:?} not in\n{record}");
        }
        let sha = record
            .lines()
            .find_map(|l| l.strip_prefix("Input-SHA256: "))
            .unwrap();
        assert_eq!(sha.len(), 64, "{record}");
    }
    // The version reaches the binary through -X main.version (run it under emulation when
    // binfmt is there; the string is in the binary either way).
    let s3 = std::fs::read(root.join("var/vcap/bosh/bin/bosh-blobstore-s3")).unwrap();
    assert!(s3.windows(5).any(|w| w == b"9.9.9"), "-X main.version");
    // The whole record set is what the audit and the SBOMs read.
    let names: Vec<String> = pistemcell::record::read_all(&root)
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");

    // arm64: the same trees, native AArch64 binaries, a separate cache entry.
    let mut arm64 = sets.clone();
    arm64.push("architecture=arm64".into());
    let ctx = context(&arm64, tmp.path());
    let root64 = tmp.path().join("rootfs64");
    std::fs::create_dir_all(root64.join("var/vcap/bosh/bin")).unwrap();
    run(&ctx, &root64).unwrap();
    let dav = root64.join("var/vcap/bosh/bin/bosh-blobstore-dav");
    assert_eq!(elf_machine(&dav), pistemcell::audit::elf::EM_AARCH64);
    let builds = std::fs::read_dir(tmp.path().join("cache/blobstore-clients/dav"))
        .unwrap()
        .count();
    assert_eq!(builds, 2, "one cached build per target");
}

#[test]
fn the_cache_key_follows_the_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = support::clients::stand_in(tmp.path(), &PROVIDERS[0]);
    let key = |extra: &[String]| {
        let mut sets = vec![format!(
            "blobstore_clients.dav.source.path={}",
            tree.display()
        )];
        sets.extend_from_slice(extra);
        BlobstoreClientsStage
            .manifest(&context(&sets, tmp.path()))
            .unwrap()
    };
    let base = key(&[]);
    let dav = |m: &[(String, String)]| {
        m.iter()
            .find(|(k, _)| k == "bosh-blobstore-dav")
            .unwrap()
            .1
            .clone()
    };
    assert!(dav(&base).starts_with("source tree="), "{base:?}");
    // The defaults of the other three: pinned by repository and commit.
    let s3 = &base
        .iter()
        .find(|(k, _)| k == "bosh-blobstore-s3")
        .unwrap()
        .1;
    assert!(
        s3.contains(&format!(
            "git={} rev={}",
            PROVIDERS[1].git, PROVIDERS[1].rev
        )) && s3.contains(&format!("version={}", PROVIDERS[1].version)),
        "{s3}"
    );
    assert_ne!(
        dav(&key(&[
            "blobstore_clients.dav.source.version=1.0.0-x".into()
        ])),
        dav(&base)
    );
    assert_ne!(key(&["architecture=arm64".into()]), base);
    let skipped = key(&["blobstore_clients.gcs.skip=true".into()]);
    assert!(!skipped.iter().any(|(k, _)| k == "bosh-blobstore-gcs"));
    std::fs::write(tree.join("main/extra.go"), "package main\n").unwrap();
    assert_ne!(dav(&key(&[])), dav(&base), "a changed tree changes the key");
}

#[test]
fn the_spec_addresses_providers_by_set_and_refuses_unknown_ones() {
    let load = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        pistemcell::spec::load(None, &sets).map_err(|e| e.to_string())
    };
    let spec = load(&["blobstore_clients.dav.source.path=/src/bosh-davcli"]).unwrap();
    let dav = &spec.blobstore_clients[0];
    assert_eq!(dav.provider.name, "dav");
    assert!(
        matches!(&dav.input, pistemcell::spec::Agent::Source(s) if s.path == "/src/bosh-davcli" && s.git.is_none())
    );
    let e = load(&["blobstore_clients.local.skip=true"]).unwrap_err();
    assert!(
        e.contains("blobstore_clients.local") && e.contains("dav, s3, gcs, azure-storage"),
        "{e}"
    );
    let e = load(&["blobstore_clients.dav.sorce.path=/x"]).unwrap_err();
    assert!(e.contains("unknown field `sorce`"), "{e}");
    // Every provider skipped: the stage does not run.
    let all: Vec<String> = PROVIDERS
        .iter()
        .map(|p| format!("blobstore_clients.{}.skip=true", p.name))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let ctx = context(&all, tmp.path());
    assert!(ctx.spec.blobstore_clients.is_empty());
    assert!(!BlobstoreClientsStage.applies(&ctx));
    assert!(BlobstoreClientsStage
        .skip_reason(&ctx)
        .unwrap()
        .contains("skipped"));
}

#[test]
fn a_closed_network_names_every_flag_that_gives_local_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sets = Vec::new();
    for p in PROVIDERS {
        let url = format!("file://{}/no-such-{}", tmp.path().display(), p.module);
        sets.push(format!("blobstore_clients.{}.source.git={url}", p.name));
        sets.push(format!("blobstore_clients.{}.source.rev={}", p.name, p.rev));
        sets.push(format!(
            "blobstore_clients.{}.source.go=/nonexistent/go",
            p.name
        ));
    }
    let ctx = context(&sets, tmp.path());
    let e = BlobstoreClientsStage.prepare(&ctx).unwrap_err().to_string();
    assert!(e.contains(NAME), "{e}");
    for p in PROVIDERS {
        for want in [
            format!("--set blobstore_clients.{}.source.path=DIR", p.name),
            format!("--set blobstore_clients.{}.binary.path=FILE", p.name),
            format!("--set blobstore_clients.{}.skip=true", p.name),
            format!("blobstore_clients.{}.source.git: cannot fetch", p.name),
            format!("--set blobstore_clients.{}.source.go=DIR/go/bin/go", p.name),
            p.rev.to_string(),
        ] {
            assert!(e.contains(&want), "`{want}` missing from:\n{e}");
        }
    }
    assert!(e.contains("/nonexistent/go"), "{e}");
    assert!(!e.contains('\n'), "one paragraph: {e}");
}

/// An x86-64 program (the host's `true`), and a GOARM=7 stand-in on an ARMv6 floor.
#[test]
fn an_x86_client_and_a_goarm7_client_on_armv6_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let host_true = pistemcell::cmd::find_on_path("true").unwrap();
    let sha = pistemcell::archive::cache::file_sha256(&host_true).unwrap();
    let sets = vec![
        format!("blobstore_clients.dav.binary.path={}", host_true.display()),
        format!("blobstore_clients.dav.binary.sha256={sha}"),
    ];
    let mut only_dav = sets.clone();
    for p in &PROVIDERS[1..] {
        only_dav.push(format!("blobstore_clients.{}.skip=true", p.name));
    }
    let ctx = context(&only_dav, tmp.path());
    let e = run(&ctx, &rootfs(tmp.path())).unwrap_err();
    assert!(
        e.contains("is not a bosh-blobstore-dav this image can run")
            && e.contains("64-bit LE x86-64")
            && e.contains("GOARCH=arm GOARM=7")
            && e.contains("`blobstore_clients.dav.source.path`"),
        "{e}"
    );
    assert!(!tmp
        .path()
        .join("rootfs/var/vcap/bosh/bin/bosh-blobstore-dav")
        .exists());

    let Some(go) = support::clients::go() else {
        return;
    };
    let tree = support::clients::stand_in(tmp.path(), &PROVIDERS[0]);
    let armv7 = tmp.path().join("dav-armv7");
    let st = Command::new(&go)
        .current_dir(&tree)
        .args(["build", "-mod=vendor", "-o"])
        .arg(&armv7)
        .arg("./main")
        .env("CGO_ENABLED", "0")
        .env("GOOS", "linux")
        .env("GOARCH", "arm")
        .env("GOARM", "7")
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", tmp.path().join("gocache"))
        .env("GOPATH", tmp.path().join("gopath"))
        .env("HOME", tmp.path())
        .status()
        .unwrap();
    assert!(st.success());
    let sha = pistemcell::archive::cache::file_sha256(&armv7).unwrap();
    let mut armv6 = vec![
        "profile=raspbian-bookworm".to_string(),
        "cpu=armv6".to_string(),
        format!("blobstore_clients.dav.binary.path={}", armv7.display()),
        format!("blobstore_clients.dav.binary.sha256={sha}"),
    ];
    armv6.extend(only_dav.into_iter().filter(|s| s.ends_with("skip=true")));
    let ctx = context(&armv6, tmp.path());
    let e = run(&ctx, &rootfs(tmp.path())).unwrap_err();
    assert!(
        e.contains("built with GOARM=7") && e.contains("SIGILL") && e.contains("GOARM=6"),
        "{e}"
    );
}

/// The real clients from local mirrors of their repositories, at upstream's pinned commits.
#[test]
fn the_real_clients_build_from_their_pinned_commits() {
    let Ok(mirrors) = std::env::var("PISTEMCELL_TEST_BLOBSTORE_MIRRORS") else {
        eprintln!("SKIPPED the real blobstore clients: set PISTEMCELL_TEST_BLOBSTORE_MIRRORS to a directory holding cloudfoundry+bosh-davcli/repo etc. (git mirrors with upstream's pinned commits)");
        return;
    };
    let dir = std::env::var_os("PISTEMCELL_TEST_BLOBSTORE_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("pistemcell-blobstore-real"));
    for arch in ["armhf", "arm64"] {
        let root = dir.join(format!("rootfs-{arch}"));
        std::fs::create_dir_all(root.join("var/vcap/bosh/bin")).unwrap();
        for p in PROVIDERS {
            // One provider at a time (the others skipped), to time each build.
            let mut sets = vec![format!("architecture={arch}")];
            for other in PROVIDERS.iter().filter(|o| o.name != p.name) {
                sets.push(format!("blobstore_clients.{}.skip=true", other.name));
            }
            sets.push(format!(
                "blobstore_clients.{}.source.git=file://{mirrors}/cloudfoundry+{}/repo",
                p.name, p.module
            ));
            sets.push(format!("blobstore_clients.{}.source.rev={}", p.name, p.rev));
            // Only the default source has a default version.
            sets.push(format!(
                "blobstore_clients.{}.source.version={}",
                p.name, p.version
            ));
            let ctx = context(&sets, &dir);
            let t = std::time::Instant::now();
            run(&ctx, &root).unwrap();
            let bin = root.join(format!("var/vcap/bosh/bin/{}", p.program()));
            let bytes = std::fs::read(&bin).unwrap();
            // davcli at this commit prints a literal `davcli version [[version]]`: its
            // `-X main.version` (upstream's too) sets nothing.
            if p.name != "dav" {
                assert!(
                    bytes
                        .windows(p.version.len())
                        .any(|w| w == p.version.as_bytes()),
                    "{} carries its version",
                    p.program()
                );
            }
            eprintln!(
                "{arch}: {} {} fetched, built and installed in {:.1} s ({} bytes)",
                p.program(),
                p.version,
                t.elapsed().as_secs_f64(),
                bytes.len()
            );
        }
    }
}
