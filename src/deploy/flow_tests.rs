//! The host side end to end, with a stand-in agent on the host doing what bosh-agent does for
//! `compile_package` and `apply` (fetch blobs from the dav store over HTTP with the settings'
//! credentials, check their SHA-1, unpack with tar, run `packaging`, upload the result), so the
//! release, the blobstore and the director are shown to fit together without a VM.

use super::dav::{blob_prefix, sha1_hex, DavServer};
use super::director::{AgentCall, BlobRef, CallError, Director};
use super::release::{TestRelease, JOB, PACKAGE};
use base64::Engine;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct HostAgent {
    endpoint: String,
    auth: String,
    work: PathBuf,
    task: RefCell<Option<Value>>,
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)))
}

impl HostAgent {
    fn new(settings: &Value, work: &Path) -> HostAgent {
        let o = &settings["options"];
        let cred = format!(
            "{}:{}",
            o["user"].as_str().unwrap(),
            o["password"].as_str().unwrap()
        );
        let b = base64::engine::general_purpose::STANDARD.encode(cred);
        HostAgent {
            endpoint: o["endpoint"].as_str().unwrap().to_string(),
            auth: format!("Basic {b}"),
            work: work.to_path_buf(),
            task: RefCell::new(None),
        }
    }

    fn url(&self, id: &str) -> String {
        format!("{}/{}/{id}", self.endpoint, blob_prefix(id))
    }

    /// Fetches a blob to a file, checking its digest as the agent does.
    fn fetch(&self, id: &str, sha1: &str, to: &Path) -> Result<(), String> {
        let r = ureq::get(&self.url(id))
            .set("Authorization", &self.auth)
            .call();
        let mut data = Vec::new();
        r.map_err(|e| e.to_string())?
            .into_reader()
            .read_to_end(&mut data)
            .map_err(|e| e.to_string())?;
        if sha1_hex(&data) != sha1 {
            return Err(format!("blob {id}: digest mismatch"));
        }
        std::fs::write(to, data).map_err(|e| e.to_string())
    }

    fn upload(&self, file: &Path) -> Result<BlobRef, String> {
        let data = std::fs::read(file).map_err(|e| e.to_string())?;
        let id = format!("up-{}", sha1_hex(&data));
        ureq::put(&self.url(&id))
            .set("Authorization", &self.auth)
            .send_bytes(&data)
            .map_err(|e| e.to_string())?;
        Ok(BlobRef {
            blobstore_id: id,
            sha1: sha1_hex(&data),
        })
    }

    fn compile(&self, args: &Value) -> Result<Value, String> {
        let (id, sha1, name) = (args[0].as_str(), args[1].as_str(), args[2].as_str());
        let (Some(id), Some(sha1), Some(name)) = (id, sha1, name) else {
            return Err(format!("bad arguments {args}"));
        };
        let src = self.work.join("src.tgz");
        self.fetch(id, sha1, &src)?;
        let compile = self.work.join("compile").join(name);
        let install = self.work.join("packages").join(name);
        for d in [&compile, &install] {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        }
        run(Command::new("tar")
            .arg("--no-same-owner")
            .arg("-xf")
            .arg(&src)
            .arg("-C")
            .arg(&compile))?;
        run(Command::new("bash")
            .args(["-x", "packaging"])
            .current_dir(&compile)
            .env("BOSH_COMPILE_TARGET", &compile)
            .env("BOSH_INSTALL_TARGET", &install))?;
        let out = self.work.join("compiled.tgz");
        run(Command::new("tar")
            .arg("-czf")
            .arg(&out)
            .arg("-C")
            .arg(&install)
            .arg("."))?;
        let b = self.upload(&out)?;
        Ok(json!({"result": {"blobstore_id": b.blobstore_id, "sha1": b.sha1}}))
    }

