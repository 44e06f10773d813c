//! The built-in stages in the default spec's build: `55-monit` (Debian's armhf monit .deb,
//! whose proof must fail with the request the agent would see refused), `56-agent` (an ARM
//! executable built here with the cross compiler is installed; an x86-64 one is refused) and
//! `95-audit` (the whole rootfs passes for armv7; its findings are written beside it).
//!
//! With `PISTEMCELL_TEST_MONIT_TARBALL=FILE` (and `PISTEMCELL_TEST_MONIT_VERSION`, default
//! 5.2.5) the `source` path is built and proven too; with `PISTEMCELL_TEST_AGENT_SRC=DIR` and
//! `PISTEMCELL_TEST_GO=GO` the agent is cross-compiled from a bosh-agent tree. Each skips with
//! the reason when unset (they come from repositories CI cannot reach).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Debian's armhf monit package in the mirror: (upstream version, URL, sha256).
pub fn debian_monit(mirror: &str) -> (String, String, String) {
    let url = format!("{mirror}/dists/bookworm/main/binary-armhf/Packages.xz");
    let xz = pistemcell::archive::http::Http::new().get(&url).unwrap();
    let mut text = String::new();
    xz2::read::XzDecoder::new(&xz[..])
        .read_to_string(&mut text)
        .unwrap();
    let stanza = text
        .split("\n\n")
        .find(|s| s.starts_with("Package: monit\n"))
        .expect("the mirror's armhf index has monit");
    let field = |name: &str| {
        stanza
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_string()
    };
    // 1:5.33.0-1 -> 5.33.0
    let version = field("Version");
    let upstream = version.split(':').next_back().unwrap();
    let upstream = upstream
        .rsplit_once('-')
        .map_or(upstream, |(u, _)| u)
        .to_string();
    (
        upstream,
        format!("{mirror}/{}", field("Filename")),
        field("SHA256"),
    )
}

/// A static ARM executable standing in for the agent, built with the cross compiler.
pub fn arm_agent(dir: &Path) -> PathBuf {
    let src = dir.join("agent.c");
    std::fs::write(
        &src,
        // It stays up as a daemon does (the boot test's service check wants that), doing nothing.
        "#include <stdio.h>\n#include <unistd.h>\nint main(void) { puts(\"bosh-agent stand-in\"); fflush(stdout); for (;;) pause(); }\n",
    )
    .unwrap();
    let out = dir.join("bosh-agent-arm");
    let st = Command::new("arm-linux-gnueabihf-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("arm-linux-gnueabihf-gcc (apt-get install gcc-arm-linux-gnueabihf)");
    assert!(st.success());
    out
}

/// The `--set` flags for a monit and an agent artifact.
pub fn sets(monit: &(String, String, String), agent: &Path, skip_proof: bool) -> Vec<String> {
    vec![
        format!("monit.version={}", monit.0),
        format!("monit.deb.url={}", monit.1),
        format!("monit.deb.sha256={}", monit.2),
        format!("monit.skip_proof={skip_proof}"),
        format!("agent.binary.path={}", agent.display()),
        format!("agent.binary.sha256={}", sha256(agent)),
    ]
}

fn sha256(path: &Path) -> String {
    pistemcell::archive::cache::file_sha256(path).unwrap()
}

/// Runs pistemcell with the given work/cache dirs, `--set` flags and arguments.
pub fn pistemcell(
    work: &Path,
    cache: &Path,
    mirror: &str,
    sets: &[String],
    args: &[&str],
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pistemcell"));
    cmd.arg("--work-dir")
        .arg(work)
        .arg("--cache-dir")
        .arg(cache)
        .args(["--mirror", mirror]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    cmd.args(args).output().unwrap()
}

/// What the first build must have done with the built-in stages.
pub fn assert_builtins(rootfs: &Path, agent: &Path, stderr: &str) {
    // The proof ran against Debian's monit and failed the way the agent would, but
    // skip_proof let the build go on.
    assert!(
        stderr.contains(
            "fails the agent's request POST /pistemcell-proof action=start: answered HTTP 403"
        ) && stderr.contains("monit.skip_proof is set"),
        "the proof's warning is missing:\n{stderr}"
    );
    for (path, want) in [
        ("var/vcap/bosh/bin/monit", None),
        ("var/vcap/bosh/bin/bosh-agent", Some(agent)),
        ("var/vcap/bosh/bin/bosh-blobstore-dav", None),
        ("var/vcap/bosh/bin/bosh-blobstore-s3", None),
        ("var/vcap/bosh/bin/bosh-blobstore-gcs", None),
        ("var/vcap/bosh/bin/bosh-blobstore-azure-storage", None),
    ] {
        let p = rootfs.join(path);
        let m = std::fs::metadata(&p).unwrap_or_else(|e| panic!("/{path}: {e}"));
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o755, 0, 0),
            "/{path} mode and owner"
        );
        let info = pistemcell::audit::elf::read(&mut std::fs::File::open(&p).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            info.machine,
            pistemcell::audit::elf::EM_ARM,
            "/{path} is ARM"
        );
        if let Some(src) = want {
            assert_eq!(sha256(&p), sha256(src), "/{path} is the given binary");
        }
    }
    assert!(
        rootfs.join("etc/sv/agent/run").is_file(),
        "the agent's service"
    );
    assert!(
        rootfs.join("var/vcap/bosh/agent.json").is_file(),
        "the agent's settings"
    );
    // The audit passed (the build succeeded) and wrote its findings beside the rootfs.
    let json_path = rootfs.with_file_name("rootfs.audit.json");
    let json: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(json["failing_files"].as_u64(), Some(0), "{json_path:?}");
    assert!(json["elf_files"].as_u64().unwrap() > 500, "{json_path:?}");
    assert!(
        stderr.contains("audit: ") && stderr.contains("fit armhf armv7"),
        "{stderr}"
    );
}

