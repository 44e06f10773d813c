//! The Ubuntu profile against a local fixture repository (Ubuntu's archive is not reachable
//! from the test machines): the real bookworm minbase packages, repacked the way Ubuntu ships
//! them (control and data tarballs in zstd), published as suite `jammy`, signed by a
//! throwaway key and served on 127.0.0.1. `pistemcell bootstrap --set profile=ubuntu-jammy`
//! must install and configure all of them, and the image's apt sources must name the
//! profile's public archive, not the fixture.
//!
//! Needs what tests/bootstrap_mirror.rs needs (root, emulation, a Debian mirror for the real
//! packages); skips with the reason otherwise.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use pistemcell::archive::{cache::Cache, client, download, http::Http, resolve};
use pistemcell::deb::build::{ar_bytes, Packing};
use pistemcell::deb::Deb;
use pistemcell::progress::{Reporter, Verbosity};

/// Rewrites a .deb with zstd-compressed control and data members.
fn repack_zstd(deb: &Path, out: &Path) {
    let d = Deb::open(deb).unwrap();
    let mut control = Vec::new();
    d.control_reader()
        .unwrap()
        .read_to_end(&mut control)
        .unwrap();
    let mut data = Vec::new();
    d.data_reader().unwrap().read_to_end(&mut data).unwrap();
    let control = Packing::Zstd.compress(&control).unwrap();
    let data = Packing::Zstd.compress(&data).unwrap();
    let bytes = ar_bytes(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar.zst", &control),
        ("data.tar.zst", &data),
    ]);
    std::fs::write(out, bytes).unwrap();
}

#[test]
fn ubuntu_jammy_profile_bootstraps_from_a_zstd_fixture_repository() {
    let Some(mirror) = support::mirror_for_e2e("profile_fixture") else {
        return;
    };
    let http = Http::new();

    // The real packages of a bookworm armhf minbase, through the project's own client.
    let cache = Cache::open(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("mirror-cache")).unwrap();
    let quiet = Reporter::new(Verbosity::Quiet);
    let spec = pistemcell::spec::resolve("test".into(), Default::default()).unwrap();
    let keyring = client::prepare_keyring(
        &http,
        &cache,
        &spec.keyring,
        None,
        &spec.fingerprints,
        false,
    )
    .unwrap();
    let src = client::Source {
        mirror: mirror.clone(),
        suite: "bookworm".into(),
        components: vec!["main".into()],
        arch: "armhf".into(),
        keyring,
    };
    let index = client::load_index(&http, &cache, &src, &quiet).unwrap();
    let universe = resolve::Universe::new(index.packages, "armhf");
    let set = resolve::resolve(
        &universe,
        &resolve::Variant::Minbase,
        &["usr-is-merged".into()],
        &["usrmerge".into()],
    )
    .unwrap();
    let items: Vec<download::Item> = set
        .iter()
        .map(|p| download::Item {
            name: p.name.clone(),
            url: format!("{mirror}/{}", p.filename),
            size: p.size,
            sha256: p.sha256.clone(),
        })
        .collect();
    let fetched = download::fetch_all(&http, &cache, &items, 8, &quiet).unwrap();

    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let repacked: Vec<PathBuf> = set
        .iter()
        .zip(&fetched.paths)
        .map(|(p, path)| {
            let out = scratch.path().join(format!(
                "{}_{}_{}.deb",
                p.name,
                p.version.replace(':', "%3a"),
                p.architecture
            ));
            repack_zstd(path, &out);
            out
        })
        .collect();
    let key = support::Key::generate("fixture-ubuntu");
    let archive = support::Archive::publish_debs(&repacked, "jammy", "armhf", &key);
    let server = support::Server::start(archive.root.path());

    let rootfs = scratch.path().join("rootfs");
    let out = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .arg("--work-dir")
        .arg(scratch.path().join("work"))
        .arg("--cache-dir")
        .arg(scratch.path().join("cache"))
        .args(["--mirror", &server.url])
        .args([
            "--set",
            "profile=ubuntu-jammy",
            "--set",
            "components=[main]",
        ])
        .arg("--set")
        .arg(format!("keyring={}", key.public.display()))
        .arg("--set")
        .arg(format!("keyring_fingerprints=[{}]", key.fingerprint))
        .args(["bootstrap", "--output"])
        .arg(&rootfs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let status = pistemcell::rootfs::dpkg::read_status(&rootfs).unwrap();
    let names: Vec<&String> = status.keys().collect();
    let expected: Vec<&String> = set.iter().map(|p| &p.name).collect();
    assert_eq!(names, expected);
    assert!(status.values().all(|(_, _, s)| s == "install ok installed"));
    let sources = std::fs::read_to_string(rootfs.join("etc/apt/sources.list")).unwrap();
    assert_eq!(
        sources,
        "deb http://ports.ubuntu.com/ubuntu-ports jammy main\n"
    );
    assert!(std::fs::symlink_metadata(rootfs.join("bin"))
        .unwrap()
        .file_type()
        .is_symlink());
    support::sh(Command::new("chroot").arg(&rootfs).arg("/bin/true"));
}
