use super::*;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// (path, mode, uid, mtime, contents) of every entry.
fn entries(tgz: &[u8]) -> Vec<(String, u32, u64, u64, Vec<u8>)> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        out.push((
            path,
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.mtime().unwrap(),
            data,
        ));
    }
    out
}

fn names(tgz: &[u8]) -> Vec<String> {
    entries(tgz).into_iter().map(|e| e.0).collect()
}

#[test]
fn the_source_blob_holds_packaging_at_its_top_and_the_program() {
    let r = TestRelease::new(2345);
    let t = r.package_source_tgz();
    assert_eq!(
        names(&t),
        [
            "packaging",
            "pstc-hello/",
            "pstc-hello/Makefile",
            "pstc-hello/hello.c"
        ]
    );
    let e = entries(&t);
    assert!(e.iter().all(|e| e.2 == 0 && e.3 == MTIME));
    assert_eq!(e[0].4, files::PACKAGING.as_bytes());
    assert!(String::from_utf8_lossy(&e[2].4).contains("$(PREFIX)/bin"));
    // Byte-reproducible, and the gzip header carries no time (bytes 4..8) and no name flag.
    assert_eq!(t, TestRelease::new(2345).package_source_tgz());
    assert_eq!(&t[4..8], &[0, 0, 0, 0]);
    assert_eq!(t[3] & 0x08, 0);
}

#[test]
fn the_rendered_archive_holds_one_job_dir_with_its_port() {
    let t = TestRelease::new(4321).rendered_templates_tgz();
    let e = entries(&t);
    let get = |p: &str| e.iter().find(|x| x.0 == p).unwrap_or_else(|| panic!("{p}"));
    assert!(e.iter().all(|x| x.0.starts_with("pstc-web/")));
    assert_eq!(get("pstc-web/config/port").4, b"4321\n");
    for s in ["bin/ctl", "bin/drain", "bin/pre-start"] {
        let x = get(&format!("pstc-web/{s}"));
        assert_eq!(x.1, 0o755, "{s}");
        assert!(x.4.starts_with(b"#!/bin/bash\n"), "{s}");
    }
    let monit = String::from_utf8(get("pstc-web/monit").4.clone()).unwrap();
    assert!(monit.starts_with("check process pstc-web\n"));
    assert!(monit.contains("with pidfile /var/vcap/sys/run/pstc-web/pid"));
    assert!(monit.contains("start program \"/var/vcap/jobs/pstc-web/bin/ctl start\""));
    assert!(monit.contains("group vcap"));
    assert_ne!(t, TestRelease::new(4322).rendered_templates_tgz());
    assert_eq!(t, TestRelease::new(4321).rendered_templates_tgz());
}

#[test]
fn compile_args_and_apply_spec_have_the_agents_shapes() {
    let r = TestRelease::new(2345);
    assert_eq!(
        r.compile_args("src-id", "abc"),
        json!(["src-id", "abc", "pstc-hello", "0.1", {}])
    );
    let compiled = BlobRef {
        blobstore_id: "pkg-id".into(),
        sha1: "1111".into(),
    };
    let rendered = BlobRef {
        blobstore_id: "tpl-id".into(),
        sha1: "2222".into(),
    };
    let s = r.apply_spec(&compiled, &rendered);
    assert_eq!(
        s["job"]["templates"],
        json!([{"name": "pstc-web", "version": "0.1"}])
    );
    assert_eq!(
        s["packages"]["pstc-hello"],
        json!({"name": "pstc-hello", "version": "0.1", "sha1": "1111", "blobstore_id": "pkg-id"})
    );
    assert_eq!(
        s["rendered_templates_archive"],
        json!({"blobstore_id": "tpl-id", "sha1": "2222"})
    );
    assert_eq!(s["configuration_hash"], "2222");
    assert_eq!(
        (s["index"].as_i64(), s["name"].as_str()),
        (Some(0), Some("pstc-web"))
    );
    assert_eq!(s["deployment"], DEPLOYMENT);
    assert_eq!(s["networks"]["default"]["ip"], "10.0.2.15");
}

