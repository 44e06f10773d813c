//! The CPI proven by the real BOSH CLI: `bosh create-env` deploys a test release onto our
//! stemcell through `pistemcell cpi` (the CPI release in `cpi-release/`, made with `bosh
//! create-release`), a second create-env with a changed manifest recreates the VM and the
//! job's file on the persistent disk survives, and `bosh delete-env` leaves no VM, disk,
//! stemcell image, qemu process, mount or loop device.
//!
//! The test release is generated here: its package is C compiled on the VM by the agent, its
//! job is run by monit, answers on a port forwarded to 127.0.0.1, and writes a marker on the
//! persistent disk on its first start.
//!
//! Needs, from the environment (each missing piece skips the test with the reason):
//! - `PISTEMCELL_TEST_BOSH_CLI`: a `bosh` binary (the CLI builds offline from its repository
//!   with Go >= 1.25; no package registry has it);
//! - `PISTEMCELL_TEST_CPI_STEMCELLS`: disk stemcells built with the real ARM bosh-agent,
//!   separated by `:` (one armhf, one arm64);
//! - ruby (create-env renders the CPI's templates with it), root, qemu and /dev/fuse.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use pistemcell::deploy::release_files as files;

fn missing() -> Option<String> {
    if !support::is_root() {
        return Some("needs root (loop devices, mounts)".into());
    }
    if std::env::var_os("PISTEMCELL_TEST_BOSH_CLI").is_none() {
        return Some("set PISTEMCELL_TEST_BOSH_CLI to a bosh CLI binary (built from the bosh-cli repository with Go >= 1.25)".into());
    }
    if std::env::var_os("PISTEMCELL_TEST_CPI_STEMCELLS").is_none() {
        return Some("set PISTEMCELL_TEST_CPI_STEMCELLS to stemcells built with the real agent (PATH[:PATH])".into());
    }
    for t in [
        "ruby",
        "qemu-img",
        "qemu-storage-daemon",
        "qemu-system-arm",
        "qemu-system-aarch64",
    ] {
        if !pistemcell::cmd::on_path(t) {
            return Some(format!(
                "{t} is not installed (apt-get install ruby qemu-system-arm qemu-utils)"
            ));
        }
    }
    None
}

