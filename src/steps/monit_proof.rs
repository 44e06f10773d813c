//! The monit proof: run the installed monit inside the rootfs (under qemu-user on x86_64)
//! with the stemcell's monitrc and a small test service, and talk to it exactly the way
//! bosh-agent's monit client does (`jobsupervisor/monit/http_client.go`):
//!
//! - `GET /_status2?format=xml` with Basic auth from `/var/vcap/monit/monit.user` and
//!   `Content-Type: application/x-www-form-urlencoded`, decoded as the agent does: the
//!   `<monit incarnation version>` root, per `services/service[@name]` the `status`,
//!   `status_message`, `monitor`, `pendingaction`, `uptime`, `children`, `memory` and `cpu`
//!   values, and `servicegroups/servicegroup[@name="vcap"]/service`;
//! - `POST /<service>` with the body `action=stop`, `action=start`, `action=unmonitor`; only
//!   HTTP 200 counts, and each action must take effect;
//! - a restart of monit must change its `incarnation` (the agent's reload waits for that).
//!
//! The rootfs is not changed: monit runs in an overlay of it (upper layer in the work dir,
//! dropped afterwards), in a private network namespace (so port 2822 on the build host is
//! never touched and parallel builds do not collide).

use std::io::Read;

use super::monit_http::{body_text, request};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The test service the proof defines.
pub const SERVICE: &str = "pistemcell-proof";
/// How long one expected change may take (monit acts on its next cycle, under emulation).
const SETTLE: Duration = Duration::from_secs(90);

/// Why the proof failed: the request (as the agent sends it) and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `POST /pistemcell-proof action=start`, `GET /_status2?format=xml`, `monit -V`, ...
    pub request: String,
    /// What happened instead of what the agent needs.
    pub detail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.request, self.detail)
    }
}

/// The parts of monit's status the agent reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// `<monit incarnation>`: monit's start time.
    pub incarnation: i64,
    /// `<monit version>`.
    pub version: String,
    /// The test service: (status, monitor, pendingaction).
    pub service: Option<(i64, i64, i64)>,
    /// Whether the `vcap` group lists the test service.
    pub in_vcap_group: bool,
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(name))
}

