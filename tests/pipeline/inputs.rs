//! Missing inputs and the OS image: a build whose stage cannot get its inputs runs the stages
//! before it and stops there with every missing input in one message; `--os-image`'s tarball
//! turns back into the same tree through the OS image stage.

use std::fs;
use std::path::Path;

use pistemcell::context::BuildContext;
use pistemcell::os_image::{self, Meta, OsImageStage};
use pistemcell::pipeline::{self, CacheState, Outcome, PipelineError, RunOptions, Stage};
use pistemcell::spec::Infrastructure;
use pistemcell::tarwrite::tree::{tree_manifest, Mtimes};

use super::{ctx_in, open_work, outcomes, partials, stages_in, Env, HOST};

/// A stage that needs an input from outside: `prepare` fails unless `have` exists.
struct NeedsInput {
    name: &'static str,
    have: std::path::PathBuf,
}

impl Stage for NeedsInput {
    fn name(&self) -> &str {
        self.name
    }
    fn description(&self) -> &str {
        "installs something fetched"
    }
    fn applies(&self, _: &BuildContext) -> bool {
        true
    }
    fn manifest(&self, _: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        Ok(vec![("input".into(), self.name.into())])
    }
    fn prepare(&self, _: &BuildContext) -> Result<(), PipelineError> {
        if self.have.exists() {
            return Ok(());
        }
        Err(PipelineError::Build {
            stage: self.name.into(),
            source: format!(
                "cannot get {}: give a local copy with --set {}.path=FILE",
                self.have.display(),
                self.name
            )
            .into(),
        })
    }
    fn run(&self, _: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        fs::write(root.join(self.name), "installed").unwrap();
        Ok(())
    }
    fn stemcell_input(&self) -> bool {
        true
    }
}

/// Base, 10-a and 20-b (data stages), 55-monit and 56-agent (need inputs), 70-c (data).
fn list(e: &Env, ctx: &BuildContext) -> Vec<Box<dyn Stage>> {
    let mut list = stages_in(e.dir.path(), ctx, false);
    for name in ["55-monit", "56-agent"] {
        list.push(Box::new(NeedsInput {
            name,
            have: e.path(&format!("inputs/{name}")),
        }));
    }
    pipeline::ordered(list).unwrap()
}

fn stages(e: &Env) {
    e.stage("10-a", HOST, "echo a > \"$ROOTFS/a\"\n");
    e.stage("20-b", HOST, "echo b > \"$ROOTFS/b\"\n");
    e.stage("70-c", HOST, "cat \"$ROOTFS/55-monit\" > \"$ROOTFS/c\"\n");
}

#[test]
fn a_missing_input_stops_the_build_before_its_stage_with_every_missing_input() {
    let e = Env::new();
    stages(&e);
    let ctx = ctx_in(e.dir.path(), Infrastructure::Bakery);
    let work = open_work(&e.path("work"));
    let err = pipeline::run(&ctx, &work, &list(&e, &ctx), &e.opts()).unwrap_err();
    let PipelineError::Stopped {
        stage,
        ran,
        missing,
    } = &err
    else {
        panic!("expected Stopped, got {err}");
    };
    assert_eq!(stage, "55-monit");
    assert_eq!(ran, &["00-base", "10-a", "20-b"]);
    assert_eq!(missing.len(), 2, "{missing:?}");
    let text = err.to_string();
    for want in [
        "before stage 55-monit",
        "--set 55-monit.path=FILE",
        "--set 56-agent.path=FILE",
        "through 20-b",
        "--os-image",
    ] {
        assert!(text.contains(want), "`{want}` missing from: {text}");
    }
    // The stages before it are cached; nothing else is left, the output not written.
    let plan = pipeline::plan(&ctx, &list(&e, &ctx)).unwrap();
    let states: Vec<(&str, &CacheState)> =
        plan.iter().map(|p| (p.name.as_str(), &p.state)).collect();
    assert_eq!(states[2], ("20-b", &CacheState::Cached), "{states:?}");
    assert_eq!(states[3], ("55-monit", &CacheState::NotBuilt), "{states:?}");
    assert!(!e.path("work/rootfs").exists());
    assert!(partials(&e.path("work")).is_empty());

    // Given the inputs, the same build resumes at 55-monit.
    fs::create_dir_all(e.path("inputs/55-monit")).unwrap();
    fs::create_dir_all(e.path("inputs/56-agent")).unwrap();
    let r = pipeline::run(&ctx, &work, &list(&e, &ctx), &e.opts()).unwrap();
    let o = outcomes(&r);
    assert_eq!(o[2], ("20-b".into(), Outcome::Restored), "{o:?}");
    assert!(o[3..].iter().all(|(_, x)| *x == Outcome::Ran), "{o:?}");
    assert_eq!(
        fs::read_to_string(e.path("work/rootfs/c")).unwrap(),
        "installed"
    );
}

