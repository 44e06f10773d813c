//! `pistemcell build --check-reproducible` on the default spec (Debian's armhf monit .deb and an
//! ARM stand-in agent, as in tests/os_stages.rs): every stage run twice from scratch, under
//! umask 022 and 077, a second apart, with the same download cache, must give byte-identical
//! stemcells. When tests/os_stages.rs has just built the same spec from the same inputs from
//! scratch (`--force`, umask 022), its stemcell is the first build
//! (`--check-reproducible-against`) and only the second runs here; otherwise both do (about 8
//! minutes each on 2 cores). Needs what the other end-to-end tests need (root, emulation, a
//! Debian mirror); skips with the reason otherwise.

#[path = "os_stages/builtins.rs"]
#[allow(dead_code)]
mod builtins;
mod support;

use std::path::Path;

#[test]
fn the_default_spec_built_twice_from_scratch_gives_the_same_stemcell() {
    let Some(mirror) = support::mirror_for_e2e("reproducible") else {
        return;
    };
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mirror-cache");
    let work = tmp.path().join("work");
    let monit = builtins::debian_monit(&mirror);
    let shared = builtins::shared_dir();
    let agent = builtins::arm_agent(&shared);
    let Some(go) = support::clients::go() else {
        return;
    };
    // The blobstore clients from stand-in trees (the defaults would fetch from GitHub).
    let mut sets = builtins::sets(&monit, &agent, true);
    sets.extend(support::clients::sets(&shared, &go));
    let reference = builtins::reference(&mirror, &sets);
    let mut args = vec!["build"];
    match &reference {
        Some(r) => args.extend(["--check-reproducible-against", r.to_str().unwrap()]),
        None => args.push("--check-reproducible"),
    }
    let out = builtins::pistemcell(&work, &cache, &mirror, &sets, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the two builds differ or failed:\n{}",
        stderr
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        stderr.contains("reproducible: both builds wrote"),
        "{stderr}"
    );
    let name = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "tgz"))
            .unwrap()
    };
    let first = reference
        .clone()
        .unwrap_or_else(|| name(&work.join("reproducible/build-1/stemcells")));
    let second = name(&work.join("reproducible/build-2/stemcells"));
    assert_eq!(first.file_name(), second.file_name());
    assert_eq!(
        std::fs::read(first).unwrap(),
        std::fs::read(second).unwrap()
    );
    let left = pistemcell::rootfs::mounts::mounts_under(tmp.path());
    assert!(left.is_empty(), "left mounted: {left:?}");
}
