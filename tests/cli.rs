//! The command line, hermetically: spec errors, `build`'s "not yet", `clean`, and bootstraps
//! against a fixture archive on 127.0.0.1 that must fail safely (hostile package, missing
//! dependency, archive signed by another key) without touching the host or leaving anything.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use pistemcell::deb::build::{DebBuilder, Kind, TestEntry};
use support::{Archive, Key, Pkg, Server};

fn pistemcell(work: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .arg("--work-dir")
        .arg(work.join("work"))
        .arg("--cache-dir")
        .arg(work.join("cache"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn spec_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yml");
    std::fs::write(&spec, "architecture: arm64\nmonti: {version: 5.2.5}\n").unwrap();
    let o = pistemcell(dir.path(), &["bootstrap", spec.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("spec.yml")
            && e.contains("unknown field `monti`")
            && e.contains("line 2 column 1"),
        "{e}"
    );
    // A pinned input with two sources, and an agent given as a bare string.
    std::fs::write(
        &spec,
        "monit:\n  deb: {path: a.deb, sha256: 00}\n  binary: {path: m, sha256: 00}\n",
    )
    .unwrap();
    let e = stderr(&pistemcell(dir.path(), &["stages", spec.to_str().unwrap()]));
    assert!(
        e.contains("give exactly one of source, deb and binary"),
        "{e}"
    );
    std::fs::write(&spec, "agent: /usr/bin/bosh-agent\n").unwrap();
    let e = stderr(&pistemcell(dir.path(), &["stages", spec.to_str().unwrap()]));
    assert!(
        e.contains("spec.yml") && e.contains("line 1 column 8"),
        "{e}"
    );

    let o = pistemcell(dir.path(), &["bootstrap", "/nonexistent/spec.yml"]);
    assert!(
        stderr(&o).contains("cannot read spec /nonexistent/spec.yml"),
        "{}",
        stderr(&o)
    );

    let o = pistemcell(dir.path(), &["--set", "architecture=sparc", "doctor"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--set architecture=sparc"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn inspect_names_what_is_wrong_and_unknown_stage_names_list_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let o = pistemcell(dir.path(), &["inspect", "x.tgz"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("x.tgz: No such file"), "{}", stderr(&o));
    let not_gz = dir.path().join("spec.yml");
    std::fs::write(&not_gz, "profile: debian-bookworm\n").unwrap();
    let o = pistemcell(dir.path(), &["inspect", not_gz.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("spec.yml"), "{}", stderr(&o));
    for flag in ["--only", "--from", "--until"] {
        let o = pistemcell(dir.path(), &["build", flag, "99-nope"]);
        let e = stderr(&o);
        assert!(!o.status.success());
        assert!(
            e.contains("99-nope") && e.contains("00-bootstrap") && e.contains("90-cleanup"),
            "{flag}: {e}"
        );
    }
}

#[test]
fn check_reproducible_against_refuses_what_is_not_a_stemcell_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("earlier.tgz");
    let o = pistemcell(
        dir.path(),
        &[
            "build",
            "--check-reproducible-against",
            missing.to_str().unwrap(),
        ],
    );
    let e = stderr(&o);
    assert!(!o.status.success());
    assert!(
        e.contains("earlier.tgz") && e.contains("No such file"),
        "{e}"
    );
    std::fs::write(&missing, "not a stemcell").unwrap();
    let o = pistemcell(
        dir.path(),
        &[
            "build",
            "--check-reproducible-against",
            missing.to_str().unwrap(),
        ],
    );
    let e = stderr(&o);
    assert!(!o.status.success());
    assert!(
        e.contains("earlier.tgz") && e.contains("give the .tgz of a stemcell built earlier"),
        "{e}"
    );
    let o = pistemcell(
        dir.path(),
        &[
            "build",
            "--check-reproducible-against",
            dir.path().to_str().unwrap(),
        ],
    );
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    // Nothing was built.
    assert!(!dir.path().join("work/reproducible").exists());
}

#[test]
fn clean_empties_the_work_dir_and_with_cache_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("work/rootfs/etc")).unwrap();
    std::fs::create_dir_all(dir.path().join("cache/debs/ab")).unwrap();
    // What pistemcell made carries its marker (`clean` refuses anything else: tests/hostile).
    std::fs::write(dir.path().join("work/.pistemcell-work-dir"), "").unwrap();
    std::fs::write(dir.path().join("cache/.pistemcell-cache"), "").unwrap();
    assert!(pistemcell(dir.path(), &["clean"]).status.success());
    assert!(!dir.path().join("work/rootfs").exists());
    assert!(dir.path().join("cache/debs").exists());
    assert!(pistemcell(dir.path(), &["clean", "--cache"])
        .status
        .success());
    assert!(!dir.path().join("cache/debs").exists());
    assert!(dir.path().join("cache/.pistemcell-cache").exists());
}

/// Can this host run a bootstrap up to extraction (root and ARM emulation)?
fn can_bootstrap() -> bool {
    if !support::is_root() {
        eprintln!("SKIPPED: bootstrap tests need root");
        return false;
    }
    if let Err(e) = pistemcell::rootfs::binfmt::ensure(pistemcell::spec::Arch::Armhf) {
        eprintln!("SKIPPED: {e}");
        return false;
    }
    true
}

struct Fixture {
    dir: tempfile::TempDir,
    key: Key,
    _archive: Archive,
    server: Server,
}

fn fixture(debs: &[std::path::PathBuf], key: Key) -> Fixture {
    let archive = Archive::publish_debs(debs, "bookworm", "armhf", &key);
    let server = Server::start(archive.root.path());
    Fixture {
        dir: tempfile::tempdir().unwrap(),
        key,
        _archive: archive,
        server,
    }
}

fn bootstrap(f: &Fixture, pinned: &str, packages: &str) -> Output {
    pistemcell(
        f.dir.path(),
        &[
            "--mirror",
            &f.server.url,
            "--set",
            &format!("keyring={}", f.key.public.display()),
            "--set",
            &format!("keyring_fingerprints=[{pinned}]"),
            "--set",
            &format!("variant={{packages: [{packages}]}}"),
            "bootstrap",
        ],
    )
}

fn assert_nothing_left(f: &Fixture) {
    let work = f.dir.path().join("work");
    assert!(pistemcell::rootfs::mounts::mounts_under(&work).is_empty());
    let left: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock" && n != "logs" && n != ".pistemcell-work-dir")
        .collect();
    assert!(left.is_empty(), "work dir keeps {left:?}");
}

#[test]
fn hostile_package_is_refused_and_the_host_is_untouched() {
    if !can_bootstrap() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    // A sentinel the hostile entries aim at, relative to where the rootfs is built.
    let sentinel = scratch.path().join("sentinel");
    std::fs::write(&sentinel, "untouched").unwrap();
    let cases: Vec<(&str, TestEntry)> = vec![
        (
            "dotdot",
            TestEntry::new(
                "./../../../../../../../../tmp/pistemcell-escape",
                Kind::File(b"x".to_vec()),
                0o644,
            ),
        ),
        (
            "absolute",
            TestEntry::new(
                sentinel.to_str().unwrap(),
                Kind::File(b"overwritten".to_vec()),
                0o644,
            ),
        ),
        (
            "hardlink",
            TestEntry::new("./shadow", Kind::HardLink(b"/etc/shadow".to_vec()), 0o644),
        ),
    ];
    for (name, entry) in cases {
        let deb = scratch.path().join(format!("evil-{name}_1.0_armhf.deb"));
        let mut b = DebBuilder::new(&format!("evil-{name}"), "1.0", "armhf");
        b.dir("./", 0o755).entry(entry);
        b.write(&deb).unwrap();
        let f = fixture(&[deb], Key::generate("fixture"));
        let o = bootstrap(&f, &f.key.fingerprint.clone(), &format!("evil-{name}"));
        let e = stderr(&o);
        assert!(!o.status.success(), "{name}: {e}");
        assert!(
            e.contains(&format!("evil-{name}")),
            "{name}: the error names the package: {e}"
        );
        assert_eq!(std::fs::read_to_string(&sentinel).unwrap(), "untouched");
        assert!(!Path::new("/tmp/pistemcell-escape").exists());
        assert_nothing_left(&f);
    }

    // A symlink to the host's /tmp, then a file written through it: the write stays inside
    // the rootfs (the link is resolved as if the rootfs were `/`). The fixture has no shell,
    // so the bootstrap then stops before configuring, and removes its tree.
    let deb = scratch.path().join("evil-symlink_1.0_armhf.deb");
    let mut b = DebBuilder::new("evil-symlink", "1.0", "armhf");
    b.dir("./", 0o755)
        .entry(TestEntry::new(
            "./evil",
            Kind::Symlink(b"/tmp".to_vec()),
            0o777,
        ))
        .entry(TestEntry::new(
            "./evil/pistemcell-escape",
            Kind::File(b"x".to_vec()),
            0o644,
        ));
    b.write(&deb).unwrap();
    let f = fixture(&[deb], Key::generate("fixture"));
    let o = bootstrap(&f, &f.key.fingerprint.clone(), "evil-symlink");
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(e.contains("/bin/sh does not run"), "{e}");
    assert!(
        !Path::new("/tmp/pistemcell-escape").exists(),
        "the write escaped to the host"
    );
    assert_nothing_left(&f);
}

#[test]
fn missing_dependency_stops_the_bootstrap_naming_it() {
    if !can_bootstrap() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let deb = Pkg::new("needs-ghost", "1.0", &["Depends: ghost (>= 2)"]).build(scratch.path());
    let f = fixture(&[deb], Key::generate("fixture"));
    let o = bootstrap(&f, &f.key.fingerprint.clone(), "needs-ghost");
    let e = stderr(&o);
    assert!(!o.status.success());
    assert!(e.contains("needs-ghost") && e.contains("ghost"), "{e}");
    assert_nothing_left(&f);
}

#[test]
fn archive_signed_by_an_unpinned_key_is_refused() {
    if !can_bootstrap() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let deb = Pkg::new("hello", "1.0", &[]).build(scratch.path());
    let f = fixture(&[deb], Key::generate("fixture"));
    let other = Key::generate("other");
    let o = bootstrap(&f, &other.fingerprint, "hello");
    let e = stderr(&o);
    assert!(!o.status.success());
    assert!(
        e.contains(&other.fingerprint) || e.contains("keyring"),
        "{e}"
    );
    assert!(
        !f.dir.path().join("cache/debs").exists(),
        "nothing was downloaded"
    );
}