/// Decodes a status document as the agent's `status` struct does; a field the agent reads
/// that is missing or not a number is an error naming it.
pub fn parse_status(body: &[u8]) -> Result<Status, String> {
    // monit declares ISO-8859-1: every byte is one character.
    let text: String = body.iter().map(|&b| b as char).collect();
    let text = match text.find("?>") {
        Some(i) if text.trim_start().starts_with("<?xml") => text[i + 2..].to_string(),
        _ => text,
    };
    let doc = roxmltree::Document::parse(&text).map_err(|e| {
        let start: String = text.chars().take(80).collect();
        format!("the status is not XML ({e}); it begins {start:?}")
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "monit" {
        return Err(format!(
            "the root element is <{}>, the agent decodes <monit>",
            root.tag_name().name()
        ));
    }
    let incarnation = root
        .attribute("incarnation")
        .ok_or("<monit> has no incarnation attribute (the agent's restart check reads it)")?
        .parse::<i64>()
        .map_err(|_| "<monit incarnation> is not an integer (the agent Atoi's it)".to_string())?;
    let mut status = Status {
        incarnation,
        version: root.attribute("version").unwrap_or_default().to_string(),
        ..Status::default()
    };
    let services = child(root, "services").ok_or("no <services> element")?;
    for s in services.children().filter(|c| c.has_tag_name("service")) {
        if s.attribute("name") != Some(SERVICE) {
            continue;
        }
        let num = |name: &str| -> Result<i64, String> {
            let t = child(s, name)
                .and_then(|c| c.text())
                .ok_or_else(|| format!("service {SERVICE} has no <{name}> (the agent reads it)"))?;
            t.trim()
                .parse::<f64>()
                .map(|v| v as i64)
                .map_err(|_| format!("<{name}> of {SERVICE} is `{t}`, not a number"))
        };
        let (st, mon, pend) = (num("status")?, num("monitor")?, num("pendingaction")?);
        // Go's decoder fails the whole status on a value that is present but not a number
        // (absent ones decode as 0: monit leaves memory and cpu out for a stopped process).
        for (outer, inner) in [
            ("uptime", None),
            ("children", None),
            ("memory", Some("percent")),
            ("memory", Some("percenttotal")),
            ("memory", Some("kilobyte")),
            ("memory", Some("kilobytetotal")),
            ("cpu", Some("percent")),
            ("cpu", Some("percenttotal")),
        ] {
            let node = child(s, outer).and_then(|o| match inner {
                Some(i) => child(o, i),
                None => Some(o),
            });
            if let Some(t) = node.and_then(|n| n.text()) {
                if t.trim().parse::<f64>().is_err() {
                    return Err(format!(
                        "<{outer}{}> of {SERVICE} is `{t}`: the agent cannot decode it",
                        inner.map_or(String::new(), |i| format!("><{i}"))
                    ));
                }
            }
        }
        status.service = Some((st, mon, pend));
    }
    if let Some(groups) = child(root, "servicegroups") {
        status.in_vcap_group = groups
            .children()
            .filter(|g| g.has_tag_name("servicegroup") && g.attribute("name") == Some("vcap"))
            .flat_map(|g| g.children().filter(|c| c.has_tag_name("service")))
            .any(|c| c.text().map(str::trim) == Some(SERVICE));
    }
    Ok(status)
}

/// The job monitrc the proof adds: a process in group `vcap`, like a BOSH job's.
pub fn proof_monitrc() -> String {
    let pid = format!("/tmp/{SERVICE}.pid");
    format!(
        "check process {SERVICE}\n  with pidfile {pid}\n  start program \"/bin/sh -c 'sleep 100000 >/dev/null 2>&1 & echo $! > {pid}'\"\n  stop program \"/bin/sh -c 'kill $(cat {pid}); rm -f {pid}'\"\n  group vcap\n"
    )
}

/// The host's `chroot` (found on the build's PATH, not the child's).
pub fn chroot_program() -> std::path::PathBuf {
    crate::cmd::find_on_path("chroot").unwrap_or_else(|| "/usr/sbin/chroot".into())
}

/// The monit process of the proof, stopped (with everything it started) on drop.
pub struct Monit {
    child: Option<Child>,
    root: PathBuf,
}

impl Monit {
    /// Starts `monit -I` chrooted into `root`, its output into `log`.
    pub fn start(root: &Path, log: &Path) -> Result<Monit, String> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(chroot_program())
            .arg(root)
            .args([
                "/var/vcap/bosh/bin/monit",
                "-I",
                "-c",
                "/var/vcap/bosh/etc/monitrc",
            ])
            .env_clear()
            .env("PATH", "/var/vcap/bosh/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start chroot {} monit: {e}", root.display()))?;
        Ok(Monit {
            child: Some(child),
            root: root.to_path_buf(),
        })
    }

    /// Whether monit is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops monit and every process whose root is the proof's tree.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let t = Instant::now();
            while matches!(c.try_wait(), Ok(None)) && t.elapsed() < Duration::from_secs(15) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        kill_rooted_at(&self.root);
    }
}

