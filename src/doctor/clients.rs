//! `doctor`'s findings for the blobstore clients (stage `57-blobstore-clients`): each
//! client's tree (fetched already, its repository reachable, or a local checkout) or binary,
//! a Go a client names for itself, and the default Go when the agent is not built here (the
//! agent's finding covers it otherwise), with `--fix`'s remedies (git, Go).

use std::path::Path;

use super::{finding, reach, Finding, Level, Remedy};
use crate::spec::{Agent, Resolved};
use crate::steps::{blobstore, go_source, gobuild};

/// The check's name in doctor's report.
const CHECK: &str = "blobstore";

/// One finding per blobstore client the spec installs, and one per Go a client names.
pub fn check(spec: &Resolved, cache: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    let agent_from_source = matches!(spec.agent, Ok(Agent::Source(_)));
    let mut default_go_checked = false;
    for c in &spec.blobstore_clients {
        let (p, name, field) = (&c.provider, c.provider.program(), c.provider.field());
        let s = match &c.input {
            Agent::Binary(b) => {
                out.push(match &b.path {
                    Some(path) if !Path::new(path).is_file() => finding(
                        Level::Fail,
                        CHECK,
                        format!("{field}.binary.path {path} does not exist"),
                    ),
                    _ => finding(Level::Ok, CHECK, format!("{field}.binary {}", b.location())),
                });
                continue;
            }
            Agent::Source(s) => s,
        };
        let program = blobstore::program(p);
        out.push(match s.git_rev() {
            Some((url, rev)) => match go_source::cached(cache, &blobstore::origin(p), rev) {
                Some(dir) => finding(
                    Level::Ok,
                    CHECK,
                    format!("{name} {url} at commit {rev}: fetched, in {}", dir.display()),
                ),
                None if !crate::cmd::on_path("git") => finding(
                    Level::Fail,
                    CHECK,
                    format!("git missing: the first build fetches {name} {url} at commit {rev} with it: apt-get install git"),
                )
                .with(Remedy::Apt(vec!["git".into()])),
                None => match reach::git(url) {
                    Ok(()) => finding(
                        Level::Ok,
                        CHECK,
                        format!("{name} {url} at commit {rev}: the repository answers; the first build fetches it with git"),
                    ),
                    Err(reason) => finding(
                        Level::Warn,
                        CHECK,
                        go_source::FetchError::Unavailable {
                            field: format!("{field}.source"),
                            hint: blobstore::offline_hint(p),
                            url: url.into(),
                            rev: rev.into(),
                            reason,
                        }
                        .to_string(),
                    ),
                },
            },
            None => match gobuild::check_tree(
                &program,
                Path::new(&s.path),
                &gobuild::source_label(&program, s),
            ) {
                Ok(()) => finding(Level::Ok, CHECK, format!("{name} source {}", s.path)),
                Err(e) => finding(Level::Fail, CHECK, e),
            },
        });
        if s.go.is_some() {
            out.push(match gobuild::check_go(&program, s) {
                Ok(version) => finding(Level::Ok, "go", format!("{version} builds {name}")),
                Err(e) => finding(Level::Fail, "go", format!("{field}.source.go: {e}")),
            });
        } else if !agent_from_source && !default_go_checked {
            // The agent's finding covers the default Go only when the agent is built here.
            default_go_checked = true;
            out.push(match gobuild::check_go(&program, s) {
                Ok(version) => finding(Level::Ok, "go", format!("{version} builds {name}")),
                Err(e) => super::go_missing(&e, std::env::consts::ARCH),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_inputs_are_checked_without_the_network() {
        let dir = tempfile::tempdir().unwrap();
        let sets: Vec<String> = [
            "blobstore_clients.dav.source.path=/nonexistent/davcli".to_string(),
            "blobstore_clients.s3.binary.path=/nonexistent/s3".to_string(),
            format!("blobstore_clients.s3.binary.sha256={}", "a".repeat(64)),
            "blobstore_clients.gcs.skip=true".to_string(),
            "blobstore_clients.azure-storage.source.path=/nonexistent/azure".to_string(),
            "blobstore_clients.azure-storage.source.go=/nonexistent/go".to_string(),
        ]
        .to_vec();
        let spec = crate::spec::load(None, &sets).unwrap();
        let f = check(&spec, dir.path());
        let text: Vec<(Level, &str)> = f.iter().map(|f| (f.level, f.message.as_str())).collect();
        assert_eq!(f.len(), 4, "{text:?}");
        assert!(
            f[0].level == Level::Fail && f[0].message.contains("a bosh-davcli checkout"),
            "{text:?}"
        );
        assert!(
            f[1].level == Level::Fail
                && f[1]
                    .message
                    .contains("blobstore_clients.s3.binary.path /nonexistent/s3 does not exist"),
            "{text:?}"
        );
        assert!(f[2].message.contains("bosh-azure-storage-cli"), "{text:?}");
        assert!(
            f[3].level == Level::Fail
                && f[3]
                    .message
                    .contains("blobstore_clients.azure-storage.source.go")
                && f[3]
                    .message
                    .contains("--set blobstore_clients.azure-storage.source.go=DIR/go/bin/go"),
            "{text:?}"
        );
    }
}
