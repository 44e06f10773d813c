//! `pistemcell build --check-reproducible` on the default spec (Debian's armhf monit .deb and an
//! ARM stand-in agent, as in tests/os_stages.rs): every stage run twice from scratch, under
//! umask 022 and 077, a second apart, with the same download cache, must give byte-identical
//! stemcells. Two full builds: about 15 minutes on 2 cores. Needs what the other end-to-end
//! tests need (root, emulation, a Debian mirror); skips with the reason otherwise.

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
    let agent = builtins::arm_agent(tmp.path());
    let Some(go) = support::clients::go() else {
        return;
    };
    // The blobstore clients from stand-in trees (the defaults would fetch from GitHub).
    let mut sets = builtins::sets(&monit, &agent, true);
    sets.extend(support::clients::sets(tmp.path(), &go));
    let out = builtins::pistemcell(
        &work,
        &cache,
        &mirror,
        &sets,
        &["build", "--check-reproducible"],
    );
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
    let (a, b) = (
        work.join("reproducible/build-1/stemcells"),
        work.join("reproducible/build-2/stemcells"),
    );
    let name = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "tgz"))
            .unwrap()
    };
    assert_eq!(
        std::fs::read(name(&a)).unwrap(),
        std::fs::read(name(&b)).unwrap()
    );
    let left = pistemcell::rootfs::mounts::mounts_under(tmp.path());
    assert!(left.is_empty(), "left mounted: {left:?}");
}
