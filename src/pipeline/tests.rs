//! Unit tests: stage loading and checks, `when:` filtering, keys, the snapshot store.

use std::fs;
use std::path::{Path, PathBuf};

use super::key::Manifest;
use super::snapshot::Store;
use super::stage::{load_all, valid_stage_name, DataStage};
use super::*;
use crate::context::{BuildContext, Settings};
use crate::progress::{Reporter, Verbosity};
use crate::spec::{self, Infrastructure, Resolved, Spec};
use crate::tarwrite::tree::{tree_manifest, Mtimes};

fn spec_with(infra: Infrastructure) -> Resolved {
    spec::resolve(
        "t".into(),
        Spec {
            infrastructure: Some(infra),
            ..Default::default()
        },
    )
    .unwrap()
}

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let r = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(r.dir.path().join("stages")).unwrap();
        fs::create_dir_all(r.dir.path().join("assets/infrastructure/bakery")).unwrap();
        fs::write(
            r.dir.path().join("assets/infrastructure/bakery/agent.json"),
            "{}",
        )
        .unwrap();
        fs::write(r.dir.path().join("assets/other.txt"), "o").unwrap();
        r
    }

    fn source(&self) -> StageSource {
        StageSource::new(
            Some(&self.dir.path().join("stages")),
            Some(&self.dir.path().join("assets")),
        )
    }

    fn stage(&self, name: &str, yml: &str, script: Option<&str>) -> PathBuf {
        let d = self.dir.path().join("stages").join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("stage.yml"), yml).unwrap();
        if let Some(s) = script {
            fs::write(d.join("apply.sh"), s).unwrap();
        }
        d
    }

    fn ctx(&self, spec: Resolved) -> BuildContext {
        let p = self.dir.path();
        BuildContext::new(
            spec,
            Settings::new(&p.join("work"), &p.join("cache")),
            Reporter::new(Verbosity::Quiet),
        )
    }

    fn load(&self, spec: &Resolved) -> Result<Vec<DataStage>, PipelineError> {
        load_all(&self.source(), spec)
    }
}

#[test]
fn stage_names_are_two_digits_a_dash_and_a_slug() {
    for ok in ["10-base", "99-x", "20-sshd-hardening", "05-a1"] {
        assert!(valid_stage_name(ok), "{ok}");
    }
    for bad in [
        "1-base", "base", "10_base", "10-Base", "10-", "100-x", "10-a-", "10 x",
    ] {
        assert!(!valid_stage_name(bad), "{bad}");
    }
}

#[test]
fn stages_load_in_name_order_and_files_and_hidden_entries_are_ignored() {
    let r = Repo::new();
    r.stage("30-c", "description: c\nrun: host\n", Some("true"));
    r.stage("10-a", "description: a\n", Some("true"));
    r.stage("20-b", "description: b\npackages: [less]\n", None);
    fs::write(r.dir.path().join("stages/README.md"), "x").unwrap();
    fs::create_dir(r.dir.path().join("stages/.git")).unwrap();
    let spec = spec_with(Infrastructure::Bakery);
    let names: Vec<String> = r.load(&spec).unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["10-a", "20-b", "30-c"]);
}

