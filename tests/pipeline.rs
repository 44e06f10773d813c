//! The stage pipeline through its library API, without network: a small fake first stage
//! instead of the bootstrap, and data stages in a temporary `stages/` directory (host-run,
//! plus chroot stages in a chroot made of the host's own bash when running as root).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pistemcell::context::{BuildContext, Settings};
use pistemcell::pipeline::{
    self, snapshot::Store, stage, CacheState, Outcome, PipelineError, RunOptions, RunReport, Stage,
    StageSource,
};
use pistemcell::progress::{Reporter, Verbosity};
use pistemcell::spec::{self, Infrastructure, Spec};
use pistemcell::workdir::WorkDir;

#[path = "pipeline/inputs.rs"]
mod inputs;
#[path = "pipeline/interrupt.rs"]
mod interrupt;
#[path = "pipeline/resume.rs"]
mod resume;
#[path = "pipeline/roundtrip.rs"]
mod roundtrip;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The fake first stage: a small tree, optionally with the host's bash to chroot into.
struct Base {
    version: &'static str,
    bash: bool,
}

impl Stage for Base {
    fn name(&self) -> &str {
        "00-base"
    }
    fn description(&self) -> &str {
        "a small fake rootfs"
    }
    fn applies(&self, _: &BuildContext) -> bool {
        true
    }
    fn manifest(&self, _: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        Ok(vec![("base".into(), self.version.into())])
    }
    fn run(&self, _: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(root.join("tmp")).unwrap();
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::write(root.join("etc/base"), self.version).unwrap();
        std::os::unix::fs::symlink("base", root.join("etc/base-link")).unwrap();
        if self.bash {
            copy_with_libs(Path::new("/bin/bash"), root);
        }
        Ok(())
    }
}

/// Copies `bin` and the libraries `ldd` names into `root` at the same paths.
fn copy_with_libs(bin: &Path, root: &Path) {
    let out = Command::new("ldd").arg(bin).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut files = vec![bin.to_path_buf()];
    for word in text.split_whitespace() {
        if word.starts_with('/') {
            files.push(PathBuf::from(word));
        }
    }
    for f in files {
        let dest = root.join(f.strip_prefix("/").unwrap());
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(fs::canonicalize(&f).unwrap(), &dest).unwrap();
    }
}

/// A temporary repository (stages, assets), work dir and cache.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let e = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(e.path("stages")).unwrap();
        fs::create_dir_all(e.path("assets/conf")).unwrap();
        fs::write(e.path("assets/conf/agent.json"), "{\"x\":1}\n").unwrap();
        // As pistemcell makes them: tests write into them before a build opens them.
        pistemcell::owned::claim(&e.path("work"), pistemcell::owned::Kind::WorkDir).unwrap();
        pistemcell::owned::claim(&e.path("cache"), pistemcell::owned::Kind::Cache).unwrap();
        e
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn stage(&self, name: &str, yml: &str, script: &str) {
        let d = self.path("stages").join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("stage.yml"), yml).unwrap();
        fs::write(d.join("apply.sh"), script).unwrap();
    }

    fn ctx(&self, infra: Infrastructure) -> BuildContext {
        ctx_in(self.dir.path(), infra)
    }

    fn stages(&self, ctx: &BuildContext, bash: bool) -> Vec<Box<dyn Stage>> {
        stages_in(self.dir.path(), ctx, bash)
    }

    fn build(&self, infra: Infrastructure, opts: RunOptions) -> Result<RunReport, PipelineError> {
        build_in(self.dir.path(), infra, opts, false)
    }

    fn opts(&self) -> RunOptions {
        RunOptions {
            output: self.path("work/rootfs"),
            ..Default::default()
        }
    }
}