impl Drop for Monit {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kills every process whose root directory is `root` (what monit started there).
pub fn kill_rooted_at(root: &Path) {
    let Ok(canon) = std::fs::canonicalize(root) else {
        return;
    };
    for _ in 0..3 {
        let mut found = false;
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if std::fs::read_link(e.path().join("root")).is_ok_and(|r| r == canon) {
                found = true;
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        if !found {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What a poll saw: keep waiting (with what was seen), or give up at once.
#[derive(Debug)]
pub enum Poll {
    /// Not yet; the text says what was seen.
    NotYet(String),
    /// It will not happen; the text says why.
    Fatal(String),
}

/// Polls `check` until it returns `Ok(())` or [`SETTLE`] passes.
pub fn wait_for(mut check: impl FnMut() -> Result<(), Poll>) -> Result<(), String> {
    let t = Instant::now();
    let mut last = String::from("no answer yet");
    while t.elapsed() < SETTLE {
        match check() {
            Ok(()) => return Ok(()),
            Err(Poll::NotYet(e)) => last = e,
            Err(Poll::Fatal(e)) => return Err(e),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(format!(
        "not within {} s (last seen: {last})",
        SETTLE.as_secs()
    ))
}

fn pid_alive(root: &Path) -> bool {
    std::fs::read_to_string(root.join(format!("tmp/{SERVICE}.pid")))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .is_some_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
}

/// The version `monit -V` prints (`This is Monit version 5.2.5`).
pub fn version_of(output: &str) -> Option<String> {
    let i = output.find("version ")?;
    output[i + 8..]
        .split_whitespace()
        .next()
        .map(str::to_string)
}

fn random_password() -> String {
    let mut b = [0u8; 12];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs the proof in `root` (a throwaway tree with monit installed): returns the transcript,
/// or the first request that did not behave as the agent needs.
pub fn converse(root: &Path, log: &Path) -> Result<Vec<String>, Failure> {
    let setup = |detail: String| Failure {
        request: "setting up the proof".into(),
        detail,
    };
    let password = random_password();
    let user_file = root.join("var/vcap/monit/monit.user");
    std::fs::write(&user_file, format!("vcap:{password}"))
        .map_err(|e| setup(format!("{}: {e}", user_file.display())))?;
    let jobs = root.join("var/vcap/monit/job");
    std::fs::create_dir_all(&jobs).map_err(|e| setup(format!("{}: {e}", jobs.display())))?;
    std::fs::write(jobs.join(format!("{SERVICE}.monitrc")), proof_monitrc())
        .map_err(|e| setup(e.to_string()))?;
    let mut transcript = Vec::new();
    let status_req = "GET /_status2?format=xml";
    let status = || -> Result<Status, Poll> {
        let a =
            request("GET", "/_status2?format=xml", "vcap", &password, "").map_err(Poll::NotYet)?;
        if a.code != 200 {
            return Err(Poll::Fatal(format!(
                "answered HTTP {} {}: {}",
                a.code,
                a.reason,
                body_text(&a.body)
            )));
        }
        parse_status(&a.body).map_err(Poll::Fatal)
    };
    let mut monit = Monit::start(root, log).map_err(setup)?;
    let mut first = Status::default();
    wait_for(|| {
        if !monit.alive() {
            return Err(Poll::Fatal(format!(
                "monit exited (its log: {})",
                log.display()
            )));
        }
        let s = status()?;
        match s.service {
            Some(_) => {
                first = s;
                Ok(())
            }
            None => Err(Poll::Fatal(format!(
                "the status lists no service {SERVICE} although its job monitrc is included"
            ))),
        }
    })
    .map_err(|detail| Failure {
        request: status_req.into(),
        detail,
    })?;
    if !first.in_vcap_group {
        return Err(Failure {
            request: status_req.into(),
            detail: format!("servicegroup vcap does not list {SERVICE}: the agent finds its jobs through that group"),
        });
    }
    transcript.push(format!(
        "{status_req}: 200, monit {} incarnation {}",
        first.version, first.incarnation
    ));
    type Want = fn(&(i64, i64, i64), bool) -> bool;
    let steps: [(&str, Want, &str); 4] = [
        (
            "start",
            |s, alive| s.1 == 1 && s.0 == 0 && alive,
            "monitored and running",
        ),
        (
            "stop",
            |s, alive| s.1 == 0 && !alive,
            "stopped and not monitored",
        ),
        (
            "start",
            |s, alive| s.1 == 1 && s.0 == 0 && alive,
            "monitored and running",
        ),
        (
            "unmonitor",
            |s, alive| s.1 == 0 && alive,
            "running but not monitored",
        ),
    ];
    for (action, want, wanted) in steps {
        let req = format!("POST /{SERVICE} action={action}");
        let fail = |detail: String| Failure {
            request: req.clone(),
            detail,
        };
        // Like the agent's retry clients: a 503 ("other action already in progress") is
        // retried every second (start: 20 attempts; stop and unmonitor: up to 300).
        let attempts = if action == "start" { 20 } else { 90 };
        let mut a = request(
            "POST",
            &format!("/{SERVICE}"),
            "vcap",
            &password,
            &format!("action={action}"),
        )
        .map_err(fail)?;
        for _ in 1..attempts {
            if a.code != 503 {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            a = request(
                "POST",
                &format!("/{SERVICE}"),
                "vcap",
                &password,
                &format!("action={action}"),
            )
            .map_err(fail)?;
        }
        if a.code != 200 {
            return Err(fail(format!(
                "answered HTTP {} {} (the agent accepts only 200): {}",
                a.code,
                a.reason,
                body_text(&a.body)
            )));
        }
        wait_for(|| {
            let s = status()?;
            let svc = s.service.unwrap_or_default();
            let alive = pid_alive(root);
            if want(&svc, alive) {
                Ok(())
            } else {
                Err(Poll::NotYet(format!(
                    "status {} monitor {} pendingaction {}, process {}",
                    svc.0,
                    svc.1,
                    svc.2,
                    if alive { "running" } else { "not running" }
                )))
            }
        })
        .map_err(|e| {
            fail(format!(
                "answered 200, but the service did not become {wanted}: {e}"
            ))
        })?;
        transcript.push(format!("{req}: 200, service {wanted}"));
    }
    // The agent's reload: kill monit, start it, wait for a new incarnation.
    monit.stop();
    std::thread::sleep(Duration::from_millis(1100));
    let mut monit = Monit::start(root, log).map_err(setup)?;
    let mut second = 0;
    wait_for(|| {
        if !monit.alive() {
            return Err(Poll::Fatal(format!(
                "monit did not start again (its log: {})",
                log.display()
            )));
        }
        second = status()?.incarnation;
        Ok(())
    })
    .map_err(|detail| Failure {
        request: format!("{status_req} after a restart"),
        detail,
    })?;
    if second == first.incarnation {
        return Err(Failure {
            request: format!("{status_req} after a restart"),
            detail: format!(
                "the incarnation stayed {second}: the agent's reload would wait for ever"
            ),
        });
    }
    transcript.push(format!(
        "restart: incarnation {} -> {second}",
        first.incarnation
    ));
    monit.stop();
    Ok(transcript)
}

/// Brings the loopback interface up in the calling thread's network namespace.
pub fn loopback_up() -> Result<(), String> {
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let r = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &mut req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if r != 0 {
            return Err(format!("bringing up lo: {err}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_decoded_like_the_agent_does() {
        let xml = format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1"?><monit id="x" incarnation="1386971748" version="5.2.5"><server/><services><service name="{SERVICE}"><status>0</status><monitor>1</monitor><pendingaction>0</pendingaction><uptime>3</uptime><memory><kilobytetotal>12</kilobytetotal></memory><cpu><percenttotal>0.0</percenttotal></cpu></service></services><servicegroups><servicegroup name="vcap"><service>{SERVICE}</service></servicegroup></servicegroups></monit>"#
        );
        let s = parse_status(xml.as_bytes()).unwrap();
        assert_eq!(s.incarnation, 1386971748);
        assert_eq!(s.service, Some((0, 1, 0)));
        assert!(s.in_vcap_group);
        let no_inc = xml.replace("incarnation=\"1386971748\" ", "");
        assert!(parse_status(no_inc.as_bytes())
            .unwrap_err()
            .contains("incarnation"));
        let no_mon = xml.replace("<monitor>1</monitor>", "");
        assert!(parse_status(no_mon.as_bytes())
            .unwrap_err()
            .contains("<monitor>"));
    }
}
