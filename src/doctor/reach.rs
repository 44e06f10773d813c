//! Whether this host can reach what the next build downloads: the archive's signed index,
//! monit's pinned tarball and the agent's git repository, each probed only when the build
//! would fetch it (not cached, not given as a local file). One attempt each with short
//! timeouts: a closed network shows up in seconds, before a build has run for minutes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{finding, Finding, Level};
use crate::spec::Resolved;

/// How long a probe may take before it counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// The network findings for building `spec` (`cli_mirror` is the global `--mirror`).
pub fn check(spec: &Resolved, cli_mirror: Option<&str>, cache: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Ok(mirror) = crate::mirror::choose(spec, cli_mirror, Path::new("/etc/apt")) {
        let url = format!("{mirror}/dists/{}/InRelease", spec.suite);
        out.push(match http(&url) {
            Ok(()) => finding(Level::Ok, "mirror", format!("the archive answers: {url}")),
            Err(reason) => finding(
                Level::Warn,
                "mirror",
                format!(
                    "cannot get {url}: {reason}; the bootstrap downloads from this archive unless it is cached: check the host's network and proxy settings, or pass --mirror URL"
                ),
            ),
        });
    }
    let a = spec.monit.from.artifact();
    if let (Some(url), None) = (&a.url, &a.path) {
        if !crate::steps::artifact::is_cached(cache, a) {
            let field = format!("monit.{}", spec.monit.from.kind());
            out.push(match http(url) {
                Ok(()) => finding(
                    Level::Ok,
                    "monit",
                    format!("{field} answers: {url} (the build downloads it and checks its pinned sha256)"),
                ),
                Err(reason) => finding(
                    Level::Warn,
                    "monit",
                    crate::steps::artifact::ArtifactError::Unavailable {
                        field,
                        location: url.clone(),
                        reason,
                    }
                    .to_string(),
                ),
            });
        }
    }
    out
}

/// The finding of a git source not fetched yet: its repository answers, or what to give
/// instead on a closed network.
pub fn agent(url: &str, rev: &str) -> Finding {
    match git(url) {
        Ok(()) => finding(
            Level::Ok,
            "agent",
            format!("bosh-agent {url} at commit {rev}: the repository answers; the first build fetches it with git"),
        ),
        Err(reason) => finding(
            Level::Warn,
            "agent",
            crate::steps::agent_fetch::FetchError::Unavailable {
                field: "agent.source".into(),
                hint: crate::steps::agent_fetch::OFFLINE_HINT.into(),
                url: url.into(),
                rev: rev.into(),
                reason,
            }
            .to_string(),
        ),
    }
}

/// Opens `url` once and reads no body: `Ok` when the server answers 2xx or 3xx.
pub fn http(url: &str) -> Result<(), String> {
    if let Some(path) = url.strip_prefix("file://") {
        return std::fs::metadata(path)
            .map(|_| ())
            .map_err(|e| format!("{path}: {e}"));
    }
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(PROBE_TIMEOUT)
        .timeout_read(PROBE_TIMEOUT)
        .user_agent(concat!("pistemcell/", env!("CARGO_PKG_VERSION")))
        .build();
    match agent.get(url).call() {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, _)) => Err(format!("the server answered HTTP {code}")),
        Err(ureq::Error::Transport(t)) => Err(crate::archive::http::transport_reason(url, &t)),
    }
}

/// Asks the git repository at `url` for its refs (`git ls-remote`), giving up after
/// [`PROBE_TIMEOUT`]: `Ok` when it answers.
pub fn git(url: &str) -> Result<(), String> {
    let mut child = Command::new("git")
        .args([
            "-c",
            "http.lowSpeedLimit=1",
            "-c",
            "http.lowSpeedTime=15",
            "ls-remote",
            "--quiet",
            url,
            "HEAD",
        ])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`git`: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < PROBE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`git ls-remote` had no answer after {} s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`git ls-remote`: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // git's first `fatal:` line says what failed; the advice after it is generic.
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let why = lines
        .iter()
        .find(|l| l.starts_with("fatal:"))
        .or(lines.last())
        .unwrap_or(&"");
    Err(format!("`git ls-remote` failed ({}): {why}", out.status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-shot HTTP server on 127.0.0.1 answering with `status`; returns its URL.
    fn serve(status: &'static str) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        format!("http://127.0.0.1:{port}/monit-5.2.5.tar.gz")
    }

    #[test]
    fn http_tells_an_answer_from_a_refusal_and_an_error_status() {
        assert_eq!(http(&serve("200 OK")), Ok(()));
        let e = http(&serve("404 Not Found")).unwrap_err();
        assert!(e.contains("HTTP 404"), "{e}");
        // A port nobody listens on: refused at once.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = http(&format!("http://127.0.0.1:{port}/x")).unwrap_err();
        assert!(!e.is_empty());
        let e = http("file:///nonexistent/monit.tar.gz").unwrap_err();
        assert!(e.contains("/nonexistent/monit.tar.gz"), "{e}");
    }

    #[test]
    fn git_answers_for_a_repository_and_names_the_failure_otherwise() {
        if !crate::cmd::on_path("git") {
            println!(
                "SKIPPED git_answers_for_a_repository_and_names_the_failure_otherwise: no git"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let ok = Command::new("git")
            .args(["init", "-q", "--template="])
            .arg(&repo)
            .status()
            .unwrap();
        assert!(ok.success());
        assert_eq!(git(&format!("file://{}", repo.display())), Ok(()));
        let e = git(&format!("file://{}/missing", dir.path().display())).unwrap_err();
        assert!(e.contains("git ls-remote") && e.contains("missing"), "{e}");
        // As findings: ok, or a warning with what to give on a closed network.
        let rev = "232dc82f19034c5c7e9848d6c9cd05e127af240b";
        let f = agent(&format!("file://{}", repo.display()), rev);
        assert_eq!(f.level, Level::Ok, "{f:?}");
        let f = agent(&format!("file://{}/missing", dir.path().display()), rev);
        assert_eq!(f.level, Level::Warn, "{f:?}");
        assert!(
            f.message.contains(crate::steps::agent_fetch::OFFLINE_HINT),
            "{f:?}"
        );
    }

    #[test]
    fn an_unreachable_monit_tarball_says_which_flag_gives_it() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/monit-5.2.5.tar.gz");
        let sets = vec![
            format!("monit.source.url={url}"),
            "mirror=http://127.0.0.1:1/debian".to_string(),
        ];
        let spec = crate::spec::load(None, &sets).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let found = check(&spec, None, cache.path());
        let monit = found
            .iter()
            .find(|f| f.message.contains(&url))
            .expect("a monit finding");
        assert_eq!(monit.level, Level::Warn, "{monit:?}");
        assert!(
            monit.message.contains("--set monit.source.path=FILE"),
            "{monit:?}"
        );
        let archive = found
            .iter()
            .find(|f| f.message.contains("/dists/bookworm/InRelease"))
            .expect("an archive finding");
        assert_eq!(archive.level, Level::Warn, "{archive:?}");
        assert!(archive.message.contains("--mirror URL"), "{archive:?}");
    }
}
