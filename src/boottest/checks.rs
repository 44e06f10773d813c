//! The boot test's checks: what each waits for, when it passed or failed (time since
//! power-on), and, on a failure, the cause read from the agent's own log and the console.

use std::time::Duration;

use super::card::{self, DataPlan};
use super::guest::{ProbeLine, EPHEMERAL_SERIAL};

/// How long the agent's process must stay up before the service check passes.
pub const AGENT_UP_SECS: u64 = 10;
/// Agent restarts that make a crash loop.
pub const CRASH_LOOP_RESTARTS: usize = 4;
/// How long after the agent first answers `ping` a disk check may still wait: the agent
/// serves its mbus only after its bootstrap, disks included, so this is the probe's lag only.
/// The probe must also have started two rounds since (a round can take 20 s when emulation
/// is slow): the second one's mounts were read after the answer.
pub const DISK_AFTER_PING_SECS: u64 = 6;

/// The checks, in the order they usually pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckId {
    /// The kernel booted and mounted the root filesystem read-write.
    KernelRoot,
    /// The service manager started the agent and it stays up.
    AgentStarted,
    /// monit runs as the pinned version and serves its HTTP API.
    Monit,
    /// The agent answers `ping` with `pong` over its HTTPS mbus.
    Ping,
    /// `get_state` answers with the agent's version and monit's job state.
    GetState,
    /// `/var/vcap/data` is ext4 on the ephemeral disk.
    EphemeralDisk,
    /// `/var/vcap/data` is ext4 on a partition the agent added to the SD card, with swap.
    DataPartition,
}

impl CheckId {
    /// Every check.
    pub const ALL: [CheckId; 7] = [
        CheckId::KernelRoot,
        CheckId::AgentStarted,
        CheckId::Monit,
        CheckId::Ping,
        CheckId::GetState,
        CheckId::EphemeralDisk,
        CheckId::DataPartition,
    ];

    /// A short machine name.
    pub fn name(self) -> &'static str {
        match self {
            CheckId::KernelRoot => "kernel-root",
            CheckId::AgentStarted => "agent-started",
            CheckId::Monit => "monit",
            CheckId::Ping => "ping",
            CheckId::GetState => "get-state",
            CheckId::EphemeralDisk => "ephemeral-disk",
            CheckId::DataPartition => "card-data-partition",
        }
    }

    /// What it checks, in words.
    pub fn title(self) -> &'static str {
        match self {
            CheckId::KernelRoot => "kernel booted and root mounted",
            CheckId::AgentStarted => "service manager started the agent",
            CheckId::Monit => "monit running as the pinned version",
            CheckId::Ping => "agent answers ping over its HTTPS mbus",
            CheckId::GetState => "get_state reports version and job state",
            CheckId::EphemeralDisk => "/var/vcap/data is ext4 on the ephemeral disk",
            CheckId::DataPartition => {
                "the agent made swap and ext4 /var/vcap/data on the SD card after root"
            }
        }
    }

    /// Whether only a real agent can make it pass.
    pub fn needs_agent(self) -> bool {
        matches!(
            self,
            CheckId::Ping | CheckId::GetState | CheckId::EphemeralDisk | CheckId::DataPartition
        )
    }

    /// Whether it checks where the agent put `/var/vcap/data`.
    pub fn is_disk(self) -> bool {
        matches!(self, CheckId::EphemeralDisk | CheckId::DataPartition)
    }
}

/// Where a check stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Still waiting.
    Pending,
    /// Passed at this time since power-on.
    Passed(Duration, String),
    /// Failed at this time since power-on.
    Failed(Duration, String),
    /// Not run, with the reason.
    Skipped(String),
}

