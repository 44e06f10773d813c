//! The boot test's report: one line per check with its time since power-on, and on a failure
//! the cause, the console's last lines and the agent log's; or the same as JSON.

use super::checks::{CheckId, Status};
use super::Report;

/// One check as a line: `[ ok ]  31.2 s  title: detail`.
pub fn check_line(id: CheckId, st: &Status) -> String {
    match st {
        Status::Pending => format!("[ .. ]          {}", id.title()),
        Status::Passed(t, d) => format!("[ ok ] {:>6.1} s  {}: {d}", t.as_secs_f64(), id.title()),
        Status::Failed(t, d) => format!("[FAIL] {:>6.1} s  {}: {d}", t.as_secs_f64(), id.title()),
        Status::Skipped(why) => format!("[skip]          {}: skipped: {why}", id.title()),
    }
}

/// The report as text.
pub fn text(r: &Report) -> String {
    let mut out = format!(
        "boot-test of {}\n  kernel: {}\n  vm: {}\n",
        r.stemcell, r.kernel, r.qemu
    );
    for (id, st) in &r.checks.status {
        out.push_str(&format!("  {}\n", check_line(*id, st)));
    }
    if !r.deploy.list.is_empty() {
        out.push_str("  deploy proof (the test plays the director):\n");
        for s in &r.deploy.list {
            out.push_str(&format!("  {}\n", super::steps::line(s)));
        }
    }
    let peak = r.vm_peak_kib as f64 / 1024.0;
    if r.passed() {
        out.push_str(&format!(
            "PASSED in {:.1} s from power-on (VM peak memory {peak:.0} MiB)\n",
            r.elapsed.as_secs_f64()
        ));
        return out;
    }
    let first = r
        .checks
        .status
        .iter()
        .find(|(_, s)| matches!(s, Status::Failed(..)))
        .map(|(id, _)| id.title())
        .or_else(|| r.deploy.first_failure().map(|s| s.title))
        .unwrap_or("?");
    out.push_str(&format!(
        "FAILED: {first} ({:.1} s from power-on, VM peak memory {peak:.0} MiB)\n",
        r.elapsed.as_secs_f64()
    ));
    if let Some(c) = &r.cause {
        out.push_str(&format!("  cause: {c}\n"));
    }
    out.push_str("  console (last lines):\n");
    for l in &r.console_tail {
        out.push_str(&format!("    | {l}\n"));
    }
    out.push_str("  agent log /var/vcap/bosh/log/current (last lines, streamed from the guest):\n");
    if r.agent_log_tail.is_empty() {
        out.push_str("    (empty)\n");
    }
    for l in &r.agent_log_tail {
        out.push_str(&format!("    | {l}\n"));
    }
    out
}

/// The report as JSON (`passed`, `checks` with `status` and `seconds`, `cause`, the tails).
pub fn json(r: &Report) -> String {
    let checks: Vec<serde_json::Value> = r
        .checks
        .status
        .iter()
        .map(|(id, st)| {
            let (status, secs, detail) = status_parts(st);
            serde_json::json!({"check": id.name(), "title": id.title(), "status": status,
                "seconds": secs, "detail": detail})
        })
        .collect();
    let deploy: Vec<serde_json::Value> = r
        .deploy
        .list
        .iter()
        .map(|s| {
            let (status, secs, detail) = status_parts(&s.status);
            serde_json::json!({"step": s.name, "title": s.title, "status": status,
                "seconds": secs, "detail": detail})
        })
        .collect();
    let v = serde_json::json!({
        "stemcell": r.stemcell, "arch": r.arch, "kernel": r.kernel, "qemu": r.qemu,
        "passed": r.passed(), "seconds": r.elapsed.as_secs_f64(),
        "vm_peak_kib": r.vm_peak_kib, "checks": checks, "deploy": deploy, "cause": r.cause,
        "console_tail": r.console_tail, "agent_log_tail": r.agent_log_tail,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

fn status_parts(st: &Status) -> (&'static str, Option<f64>, String) {
    match st {
        Status::Pending => ("pending", None, String::new()),
        Status::Passed(t, d) => ("passed", Some(t.as_secs_f64()), d.clone()),
        Status::Failed(t, d) => ("failed", Some(t.as_secs_f64()), d.clone()),
        Status::Skipped(w) => ("skipped", None, w.clone()),
    }
}
