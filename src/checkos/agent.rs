//! The agent's own assertions: `stemcells/go_agent_spec.rb` (the agent's programs and settings,
//! cron and at for vcap, `/var/lock`, monit's alerts). The stemcell's are in `stemcell`.

use super::common::{check, not_a_file, only};
use super::test::Verdict;
use super::tree::Tree;
use super::{Applies, Check, Test};

const GO_AGENT: &str = "stemcells/go_agent_spec.rb";

/// The checks of this topic.
pub fn checks() -> Vec<Check> {
    let mut v = Vec::new();
    for (file_id, exec_id, path) in [
        (
            "agent-bin-bosh-agent-file",
            "agent-bin-bosh-agent-exec",
            "/var/vcap/bosh/bin/bosh-agent",
        ),
        (
            "agent-bin-bosh-agent-rc-file",
            "agent-bin-bosh-agent-rc-exec",
            "/var/vcap/bosh/bin/bosh-agent-rc",
        ),
        (
            "agent-bin-bosh-blobstore-dav-file",
            "agent-bin-bosh-blobstore-dav-exec",
            "/var/vcap/bosh/bin/bosh-blobstore-dav",
        ),
        (
            "agent-bin-bosh-blobstore-gcs-file",
            "agent-bin-bosh-blobstore-gcs-exec",
            "/var/vcap/bosh/bin/bosh-blobstore-gcs",
        ),
        (
            "agent-bin-bosh-blobstore-s3-file",
            "agent-bin-bosh-blobstore-s3-exec",
            "/var/vcap/bosh/bin/bosh-blobstore-s3",
        ),
        (
            "agent-bin-bosh-blobstore-azure-storage-file",
            "agent-bin-bosh-blobstore-azure-storage-exec",
            "/var/vcap/bosh/bin/bosh-blobstore-azure-storage",
        ),
    ] {
        v.push(check(
            file_id,
            GO_AGENT,
            "the agent's program is a file",
            Test::File(path),
        ));
        v.push(check(
            exec_id,
            GO_AGENT,
            "the agent's program is executable",
            Test::Executable(path),
        ));
    }
    v.push(check(
        "agent-json-valid",
        GO_AGENT,
        "the agent's settings file is valid JSON",
        Test::Json("/var/vcap/bosh/agent.json"),
    ));
    v.extend(cron(GO_AGENT));
    v.extend([
        check(
            "var-lock-owner",
            GO_AGENT,
            "/var/lock is owned by root",
            Test::Owner {
                path: "/var/lock",
                user: "root",
            },
        ),
        check(
            "var-lock-mode",
            GO_AGENT,
            "/var/lock has mode 770",
            Test::Custom {
                looks_at: "`/var/lock` (followed, as `stat -L`) has permissions 770",
                run: var_lock_mode,
            },
        ),
        check(
            "var-lock-group",
            GO_AGENT,
            "/var/lock has group vcap",
            Test::Custom {
                looks_at: "`/var/lock` (followed, as `stat -L`) has group vcap",
                run: var_lock_group,
            },
        ),
        check(
            "cron-allow-vcap",
            GO_AGENT,
            "only vcap may use cron",
            Test::Matches {
                path: "/etc/cron.allow",
                pattern: r"\Avcap\n?\z",
            },
        ),
        check(
            "at-allow-vcap",
            GO_AGENT,
            "only vcap may use at",
            Test::Matches {
                path: "/etc/at.allow",
                pattern: r"\Avcap\n?\z",
            },
        ),
        only(
            "var-vcap-data-absent",
            GO_AGENT,
            "/var/vcap/data is not in the image (the agent mounts the ephemeral disk there; a raw SD-card stemcell makes it as its data partition's mount point, 0755, so that vcap's jobs reach it)",
            Test::Custom {
                looks_at: "`/var/vcap/data` is not a directory",
                run: no_var_vcap_data,
            },
            Applies::Except(&["raw"]),
        ),
        check(
            "monit-alerts",
            GO_AGENT,
            "monit sends alerts to the agent",
            Test::Matches {
                path: "/var/vcap/monit/alerts.monitrc",
                pattern: "set alert agent@local",
            },
        ),
    ]);
    v
}