/// The checks' states and what the probe reported so far.
#[derive(Debug)]
pub struct Checks {
    /// Each check's status, in [`CheckId::ALL`] order.
    pub status: Vec<(CheckId, Status)>,
    /// The monit version the image records as its pin (`None`: no record).
    pub pinned_monit: Option<String>,
    /// The kernel version the console printed.
    pub kernel: Option<String>,
    /// The agent binary's ELF machine, as the probe read it.
    pub agent_machine: Option<String>,
    /// The ELF (`e_machine`, class) the image's architecture runs, when known.
    pub expected_elf: Option<(&'static str, &'static str)>,
    agent_pids: Vec<String>,
    agent_down: usize,
    /// The agent log's last ERROR line.
    pub last_agent_error: Option<String>,
    first_probe: Option<Duration>,
    root_mounted: Option<Duration>,
    monit_bad_since: Option<Duration>,
    plan: DataPlan,
    rounds_since_pong: usize,
    card_data: Option<card::Data>,
    card_layout: Vec<card::Part>,
}

impl Checks {
    /// Every check pending, or skipped with `skip_agent` as the reason when there is no real
    /// agent; of the two disk checks, the one `plan` says cannot pass is skipped, saying why.
    pub fn new(pinned_monit: Option<String>, skip_agent: Option<&str>, plan: DataPlan) -> Checks {
        let disk_skip = |c: CheckId| -> Option<String> {
            match (&plan, c) {
                (DataPlan::Skipped(why), c) if c.is_disk() => Some(why.clone()),
                (DataPlan::EphemeralDisk, CheckId::DataPartition) => Some("the VM has an ephemeral disk: the agent puts /var/vcap/data there (card-data-partition is for raw SD-card stemcells)".into()),
                (DataPlan::RootCard(_), CheckId::EphemeralDisk) => Some("a Pi has only its SD card: the image's agent.json (CreatePartitionIfNoEphemeralDisk) puts /var/vcap/data on the card (card-data-partition)".into()),
                _ => None,
            }
        };
        let status = CheckId::ALL
            .iter()
            .map(|&c| match (skip_agent, disk_skip(c)) {
                (Some(why), _) if c.needs_agent() => (c, Status::Skipped(why.to_string())),
                (_, Some(why)) => (c, Status::Skipped(why)),
                _ => (c, Status::Pending),
            })
            .collect();
        Checks {
            status,
            pinned_monit,
            kernel: None,
            agent_machine: None,
            expected_elf: None,
            agent_pids: Vec::new(),
            agent_down: 0,
            last_agent_error: None,
            first_probe: None,
            root_mounted: None,
            monit_bad_since: None,
            plan,
            rounds_since_pong: 0,
            card_data: None,
            card_layout: Vec::new(),
        }
    }

    /// Sets the ELF the agent binary must be, from the image's architecture.
    pub fn expect_arch(&mut self, arch: &str) {
        self.expected_elf = match arch {
            "armhf" | "armel" => Some(("40", "1")),
            "arm64" => Some(("183", "2")),
            _ => None,
        };
    }

    /// A check's status.
    pub fn get(&self, id: CheckId) -> &Status {
        self.status
            .iter()
            .find(|s| s.0 == id)
            .map_or(&Status::Pending, |s| &s.1)
    }

    /// Whether `id` is still pending.
    pub fn pending(&self, id: CheckId) -> bool {
        *self.get(id) == Status::Pending
    }

    fn set(&mut self, id: CheckId, st: Status) {
        if let Some(s) = self.status.iter_mut().find(|s| s.0 == id) {
            if s.1 == Status::Pending {
                s.1 = st;
            }
        }
    }

    /// Passes `id` (if pending).
    pub fn pass(&mut self, id: CheckId, at: Duration, detail: impl Into<String>) {
        self.set(id, Status::Passed(at, detail.into()));
    }

    /// Fails `id` (if pending).
    pub fn fail(&mut self, id: CheckId, at: Duration, detail: impl Into<String>) {
        self.set(id, Status::Failed(at, detail.into()));
    }