#[test]
fn a_missing_input_of_the_first_stage_to_run_stops_at_once() {
    let e = Env::new();
    stages(&e);
    let ctx = ctx_in(e.dir.path(), Infrastructure::Bakery);
    let work = open_work(&e.path("work"));
    let opts = RunOptions {
        from: Some("55-monit".into()),
        ..e.opts()
    };
    // --from 55-monit needs 20-b cached: build it first.
    let until = RunOptions {
        until: Some("20-b".into()),
        ..e.opts()
    };
    pipeline::run(&ctx, &work, &list(&e, &ctx), &until).unwrap();
    let err = pipeline::run(&ctx, &work, &list(&e, &ctx), &opts).unwrap_err();
    assert!(
        matches!(&err, PipelineError::Inputs(m) if m.len() == 2),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was changed"), "{err}");
}

#[test]
fn the_os_image_holds_the_stages_before_the_inputs_and_a_build_from_it_gives_the_same_tree() {
    let e = Env::new();
    stages(&e);
    fs::create_dir_all(e.path("inputs/55-monit")).unwrap();
    fs::create_dir_all(e.path("inputs/56-agent")).unwrap();
    let ctx = ctx_in(e.dir.path(), Infrastructure::Bakery);
    let work = open_work(&e.path("work"));
    let full = pipeline::run(&ctx, &work, &list(&e, &ctx), &e.opts()).unwrap();
    let reference = tree_manifest(&full.output, Mtimes::Ignore).unwrap();

    // The OS image: the stages before the cut, packed with its record.
    let all = list(&e, &ctx);
    let cut = os_image::cut(&all);
    assert_eq!(all[cut].name(), "55-monit");
    let os_opts = RunOptions {
        until: Some("20-b".into()),
        output: e.path("work/os-rootfs"),
        ..Default::default()
    };
    let os = pipeline::run(&ctx, &work, &all, &os_opts).unwrap();
    let keys: Vec<(String, String)> = os
        .stages
        .iter()
        .map(|s| (s.name.clone(), s.key.clone()))
        .collect();
    let meta = Meta::new(&ctx.spec, &keys);
    let dest = e.path("out/os.tgz");
    let written = os_image::write(&os.output, &meta, &dest, 0, 2).unwrap();
    assert_eq!(
        written.sha256,
        pistemcell::archive::cache::file_sha256(&dest).unwrap()
    );
    assert!(fs::read_to_string(e.path("out/os.tgz.sha256"))
        .unwrap()
        .starts_with(&written.sha256));
    assert!(!os.output.join(os_image::META_PATH).exists());
    let back = os_image::read_back(&dest).unwrap().meta;
    let back = back.unwrap();
    assert_eq!(
        (&back.stages, &back.last_key),
        (&meta.stages, &meta.last_key)
    );
    assert_eq!(back.record_dirs, ["var/lib/pistemcell", "var/lib", "var"]);
    assert!(!os.output.join("var").exists());
    assert_eq!(meta.stages, ["00-base", "10-a", "20-b"]);

    // A build from it: the OS image's stage, then the stages from the cut on.
    let image = OsImageStage::open(&dest).unwrap();
    image.check(&ctx.spec).unwrap();
    let mut from: Vec<Box<dyn Stage>> = vec![Box::new(image)];
    from.extend(list(&e, &ctx).split_off(cut));
    let out = RunOptions {
        output: e.path("work/from-image"),
        ..Default::default()
    };
    let r = pipeline::run(&ctx, &work, &from, &out).unwrap();
    assert_eq!(
        outcomes(&r)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["00-os-image", "55-monit", "56-agent", "70-c"]
    );
    // Same files, owners, modes and contents (the OS image's tar clamps mtimes to its epoch).
    let got = tree_manifest(&r.output, Mtimes::Ignore).unwrap();
    assert_eq!(got, reference);
}

#[test]
fn an_os_image_for_another_target_or_not_one_at_all_is_refused_by_name() {
    let e = Env::new();
    let ctx = ctx_in(e.dir.path(), Infrastructure::Bakery);
    let tree = e.path("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/x"), "x").unwrap();
    let mut meta = Meta::new(&ctx.spec, &[("00-base".into(), "k".into())]);
    meta.architecture = "arm64".into();
    let dest = e.path("os.tgz");
    os_image::write(&tree, &meta, &dest, 0, 2).unwrap();
    let err = OsImageStage::open(&dest)
        .unwrap()
        .check(&ctx.spec)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("arm64") && err.contains("armhf") && err.contains("--set architecture=arm64"),
        "{err}"
    );

    // A rootfs tarball without the record.
    let plain = e.path("plain.tgz");
    pistemcell::pack::tarball::write_tgz(&tree, &plain, 0, 6, 2).unwrap();
    let err = OsImageStage::open(&plain).unwrap_err().to_string();
    assert!(
        err.contains("is not a pistemcell OS image") && err.contains("--os-image"),
        "{err}"
    );
    // A file that is no tarball at all.
    fs::write(e.path("junk.tgz"), "junk").unwrap();
    let err = OsImageStage::open(&e.path("junk.tgz"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("junk.tgz"), "{err}");
}
