//! Hermetic tests of the archive client against a fixture archive served on 127.0.0.1:
//! signatures, index digests, resolution and verified, cached downloads.

mod support;

use pistemcell::archive::cache::Cache;
use pistemcell::archive::client::{self, Source};
use pistemcell::archive::download::{self, Item};
use pistemcell::archive::http::{join, Http};
use pistemcell::archive::resolve::{self, Universe, Variant};
use pistemcell::archive::signature::Keyring;
use pistemcell::progress::{Reporter, Verbosity};
use support::{Archive, Key, Pkg, Server};

fn quiet() -> Reporter {
    Reporter::new(Verbosity::Quiet)
}

fn fixture_packages() -> Vec<Pkg> {
    vec![
        Pkg::new(
            "base",
            "1.0",
            &[
                "Priority: required",
                "Essential: yes",
                "Depends: libfoo (>= 2.0) | libfoo-legacy, mta",
            ],
        ),
        Pkg::new("libfoo", "1.5", &["Priority: optional"]),
        Pkg::new("libfoo-legacy", "3.0", &["Priority: optional"]),
        Pkg::new("postfix", "3.7", &["Provides: mta", "Pre-Depends: libc"]),
        Pkg::new("libc", "2.36-9+deb12u4", &["Priority: required"]),
        Pkg::new(
            "apt",
            "2.6.1",
            &["Priority: important", "Depends: libc (>= 2.36)"],
        ),
        Pkg::new("extra-tool", "1.0", &["Depends: not-in-archive"]),
    ]
}

struct Fixture {
    archive: Archive,
    server: Server,
    key: Key,
    cache: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let key = Key::generate("fixture");
    let archive = Archive::publish(&fixture_packages(), "testing", &key);
    let server = Server::start(archive.root.path());
    Fixture {
        archive,
        server,
        key,
        cache: tempfile::tempdir().unwrap(),
    }
}

fn source(f: &Fixture, key: &Key, pinned: &str) -> Source {
    Source {
        mirror: f.server.url.clone(),
        suite: "testing".into(),
        components: vec!["main".into()],
        arch: "armhf".into(),
        keyring: Keyring {
            path: key.public.clone(),
            fingerprints: vec![pinned.into()],
            allow_sha1: false,
        },
    }
}

fn load(f: &Fixture, src: &Source) -> Result<client::Index, client::ClientError> {
    client::load_index(
        &Http::new(),
        &Cache::open(f.cache.path()).unwrap(),
        src,
        &quiet(),
    )
}

fn names(pkgs: &[pistemcell::archive::packages::Package]) -> Vec<String> {
    pkgs.iter().map(|p| p.name.clone()).collect()
}

#[test]
fn signed_archive_resolves_alternatives_provides_and_versions() {
    let f = fixture();
    let index = load(&f, &source(&f, &f.key, &f.key.fingerprint)).unwrap();
    assert_eq!(index.packages.len(), 7);
    let u = Universe::new(index.packages, "armhf");
    let set = resolve::resolve(&u, &Variant::Minbase, &[], &[]).unwrap();
    // libfoo 1.5 is too old for `libfoo (>= 2.0)`: the second alternative is taken;
    // `mta` is virtual and provided by postfix, which pre-depends on libc.
    assert_eq!(
        names(&set),
        ["apt", "base", "libc", "libfoo-legacy", "postfix"]
    );
}

#[test]
fn missing_dependency_is_reported_by_name() {
    let f = fixture();
    let index = load(&f, &source(&f, &f.key, &f.key.fingerprint)).unwrap();
    let u = Universe::new(index.packages, "armhf");
    let e = resolve::resolve(
        &u,
        &Variant::Minbase,
        &["extra-tool".into(), "nosuchpkg".into()],
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not-in-archive"), "{e}");
    assert!(e.contains("extra-tool"), "{e}");
    assert!(e.contains("nosuchpkg"), "{e}");
}

#[test]
fn release_and_detached_signature_are_used_when_there_is_no_inrelease() {
    let f = fixture();
    std::fs::remove_file(f.archive.dists().join("InRelease")).unwrap();
    let index = load(&f, &source(&f, &f.key, &f.key.fingerprint)).unwrap();
    assert_eq!(index.packages.len(), 7);
}

#[test]
fn tampered_inrelease_is_refused() {
    let f = fixture();
    let p = f.archive.dists().join("InRelease");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("Origin: Fixture", "Origin: Fixturf");
    std::fs::write(&p, text).unwrap();
    let e = load(&f, &source(&f, &f.key, &f.key.fingerprint))
        .unwrap_err()
        .to_string();
    assert!(e.contains("InRelease"), "{e}");
}

#[test]
fn archive_signed_by_another_key_is_refused() {
    let f = fixture();
    let intruder = Key::generate("intruder");
    f.archive.sign(&intruder);
    let e = load(&f, &source(&f, &f.key, &f.key.fingerprint))
        .unwrap_err()
        .to_string();
    assert!(e.contains("InRelease"), "{e}");
    // A keyring that holds the signing key, but whose pinned fingerprint is another, is refused too.
    let e = load(&f, &source(&f, &intruder, &f.key.fingerprint))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&f.key.fingerprint) || e.to_lowercase().contains("fingerprint"),
        "{e}"
    );
}