fn ctx_in(dir: &Path, infra: Infrastructure) -> BuildContext {
    let spec = spec::resolve(
        "test".into(),
        Spec {
            infrastructure: Some(infra),
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

fn stages_in(dir: &Path, ctx: &BuildContext, bash: bool) -> Vec<Box<dyn Stage>> {
    let source = StageSource::new(Some(&dir.join("stages")), Some(&dir.join("assets")));
    let mut list: Vec<Box<dyn Stage>> = vec![Box::new(Base { version: "1", bash })];
    for s in stage::load_all(&source, &ctx.spec).unwrap() {
        list.push(Box::new(s));
    }
    pipeline::ordered(list).unwrap()
}

fn build_in(
    dir: &Path,
    infra: Infrastructure,
    opts: RunOptions,
    bash: bool,
) -> Result<RunReport, PipelineError> {
    let ctx = ctx_in(dir, infra);
    let stages = stages_in(dir, &ctx, bash);
    let work = open_work(&dir.join("work"));
    pipeline::run(&ctx, &work, &stages, &opts)
}

/// Opens the work dir, waiting while its lock is briefly held by a process another test
/// thread is forking (the child has a copy of the lock's descriptor until it execs).
fn open_work(path: &Path) -> WorkDir {
    let t = std::time::Instant::now();
    loop {
        match WorkDir::open(path) {
            Ok((w, _)) => return w,
            Err(pistemcell::workdir::WorkDirError::Locked { .. })
                if t.elapsed() < std::time::Duration::from_secs(10) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn outcomes(r: &RunReport) -> Vec<(String, Outcome)> {
    r.stages
        .iter()
        .map(|s| (s.name.clone(), s.outcome))
        .collect()
}

const HOST: &str = "description: d\nrun: host\n";

/// Three host stages: a writes, b reads the infrastructure, c appends; w only for warden.
fn three_stages(e: &Env) {
    e.stage(
        "10-a",
        HOST,
        "echo a > \"$ROOTFS/a\"\nmkdir -p \"$ROOTFS/var/a\"\n",
    );
    e.stage(
        "20-b",
        "description: d\nrun: host\nreads: [infrastructure]\n",
        "echo \"$INFRASTRUCTURE $SPEC_INFRASTRUCTURE\" > \"$ROOTFS/b\"\n",
    );
    e.stage(
        "30-c",
        HOST,
        "cat \"$ROOTFS/a\" \"$ROOTFS/b\" > \"$ROOTFS/c\"\n",
    );
    e.stage(
        "40-w",
        "description: d\nrun: host\nwhen: {infrastructures: [warden]}\n",
        "touch \"$ROOTFS/w\"\n",
    );
}

#[test]
fn plan_says_cached_stale_with_the_changed_input_or_skipped_with_the_reason() {
    let e = Env::new();
    three_stages(&e);
    let ctx = e.ctx(Infrastructure::Bakery);
    let states = |ctx: &BuildContext| -> Vec<(String, CacheState)> {
        pipeline::plan(ctx, &e.stages(ctx, false))
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.state))
            .collect()
    };
    let skipped = CacheState::Skipped {
        reason: "when.infrastructures [warden] excludes bakery".into(),
    };
    let stale = |why: &[&str]| CacheState::Stale {
        why: why.iter().map(|s| s.to_string()).collect(),
    };
    let s = states(&ctx);
    assert!(
        s[..4].iter().all(|(_, st)| *st == CacheState::NotBuilt),
        "{s:?}"
    );
    assert_eq!(s[4], ("40-w".into(), skipped.clone()));

    e.build(Infrastructure::Bakery, e.opts()).unwrap();
    let s = states(&ctx);
    assert!(
        s[..4].iter().all(|(_, st)| *st == CacheState::Cached),
        "{s:?}"
    );

    // Another infrastructure: 20-b reads it, 30-c inherits the change through its parent.
    let raw = e.ctx(Infrastructure::Raw);
    let s = states(&raw);
    assert_eq!(s[1].1, CacheState::Cached);
    assert_eq!(
        s[2].1,
        stale(&["spec.infrastructure changed: bakery → raw"])
    );
    assert_eq!(s[3].1, stale(&["parent 20-b rebuilt"]));

    // A stage's script, and a file under files/.
    fs::write(e.path("stages/30-c/apply.sh"), "true\n").unwrap();
    assert_eq!(states(&ctx)[3].1, stale(&["apply.sh changed"]));
    fs::create_dir_all(e.path("stages/10-a/files")).unwrap();
    fs::write(e.path("stages/10-a/files/motd"), "hello").unwrap();
    let s = states(&ctx);
    assert_eq!(s[1].1, stale(&["files added", "files/motd added"]));
    assert_eq!(s[2].1, stale(&["parent 10-a rebuilt"]));
    assert_eq!(s[0].1, CacheState::Cached);
}

#[test]
fn a_rebuild_runs_only_the_changed_stage_and_those_after_it() {
    let e = Env::new();
    three_stages(&e);
    let r = e.build(Infrastructure::Bakery, e.opts()).unwrap();
    assert_eq!(r.ran(), ["00-base", "10-a", "20-b", "30-c"]);
    assert_eq!(outcomes(&r)[4], ("40-w".into(), Outcome::Skipped));
    assert_eq!(
        fs::read_to_string(e.path("work/rootfs/c")).unwrap(),
        "a\nbakery bakery\n"
    );

    // Nothing changed: the last snapshot is restored, nothing runs.
    let r = e.build(Infrastructure::Bakery, e.opts()).unwrap();
    assert!(r.ran().is_empty());
    assert_eq!(outcomes(&r)[3], ("30-c".into(), Outcome::Restored));

    fs::write(
        e.path("stages/30-c/apply.sh"),
        "cat \"$ROOTFS/b\" > \"$ROOTFS/c\"\n",
    )
    .unwrap();
    let r = e.build(Infrastructure::Bakery, e.opts()).unwrap();
    assert_eq!(r.ran(), ["30-c"]);
    assert_eq!(
        outcomes(&r)[..3],
        [
            ("00-base".into(), Outcome::Cached),
            ("10-a".into(), Outcome::Cached),
            ("20-b".into(), Outcome::Restored)
        ]
    );
    assert_eq!(
        fs::read_to_string(e.path("work/rootfs/c")).unwrap(),
        "bakery bakery\n"
    );

    // Warden: 20-b reruns (it reads the infrastructure), 40-w applies.
    let r = e.build(Infrastructure::Warden, e.opts()).unwrap();
    assert_eq!(r.ran(), ["20-b", "30-c", "40-w"]);
    assert!(e.path("work/rootfs/w").exists());
    // Back to bakery: all cached still.
    let r = e.build(Infrastructure::Bakery, e.opts()).unwrap();
    assert!(r.ran().is_empty());
    assert!(!e.path("work/rootfs/w").exists());
}

#[test]
fn from_until_only_and_force() {
    let e = Env::new();
    three_stages(&e);
    let opts = |from: Option<&str>, until: Option<&str>, only: Option<&str>, force| RunOptions {
        from: from.map(Into::into),
        until: until.map(Into::into),
        only: only.map(Into::into),
        force,
        output: e.path("work/rootfs"),
    };
    let b = Infrastructure::Bakery;
    let err = |o| e.build(b, o).unwrap_err().to_string();

    let r = e.build(b, opts(None, Some("10-a"), None, false)).unwrap();
    assert_eq!(r.ran(), ["00-base", "10-a"]);
    assert!(e.path("work/rootfs/a").exists() && !e.path("work/rootfs/b").exists());

    let m = err(opts(None, None, Some("30-c"), false));
    assert!(m.contains("20-b") && m.contains("--until 20-b"), "{m}");

    let r = e.build(b, opts(None, None, None, false)).unwrap();
    assert_eq!(r.ran(), ["20-b", "30-c"]);

    let r = e.build(b, opts(Some("20-b"), None, None, false)).unwrap();
    assert_eq!(r.ran(), ["20-b", "30-c"]);
    assert_eq!(outcomes(&r)[1], ("10-a".into(), Outcome::Restored));

    // --only: just that stage on its parent's snapshot; the output is the tree after it.
    let r = e.build(b, opts(None, None, Some("20-b"), false)).unwrap();
    assert_eq!(r.ran(), ["20-b"]);
    assert_eq!(
        outcomes(&r),
        [
            ("10-a".into(), Outcome::Restored),
            ("20-b".into(), Outcome::Ran)
        ]
    );
    assert!(e.path("work/rootfs/b").exists() && !e.path("work/rootfs/c").exists());

    let r = e.build(b, opts(None, Some("20-b"), None, true)).unwrap();
    assert_eq!(r.ran(), ["00-base", "10-a", "20-b"]);

    let m = err(opts(Some("99-nope"), None, None, false));
    assert!(
        m.contains("99-nope") && m.contains("00-base, 10-a, 20-b, 30-c, 40-w"),
        "{m}"
    );
    let m = err(opts(None, Some("40-w"), None, false));
    assert!(m.contains("40-w") && m.contains("excludes bakery"), "{m}");
    let m = err(opts(Some("20-b"), None, Some("30-c"), false));
    assert!(m.contains("--only"), "{m}");
    let m = err(opts(Some("30-c"), Some("10-a"), None, false));
    assert!(
        m.contains("--from 30-c") && m.contains("--until 10-a"),
        "{m}"
    );
}

#[test]
fn scripts_get_the_documented_environment_and_nothing_else() {
    let e = Env::new();
    e.stage(
        "10-env",
        "description: d\nrun: host\nreads: [stemcell.version]\nassets: [conf]\n",
        "env | sort > \"$ROOTFS/env\"\ncp \"$ASSETS/conf/agent.json\" \"$ROOTFS/\"\n\
         cp \"$STAGE_DIR/files/f\" \"$ROOTFS/\"\npwd > \"$ROOTFS/pwd\"\n\
         test ! -e \"$ASSETS/other\"\n",
    );
    fs::create_dir_all(e.path("stages/10-env/files")).unwrap();
    fs::write(e.path("stages/10-env/files/f"), "from files/").unwrap();
    fs::write(e.path("assets/other"), "undeclared").unwrap();
    std::env::set_var("PISTEMCELL_TEST_LEAK", "leaked");
    e.build(Infrastructure::Bakery, e.opts()).unwrap();
    let env = fs::read_to_string(e.path("work/rootfs/env")).unwrap();
    for want in [
        "STAGE_NAME=10-env",
        "PROFILE=debian-bookworm",
        "DISTRO=debian",
        "SUITE=bookworm",
        "ARCH=armhf",
        "INIT=systemd",
        "SPEC_STEMCELL_VERSION=0.0.1",
        "LC_ALL=C",
        "DEBIAN_FRONTEND=noninteractive",
    ] {
        assert!(
            env.lines().any(|l| l == want),
            "{want} missing from:\n{env}"
        );
    }
    assert!(
        !env.contains("PISTEMCELL_TEST_LEAK") && !env.contains("INFRASTRUCTURE="),
        "{env}"
    );
    let rootfs = env.lines().find_map(|l| l.strip_prefix("ROOTFS=")).unwrap();
    let tree = Path::new(rootfs).file_name().unwrap().to_string_lossy();
    assert!(
        tree.starts_with("build.") && tree.ends_with(".partial"),
        "{rootfs}"
    );
    assert_eq!(
        fs::read_to_string(e.path("work/rootfs/f")).unwrap(),
        "from files/"
    );
    assert_eq!(
        fs::read_to_string(e.path("work/rootfs/agent.json")).unwrap(),
        "{\"x\":1}\n"
    );
    let pwd = fs::read_to_string(e.path("work/rootfs/pwd")).unwrap();
    let stage_dir = env
        .lines()
        .find_map(|l| l.strip_prefix("STAGE_DIR="))
        .unwrap();
    assert_eq!(pwd.trim(), stage_dir);
    assert!(!Path::new(stage_dir).exists(), "the stage copy is removed");
}

/// Entries of `dir` whose names end in `.partial`.
fn partials(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_failing_script_names_stage_exit_code_and_output_tail_and_leaves_nothing() {
    let e = Env::new();
    e.stage("10-a", HOST, "echo a > \"$ROOTFS/a\"\n");
    e.stage(
        "20-bad",
        HOST,
        "for i in $(seq 1 30); do echo \"line $i\"; done\necho oops >&2\nexit 7\n",
    );
    let m = e
        .build(Infrastructure::Bakery, e.opts())
        .unwrap_err()
        .to_string();
    for want in [
        "20-bad",
        "exit code 7",
        "line 30",
        "line 12",
        "oops",
        "stage-20-bad.log",
    ] {
        assert!(m.contains(want), "`{want}` not in: {m}");
    }
    assert!(!m.contains("line 11\n"), "only the last 20 lines: {m}");
    let log = fs::read_to_string(e.path("work/logs/stage-20-bad.log")).unwrap();
    assert!(log.contains("line 1\n") && log.contains("oops"), "{log}");
    assert!(
        partials(&e.path("work")).is_empty(),
        "{:?}",
        partials(&e.path("work"))
    );
    assert!(!e.path("work/rootfs").exists());
    // The stages before it are cached: fixing the script runs only it.
    fs::write(e.path("stages/20-bad/apply.sh"), "true\n").unwrap();
    let r = e.build(Infrastructure::Bakery, e.opts()).unwrap();
    assert_eq!(r.ran(), ["20-bad"]);

    // An unset variable fails (set -u), with a hint about `reads:`.
    fs::write(
        e.path("stages/20-bad/apply.sh"),
        "echo \"$INFRASTRUCTURE\"\n",
    )
    .unwrap();
    let m = e
        .build(Infrastructure::Bakery, e.opts())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("unbound variable") && m.contains("reads:"),
        "{m}"
    );
    // pipefail: a failing command inside a pipeline fails the script.
    fs::write(
        e.path("stages/20-bad/apply.sh"),
        "false | cat\ntouch \"$ROOTFS/after\"\n",
    )
    .unwrap();
    let m = e
        .build(Infrastructure::Bakery, e.opts())
        .unwrap_err()
        .to_string();
    assert!(m.contains("exit code 1"), "{m}");
}

#[test]
fn chroot_stages_run_inside_the_rootfs_and_leave_no_mounts() {
    if !is_root() || !Path::new("/bin/bash").exists() {
        eprintln!("skipped: chroot stages need root");
        return;
    }
    let e = Env::new();
    e.stage(
        "10-in",
        "description: d\nreads: [infrastructure]\n",
        "echo \"$ROOTFS $STAGE_DIR $INFRASTRUCTURE\" > /where\n\
         read -r first < \"$STAGE_DIR/files/f\"\necho \"$first\" >> /where\n\
         test -e /proc/self && test -e /dev/null && test -x /usr/sbin/policy-rc.d\n\
         test -e \"$ASSETS/conf/agent.json\"\n",
    );
    fs::create_dir_all(e.path("stages/10-in/files")).unwrap();
    fs::write(e.path("stages/10-in/files/f"), "copied in\n").unwrap();
    let dir = e.dir.path();
    build_in(dir, Infrastructure::Bakery, e.opts(), true).unwrap();
    let root = e.path("work/rootfs");
    let where_ = fs::read_to_string(root.join("where")).unwrap();
    assert_eq!(where_, "/ /tmp/pistemcell-stage/10-in bakery\ncopied in\n");
    assert!(!root.join("tmp/pistemcell-stage").exists());
    assert!(!root.join("usr/sbin/policy-rc.d").exists());
    assert!(pistemcell::rootfs::mounts::mounts_under(dir).is_empty());

    e.stage("20-fail", "description: d\n", "echo inside; exit 4\n");
    let m = build_in(dir, Infrastructure::Bakery, e.opts(), true)
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("20-fail") && m.contains("exit code 4") && m.contains("inside"),
        "{m}"
    );
    assert!(pistemcell::rootfs::mounts::mounts_under(dir).is_empty());
    assert!(partials(&e.path("work")).is_empty());
}

#[test]
fn eviction_keeps_n_snapshots_per_stage() {
    let e = Env::new();
    e.stage("10-a", HOST, "echo 1 > \"$ROOTFS/a\"\n");
    e.build(Infrastructure::Bakery, e.opts()).unwrap();
    fs::write(e.path("stages/10-a/apply.sh"), "echo 2 > \"$ROOTFS/a\"\n").unwrap();
    e.build(Infrastructure::Bakery, e.opts()).unwrap();
    let store = Store::open(&e.path("cache")).unwrap();
    assert_eq!(store.list().unwrap().len(), 3);
    let removed = pipeline::evict(&e.path("cache"), 1).unwrap();
    assert_eq!(removed.len(), 2, "one snapshot: its tar and manifest");
    let ctx = e.ctx(Infrastructure::Bakery);
    let plan = pipeline::plan(&ctx, &e.stages(&ctx, false)).unwrap();
    assert!(
        plan.iter().all(|p| p.state == CacheState::Cached),
        "{plan:?}"
    );
}

#[test]
fn an_unusable_snapshot_is_dropped_and_its_stage_built_again() {
    let e = Env::new();
    three_stages(&e);
    e.build(Infrastructure::Bakery, e.opts()).unwrap();
    let ctx = e.ctx(Infrastructure::Bakery);
    let plan = pipeline::plan(&ctx, &e.stages(&ctx, false)).unwrap();
    let store = Store::open(&e.path("cache")).unwrap();
    let key = plan[3].key().unwrap();
    let tar = store.tar_path(key);
    let bytes = fs::read(&tar).unwrap();
    fs::write(&tar, &bytes[..bytes.len() / 2]).unwrap();
    let r = e.build(Infrastructure::Bakery, e.opts()).unwrap();
    assert_eq!(r.ran(), ["30-c"]);
    assert_eq!(
        fs::read_to_string(e.path("work/rootfs/c")).unwrap(),
        "a\nbakery bakery\n"
    );
    assert!(store.has(key));
}

#[test]
fn the_rendered_plan_shows_states_and_reasons() {
    let e = Env::new();
    three_stages(&e);
    e.build(Infrastructure::Bakery, e.opts()).unwrap();
    fs::write(e.path("stages/30-c/apply.sh"), "true\n").unwrap();
    let ctx = e.ctx(Infrastructure::Bakery);
    let text = pipeline::render_plan(&pipeline::plan(&ctx, &e.stages(&ctx, false)).unwrap());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "00-base  cached     a small fake rootfs");
    assert_eq!(lines[3], "30-c     stale      d");
    assert!(lines[4].ends_with("↳ apply.sh changed"), "{text}");
    assert_eq!(
        lines[5],
        "40-w     skipped    d (when.infrastructures [warden] excludes bakery)"
    );
}

/// A stage whose prebuild takes a while and logs when it starts and ends; its run logs too.
struct Prebuilt {
    name: &'static str,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Stage for Prebuilt {
    fn name(&self) -> &str {
        self.name
    }
    fn description(&self) -> &str {
        "a stage with host-only work"
    }
    fn applies(&self, _: &BuildContext) -> bool {
        true
    }
    fn manifest(&self, _: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        Ok(vec![("p".into(), self.name.into())])
    }
    fn has_prebuild(&self) -> bool {
        true
    }
    fn prebuild(&self, _: &BuildContext) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} prebuild start", self.name));
        std::thread::sleep(std::time::Duration::from_millis(300));
        self.log
            .lock()
            .unwrap()
            .push(format!("{} prebuild end", self.name));
    }
    fn run(&self, _: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        self.log.lock().unwrap().push(format!("{} run", self.name));
        fs::write(root.join(self.name), "x").unwrap();
        Ok(())
    }
}