#[test]
fn the_scripts_are_valid_bash_and_drain_prints_0() {
    if Command::new("bash").arg("-c").arg("true").status().is_err() {
        eprintln!("skipped: no bash on this host");
        return;
    }
    for (name, text) in [
        ("packaging", files::PACKAGING),
        ("ctl", files::CTL),
        ("pre-start", files::PRE_START),
        ("drain", files::DRAIN),
    ] {
        let ok = Command::new("bash")
            .args(["-n", "-c", text])
            .status()
            .unwrap();
        assert!(ok.success(), "{name} is not valid bash");
    }
    let out = Command::new("bash")
        .args([
            "-c",
            files::DRAIN,
            "drain",
            "job_shutdown",
            "hash_unchanged",
        ])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"0\n");
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ask(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(c) = TcpStream::connect(("127.0.0.1", port)) {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut line = String::new();
            BufReader::new(c).read_line(&mut line).unwrap();
            return line;
        }
        assert!(Instant::now() < deadline, "pstc-hello never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the program this test started when the test ends, even on a failed assert.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_hello(bin: &Path, file: Option<&Path>) -> (Child, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(bin);
    cmd.arg("127.0.0.1").arg(port.to_string());
    if let Some(f) = file {
        cmd.arg(f);
    }
    (Child(cmd.spawn().unwrap()), port)
}

#[test]
fn the_packaging_script_builds_a_program_that_answers_on_its_port() {
    if !(have("cc") && have("make") && have("bash") && have("tar")) {
        eprintln!("skipped: this host lacks cc, make, bash or tar to build the test package");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let compile = tmp.path().join("compile/pstc-hello");
    let install = tmp.path().join("packages/pstc-hello");
    std::fs::create_dir_all(&compile).unwrap();
    std::fs::create_dir_all(&install).unwrap();
    let src = tmp.path().join("source.tgz");
    std::fs::write(&src, TestRelease::new(2345).package_source_tgz()).unwrap();
    // Unpacked as the agent does (bosh-utils fileutil/tarball_compressor.go).
    let st = Command::new("tar")
        .arg("--no-same-owner")
        .arg("-xf")
        .arg(&src)
        .arg("-C")
        .arg(&compile)
        .status()
        .unwrap();
    assert!(st.success());
    // As the agent runs it (agent/compiler/compiler_unix.go).
    let out = Command::new("bash")
        .args(["-x", "packaging"])
        .current_dir(&compile)
        .env("BOSH_COMPILE_TARGET", &compile)
        .env("BOSH_INSTALL_TARGET", &install)
        .env("BOSH_PACKAGE_NAME", PACKAGE)
        .env("BOSH_PACKAGE_VERSION", PACKAGE_VERSION)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = install.join("bin/pstc-hello");
    assert!(bin.is_file());

    let (_none, port) = run_hello(&bin, None);
    assert_eq!(
        ask(port),
        format!("{}\n", TestRelease::expected_answer(None))
    );
    let marker = tmp.path().join("marker");
    std::fs::write(&marker, "first-start 1234\n").unwrap();
    let (_child, port) = run_hello(&bin, Some(&marker));
    let want = TestRelease::expected_answer(Some("first-start 1234"));
    assert_eq!(ask(port), format!("{want}\n"));
    // It keeps answering, once per connection.
    assert_eq!(ask(port), format!("{want}\n"));
    let (_missing, port) = run_hello(&bin, Some(&tmp.path().join("absent")));
    assert_eq!(ask(port), "pstc-hello none\n");
}

#[test]
fn the_agent_tar_command_installs_the_job_dir() {
    if !have("tar") {
        eprintln!("skipped: no tar on this host");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("rendered.tgz");
    std::fs::write(&archive, TestRelease::new(2345).rendered_templates_tgz()).unwrap();
    let job = tmp.path().join("job");
    std::fs::create_dir(&job).unwrap();
    // bosh-utils fileutil/tarball_compressor.go, as file_bundle.go calls it for a job.
    let st = Command::new("tar")
        .arg("--no-same-owner")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&job)
        .args(["--strip-components=1", JOB])
        .status()
        .unwrap();
    assert!(st.success());
    let mut found: Vec<String> = Vec::new();
    for sub in ["", "bin", "config"] {
        for e in std::fs::read_dir(job.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                found.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    found.sort();
    assert_eq!(
        found,
        [
            "/monit",
            "bin/ctl",
            "bin/drain",
            "bin/pre-start",
            "config/port"
        ]
    );
    assert_eq!(std::fs::read(job.join("config/port")).unwrap(), b"2345\n");
}