/// Reruns on the first build's cache: the monit proof without skip_proof (at packing time),
/// an x86 agent (`--only 56-agent`), and (when given) a monit source tarball and a bosh-agent
/// tree.
pub fn reruns(work: &Path, cache: &Path, mirror: &str, base: &[String], monit_version: &str) {
    let with = |extra: &[String]| -> Vec<String> { base.iter().chain(extra).cloned().collect() };
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // The proof runs on the finished tree while the stemcell is packed: every stage is cached
    // (skip_proof is not part of any stage's key), and the stemcell must not be written.
    let refused = work.join("refused-stemcell");
    let o = pistemcell(
        work,
        cache,
        mirror,
        &with(&["monit.skip_proof=false".into()]),
        &["build", "--stemcell-dir", refused.to_str().unwrap()],
    );
    let e = stderr(&o);
    assert!(!o.status.success(), "Debian's monit must fail the proof");
    assert!(
        e.contains(&format!("monit {monit_version} (monit.deb "))
            && e.contains("fails the agent's request POST /pistemcell-proof action=start: answered HTTP 403 Forbidden")
            && e.contains("monit.skip_proof: true")
            && e.contains("was not written"),
        "{e}"
    );
    let left: Vec<_> = std::fs::read_dir(&refused)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "a stemcell whose monit fails the proof was left: {left:?}"
    );

    let host_true = pistemcell::cmd::find_on_path("true").unwrap();
    let x86 = [
        format!("agent.binary.path={}", host_true.display()),
        format!("agent.binary.sha256={}", sha256(&host_true)),
    ];
    let o = pistemcell(
        work,
        cache,
        mirror,
        &with(&x86),
        &["build", "--only", "56-agent"],
    );
    let e = stderr(&o);
    assert!(!o.status.success(), "an x86 agent must be refused");
    assert!(
        e.contains("is not a BOSH agent this image can run")
            && e.contains("64-bit LE x86-64")
            && e.contains("needs 32-bit LE ARM")
            && e.contains("GOARCH=arm GOARM=7"),
        "{e}"
    );

    match std::env::var("PISTEMCELL_TEST_MONIT_TARBALL") {
        Err(_) => eprintln!("SKIPPED monit source build: PISTEMCELL_TEST_MONIT_TARBALL is unset (monit tarballs cannot be downloaded here; bosh-linux-stemcell-builder keeps monit-5.2.5.tar.gz)"),
        Ok(tarball) => {
            let version = std::env::var("PISTEMCELL_TEST_MONIT_VERSION").unwrap_or_else(|_| "5.2.5".into());
            let src = [
                format!("monit.version={version}"),
                format!("monit.source.path={tarball}"),
                format!("monit.source.sha256={}", sha256(Path::new(&tarball))),
            ];
            let base: Vec<String> = base.iter().filter(|s| !s.starts_with("monit.")).cloned().collect();
            let all: Vec<String> = base.into_iter().chain(src).collect();
            let dir = work.join("monit-source-stemcell");
            let o = pistemcell(work, cache, mirror, &all, &["build", "--stemcell-dir", dir.to_str().unwrap()]);
            let e = stderr(&o);
            assert!(o.status.success(), "monit {version} from source must pass the proof:\n{e}");
            assert!(e.contains(&format!("monit {version}: proof passed")), "{e}");
        }
    }
    match (std::env::var("PISTEMCELL_TEST_AGENT_SRC"), std::env::var("PISTEMCELL_TEST_GO")) {
        (Ok(src), Ok(go)) => {
            let agent = [format!("agent.source.path={src}"), format!("agent.source.go={go}")];
            let base: Vec<String> = base.iter().filter(|s| !s.starts_with("agent.")).cloned().collect();
            let all: Vec<String> = base.into_iter().chain(agent).collect();
            let o = pistemcell(work, cache, mirror, &all, &["build", "--only", "56-agent"]);
            let e = stderr(&o);
            assert!(o.status.success(), "the agent must build from source:\n{e}");
            let bin = std::fs::read(work.join("rootfs/var/vcap/bosh/bin/bosh-agent")).unwrap();
            assert_eq!(pistemcell::steps::agent::goarm_of(&bin), Some(7), "built with GOARM=7");
            assert!(e.contains("1 patches applied"), "{e}");
        }
        _ => eprintln!("SKIPPED agent source build: PISTEMCELL_TEST_AGENT_SRC and PISTEMCELL_TEST_GO are unset (a bosh-agent checkout and a Go >= 1.25)"),
    }
}

