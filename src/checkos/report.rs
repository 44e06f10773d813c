//! Running every check on a tree, and the report as text (one line per check) and JSON
//! (`check-os.json` in a stemcell, `pistemcell check-os --json`).

use std::path::Path;

use super::registry;
use super::tree::Tree;
use super::{Applies, OsAllow};

/// How one check came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// It passed.
    Pass,
    /// It failed.
    Fail,
    /// It failed, and the spec's `check_os.allow` accepts that, for this reason.
    Allowed(String),
    /// It does not apply to these images, for this reason.
    NotApplicable(String),
}

impl Status {
    /// The word for it in reports: `pass`, `FAIL`, `allowed`, `n/a`.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Allowed(_) => "allowed",
            Status::NotApplicable(_) => "n/a",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The check's id.
    pub id: &'static str,
    /// Upstream's spec file.
    pub source: &'static str,
    /// What it requires.
    pub title: &'static str,
    /// What it looked at.
    pub looks_at: String,
    /// How it came out.
    pub status: Status,
    /// What was seen (the matching line, the mode, the offending files).
    pub detail: String,
}

/// Every check's result on one tree.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// In registry order.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// The failed checks no allow entry accepts.
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.status == Status::Fail)
    }

    /// How many checks came out with `word` (`pass`, `FAIL`, `allowed`, `n/a`).
    pub fn count(&self, word: &str) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.status.word() == word)
            .count()
    }

    /// One line per check, then the counts.
    pub fn to_text(&self, what: &str) -> String {
        let mut out = format!("check-os: {what}\n");
        for o in &self.outcomes {
            let why = match &o.status {
                Status::Allowed(r) | Status::NotApplicable(r) => format!(" ({r})"),
                _ => String::new(),
            };
            out.push_str(&format!(
                "{:<7} {:<34} {}{why}\n",
                o.status.word(),
                o.id,
                if matches!(o.status, Status::NotApplicable(_)) {
                    o.title.to_string()
                } else {
                    format!("{}: {}", o.title, crate::untrusted::escape(&o.detail))
                }
            ));
        }
        out.push_str(&format!(
            "{} passed, {} failed, {} allowed, {} not applicable\n",
            self.count("pass"),
            self.count("FAIL"),
            self.count("allowed"),
            self.count("n/a")
        ));
        out
    }

    /// The report as JSON: every check with its id, upstream file, status and what was seen.
    pub fn to_json(&self) -> String {
        let checks: Vec<serde_json::Value> = self
            .outcomes
            .iter()
            .map(|o| {
                let mut v = serde_json::json!({
                    "id": o.id,
                    "source": o.source,
                    "title": o.title,
                    "looks_at": o.looks_at,
                    "status": match o.status {
                        Status::Pass => "pass",
                        Status::Fail => "fail",
                        Status::Allowed(_) => "allowed",
                        Status::NotApplicable(_) => "not_applicable",
                    },
                    "detail": o.detail,
                });
                if let Status::Allowed(r) | Status::NotApplicable(r) = &o.status {
                    v["reason"] = serde_json::Value::String(r.clone());
                }
                v
            })
            .collect();
        let doc = serde_json::json!({
            "passed": self.count("pass"),
            "failed": self.count("FAIL"),
            "allowed": self.count("allowed"),
            "not_applicable": self.count("n/a"),
            "checks": checks,
        });
        let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Where an image names its infrastructure (upstream's `system_parameters` stage writes it).
pub const INFRASTRUCTURE: &str = "/var/vcap/bosh/etc/infrastructure";

fn shown_infra(infra: &str) -> String {
    if infra.is_empty() {
        format!("of no infrastructure ({INFRASTRUCTURE} is missing)")
    } else {
        format!("{} ({INFRASTRUCTURE})", crate::untrusted::escape(infra))
    }
}

/// Runs every check on the tree at `root`; failures that `allow` names become `Allowed`.
pub fn run(root: &Path, allow: &[OsAllow]) -> Report {
    let tree = Tree::new(root);
    let infra = tree
        .text(INFRASTRUCTURE)
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let outcomes = registry::all()
        .into_iter()
        .map(|c| {
            let looks_at = c.test.describe();
            let skip = match c.applies {
                Applies::No(why) => Some(why.to_string()),
                Applies::Yes => None,
                Applies::Only(list) if list.contains(&infra.as_str()) => None,
                Applies::Except(list) if !list.contains(&infra.as_str()) => None,
                Applies::Only(list) => Some(format!(
                    "{} stemcells only; this image is {}",
                    list.join(", "),
                    shown_infra(&infra)
                )),
                Applies::Except(list) => Some(format!(
                    "not for {} stemcells, and this image is one",
                    list.join(", ")
                )),
            };
            let (status, detail) = match skip {
                Some(why) => (Status::NotApplicable(why), String::new()),
                None => match c.test.run(&tree) {
                    Ok(seen) => (Status::Pass, seen),
                    Err(wrong) => match allow.iter().find(|a| a.check == c.id) {
                        Some(a) => (Status::Allowed(a.reason.clone()), wrong),
                        None => (Status::Fail, wrong),
                    },
                },
            };
            Outcome {
                id: c.id,
                source: c.source,
                title: c.title,
                looks_at,
                status,
                detail,
            }
        })
        .collect();
    Report { outcomes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(check: &str, reason: &str) -> OsAllow {
        OsAllow {
            check: check.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn allow_entries_must_name_a_check_and_give_a_reason() {
        assert!(super::super::check_allow(&[allow("V-38658", "pinned by policy")]).is_ok());
        let e = super::super::check_allow(&[allow("V-0", "x")]).unwrap_err();
        assert!(
            e.contains("`check_os.allow[0].check` is `V-0`") && e.contains("--list"),
            "{e}"
        );
        let e = super::super::check_allow(&[allow("V-38658", " ")]).unwrap_err();
        assert!(e.contains("no `reason`"), "{e}");
    }

    #[test]
    fn an_empty_tree_fails_what_it_lacks_and_allowed_failures_keep_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let report = run(
            dir.path(),
            &[allow("hostname-file", "the CPI names the VM")],
        );
        let of = |id: &str| report.outcomes.iter().find(|o| o.id == id).unwrap();
        assert_eq!(
            of("hostname-file").status,
            Status::Allowed("the CPI names the VM".into())
        );
        assert_eq!(of("hostname-content").status, Status::Fail);
        assert!(of("hostname-content")
            .detail
            .contains("/etc/hostname is missing"));
        // Warden-only checks do not apply to an image that names no infrastructure.
        assert!(matches!(
            of("runsvdir-start-file").status,
            Status::NotApplicable(_)
        ));
        assert!(matches!(of("grub-file").status, Status::NotApplicable(_)));
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["allowed"], 1);
        assert_eq!(
            json["failed"].as_u64(),
            Some(report.failures().count() as u64)
        );
        assert!(report.to_text("t").contains("FAIL    hostname-content"));
    }
}