    /// Whether nothing is pending.
    pub fn done(&self) -> bool {
        self.status.iter().all(|s| s.1 != Status::Pending)
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.status
            .iter()
            .any(|s| matches!(s.1, Status::Failed(..)))
    }

    /// Fails every pending check with `why`.
    pub fn fail_pending(&mut self, at: Duration, why: &str) {
        for id in CheckId::ALL {
            self.fail(id, at, why);
        }
    }

    /// Whether the probe has seen the agent's process at all.
    pub fn agent_seen(&self) -> bool {
        !self.agent_pids.is_empty()
    }

    /// A console line at `at`.
    pub fn console(&mut self, line: &str, at: Duration) {
        if line.contains("EXT4-fs (") && line.contains("): mounted filesystem") {
            self.root_mounted.get_or_insert(at);
        }
        if let Some(v) = line.split("Linux version ").nth(1) {
            self.kernel = v.split_whitespace().next().map(str::to_string);
        }
        for bad in [
            "Kernel panic",
            "does not exist.  Dropping to a shell",
            "ALERT!",
            "Gave up waiting for root file system device",
        ] {
            if line.contains(bad) {
                self.fail(
                    CheckId::KernelRoot,
                    at,
                    format!("the console says: {}", line.trim()),
                );
            }
        }
    }

    /// An agent log line at `at`.
    pub fn agent_log(&mut self, line: &str, at: Duration) {
        if line.contains(" ERROR ") || line.contains("ERROR -") || line.contains("[ERROR]") {
            self.last_agent_error = Some(line.trim().to_string());
        }
        if line.contains("ERROR - App setup ") {
            // The agent's bootstrap failed: it exits now, and every restart fails the same way.
            let why = format!("the agent's bootstrap failed and it exits: {}", line.trim());
            // The service check too, unless the agent already stayed up long enough.
            for id in CheckId::ALL.into_iter().filter(|c| c.needs_agent()) {
                self.fail(id, at, why.clone());
            }
            self.fail(CheckId::AgentStarted, at, why);
        }
        if line.contains("Exec format error") || line.contains("exec format error") {
            let m = self
                .agent_machine
                .clone()
                .unwrap_or_else(|| "not ARM".into());
            self.fail(
                CheckId::AgentStarted,
                at,
                format!("the agent binary cannot run on this CPU (exec format error): /var/vcap/bosh/bin/bosh-agent is {m}; its log: {}", line.trim()),
            );
        }
    }

    /// A probe line at `at`.
    pub fn probe(&mut self, l: &ProbeLine, at: Duration) {
        let since_probe = at.saturating_sub(*self.first_probe.get_or_insert(at));
        self.probe_line(l, at, since_probe);
        self.disk_after_ping(at);
    }

    /// Once the agent answers `ping` its bootstrap is over: a disk check still pending a few
    /// seconds later (the probe's lag) fails at once, with the agent's last error.
    fn disk_after_ping(&mut self, at: Duration) {
        let Status::Passed(pong, _) = self.get(CheckId::Ping).clone() else {
            return;
        };
        if at < pong + Duration::from_secs(DISK_AFTER_PING_SECS) || self.rounds_since_pong < 2 {
            return;
        }
        let error = self
            .last_agent_error
            .clone()
            .unwrap_or_else(|| "none logged".into());
        let seen = match &self.card_data {
            Some(d) => format!("/var/vcap/data is {} on {}", d.fstype, d.source),
            None => "/var/vcap/data is not a mount".to_string(),
        };
        for id in [CheckId::EphemeralDisk, CheckId::DataPartition] {
            if self.pending(id) {
                let why = format!("the agent answered ping at {:.1} s, so its bootstrap (disks included) is over, but {seen}; the agent's last error: {error}", pong.as_secs_f64());
                self.fail(id, at, why);
            }
        }
    }