#[test]
fn bad_stages_are_refused_with_file_and_reason() {
    let spec = spec_with(Infrastructure::Bakery);
    let cases: &[(&str, &str, Option<&str>, &[&str])] = &[
        ("1-x", "description: d\n", Some("true"), &["NN-name"]),
        (
            "10-x",
            "description: d\nfrob: 1\n",
            Some("true"),
            &["stage.yml", "unknown field `frob`", "line 2 column 1"],
        ),
        (
            "10-x",
            "run: chroot\n",
            Some("true"),
            &["missing field `description`"],
        ),
        (
            "10-x",
            "description: d\nrun: vm\n",
            Some("true"),
            &["unknown variant `vm`", "chroot", "host"],
        ),
        ("10-x", "description: d\n", None, &["no apply.sh"]),
        (
            "10-x",
            "description: d\nreads: [stemcel.version]\n",
            Some("true"),
            &["stemcel.version", "not a spec key"],
        ),
        (
            "10-x",
            "description: d\nwhen: {infrastructures: [aws]}\n",
            Some("true"),
            &["when.infrastructures", "aws", "bakery, raw, warden"],
        ),
        (
            "10-x",
            "description: d\nwhen: {init: [sysv]}\n",
            Some("true"),
            &["when.init", "sysv", "systemd"],
        ),
        (
            "10-x",
            "description: d\nwhen: {spec: {dev_tool: true}}\n",
            Some("true"),
            &["when.spec", "`dev_tool`", "not a spec key"],
        ),
        (
            "10-x",
            "description: d\nwhen: {spec: {dev_tools: yes please}}\n",
            Some("true"),
            &["when.spec.dev_tools", "`yes please`", "true or false"],
        ),
        (
            "10-x",
            "description: d\nwhen: {spec: {dev_tools: {a: 1}}}\n",
            Some("true"),
            &["when.spec.dev_tools", "a list of values"],
        ),
        (
            "10-x",
            "description: d\nwhen: {colour: [red]}\n",
            Some("true"),
            &["unknown field `colour`"],
        ),
        (
            "10-x",
            "description: d\npackages: [Bad_Name]\n",
            None,
            &["Bad_Name"],
        ),
        (
            "10-x",
            "description: d\nassets: [../etc/passwd]\n",
            Some("true"),
            &["../etc/passwd"],
        ),
        (
            "10-x",
            "description: d\nassets: [missing.json]\n",
            Some("true"),
            &["missing.json"],
        ),
    ];
    for (name, yml, script, wants) in cases {
        let r = Repo::new();
        r.stage(name, yml, *script);
        let e = r.load(&spec).unwrap_err().to_string();
        assert!(e.contains(name), "{yml}: {e}");
        for w in *wants {
            assert!(e.contains(w), "{yml}: `{w}` not in: {e}");
        }
    }
    let r = Repo::new();
    fs::create_dir(r.dir.path().join("stages/10-x")).unwrap();
    let e = r.load(&spec).unwrap_err().to_string();
    assert!(e.contains("10-x") && e.contains("stage.yml"), "{e}");
}

#[test]
fn when_filters_by_every_list_and_says_why() {
    let r = Repo::new();
    r.stage("10-all", "description: d\n", Some("true"));
    r.stage(
        "20-warden",
        "description: d\nwhen: {infrastructures: [warden]}\n",
        Some("true"),
    );
    r.stage(
        "30-debian-armhf",
        "description: d\nwhen: {distros: [debian], architectures: [armhf], init: [systemd]}\n",
        Some("true"),
    );
    r.stage(
        "40-trusty",
        "description: d\nwhen: {profiles: [ubuntu-trusty]}\n",
        Some("true"),
    );
    let spec = spec_with(Infrastructure::Bakery);
    let ctx = r.ctx(spec.clone());
    let reasons: Vec<(String, Option<String>)> = r
        .load(&spec)
        .unwrap()
        .iter()
        .map(|s| (s.name.clone(), Stage::skip_reason(s, &ctx)))
        .collect();
    assert_eq!(
        reasons,
        [
            ("10-all".to_string(), None),
            (
                "20-warden".into(),
                Some("when.infrastructures [warden] excludes bakery".into())
            ),
            ("30-debian-armhf".into(), None),
            (
                "40-trusty".into(),
                Some("when.profiles [ubuntu-trusty] excludes debian-bookworm".into())
            ),
        ]
    );
    let warden = r.ctx(spec_with(Infrastructure::Warden));
    let s = &r.load(&warden.spec).unwrap()[1];
    assert!(s.applies(&warden));
}

