//! The boot test's checks: what each waits for, when it passed or failed (time since
//! power-on), and, on a failure, the cause read from the agent's own log and the console.

use std::time::Duration;

use super::guest::{ProbeLine, EPHEMERAL_SERIAL};

/// How long the agent's process must stay up before the service check passes.
pub const AGENT_UP_SECS: u64 = 10;
/// Agent restarts that make a crash loop.
pub const CRASH_LOOP_RESTARTS: usize = 4;

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
}

impl CheckId {
    /// Every check.
    pub const ALL: [CheckId; 6] = [
        CheckId::KernelRoot,
        CheckId::AgentStarted,
        CheckId::Monit,
        CheckId::Ping,
        CheckId::GetState,
        CheckId::EphemeralDisk,
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
        }
    }

    /// Whether only a real agent can make it pass.
    pub fn needs_agent(self) -> bool {
        matches!(
            self,
            CheckId::Ping | CheckId::GetState | CheckId::EphemeralDisk
        )
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
}

impl Checks {
    /// Every check pending, or skipped with `skip_agent` as the reason when there is no real agent.
    pub fn new(pinned_monit: Option<String>, skip_agent: Option<&str>) -> Checks {
        let status = CheckId::ALL
            .iter()
            .map(|&c| match skip_agent {
                Some(why) if c.needs_agent() => (c, Status::Skipped(why.to_string())),
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
mod tests {
    use super::super::guest::parse_line;
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_agent_must_stay_up_and_a_crash_loop_fails() {
        let mut c = Checks::new(Some("5.2.5".into()), None);
        c.probe(&parse_line("PSTC agent pid=10 age=3").unwrap(), s(20));
        assert!(c.pending(CheckId::AgentStarted));
        c.probe(&parse_line("PSTC agent pid=10 age=11").unwrap(), s(28));
        assert_eq!(
            c.get(CheckId::AgentStarted),
            &Status::Passed(s(28), "pid 10, up 11 s".into())
        );

        // Up once, then exiting: the checks that wait on it fail at once.
        let mut c = Checks::new(None, None);
        c.probe(&parse_line("PSTC agent pid=10 age=12").unwrap(), s(30));
        for (i, pid) in ["11", "12", "13", "14"].iter().enumerate() {
            c.probe(
                &parse_line(&format!("PSTC agent pid={pid} age=2")).unwrap(),
                s(40 + i as u64),
            );
        }
        assert!(matches!(c.get(CheckId::AgentStarted), Status::Passed(..)));
        assert!(
            matches!(c.get(CheckId::Ping), Status::Failed(_, m) if m.contains("keeps exiting"))
        );

        let mut c = Checks::new(None, None);
        for i in 0..4 {
            let l = "PSTC agent none sv=down:_/etc/sv/agent:_1s,_normally_up,_want_up";
            c.probe(&parse_line(l).unwrap(), s(i));
        }
        assert!(
            matches!(c.get(CheckId::AgentStarted), Status::Failed(_, m) if m.contains("does not stay up"))
        );

        let mut c = Checks::new(None, None);
        for (i, pid) in ["1", "2", "3", "4", "5"].iter().enumerate() {
            c.probe(
                &parse_line(&format!("PSTC agent pid={pid} age=1")).unwrap(),
                s(i as u64),
            );
        }
        assert!(
            matches!(c.get(CheckId::AgentStarted), Status::Failed(_, m) if m.contains("does not stay up"))
        );
    }

    #[test]
    fn a_foreign_agent_binary_fails_by_its_elf_machine() {
        let mut c = Checks::new(None, Some("no agent"));
        c.expect_arch("armhf");
        c.probe(
            &parse_line("PSTC agent-elf machine=40 class=1").unwrap(),
            s(9),
        );
        assert!(c.pending(CheckId::AgentStarted));
        c.probe(
            &parse_line("PSTC agent-elf machine=62 class=2").unwrap(),
            s(9),
        );
        match c.get(CheckId::AgentStarted) {
            Status::Failed(_, m) => assert!(
                m.contains("exec format error")
                    && m.contains("64-bit x86-64")
                    && m.contains("needs a 32-bit ARM ELF"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_x86_agent_fails_naming_exec_format_error() {
        let mut c = Checks::new(None, Some("no agent"));
        c.probe(
            &parse_line("PSTC agent-elf machine=62 class=2").unwrap(),
            s(9),
        );
        c.agent_log("2026-12-04_10:00:01 ./run: line 7: /var/vcap/bosh/bin/bosh-agent: cannot execute binary file: Exec format error", s(12));
        match c.get(CheckId::AgentStarted) {
            Status::Failed(_, m) => assert!(
                m.contains("exec format error") && m.contains("64-bit x86-64"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(c.get(CheckId::Ping), Status::Skipped(_)));
    }

    #[test]
    fn monit_must_be_the_pinned_version_and_serve_http() {
        let mut c = Checks::new(Some("5.2.5".into()), None);
        c.probe(
            &parse_line("PSTC monit pid=7 version=5.33.0 http=200").unwrap(),
            s(30),
        );
        assert!(matches!(c.get(CheckId::Monit), Status::Failed(_, m) if m.contains("pins 5.2.5")));
        let mut c = Checks::new(Some("5.2.5".into()), None);
        c.probe(
            &parse_line("PSTC monit pid=7 version=5.2.5 http=none").unwrap(),
            s(30),
        );
        assert!(c.pending(CheckId::Monit));
        c.probe(
            &parse_line("PSTC monit pid=7 version=5.2.5 http=200").unwrap(),
            s(32),
        );
        assert!(matches!(c.get(CheckId::Monit), Status::Passed(t, _) if *t == s(32)));
    }

    #[test]
    fn the_data_dir_must_be_ext4_on_the_ephemeral_disk() {
        let mut c = Checks::new(None, None);
        c.probe(
            &parse_line("PSTC data source=/dev/vdb2 fstype=ext4 disk=vdb serial=other swap=")
                .unwrap(),
            s(40),
        );
        assert!(c.pending(CheckId::EphemeralDisk));
        c.probe(&parse_line(&format!("PSTC data source=/dev/vdb2 fstype=ext4 disk=vdb serial={EPHEMERAL_SERIAL} swap=/dev/vdb1,")).unwrap(), s(41));
        assert!(
            matches!(c.get(CheckId::EphemeralDisk), Status::Passed(_, m) if m.contains("swap /dev/vdb1"))
        );
    }

    #[test]
    fn a_read_only_root_or_a_panic_fails_the_first_check() {
        let mut c = Checks::new(None, None);
        c.console(
            "[    0.000000] Linux version 6.1.0-50-armmp (debian-kernel@…)",
            s(1),
        );
        c.console(
            "[    7.5] EXT4-fs (vda2): mounted filesystem with ordered data mode.",
            s(8),
        );
        c.probe(
            &parse_line("PSTC root source=/dev/vda2 fstype=ext4 options=rw,relatime").unwrap(),
            s(9),
        );
        assert!(
            matches!(c.get(CheckId::KernelRoot), Status::Passed(t, m) if m.contains("6.1.0-50-armmp") && *t == s(8))
        );
        let mut c = Checks::new(None, None);
        c.console(
            "[    3.1] Kernel panic - not syncing: VFS: Unable to mount root fs",
            s(3),
        );
        assert!(matches!(c.get(CheckId::KernelRoot), Status::Failed(..)));
    }

    #[test]
    fn diagnosis_names_the_syslog_group_and_the_agents_own_error() {
        let log = vec![
            "a".to_string(),
            "[Main] 2026/12/04 ERROR - App setup Running bootstrap: Setting up logging: chown: invalid group: 'root:syslog'".to_string(),
        ];
        assert!(diagnose(&log, None, &[]).unwrap().contains("syslog"));
        let chown = "[main] ERROR - App setup Running bootstrap: Setting up log dir: Chowning root log dir: chown: invalid group: 'root:syslog'";
        let d = diagnose(&[], Some(chown), &[]).unwrap();
        assert!(
            d.starts_with("the image lacks") && d.contains("root:syslog"),
            "{d}"
        );
        let log = vec!["[main] ERROR - Platform not found: debian".to_string()];
        assert_eq!(
            diagnose(&log, None, &[]).unwrap(),
            "the agent's last error: [main] ERROR - Platform not found: debian"
        );
        assert_eq!(diagnose(&[], None, &[]), None);
    }
}
