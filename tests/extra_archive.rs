//! A second archive beside the profile's own (how the Raspbian profiles get Raspberry Pi's
//! kernel and boot firmware): two fixture archives on 127.0.0.1, each signed by its own
//! throwaway key. The index holds both archives' packages (the higher version of a name wins),
//! each package downloads from its own archive and is checked against its sha256, the image
//! gets a sources entry signed-by the verified key, and a key that does not match the pinned
//! fingerprint stops the build naming the archive. A spec pinned to an archive state that the
//! mirror no longer serves is refused with both dates, unless the change is allowed.

mod support;

use std::path::Path;

use pistemcell::context::{BuildContext, Settings};
use pistemcell::profile::{ExtraArchive, KeyringSpec};
use pistemcell::progress::{Reporter, Verbosity};
use pistemcell::spec::{self, Spec};
use support::{Archive, Key, Pkg, Server};

fn ctx(dir: &Path, main: &Server, key: &Key, extra: ExtraArchive) -> BuildContext {
    let spec = spec::resolve(
        "test".into(),
        Spec {
            mirror: Some(main.url.clone()),
            keyring: Some(key.public.display().to_string()),
            keyring_fingerprints: Some(vec![key.fingerprint.clone()]),
            extra_archives: Some(vec![extra]),
            ..Default::default()
        },
    )
    .unwrap();
    BuildContext::new(
        spec,
        Settings::new(&dir.join("work"), &dir.join("cache")),
        Reporter::new(Verbosity::Quiet),
    )
}

fn extra(url: &str, key: &Key, fingerprint: &str) -> ExtraArchive {
    ExtraArchive {
        name: "raspberrypi".into(),
        mirror: url.into(),
        suite: "bookworm".into(),
        components: vec!["main".into()],
        keyring: KeyringSpec {
            location: key.public.display().to_string(),
            package: None,
            fingerprints: vec![fingerprint.into()],
            allow_sha1: false,
        },
    }
}

#[test]
fn packages_of_an_extra_archive_come_from_it_verified_by_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (Key::generate("main"), Key::generate("raspberrypi"));
    let main = Archive::publish(
        &[Pkg::new("common", "1.0", &[]), Pkg::new("base", "1.0", &[])],
        "bookworm",
        &k1,
    );
    let rpi = Archive::publish(
        &[
            Pkg::new("common", "1.0+rpt1", &[]),
            Pkg::new("raspberrypi-kernel", "1:1.20230405", &[]),
        ],
        "bookworm",
        &k2,
    );
    let (s1, s2) = (
        Server::start(main.root.path()),
        Server::start(rpi.root.path()),
    );
    let c = ctx(dir.path(), &s1, &k1, extra(&s2.url, &k2, &k2.fingerprint));
    let archive = c.archive().unwrap();
    let kernel = archive.universe.get("raspberrypi-kernel").unwrap();
    assert!(kernel.filename.starts_with(&s2.url), "{}", kernel.filename);
    // The higher version wins, as with apt; it comes from its own archive.
    let common = archive.universe.get("common").unwrap();
    assert_eq!(common.version, "1.0+rpt1");
    assert!(archive
        .universe
        .get("base")
        .unwrap()
        .filename
        .starts_with("pool/"));

    let items = pistemcell::bootstrap::download_items(
        &archive.mirror,
        &[
            kernel.clone(),
            archive.universe.get("base").unwrap().clone(),
        ],
    );
    assert!(items[0].url.starts_with(&s2.url) && items[1].url.starts_with(&s1.url));
    let before = s2.requests.load(std::sync::atomic::Ordering::SeqCst);
    let fetched = pistemcell::archive::download::fetch_all(
        &archive.http,
        &archive.cache,
        &items,
        2,
        &Reporter::new(Verbosity::Quiet),
    )
    .unwrap();
    assert_eq!(fetched.paths.len(), 2);
    assert!(s2.requests.load(std::sync::atomic::Ordering::SeqCst) > before);

    // The image's apt sources name the archive, signed by its key.
    let root = dir.path().join("root");
    pistemcell::bootstrap::extra_sources(&root, &archive.extras).unwrap();
    let list =
        std::fs::read_to_string(root.join("etc/apt/sources.list.d/raspberrypi.list")).unwrap();
    assert_eq!(
        list,
        format!(
            "deb [signed-by=/usr/share/keyrings/pistemcell-raspberrypi.gpg] {} bookworm main\n",
            s2.url
        )
    );
    assert_eq!(
        std::fs::read(root.join("usr/share/keyrings/pistemcell-raspberrypi.gpg")).unwrap(),
        std::fs::read(&k2.public).unwrap()
    );

    // Signed by a key other than the one pinned: refused, naming the archive.
    let c = ctx(dir.path(), &s1, &k1, extra(&s2.url, &k1, &k1.fingerprint));
    let e = c.archive().unwrap_err().to_string();
    assert!(e.contains(&s2.url), "{e}");
}

#[test]
fn a_pinned_archive_that_changed_is_refused_with_both_dates() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::generate("main");
    let main = Archive::publish(&[Pkg::new("base", "1.0", &[])], "bookworm", &key);
    let server = Server::start(main.root.path());
    let pinned = pistemcell::spec::inputs::ArchivePin {
        release_sha256: "0".repeat(64),
        date: Some("Fri, 01 Aug 2025 00:00:00 UTC".into()),
    };
    let make = |allow: bool| {
        let spec = spec::resolve(
            "test".into(),
            Spec {
                mirror: Some(server.url.clone()),
                keyring: Some(key.public.display().to_string()),
                keyring_fingerprints: Some(vec![key.fingerprint.clone()]),
                archive_pin: Some(pinned.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        let mut settings = Settings::new(&dir.path().join("work"), &dir.path().join("cache"));
        settings.allow_archive_change = allow;
        BuildContext::new(spec, settings, Reporter::new(Verbosity::Quiet))
    };
    let e = make(false).archive().unwrap_err().to_string();
    for want in [
        "Fri, 01 Aug 2025 00:00:00 UTC",
        "Sat, 01 Nov 2025 00:00:00 UTC",
        "--allow-archive-change",
        &"0".repeat(64),
    ] {
        assert!(e.contains(want), "{want}: {e}");
    }
    assert!(make(true).archive().is_ok());
    // The pinned state itself passes.
    let served = make(true).archive().unwrap().release_sha256.clone();
    let spec = spec::resolve(
        "test".into(),
        Spec {
            mirror: Some(server.url.clone()),
            keyring: Some(key.public.display().to_string()),
            keyring_fingerprints: Some(vec![key.fingerprint.clone()]),
            archive_pin: Some(pistemcell::spec::inputs::ArchivePin {
                release_sha256: served,
                date: None,
            }),
            ..Default::default()
        },
    )
    .unwrap();
    let c = BuildContext::new(
        spec,
        Settings::new(&dir.path().join("work"), &dir.path().join("cache")),
        Reporter::new(Verbosity::Quiet),
    );
    assert!(c.archive().is_ok());
}