    fn apply(&self, spec: &Value) -> Result<Value, String> {
        let pkg = &spec["packages"][PACKAGE];
        let tgz = self.work.join("pkg.tgz");
        self.fetch(
            pkg["blobstore_id"].as_str().unwrap_or(""),
            pkg["sha1"].as_str().unwrap_or(""),
            &tgz,
        )?;
        let pdir = self.work.join("vcap/packages").join(PACKAGE);
        std::fs::create_dir_all(&pdir).map_err(|e| e.to_string())?;
        run(Command::new("tar")
            .arg("-xf")
            .arg(&tgz)
            .arg("-C")
            .arg(&pdir))?;
        let r = &spec["rendered_templates_archive"];
        let tpl = self.work.join("rendered.tgz");
        self.fetch(
            r["blobstore_id"].as_str().unwrap_or(""),
            r["sha1"].as_str().unwrap_or(""),
            &tpl,
        )?;
        for t in spec["job"]["templates"].as_array().into_iter().flatten() {
            let job = t["name"].as_str().unwrap_or("");
            let jdir = self.work.join("vcap/jobs").join(job);
            std::fs::create_dir_all(&jdir).map_err(|e| e.to_string())?;
            run(Command::new("tar")
                .arg("-xf")
                .arg(&tpl)
                .arg("-C")
                .arg(&jdir)
                .args(["--strip-components=1", job]))?;
        }
        Ok(json!("applied"))
    }
}

impl AgentCall for HostAgent {
    fn call(&self, method: &str, args: Value) -> Result<Value, CallError> {
        let result = match method {
            "compile_package" => self.compile(&args),
            "apply" => self.apply(&args[0]),
            "get_task" => {
                return self.task.borrow_mut().take().ok_or_else(|| {
                    CallError::Exception("Task with id 1 could not be found".into())
                });
            }
            _ => return Err(CallError::Exception(format!("unknown message {method}"))),
        };
        // Both are asynchronous in the agent: answer "running", then the result via get_task.
        let value = result.map_err(CallError::Exception)?;
        *self.task.borrow_mut() = Some(value);
        Ok(json!({"agent_task_id": "1", "state": "running"}))
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Kills the program this test started.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn compile_then_apply_through_the_blobstore_gives_a_program_that_answers() {
    if !["cc", "make", "bash", "tar"].iter().all(|t| have(t)) {
        eprintln!("skipped: this host lacks cc, make, bash or tar");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dav = DavServer::start(&tmp.path().join("blobs")).unwrap();
    let agent = HostAgent::new(&dav.settings("127.0.0.1"), tmp.path());
    let d = Director::new(&agent).with_polling(Duration::ZERO, Duration::from_secs(120));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let release = TestRelease::new(port);

    let (src_id, src_sha1) = dav.put(&release.package_source_tgz()).unwrap();
    let args = release.compile_args(&src_id, &src_sha1);
    let compiled = d
        .compile_package(
            &src_id,
            &src_sha1,
            PACKAGE,
            args[3].as_str().unwrap(),
            args[4].clone(),
        )
        .unwrap();
    assert!(dav.ids().contains(&compiled.blobstore_id));
    assert_eq!(
        sha1_hex(&dav.get(&compiled.blobstore_id).unwrap()),
        compiled.sha1
    );

    let (tpl_id, tpl_sha1) = dav.put(&release.rendered_templates_tgz()).unwrap();
    let rendered = BlobRef {
        blobstore_id: tpl_id,
        sha1: tpl_sha1,
    };
    d.apply(&release.apply_spec(&compiled, &rendered)).unwrap();

    // Start it as ctl would, but on 127.0.0.1 and without /var/vcap.
    let vcap = tmp.path().join("vcap");
    let cfg = std::fs::read_to_string(vcap.join("jobs").join(JOB).join("config/port")).unwrap();
    assert_eq!(cfg.trim(), port.to_string());
    let bin = vcap.join("packages").join(PACKAGE).join("bin/pstc-hello");
    let _child = Child(
        Command::new(&bin)
            .args(["127.0.0.1", cfg.trim()])
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    for _ in 0..200 {
        if let Ok(c) = TcpStream::connect(("127.0.0.1", port)) {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            BufReader::new(c).read_line(&mut line).unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(line, format!("{}\n", TestRelease::expected_answer(None)));
    let log = dav.log().join("\n");
    assert!(
        log.contains(&format!("GET /{}/{src_id} 200", blob_prefix(&src_id))),
        "{log}"
    );
}