#[test]
fn index_whose_digest_differs_from_the_signed_release_is_refused() {
    let f = fixture();
    let p = f.archive.dists().join("main/binary-armhf/Packages.xz");
    let mut data = std::fs::read(&p).unwrap();
    let n = data.len();
    data[n / 2] ^= 0xff;
    std::fs::write(&p, data).unwrap();
    let e = load(&f, &source(&f, &f.key, &f.key.fingerprint))
        .unwrap_err()
        .to_string();
    assert!(e.contains("Packages.xz"), "{e}");
    assert!(e.contains("sha256"), "{e}");
}

fn items(f: &Fixture, index: &client::Index, wanted: &[&str]) -> Vec<Item> {
    index
        .packages
        .iter()
        .filter(|p| wanted.contains(&p.name.as_str()))
        .map(|p| Item {
            name: p.name.clone(),
            url: join(&f.server.url, &p.filename),
            size: p.size,
            sha256: p.sha256.clone(),
        })
        .collect()
}

#[test]
fn truncated_or_corrupted_debs_are_detected_and_replaced() {
    let f = fixture();
    let index = load(&f, &source(&f, &f.key, &f.key.fingerprint)).unwrap();
    let cache = Cache::open(f.cache.path()).unwrap();
    let http = Http::new();
    let want = items(&f, &index, &["libc", "apt"]);

    // The mirror serves a truncated libc: the download fails naming it, nothing is cached.
    let good = std::fs::read(f.archive.deb_path("libc")).unwrap();
    std::fs::write(f.archive.deb_path("libc"), &good[..good.len() / 2]).unwrap();
    let e = download::fetch_all(&http, &cache, &want, 4, &quiet())
        .unwrap_err()
        .to_string();
    assert!(e.contains("libc") && e.contains("sha256"), "{e}");
    let libc = want.iter().find(|i| i.name == "libc").unwrap();
    assert!(!cache.path_for(download::DEBS, &libc.sha256).exists());

    // The mirror is fixed: the retry succeeds.
    std::fs::write(f.archive.deb_path("libc"), &good).unwrap();
    let s = download::fetch_all(&http, &cache, &want, 4, &quiet()).unwrap();
    assert_eq!(s.hits, 1, "apt was cached by the first run");

    // A cached entry is corrupted on disk (same size): detected, dropped and fetched again.
    let entry = cache.path_for(download::DEBS, &libc.sha256);
    let mut bytes = std::fs::read(&entry).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&entry, &bytes).unwrap();
    let before = f.server.requests.load(std::sync::atomic::Ordering::SeqCst);
    let s = download::fetch_all(&http, &cache, &want, 4, &quiet()).unwrap();
    assert_eq!(s.hits, 1);
    assert_eq!(
        f.server.requests.load(std::sync::atomic::Ordering::SeqCst),
        before + 1
    );
    assert_eq!(std::fs::read(&entry).unwrap(), good);

    // A cached entry truncated by a crash is fetched again too.
    std::fs::write(&entry, &good[..100]).unwrap();
    let s = download::fetch_all(&http, &cache, &want, 4, &quiet()).unwrap();
    assert_eq!(s.hits, 1);
    assert_eq!(std::fs::read(&entry).unwrap(), good);
}

#[test]
fn expired_release_is_refused() {
    let f = fixture();
    let d = f.archive.dists();
    let text = std::fs::read_to_string(d.join("Release")).unwrap().replace(
        "Date: Sat, 01 Nov 2025 00:00:00 UTC\n",
        "Date: Sat, 01 Nov 2025 00:00:00 UTC\nValid-Until: Sat, 08 Nov 2025 00:00:00 UTC\n",
    );
    std::fs::write(d.join("Release"), text).unwrap();
    f.archive.sign(&f.key);
    let e = load(&f, &source(&f, &f.key, &f.key.fingerprint))
        .unwrap_err()
        .to_string();
    assert!(e.contains("expired") && e.contains("08 Nov 2025"), "{e}");
}