/// Runs the CLI in `home` (its `~/.bosh` goes there); returns the output and how long it took.
fn bosh(home: &Path, args: &[&str], cwd: &Path) -> (String, Duration) {
    let cli = std::env::var("PISTEMCELL_TEST_BOSH_CLI").unwrap();
    let t0 = Instant::now();
    let out = Command::new(cli)
        .args(["-n", "--tty"])
        .args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env("BOSH_LOG_LEVEL", "debug")
        .env("BOSH_LOG_PATH", home.join("bosh.log"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "bosh {}:\n{text}\n(the CLI's debug log is {})",
        args.join(" "),
        home.join("bosh.log").display()
    );
    (text, t0.elapsed())
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The CPI release from `cpi-release/`, with this build's binary.
fn cpi_release(home: &Path, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("cpi-release");
    support::sh(Command::new("cp").arg("-r").arg(&src).arg(dir));
    let out = dir.join("pistemcell-cpi.tgz");
    let bin = std::env::var("PISTEMCELL_TEST_CPI_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pistemcell").to_string());
    support::sh(
        Command::new(dir.join("build.sh"))
            .arg(bin)
            .arg(&out)
            .env(
                "BOSH_CLI",
                std::env::var("PISTEMCELL_TEST_BOSH_CLI").unwrap(),
            )
            .env("HOME", home),
    );
    out
}

/// The test release: package `pstc-hello` (C, built by `make` on the VM) and job `pstc-web`.
fn test_release(home: &Path, dir: &Path) -> PathBuf {
    write(&dir.join("config/final.yml"), "---\nname: pstc-test\nblobstore:\n  provider: local\n  options:\n    blobstore_path: /tmp/pstc-test-blobs\n");
    write(&dir.join("config/blobs.yml"), "--- {}\n");
    write(&dir.join("src/pstc-hello/hello.c"), files::HELLO_C);
    write(&dir.join("src/pstc-hello/Makefile"), files::MAKEFILE);
    write(
        &dir.join("packages/pstc-hello/spec"),
        "---\nname: pstc-hello\nfiles:\n- pstc-hello/hello.c\n- pstc-hello/Makefile\n",
    );
    write(&dir.join("packages/pstc-hello/packaging"), files::PACKAGING);
    write(&dir.join("jobs/pstc-web/spec"), "---\nname: pstc-web\ntemplates:\n  ctl: bin/ctl\n  pre-start: bin/pre-start\n  drain: bin/drain\n  port.erb: config/port\npackages:\n- pstc-hello\nproperties:\n  port:\n    description: the port pstc-hello answers on\n    default: 8080\n");
    write(&dir.join("jobs/pstc-web/monit"), files::MONIT);
    write(&dir.join("jobs/pstc-web/templates/ctl"), files::CTL);
    write(
        &dir.join("jobs/pstc-web/templates/pre-start"),
        files::PRE_START,
    );
    write(&dir.join("jobs/pstc-web/templates/drain"), files::DRAIN);
    write(
        &dir.join("jobs/pstc-web/templates/port.erb"),
        "<%= p(\"port\") %>\n",
    );
    let out = dir.join("pstc-test.tgz");
    bosh(
        home,
        &[
            "create-release",
            "--force",
            "--tarball",
            out.to_str().unwrap(),
            "--name",
            "pstc-test",
        ],
        dir,
    );
    out
}

/// The manifest: one VM from `stemcell`, the test job, a persistent disk, and the CPI.
fn manifest(
    stemcell: &Path,
    cpi: &Path,
    release: &Path,
    cert: &pistemcell::boottest::guest::MbusCert,
    ports: (u16, u16),
    state: &Path,
    memory: u32,
) -> Value {
    let password = "pstc-mbus-password";
    json!({
        "name": "pstc-create-env",
        "releases": [
            {"name": "pistemcell-cpi", "url": format!("file://{}", cpi.display())},
            {"name": "pstc-test", "url": format!("file://{}", release.display())},
        ],
        "resource_pools": [{
            "name": "vms",
            "network": "default",
            "stemcell": {"url": format!("file://{}", stemcell.display())},
            "cloud_properties": {"memory_mib": memory, "ports": [{"host": ports.1, "guest": 8080}]},
            "env": {"bosh": {"mbus": {"cert": {"ca": cert.ca, "certificate": cert.certificate, "private_key": cert.private_key}}}},
        }],
        "disk_pools": [{"name": "disks", "disk_size": 1024}],
        "networks": [{
            "name": "default",
            "type": "manual",
            "subnets": [{"range": "10.0.2.0/24", "gateway": "10.0.2.2", "static": ["10.0.2.15"], "dns": ["10.0.2.3"]}],
        }],
        "instance_groups": [{
            "name": "pstc",
            "instances": 1,
            "jobs": [{"name": "pstc-web", "release": "pstc-test"}],
            "resource_pool": "vms",
            "persistent_disk_pool": "disks",
            "networks": [{"name": "default", "static_ips": ["10.0.2.15"]}],
            "properties": {"port": 8080},
        }],
        "cloud_provider": {
            "template": {"name": "pistemcell_cpi", "release": "pistemcell-cpi"},
            "mbus": format!("https://mbus:{password}@127.0.0.1:{}", ports.0),
            "cert": {"ca": cert.ca},
            "properties": {
                "agent": {"mbus": format!("https://mbus:{password}@0.0.0.0:6868")},
                "blobstore": {"provider": "local", "path": "/var/vcap/micro_bosh/data/cache"},
                "pistemcell_cpi": {"state_dir": state, "ports": [{"host": ports.0, "guest": 6868}]},
            },
        },
    })
}

/// The CLI's own phase lines with their times (`Compiling package ... Finished (00:00:41)`).
fn phases(output: &str) -> String {
    output
        .lines()
        .filter(|l| l.contains("(00:") && l.trim_end().ends_with(')'))
        .map(|l| format!("    {}", l.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the job answers on `port`, retried for up to `wait`.
fn job_answer(port: u16, wait: Duration) -> String {
    let until = Instant::now() + wait;
    loop {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut line = String::new();
            if BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("pstc-hello") {
                return line.trim().to_string();
            }
        }
        assert!(
            Instant::now() < until,
            "the job never answered on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn vm_cid(state: &Path) -> String {
    let s: Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    s["current_vm_cid"].as_str().unwrap_or_default().to_string()
}

#[test]
fn create_env_deploys_recreates_and_deletes_on_our_stemcells() {
    if let Some(why) = missing() {
        eprintln!("SKIPPED create-env with the real BOSH CLI: {why}");
        return;
    }
    let stemcells = std::env::var("PISTEMCELL_TEST_CPI_STEMCELLS").unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("pce")
        .tempdir_in("/var/tmp")
        .unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cpi = cpi_release(&home, &tmp.path().join("cpi"));
    let release = test_release(&home, &tmp.path().join("rel"));
    for (n, stemcell) in stemcells.split(':').enumerate() {
        let stemcell = Path::new(stemcell);
        let dir = tmp.path().join(format!("e{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let state = dir.join("cpi");
        let cert = pistemcell::boottest::guest::mbus_cert().unwrap();
        let ports = (support::cpi::free_port(), support::cpi::free_port());
        let env_state = dir.join("state.json");
        let m = dir.join("manifest.yml");
        let deploy = |memory: u32| {
            write(
                &m,
                &serde_json::to_string_pretty(&manifest(
                    stemcell, &cpi, &release, &cert, ports, &state, memory,
                ))
                .unwrap(),
            );
            bosh(
                &home,
                &[
                    "create-env",
                    m.to_str().unwrap(),
                    "--state",
                    env_state.to_str().unwrap(),
                ],
                &dir,
            )
        };

        let (out, first) = deploy(1024);
        eprintln!(
            "{}: first create-env, the CLI's phases:\n{}",
            stemcell.display(),
            phases(&out)
        );
        let answer = job_answer(ports.1, Duration::from_secs(120));
        assert!(answer.starts_with("pstc-hello first-start "), "{answer}");
        let vm1 = vm_cid(&env_state);
        eprintln!(
            "{}: first create-env {:.1} s; the job answers `{answer}` (VM {vm1})",
            stemcell.display(),
            first.as_secs_f64()
        );

        // A changed resource pool recreates the VM; the persistent disk moves to the new one.
        let (out, second) = deploy(1100);
        eprintln!(
            "{}: recreate, the CLI's phases:\n{}",
            stemcell.display(),
            phases(&out)
        );
        let again = job_answer(ports.1, Duration::from_secs(120));
        let vm2 = vm_cid(&env_state);
        assert_ne!(vm1, vm2, "the VM was recreated");
        assert_eq!(
            again, answer,
            "the marker on the persistent disk survived the recreate"
        );
        eprintln!(
            "{}: recreate {:.1} s; the job answers `{again}` (VM {vm2})",
            stemcell.display(),
            second.as_secs_f64()
        );

        let (_, gone) = bosh(
            &home,
            &[
                "delete-env",
                m.to_str().unwrap(),
                "--state",
                env_state.to_str().unwrap(),
            ],
            &dir,
        );
        eprintln!(
            "{}: delete-env {:.1} s",
            stemcell.display(),
            gone.as_secs_f64()
        );
        for k in ["vms", "disks", "stemcells"] {
            let left: Vec<_> = std::fs::read_dir(state.join(k))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            assert!(left.is_empty(), "delete-env left {left:?}");
        }
        assert_eq!(
            support::cpi::qemus_under(&state),
            Vec::<String>::new(),
            "a qemu still runs"
        );
        assert!(pistemcell::rootfs::mounts::mounts_under(tmp.path()).is_empty());
        assert!(pistemcell::image::loopdev::attached_under(tmp.path()).is_empty());
    }
}
