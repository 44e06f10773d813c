//! The director's half of the agent's mbus protocol, as the deploy proof plays it.
//!
//! Read from bosh-agent (commit 232dc82f): a request is
//! `{"protocol":3,"method":M,"arguments":[…],"reply_to":R}` (`handler/request.go`); the reply
//! is `{"value":V}` or `{"exception":{"message":S}}` (`handler/response.go`). Actions the agent
//! registers are in `agent/action/concrete_factory.go`. Those whose `IsAsynchronous` is true
//! (`apply`, `prepare`, `stop`, `drain`, `run_script`, `compile_package`, `fetch_logs`,
//! `mount_disk`, `unmount_disk`, `add_persistent_disk`, and `list_disk` from protocol 3) answer
//! at once with `{"agent_task_id":ID,"state":"running"}` (`agent/action_dispatcher.go`,
//! `agent/task/task.go`); the director then calls `get_task [ID]` until the value is no longer
//! that running shape: a finished task's value is the action's own value, and a failed one is
//! an exception `Task ID result: …` (`agent/action/get_task.go`). `ping`, `start` and
//! `get_state` answer directly.
//!
//! Each action's arguments and value, from its file under `agent/action/`:
//! - `compile_package [blobstore_id, sha1, name, version, deps]` → `{"result":
//!   {"blobstore_id", "sha1"}}`; `sha1` is a multiple digest (a bare SHA-1 hex, or
//!   `sha256:HEX` items joined by `;`, bosh-utils `crypto/multiple_digest.go`); `deps` maps a
//!   package name to `{name, version, sha1, blobstore_id}`.
//! - `apply [spec]` → `"applied"`; `prepare [spec]` → `"prepared"`; `start []` →
//!   `"started"`; `stop []` → `"stopped"` (protocol 3 waits for monit to stop the jobs).
//! - `get_state [filters…]` → the apply spec plus `agent_id`, `job_state` (`running`,
//!   `starting`, `failing`, `stopped`, `unknown`), `processes [{name, state, …}]`, `vm`.
//! - `run_script [name, {"env":{…}}]` → `{}`: runs `/var/vcap/jobs/JOB/bin/NAME` of every job
//!   that has it, all at once; a job without it is skipped.
//! - `drain ["shutdown"]` or `drain ["update", spec]` → an integer (0 once the scripts are done).
//! - `add_persistent_disk [cid, hint]` → `{}` (CPI API v2: the hint `attach_disk` returned),
//!   saved in the agent's settings; the hint is a device path string or an object whose
//!   `path`, `volume_id`, `id`, `lun`, `host_device_id` must be strings (the agent asserts
//!   their type and would panic otherwise: `settings/settings.go`).
//!   `mount_disk [cid]` → `{}`: partitions and formats a blank disk, mounts the first
//!   partition at /var/vcap/store, and does nothing if it is already mounted there; after a
//!   reboot the agent's bootstrap remounts the last mounted disk by itself
//!   (`agent/bootstrap.go`, `platform/linux_platform.go`). `unmount_disk [cid]` →
//!   `{"message": …}`; `list_disk []` → the mounted disks' cids.
//! - `fetch_logs [type, filters]` → `{"blobstore_id", "sha1"}`: a tgz put in the blobstore.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How many `get_task` polls in a row may fail in transport before a task is given up.
pub const POLL_MISSES_MAX: u32 = 3;

/// Why one mbus call did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The agent answered `{"exception":{"message":…}}`: the message.
    Exception(String),
    /// No usable answer (connection, TLS, HTTP status, not JSON): what happened.
    Transport(String),
}

/// One mbus round trip: sends `method` with `args` (a JSON array) and returns the `value`.
pub trait AgentCall {
    /// Calls `method` with `args` and returns the reply's `value`.
    fn call(&self, method: &str, args: Value) -> Result<Value, CallError>;
}