/// A stage that runs for a while (as emulated dpkg does) and logs it.
struct Slow {
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Stage for Slow {
    fn name(&self) -> &str {
        "10-slow"
    }
    fn description(&self) -> &str {
        "a slow stage"
    }
    fn applies(&self, _: &BuildContext) -> bool {
        true
    }
    fn manifest(&self, _: &BuildContext) -> Result<Vec<(String, String)>, PipelineError> {
        Ok(vec![("slow".into(), "1".into())])
    }
    fn run(&self, _: &BuildContext, root: &Path) -> Result<(), PipelineError> {
        self.log.lock().unwrap().push("slow start".into());
        std::thread::sleep(std::time::Duration::from_millis(200));
        fs::write(root.join("slow"), "x").unwrap();
        self.log.lock().unwrap().push("slow end".into());
        Ok(())
    }
}

#[test]
fn prebuilds_run_in_the_background_and_each_stage_waits_for_its_own() {
    let e = Env::new();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let ctx = e.ctx(Infrastructure::Bakery);
    let stages: Vec<Box<dyn Stage>> = pipeline::ordered(vec![
        Box::new(Base {
            version: "1",
            bash: false,
        }),
        Box::new(Slow { log: log.clone() }),
        Box::new(Prebuilt {
            name: "20-p",
            log: log.clone(),
        }),
        Box::new(Prebuilt {
            name: "30-q",
            log: log.clone(),
        }),
    ])
    .unwrap();
    let work = open_work(&e.path("work"));
    pipeline::run(&ctx, &work, &stages, &e.opts()).unwrap();
    let got = log.lock().unwrap().clone();
    let at = |s: &str| {
        got.iter()
            .position(|l| l == s)
            .unwrap_or_else(|| panic!("{s}: {got:?}"))
    };
    // The first prebuild overlaps the slow stage before it.
    assert!(at("20-p prebuild start") < at("slow end"), "{got:?}");
    // Each stage runs only after its own prebuild ended.
    assert!(at("20-p prebuild end") < at("20-p run"), "{got:?}");
    assert!(at("30-q prebuild end") < at("30-q run"), "{got:?}");
    assert!(e.path("work/rootfs/30-q").exists());
    // Cached stages do no host-only work again.
    log.lock().unwrap().clear();
    pipeline::run(&ctx, &work, &stages, &e.opts()).unwrap();
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
}