#[test]
fn when_spec_follows_the_specs_values() {
    let r = Repo::new();
    r.stage(
        "12-tools",
        "description: d\nwhen: {spec: {dev_tools: true}}\n",
        Some("true"),
    );
    r.stage(
        "13-old",
        "description: d\nwhen: {spec: {stemcell.version: [\"0.0.1\", 1.5]}}\n",
        Some("true"),
    );
    let reasons = |sets: &[&str]| -> Vec<Option<String>> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let spec = spec::resolve("t".into(), spec::parse("t", "", &sets).unwrap()).unwrap();
        let ctx = r.ctx(spec.clone());
        let stages = r.load(&spec).unwrap();
        stages.iter().map(|s| Stage::skip_reason(s, &ctx)).collect()
    };
    assert_eq!(reasons(&[]), [None, None]);
    assert_eq!(
        reasons(&["dev_tools=false", "stemcell.version='1.5'"]),
        [
            Some("when.spec.dev_tools [true] excludes false".into()),
            None
        ]
    );
    assert_eq!(
        reasons(&["stemcell.version='2.0'"])[1],
        Some("when.spec.stemcell.version [0.0.1, 1.5] excludes 2.0".into())
    );
}

fn key_of(r: &Repo, ctx: &BuildContext) -> Vec<(String, String)> {
    r.load(&ctx.spec)
        .unwrap()
        .iter()
        .map(|s| {
            let m = Manifest::new(&s.name, s.inputs(ctx).unwrap().into_iter().collect());
            (s.name.clone(), m.key)
        })
        .collect()
}