impl<T: AgentCall + ?Sized> AgentCall for &T {
    fn call(&self, method: &str, args: Value) -> Result<Value, CallError> {
        (**self).call(method, args)
    }
}

/// Why a director step failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectorError {
    /// The agent reported an error.
    #[error(
        "`{method}`: the agent failed: {message}; its log is /var/vcap/bosh/log/current on the VM"
    )]
    Agent {
        /// The action.
        method: String,
        /// The agent's exception message.
        message: String,
    },
    /// The call itself failed.
    #[error("`{method}`: no answer from the agent's mbus: {message}; check that the VM and its agent are still up")]
    Transport {
        /// The action.
        method: String,
        /// What went wrong.
        message: String,
    },
    /// The agent answered something this agent version does not send.
    #[error("`{method}`: unexpected answer {value}: expected {expected}; is this a bosh-agent this pistemcell knows?")]
    Shape {
        /// The action.
        method: String,
        /// The answer, as JSON.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A task ran longer than allowed.
    #[error("`{method}`: agent task {task} still running after {secs} s; the VM may be too slow or stuck")]
    Timeout {
        /// The action.
        method: String,
        /// The agent's task id.
        task: String,
        /// The limit, in seconds.
        secs: u64,
    },
}

/// A blob the agent put in the blobstore: its id and multiple digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// The blobstore id.
    pub blobstore_id: String,
    /// The digest as the agent wrote it (a bare SHA-1 hex for the dav blobstore).
    pub sha1: String,
}

impl BlobRef {
    /// The SHA-1 hex in the digest, if it has one (`abc…` or `sha1:abc…` among `;` items).
    pub fn sha1_hex(&self) -> Option<&str> {
        self.sha1.split(';').find_map(|d| match d.split_once(':') {
            None => Some(d),
            Some(("sha1", h)) => Some(h),
            Some(_) => None,
        })
    }
}

/// One monit process in `get_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessState {
    /// The monit process name.
    pub name: String,
    /// Its state (`running`, `failing`, …).
    pub state: String,
}

/// The parts of `get_state` the proof reads, and the whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentState {
    /// The agent's id.
    pub agent_id: String,
    /// `running`, `starting`, `failing`, `stopped` or `unknown`.
    pub job_state: String,
    /// The monit processes, when the agent listed them.
    pub processes: Vec<ProcessState>,
    /// The whole value.
    pub raw: Value,
}

/// The type of a `drain` call.
#[derive(Debug, Clone, PartialEq)]
pub enum DrainKind {
    /// The VM is going away.
    Shutdown,
    /// The VM is being updated to this apply spec.
    Update(Value),
}

/// Plays the director against one agent.
pub struct Director<A: AgentCall> {
    agent: A,
    poll: Duration,
    task_timeout: Duration,
}

fn is_running_task(v: &Value) -> Option<&str> {
    let o = v.as_object()?;
    if o.len() == 2 && o.get("state")?.as_str()? == "running" {
        return o.get("agent_task_id")?.as_str();
    }
    None
}

impl<A: AgentCall> Director<A> {
    /// A director polling tasks every 0.5 s for at most 15 minutes.
    pub fn new(agent: A) -> Director<A> {
        Director {
            agent,
            poll: Duration::from_millis(500),
            task_timeout: Duration::from_secs(900),
        }
    }

    /// The same director polling every `poll` and giving a task at most `timeout`.
    pub fn with_polling(mut self, poll: Duration, timeout: Duration) -> Director<A> {
        self.poll = poll;
        self.task_timeout = timeout;
        self
    }

    /// The agent client.
    pub fn agent(&self) -> &A {
        &self.agent
    }

    fn call(&self, method: &str, args: Value) -> Result<Value, DirectorError> {
        self.agent.call(method, args).map_err(|e| match e {
            CallError::Exception(message) => DirectorError::Agent {
                method: method.into(),
                message,
            },
            CallError::Transport(message) => DirectorError::Transport {
                method: method.into(),
                message,
            },
        })
    }