/// CIS 9.1.x: cron's files and directories, as go_agent_spec asserts them.
fn cron(source: &'static str) -> Vec<Check> {
    let mut v = vec![
        check(
            "CIS-9.1.2/mode",
            source,
            "/etc/crontab has mode 600",
            Test::Perm {
                path: "/etc/crontab",
                mode: 0o600,
            },
        ),
        check(
            "CIS-9.1.2/owner",
            source,
            "/etc/crontab is owned by root",
            Test::Owner {
                path: "/etc/crontab",
                user: "root",
            },
        ),
        check(
            "CIS-9.1.2/group",
            source,
            "/etc/crontab has group root",
            Test::Group {
                path: "/etc/crontab",
                group: "root",
            },
        ),
    ];
    for (n, dir) in [
        ("3", "/etc/cron.hourly"),
        ("4", "/etc/cron.daily"),
        ("5", "/etc/cron.weekly"),
        ("6", "/etc/cron.monthly"),
        ("7", "/etc/cron.d"),
    ] {
        let ids: [&'static str; 4] = match n {
            "3" => [
                "CIS-9.1.3/dir",
                "CIS-9.1.3/mode",
                "CIS-9.1.3/owner",
                "CIS-9.1.3/group",
            ],
            "4" => [
                "CIS-9.1.4/dir",
                "CIS-9.1.4/mode",
                "CIS-9.1.4/owner",
                "CIS-9.1.4/group",
            ],
            "5" => [
                "CIS-9.1.5/dir",
                "CIS-9.1.5/mode",
                "CIS-9.1.5/owner",
                "CIS-9.1.5/group",
            ],
            "6" => [
                "CIS-9.1.6/dir",
                "CIS-9.1.6/mode",
                "CIS-9.1.6/owner",
                "CIS-9.1.6/group",
            ],
            _ => [
                "CIS-9.1.7/dir",
                "CIS-9.1.7/mode",
                "CIS-9.1.7/owner",
                "CIS-9.1.7/group",
            ],
        };
        v.push(check(
            ids[0],
            source,
            "a cron directory exists",
            Test::Dir(dir),
        ));
        v.push(check(
            ids[1],
            source,
            "a cron directory has mode 700",
            Test::Perm {
                path: dir,
                mode: 0o700,
            },
        ));
        v.push(check(
            ids[2],
            source,
            "a cron directory is owned by root",
            Test::Owner {
                path: dir,
                user: "root",
            },
        ));
        v.push(check(
            ids[3],
            source,
            "a cron directory has group root",
            Test::Group {
                path: dir,
                group: "root",
            },
        ));
    }
    v.extend([
        check(
            "CIS-9.1.8/cron-deny",
            source,
            "no /etc/cron.deny (cron.allow decides)",
            Test::Custom {
                looks_at: "`/etc/cron.deny` is not a regular file",
                run: |t| not_a_file(t, "/etc/cron.deny"),
            },
        ),
        check(
            "CIS-9.1.8/at-deny",
            source,
            "no /etc/at.deny (at.allow decides)",
            Test::Custom {
                looks_at: "`/etc/at.deny` is not a regular file",
                run: |t| not_a_file(t, "/etc/at.deny"),
            },
        ),
        check(
            "CIS-9.1.8/cron-allow-mode",
            source,
            "/etc/cron.allow has mode 600",
            Test::Perm {
                path: "/etc/cron.allow",
                mode: 0o600,
            },
        ),
        check(
            "CIS-9.1.8/cron-allow-owner",
            source,
            "/etc/cron.allow is owned by root",
            Test::Owner {
                path: "/etc/cron.allow",
                user: "root",
            },
        ),
        check(
            "CIS-9.1.8/cron-allow-group",
            source,
            "/etc/cron.allow has group root",
            Test::Group {
                path: "/etc/cron.allow",
                group: "root",
            },
        ),
        check(
            "CIS-9.1.8/at-allow-mode",
            source,
            "/etc/at.allow has mode 600",
            Test::Perm {
                path: "/etc/at.allow",
                mode: 0o600,
            },
        ),
        check(
            "CIS-9.1.8/at-allow-owner",
            source,
            "/etc/at.allow is owned by root",
            Test::Owner {
                path: "/etc/at.allow",
                user: "root",
            },
        ),
        check(
            "CIS-9.1.8/at-allow-group",
            source,
            "/etc/at.allow has group root",
            Test::Group {
                path: "/etc/at.allow",
                group: "root",
            },
        ),
    ]);
    v
}

fn var_lock_mode(t: &Tree) -> Verdict {
    let m = t
        .meta_followed("/var/lock")?
        .ok_or("/var/lock is missing")?;
    if m.mode & 0o777 == 0o770 {
        Ok(format!("/var/lock: {:03o}", m.mode & 0o777))
    } else {
        Err(format!("/var/lock is {:03o}; wants 770", m.mode & 0o777))
    }
}

fn var_lock_group(t: &Tree) -> Verdict {
    let m = t
        .meta_followed("/var/lock")?
        .ok_or("/var/lock is missing")?;
    match t.id_of("vcap", true)? {
        Some(g) if g == m.gid => Ok(format!("/var/lock: group vcap ({g})")),
        _ => Err(format!("/var/lock has group {}; wants vcap", m.gid)),
    }
}

fn no_var_vcap_data(t: &Tree) -> Verdict {
    match t.meta_followed("/var/vcap/data")? {
        Some(m) if m.dir => Err("/var/vcap/data is a directory in the image".into()),
        _ => Ok("/var/vcap/data is not in the image".into()),
    }
}
