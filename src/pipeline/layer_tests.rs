//! Layered snapshots in the store: a chain restores exactly the tree that was saved, whatever
//! the stage did to it, and eviction never removes a base a kept layer needs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::pipeline::key::Manifest;
use crate::pipeline::layer;
use crate::pipeline::snapshot::Store;
use crate::tarwrite::tree::{equal_trees, Mtimes};

fn set_mtime(path: &Path, secs: u64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let f = fs::File::options().read(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

/// A base tree with every kind of entry a stage may replace, all with old mtimes.
fn base_tree(root: &Path) {
    for d in ["etc/d", "usr/lib/gone/deep", "var/becomes-file", "srv"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("etc/same-size"), "aaaa").unwrap();
    fs::write(root.join("etc/d/untouched"), "u").unwrap();
    fs::write(root.join("etc/mode"), "m").unwrap();
    fs::write(root.join("usr/lib/gone/deep/f"), "f").unwrap();
    fs::write(root.join("var/becomes-file/child"), "c").unwrap();
    fs::write(root.join("srv/becomes-dir"), "x").unwrap();
    fs::write(root.join("etc/linked"), "l").unwrap();
    std::os::unix::fs::symlink("same-size", root.join("etc/link-becomes-file")).unwrap();
    for p in ["etc/d/untouched", "etc/same-size", "etc/mode", "etc/linked"] {
        set_mtime(&root.join(p), 1_000_000);
    }
    for d in ["etc/d", "etc", "usr/lib", "var", "srv", ""] {
        set_mtime(&root.join(d), 1_000_000);
    }
}

/// What a stage does: same-size rewrite with the old mtime kept, a mode change, a symlink
/// replaced by a file, a directory by a file and a file by a directory, a subtree deleted, a
/// new hard link, a new file in an untouched directory's parent.
fn stage(root: &Path) {
    fs::write(root.join("etc/same-size"), "bbbb").unwrap();
    set_mtime(&root.join("etc/same-size"), 1_000_000);
    fs::set_permissions(root.join("etc/mode"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(root.join("etc/link-becomes-file")).unwrap();
    fs::write(root.join("etc/link-becomes-file"), "now a file").unwrap();
    fs::remove_dir_all(root.join("var/becomes-file")).unwrap();
    fs::write(root.join("var/becomes-file"), "file").unwrap();
    fs::remove_file(root.join("srv/becomes-dir")).unwrap();
    fs::create_dir(root.join("srv/becomes-dir")).unwrap();
    fs::write(root.join("srv/becomes-dir/in"), "in").unwrap();
    fs::remove_dir_all(root.join("usr/lib/gone")).unwrap();
    fs::hard_link(root.join("etc/linked"), root.join("etc/linked2")).unwrap();
    fs::write(root.join("etc/new"), "new").unwrap();
}

#[test]
fn a_layer_chain_restores_exactly_what_was_saved() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tree = dir.path().join("tree");
    base_tree(&tree);
    let base = Manifest::new("10-a", [("n".to_string(), "1".to_string())].into());
    store.save(&tree, &base).unwrap();
    // The stage starts on a restored tree, as in a build.
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    store.restore(&base.key, "10-a", &work).unwrap();
    // Past the kernel's coarse clock tick, so the restored files do not count as changed.
    std::thread::sleep(std::time::Duration::from_millis(30));
    let before = layer::listing(&work).unwrap();
    stage(&work);
    let delta = layer::delta(&work, &before).unwrap();
    let top = Manifest::new("20-b", [("n".to_string(), "2".to_string())].into());
    let saved = store.save_layer(&top, &base.key, &delta).unwrap();
    // Only what changed and the directories above it (and what was removed): 15 entries,
    // not etc/d nor the untouched file in it.
    assert_eq!(saved.tar.entries, 15, "{:?}", saved.tar);
    // A third stage that changes nothing stores an (almost) empty layer; it starts from the
    // listing the second one's walk left, as in a build.
    let before = delta.into_listing(&work);
    let delta = layer::delta(&work, &before).unwrap();
    let idle = Manifest::new("30-c", [("n".to_string(), "3".to_string())].into());
    let saved = store.save_layer(&idle, &top.key, &delta).unwrap();
    assert!(saved.tar.entries <= 1, "{:?}", saved.tar);
    assert!(store.has(&idle.key) && store.has(&top.key));
    for key in [&top.key, &idle.key] {
        let out = dir.path().join(format!("out-{}", &key[..8]));
        fs::create_dir(&out).unwrap();
        store.restore(key, "x", &out).unwrap();
        equal_trees(&work, &out, Mtimes::Keep).unwrap();
    }
    // A fourth, from the third's listing: a new file and a removed one are its layer.
    let before = delta.into_listing(&work);
    std::thread::sleep(std::time::Duration::from_millis(30));
    fs::write(work.join("etc/fourth"), "4").unwrap();
    fs::remove_file(work.join("etc/new")).unwrap();
    let delta = layer::delta(&work, &before).unwrap();
    assert_eq!(delta.remove, vec![b"etc/new".to_vec()]);
    let last = Manifest::new("40-d", [("n".to_string(), "4".to_string())].into());
    store.save_layer(&last, &idle.key, &delta).unwrap();

    let out = dir.path().join("out-last");
    fs::create_dir(&out).unwrap();
    store.restore(&last.key, "x", &out).unwrap();
    equal_trees(&work, &out, Mtimes::Keep).unwrap();

    // Eviction keeps the bases of what it keeps; a layer without its base is not there.
    store.evict(1).unwrap();
    assert!(store.has(&idle.key) && store.has(&top.key) && store.has(&base.key));
    store.remove(&base.key).unwrap();
    assert!(!store.has(&top.key) && !store.has(&idle.key));
    let out = dir.path().join("out-broken");
    fs::create_dir(&out).unwrap();
    let e = store
        .restore(&top.key, "20-b", &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&base.key), "{e}");
}