    /// Calls `method` and, if the agent made it a task, polls `get_task` until it ends;
    /// returns the action's value.
    pub fn run(&self, method: &str, args: Value) -> Result<Value, DirectorError> {
        let first = self.call(method, args)?;
        let Some(task) = is_running_task(&first).map(str::to_string) else {
            return Ok(first);
        };
        let started = Instant::now();
        let mut missed = 0;
        loop {
            if started.elapsed() > self.task_timeout {
                return Err(DirectorError::Timeout {
                    method: method.into(),
                    task,
                    secs: self.task_timeout.as_secs(),
                });
            }
            std::thread::sleep(self.poll);
            let v = match self.agent.call("get_task", json!([task])) {
                Ok(v) => {
                    missed = 0;
                    v
                }
                // A busy, emulated guest may miss a poll: the task goes on regardless.
                Err(CallError::Transport(_)) if missed + 1 < POLL_MISSES_MAX => {
                    missed += 1;
                    continue;
                }
                Err(CallError::Transport(message)) => {
                    return Err(DirectorError::Transport {
                        method: format!("{method} (get_task {task})"),
                        message,
                    })
                }
                Err(CallError::Exception(message)) => {
                    return Err(DirectorError::Agent {
                        method: method.into(),
                        message,
                    })
                }
            };
            if is_running_task(&v).is_none() {
                return Ok(v);
            }
        }
    }

    fn expect_str(
        &self,
        method: &str,
        args: Value,
        want: &'static str,
    ) -> Result<(), DirectorError> {
        let v = self.run(method, args)?;
        if v.as_str() == Some(want) {
            return Ok(());
        }
        Err(shape(method, &v, want))
    }

    fn expect_object(&self, method: &str, args: Value) -> Result<Value, DirectorError> {
        let v = self.run(method, args)?;
        if v.is_object() {
            return Ok(v);
        }
        Err(shape(method, &v, "a JSON object"))
    }

    /// `ping`: Ok when the agent answers `pong`.
    pub fn ping(&self) -> Result<(), DirectorError> {
        self.expect_str("ping", json!([]), "pong")
    }

