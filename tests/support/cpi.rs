//! Calling `pistemcell cpi` as `bosh` does, with a state dir and config of the test's own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

/// A state dir and a config for it.
pub struct Cpi {
    _dir: tempfile::TempDir,
    pub state: PathBuf,
    pub config: PathBuf,
}

impl Cpi {
    pub fn new() -> Cpi {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s");
        let config = dir.path().join("cpi.json");
        let port = free_port();
        std::fs::write(
            &config,
            json!({
                "state_dir": state,
                "agent": {"mbus": "https://mbus:pw@0.0.0.0:6868"},
                "vm": {"memory_mib": 256, "cpus": 1, "ephemeral_disk_mib": 64,
                       "ports": [{"host": port, "guest": 6868}]},
            })
            .to_string(),
        )
        .unwrap();
        Cpi {
            _dir: dir,
            state,
            config,
        }
    }

    /// One call with API version 2; the whole response.
    pub fn raw(&self, request: &str) -> Value {
        call(&self.config, request)
    }

    pub fn call(&self, method: &str, args: Value) -> Value {
        self.raw(&json!({"method": method, "arguments": args, "context": {"director_uuid": "d"}, "api_version": 2}).to_string())
    }

    /// The result of a call that must succeed.
    pub fn ok(&self, method: &str, args: Value) -> Value {
        let r = self.call(method, args);
        assert!(r["error"].is_null(), "{method}: {r}");
        r["result"].clone()
    }

    /// The error type and message of a call that must fail.
    pub fn err(&self, method: &str, args: Value) -> (String, String) {
        let r = self.call(method, args);
        assert!(r["result"].is_null(), "{method}: {r}");
        (
            r["error"]["type"].as_str().unwrap().to_string(),
            r["error"]["message"].as_str().unwrap().to_string(),
        )
    }
}

/// A test that fails leaves no VM running: every qemu of the state dir is killed.
impl Drop for Cpi {
    fn drop(&mut self) {
        for pid in qemu_pids_under(&self.state) {
            // SAFETY: kill with a pid read from /proc whose command line names our state dir.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

pub fn call(config: &Path, request: &str) -> Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .args(["cpi", "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the CPI exits 0 even on errors");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON response ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The pids of the qemu processes whose command line names a path under `dir`.
pub fn qemu_pids_under(dir: &Path) -> Vec<i32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd);
            (cmd.starts_with("qemu-") && cmd.contains(&needle)).then_some(pid)
        })
        .collect()
}

/// The qemu processes whose command line names a path under `dir`.
pub fn qemus_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.starts_with("qemu-") && cmd.contains(&needle)).then_some(cmd)
        })
        .collect()
}

/// Nothing of the CPI is left under its state dir: no qemu, mount, loop device, stemcell, VM
/// or disk.
pub fn assert_nothing_left(c: &Cpi) {
    let left = qemus_under(&c.state);
    assert!(left.is_empty(), "{left:?}");
    assert!(pistemcell::rootfs::mounts::mounts_under(&c.state).is_empty());
    assert!(pistemcell::image::loopdev::attached_under(&c.state).is_empty());
    for k in ["vms", "disks", "stemcells"] {
        let objects: Vec<_> = std::fs::read_dir(c.state.join(k))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(objects.is_empty(), "{k}: {objects:?}");
    }
}