#[test]
fn keys_change_with_stage_files_declared_assets_and_read_values_only() {
    let r = Repo::new();
    let d = r.stage(
        "10-a",
        "description: d\nreads: [infrastructure]\nassets: [infrastructure/bakery]\n",
        Some("echo a"),
    );
    fs::create_dir_all(d.join("files/etc")).unwrap();
    fs::write(d.join("files/etc/motd"), "hi").unwrap();
    let all = r.stage("20-all-assets", "description: d\n", Some("true"));
    let bakery = r.ctx(spec_with(Infrastructure::Bakery));
    let base = key_of(&r, &bakery);
    let assert_changed = |what: &str, a_changes: bool, all_changes: bool| {
        let now = key_of(&r, &bakery);
        assert_eq!(now[0].1 != base[0].1, a_changes, "10-a after {what}");
        assert_eq!(
            now[1].1 != base[1].1,
            all_changes,
            "20-all-assets after {what}"
        );
    };
    // Nothing changed: same keys.
    assert_changed("nothing", false, false);
    // An undeclared spec value (stemcell.version) and an undeclared asset do not count.
    let other = r.ctx(
        spec::resolve(
            "t".into(),
            Spec {
                stemcell: Some(spec::StemcellSpec {
                    name: None,
                    version: Some("9.9".into()),
                    operating_system: None,
                }),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    assert_eq!(key_of(&r, &other), base);
    fs::write(r.dir.path().join("assets/other.txt"), "changed").unwrap();
    assert_changed("an undeclared asset", false, true);
    fs::write(r.dir.path().join("assets/other.txt"), "o").unwrap();
    assert_changed("reverting it", false, false);
    // A declared spec value does.
    let raw = r.ctx(spec_with(Infrastructure::Raw));
    let now = key_of(&r, &raw);
    assert_ne!(now[0].1, base[0].1);
    assert_eq!(
        now[1].1, base[1].1,
        "20-all-assets does not read infrastructure"
    );
    // Stage files, files/ and declared assets do.
    fs::write(d.join("apply.sh"), "echo b").unwrap();
    assert_changed("apply.sh", true, false);
    fs::write(d.join("apply.sh"), "echo a").unwrap();
    fs::write(d.join("files/etc/motd"), "ho").unwrap();
    assert_changed("files/etc/motd", true, false);
    fs::write(d.join("files/etc/motd"), "hi").unwrap();
    fs::write(
        r.dir.path().join("assets/infrastructure/bakery/agent.json"),
        "[]",
    )
    .unwrap();
    assert_changed("a declared asset", true, true);
    fs::write(
        r.dir.path().join("assets/infrastructure/bakery/agent.json"),
        "{}",
    )
    .unwrap();
    fs::write(all.join("stage.yml"), "description: e\n").unwrap();
    assert_changed("stage.yml", false, true);
}

#[test]
fn duplicate_stage_names_are_refused() {
    let r = Repo::new();
    r.stage("00-bootstrap", "description: a\n", Some("true"));
    let twice = || -> Box<dyn Stage> {
        Box::new(
            r.load(&spec_with(Infrastructure::Bakery))
                .unwrap()
                .remove(0),
        )
    };
    let e = ordered(vec![twice(), twice()])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("00-bootstrap"), "{e}");
}

fn small_tree(root: &Path, content: &str) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/x"), content).unwrap();
}

fn touch_back(path: &Path, secs_ago: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn eviction_keeps_the_newest_per_stage_and_removes_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tree = dir.path().join("tree");
    let mut keys = Vec::new();
    for (stage, n) in [("10-a", 0), ("10-a", 1), ("10-a", 2), ("20-b", 0)] {
        small_tree(&tree, &format!("{stage}{n}"));
        let m = Manifest::new(stage, [("n".to_string(), n.to_string())].into());
        store.save(&tree, &m).unwrap();
        touch_back(&store.tar_path(&m.key), 100 - n as u64);
        keys.push(m.key);
    }
    // A tar whose manifest was never written (killed between the two renames), long ago.
    let orphan = store.tar_path("0000");
    fs::write(&orphan, "x").unwrap();
    touch_back(&orphan, 3600);
    let removed = evict(dir.path(), 2).unwrap();
    assert!(!store.has(&keys[0]), "the oldest 10-a snapshot goes");
    assert!(store.has(&keys[1]) && store.has(&keys[2]) && store.has(&keys[3]));
    assert!(!orphan.exists());
    assert_eq!(removed.len(), 3, "{removed:?}");
    evict(dir.path(), 0).unwrap();
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn temporary_files_of_dead_writers_are_swept_but_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    crate::owned::claim(dir.path(), crate::owned::Kind::Cache).unwrap();
    let stages = dir.path().join("stages");
    fs::create_dir_all(&stages).unwrap();
    let dead = stages.join(".tmp.1.0.k.tar.zst");
    fs::write(&dead, "half").unwrap();
    let live = stages.join(".tmp.2.0.k.tar.zst");
    let f = fs::File::create(&live).unwrap();
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    Store::open(dir.path()).unwrap();
    assert!(!dead.exists());
    assert!(live.exists());
}

#[test]
fn a_corrupt_snapshot_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tree = dir.path().join("tree");
    small_tree(&tree, "x");
    let m = Manifest::new("10-a", Default::default());
    store.save(&tree, &m).unwrap();
    let bytes = fs::read(store.tar_path(&m.key)).unwrap();
    fs::write(store.tar_path(&m.key), &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let e = store.restore(&m.key, "10-a", &out).unwrap_err().to_string();
    assert!(
        e.contains("10-a") && e.contains(&m.key) && e.contains("--force"),
        "{e}"
    );
}

#[test]
fn copies_keep_modes_and_symlinks() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("files/empty")).unwrap();
    fs::write(src.join("files/run"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("files/run"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("run", src.join("files/link")).unwrap();
    let dst = dir.path().join("dst");
    script::copy_tree(&src, &dst).unwrap();
    assert_eq!(
        tree_manifest(&src, Mtimes::Ignore).unwrap(),
        tree_manifest(&dst, Mtimes::Ignore).unwrap()
    );
}

#[test]
fn every_documented_stage_field_parses() {
    let mut yml = String::new();
    let mut when = String::new();
    for (name, ..) in stage::STAGE_FIELDS {
        let value = match *name {
            "description" => "d",
            "run" => "host",
            _ => "[]",
        };
        match name.strip_prefix("when.") {
            Some("spec") => {
                when.push_str("  spec: {dev_tools: [true, false], stemcell.version: 1.0}\n")
            }
            Some(sub) => when.push_str(&format!("  {sub}: []\n")),
            None => yml.push_str(&format!("{name}: {value}\n")),
        }
    }
    yml.push_str(&format!("when:\n{when}"));
    let f: stage::StageFile = serde_norway::from_str(&yml).unwrap();
    assert_eq!(f.run, stage::RunIn::Host);
    assert_eq!(f.when.init, Some(vec![]));
    let spec = f.when.spec.unwrap();
    assert_eq!(spec["dev_tools"], ["true", "false"]);
    assert_eq!(spec["stemcell.version"], ["1.0"]);
}