    /// `compile_package`: compiles the source blob `blob_id` (digest `sha1`) of package
    /// `name`/`version` with `deps` (from [`crate::deploy::release`]'s shapes) and returns the
    /// compiled package the agent uploaded.
    pub fn compile_package(
        &self,
        blob_id: &str,
        sha1: &str,
        name: &str,
        version: &str,
        deps: Value,
    ) -> Result<BlobRef, DirectorError> {
        let m = "compile_package";
        let v = self.run(m, json!([blob_id, sha1, name, version, deps]))?;
        blob_ref(v.get("result").unwrap_or(&Value::Null))
            .ok_or_else(|| shape(m, &v, r#"{"result":{"blobstore_id":…,"sha1":…}}"#))
    }

    /// `prepare`: the agent fetches the spec's packages and jobs ahead of `apply`.
    pub fn prepare(&self, spec: &Value) -> Result<(), DirectorError> {
        self.expect_str("prepare", json!([spec]), "prepared")
    }

    /// `apply`: installs the spec's packages and jobs.
    pub fn apply(&self, spec: &Value) -> Result<(), DirectorError> {
        self.expect_str("apply", json!([spec]), "applied")
    }

    /// `start`: monit starts the jobs.
    pub fn start(&self) -> Result<(), DirectorError> {
        self.expect_str("start", json!([]), "started")
    }

    /// `stop`: monit stops the jobs (protocol 3: waits until they are stopped).
    pub fn stop(&self) -> Result<(), DirectorError> {
        self.expect_str("stop", json!([]), "stopped")
    }

    /// `get_state`: the jobs' state.
    pub fn get_state(&self) -> Result<AgentState, DirectorError> {
        let m = "get_state";
        let v = self.expect_object(m, json!([]))?;
        let Some(job_state) = v.get("job_state").and_then(Value::as_str) else {
            return Err(shape(m, &v, "an object with a `job_state` string"));
        };
        let processes = v
            .get("processes")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .map(|p| ProcessState {
                        name: str_of(p, "name"),
                        state: str_of(p, "state"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(AgentState {
            agent_id: str_of(&v, "agent_id"),
            job_state: job_state.to_string(),
            processes,
            raw: v,
        })
    }

    /// `run_script`: runs `bin/NAME` (e.g. `pre-start`, `post-start`) of every job with `env`.
    pub fn run_script(
        &self,
        name: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<(), DirectorError> {
        self.expect_object("run_script", json!([name, {"env": env}]))
            .map(|_| ())
    }

    /// `drain`: runs the jobs' `bin/drain`; returns the agent's integer (0 when done).
    pub fn drain(&self, kind: &DrainKind) -> Result<i64, DirectorError> {
        let args = match kind {
            DrainKind::Shutdown => json!(["shutdown"]),
            DrainKind::Update(spec) => json!(["update", spec]),
        };
        let v = self.run("drain", args)?;
        v.as_i64().ok_or_else(|| shape("drain", &v, "an integer"))
    }

    /// `add_persistent_disk`: records disk `cid` and the CPI's `hint` (a device path string or
    /// an object of strings such as `{"path": "/dev/vdb"}`) in the agent's settings.
    pub fn add_persistent_disk(&self, cid: &str, hint: &Value) -> Result<(), DirectorError> {
        self.expect_object("add_persistent_disk", json!([cid, hint]))
            .map(|_| ())
    }

    /// `mount_disk`: partitions and formats disk `cid` if needed and mounts it at /var/vcap/store.
    pub fn mount_disk(&self, cid: &str) -> Result<(), DirectorError> {
        self.expect_object("mount_disk", json!([cid])).map(|_| ())
    }

    /// `unmount_disk`: unmounts disk `cid`; returns the agent's message.
    pub fn unmount_disk(&self, cid: &str) -> Result<String, DirectorError> {
        let m = "unmount_disk";
        let v = self.expect_object(m, json!([cid]))?;
        match v.get("message").and_then(Value::as_str) {
            Some(s) => Ok(s.to_string()),
            None => Err(shape(m, &v, r#"{"message":…}"#)),
        }
    }

    /// `list_disk`: the cids of the persistent disks mounted.
    pub fn list_disk(&self) -> Result<Vec<String>, DirectorError> {
        let v = self.run("list_disk", json!([]))?;
        let list = v.as_array().and_then(|a| {
            a.iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        });
        list.ok_or_else(|| shape("list_disk", &v, "an array of strings"))
    }

    /// `fetch_logs`: the agent tars the `log_type` (`job`, `agent`, `system`) logs matching
    /// `filters` (globs; empty for the agent's defaults) into the blobstore.
    pub fn fetch_logs(&self, log_type: &str, filters: &[&str]) -> Result<BlobRef, DirectorError> {
        let m = "fetch_logs";
        let v = self.run(m, json!([log_type, filters]))?;
        blob_ref(&v).ok_or_else(|| shape(m, &v, r#"{"blobstore_id":…,"sha1":…}"#))
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

fn shape(method: &str, v: &Value, expected: &'static str) -> DirectorError {
    let mut value = v.to_string();
    if value.len() > 600 {
        let cut = (0..=600)
            .rev()
            .find(|&i| value.is_char_boundary(i))
            .unwrap_or(0);
        value.truncate(cut);
        value.push('…');
    }
    DirectorError::Shape {
        method: method.into(),
        value,
        expected,
    }
}

fn blob_ref(v: &Value) -> Option<BlobRef> {
    let id = v.get("blobstore_id")?.as_str()?;
    let sha1 = v.get("sha1")?.as_str()?;
    (!id.is_empty()).then(|| BlobRef {
        blobstore_id: id.to_string(),
        sha1: sha1.to_string(),
    })
}

#[cfg(test)]
#[path = "director_tests.rs"]
mod tests;