    fn probe_line(&mut self, l: &ProbeLine, at: Duration, since_probe: Duration) {
        match l.key.as_str() {
            "root" => {
                let (src, fstype, opts) = (l.get("source"), l.get("fstype"), l.get("options"));
                let k = self.kernel.clone().unwrap_or_else(|| "?".into());
                if opts.starts_with("rw") {
                    // When the kernel mounted it, if the console said; the probe confirms later.
                    let t = self.root_mounted.unwrap_or(at);
                    self.pass(
                        CheckId::KernelRoot,
                        t,
                        format!("Linux {k}; / is {src} ({fstype}, rw)"),
                    );
                } else {
                    self.fail(
                        CheckId::KernelRoot,
                        at,
                        format!("/ is {src} ({fstype}) mounted `{opts}`, not read-write"),
                    );
                }
            }
            "agent-elf" => {
                let (m, c) = (l.get("machine"), l.get("class"));
                let what = elf_machine(m, c);
                self.agent_machine = Some(what.clone());
                if let Some((em, ec)) = self.expected_elf {
                    if (m, c) != (em, ec) {
                        // The kernel refuses it (ENOEXEC); execvp then hands it to /bin/sh,
                        // whose "Syntax error" is all the agent's log will show.
                        self.fail(
                            CheckId::AgentStarted,
                            at,
                            format!("the agent binary cannot run on this CPU (exec format error): /var/vcap/bosh/bin/bosh-agent is {what}, the image needs {}", elf_machine(em, ec)),
                        );
                    }
                }
            }
            "agent" => {
                if matches!(self.get(CheckId::Ping), Status::Passed(..)) {
                    self.rounds_since_pong += 1;
                }
                let pid = l.get("pid");
                if !pid.is_empty() {
                    if !self.agent_pids.iter().any(|p| p == pid) {
                        self.agent_pids.push(pid.to_string());
                    }
                    let age: u64 = l.get("age").parse().unwrap_or(0);
                    if age >= AGENT_UP_SECS {
                        self.pass(CheckId::AgentStarted, at, format!("pid {pid}, up {age} s"));
                    }
                }
                let sv = l.get("sv").replace('_', " ");
                if pid.is_empty() && sv.starts_with("down:") && sv.contains("want up") {
                    self.agent_down += 1;
                }
                let restarts = self.agent_pids.len().saturating_sub(1) + self.agent_down;
                if restarts >= CRASH_LOOP_RESTARTS {
                    self.fail(
                        CheckId::AgentStarted,
                        at,
                        format!("the agent does not stay up: runit restarted it at least {restarts} times, never up {AGENT_UP_SECS} s (sv: {})", if sv.is_empty() { "run" } else { &sv }),
                    );
                    // Up once, then exiting again and again: what waits on it will not come.
                    let why = format!(
                        "the agent keeps exiting: runit restarted it at least {restarts} times"
                    );
                    self.fail_pending(at, &why);
                }
                if self.agent_pids.is_empty()
                    && sv.starts_with("fail:")
                    && since_probe > Duration::from_secs(90)
                {
                    self.fail(
                        CheckId::AgentStarted,
                        at,
                        format!("runit does not supervise the agent: {sv}"),
                    );
                }
            }
            "monit" => {
                let (v, http) = (l.get("version"), l.get("http"));
                match &self.pinned_monit {
                    Some(pin) if !v.is_empty() && v != pin => self.fail(
                        CheckId::Monit,
                        at,
                        format!("monit {v} runs, but the image pins {pin}"),
                    ),
                    _ if http == "200" => {
                        let pin = self
                            .pinned_monit
                            .clone()
                            .unwrap_or_else(|| "none recorded".into());
                        self.pass(
                            CheckId::Monit,
                            at,
                            format!("monit {v} (pin: {pin}), pid {}, answers its HTTP API on 127.0.0.1:2822", l.get("pid")),
                        );
                    }
                    _ => {
                        let since = *self.monit_bad_since.get_or_insert(at);
                        if at.saturating_sub(since) > Duration::from_secs(60) {
                            self.fail(CheckId::Monit, at, format!("monit {v} runs but its HTTP API answers `{http}` (not 200) for a minute"));
                        }
                    }
                }
            }
            "data" if matches!(self.plan, DataPlan::RootCard(_)) => {
                self.card_data = Some(card::Data {
                    source: l.get("source").into(),
                    fstype: l.get("fstype").into(),
                    disk: l.get("disk").into(),
                    swap: l
                        .get("swap")
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                });
                self.judge_card(at);
            }
            "layout" => {
                self.card_layout = card::parse_layout(l.get("parts"));
                self.judge_card(at);
            }
            "data" => {
                let (src, fstype, serial) = (l.get("source"), l.get("fstype"), l.get("serial"));
                let swap = l.get("swap").trim_end_matches(',');
                if fstype == "ext4" && serial == EPHEMERAL_SERIAL {
                    self.pass(
                        CheckId::EphemeralDisk,
                        at,
                        format!(
                            "ext4 on {src} (the ephemeral disk), swap {}",
                            if swap.is_empty() { "none" } else { swap }
                        ),
                    );
                } else if !fstype.is_empty() && fstype != "ext4" {
                    self.fail(
                        CheckId::EphemeralDisk,
                        at,
                        format!("/var/vcap/data is {fstype} on {src}, not ext4"),
                    );
                }
            }
            _ => {}
        }
    }
}

