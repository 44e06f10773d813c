//! The deploy proof's steps as the report shows them: each with its time since the first
//! power-on, and the first failure ending the proof (what follows cannot be trusted to come).

use std::time::{Duration, Instant};

use super::checks::Status;

/// One step of the deploy proof.
#[derive(Debug, Clone)]
pub struct Step {
    /// A short machine name (`compile`, `apply`, …).
    pub name: &'static str,
    /// What it proves, in words.
    pub title: &'static str,
    /// How it went.
    pub status: Status,
}

/// The steps so far, in order.
#[derive(Debug, Clone, Default)]
pub struct Steps {
    /// Every step run or skipped.
    pub list: Vec<Step>,
}

impl Steps {
    /// Records a step's outcome at `t0.elapsed()`; returns whether it passed.
    pub fn record(
        &mut self,
        t0: Instant,
        name: &'static str,
        title: &'static str,
        outcome: Result<String, String>,
    ) -> bool {
        let at = t0.elapsed();
        let (ok, status) = match outcome {
            Ok(d) => (true, Status::Passed(at, d)),
            Err(e) => (false, Status::Failed(at, e)),
        };
        self.list.push(Step {
            name,
            title,
            status,
        });
        ok
    }

    /// Records a step that did not run, with the reason.
    pub fn skip(&mut self, name: &'static str, title: &'static str, why: &str) {
        self.list.push(Step {
            name,
            title,
            status: Status::Skipped(why.to_string()),
        });
    }

    /// Whether a step failed.
    pub fn failed(&self) -> bool {
        self.list
            .iter()
            .any(|s| matches!(s.status, Status::Failed(..)))
    }

    /// The first failed step.
    pub fn first_failure(&self) -> Option<&Step> {
        self.list
            .iter()
            .find(|s| matches!(s.status, Status::Failed(..)))
    }
}

/// A step as a report line: `[ ok ]  31.2 s  title: detail`.
pub fn line(s: &Step) -> String {
    match &s.status {
        Status::Pending => format!("[ .. ]          {}", s.title),
        Status::Passed(t, d) => format!("[ ok ] {:>6.1} s  {}: {d}", secs(*t), s.title),
        Status::Failed(t, d) => format!("[FAIL] {:>6.1} s  {}: {d}", secs(*t), s.title),
        Status::Skipped(why) => format!("[skip]          {}: skipped: {why}", s.title),
    }
}

fn secs(t: Duration) -> f64 {
    t.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_is_named_and_lines_carry_the_time() {
        let t0 = Instant::now();
        let mut s = Steps::default();
        assert!(s.record(t0, "compile", "compile_package", Ok("blob x".into())));
        assert!(!s.record(t0, "apply", "apply", Err("boom".into())));
        s.skip("start", "start", "an earlier step failed");
        assert!(s.failed());
        assert_eq!(s.first_failure().map(|f| f.name), Some("apply"));
        assert!(line(&s.list[0]).starts_with("[ ok ]"));
        assert!(line(&s.list[1]).contains("apply: boom"));
        assert!(line(&s.list[2]).contains("skipped: an earlier step failed"));
    }
}