/// Where the default spec's end-to-end inputs live, shared by `tests/os_stages.rs` and
/// `tests/reproducible.rs` so both build from the same paths (the stand-in agent and the
/// clients' stand-in trees), and where os_stages leaves its stemcell for the reproducibility
/// check (`reference/`).
pub fn shared_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-default");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What a reference stemcell was built from: the pistemcell binary, the stages and assets it
/// read, the mirror and the `--set` flags, one per line (a reference left by an older tree is
/// not used).
fn reference_inputs(mirror: &str, sets: &[String]) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    format!(
        "binary={}\nstages={}\nassets={}\nmirror={mirror}\n{}\n",
        sha256(Path::new(env!("CARGO_BIN_EXE_pistemcell"))),
        tree_digest(&repo.join("stages")),
        tree_digest(&repo.join("assets")),
        sets.join("\n")
    )
}

/// The sha256 of every file's path and contents under `dir`, in name order.
fn tree_digest(dir: &Path) -> String {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<u8>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            out.extend_from_slice(rel.as_bytes());
            out.push(0);
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.extend_from_slice(&std::fs::read(&p).unwrap());
                out.push(0);
            }
        }
    }
    let mut all = Vec::new();
    walk(dir, dir, &mut all);
    use sha2::Digest;
    pistemcell::tarwrite::tree::hex(&sha2::Sha256::digest(&all))
}

/// Keeps `stemcell`, built from scratch (`--force`) from `sets`, as the reference the
/// reproducibility check builds against (a hard link, or a copy on another filesystem).
pub fn keep_reference(stemcell: &Path, mirror: &str, sets: &[String]) {
    let dir = shared_dir().join("reference");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let kept = dir.join(stemcell.file_name().unwrap());
    if std::fs::hard_link(stemcell, &kept).is_err() {
        std::fs::copy(stemcell, &kept).unwrap();
    }
    // Written last: a reference without it is not used.
    std::fs::write(dir.join("inputs"), reference_inputs(mirror, sets)).unwrap();
}

/// The reference stemcell os_stages built from exactly these inputs, if it did.
#[allow(dead_code)] // tests/reproducible.rs's
pub fn reference(mirror: &str, sets: &[String]) -> Option<PathBuf> {
    let dir = shared_dir().join("reference");
    let inputs = std::fs::read_to_string(dir.join("inputs")).ok()?;
    if inputs != reference_inputs(mirror, sets) {
        eprintln!(
            "the kept stemcell in {} was built from other inputs: building twice",
            dir.display()
        );
        return None;
    }
    std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
}