impl Checks {
    /// The card check, once the probe reported both the data mount and the card's layout.
    fn judge_card(&mut self, at: Duration) {
        let (DataPlan::RootCard(c), Some(d)) = (&self.plan, &self.card_data) else {
            return;
        };
        if self.card_layout.is_empty() {
            return;
        }
        match card::judge(c, d, &self.card_layout) {
            Ok(detail) => self.pass(CheckId::DataPartition, at, detail),
            Err(why) => self.fail(CheckId::DataPartition, at, why),
        }
    }
}

/// An ELF `e_machine` (and class) in words.
pub fn elf_machine(machine: &str, class: &str) -> String {
    let bits = match class {
        "1" => "32-bit ",
        "2" => "64-bit ",
        _ => "",
    };
    let name = match machine {
        "40" => "ARM",
        "183" => "AArch64",
        "62" => "x86-64",
        "3" => "i386",
        "" => return "not an ELF file (or missing)".into(),
        m => return format!("an ELF for machine {m}"),
    };
    format!("a {bits}{name} ELF")
}

/// What the logs say went wrong, when they say it in a way we know.
pub fn diagnose(
    agent_log: &[String],
    last_error: Option<&str>,
    console: &[String],
) -> Option<String> {
    let find = |pred: &dyn Fn(&str) -> bool| agent_log.iter().rev().find(|l| pred(l)).cloned();
    if let Some(l) = find(&|l| l.contains("xec format error")) {
        return Some(format!(
            "the agent binary is not for this CPU (exec format error): {}",
            l.trim()
        ));
    }
    if let Some(l) = find(&|l| l.contains("syslog") && (l.contains("group") || l.contains("chown")))
    {
        return Some(format!(
            "the image lacks what the agent needs for its logs (the `syslog` group): {}",
            l.trim()
        ));
    }
    if let Some(l) = last_error {
        if l.contains("syslog") && (l.contains("group") || l.contains("chown")) {
            return Some(format!(
                "the image lacks what the agent needs for its logs (the `syslog` group): {l}"
            ));
        }
        return Some(format!("the agent's last error: {l}"));
    }
    if let Some(l) = find(&|l| l.contains("ERROR") || l.contains("[Error]") || l.contains("error:"))
    {
        return Some(format!("the agent's last error: {}", l.trim()));
    }
    console
        .iter()
        .rev()
        .find(|l| l.contains("Kernel panic") || l.contains("ALERT!") || l.contains("FAILED"))
        .map(|l| format!("the console: {}", l.trim()))
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
