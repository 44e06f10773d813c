//! Logging and the jobs that run on their own: rsyslog as upstream configures it (owners and
//! modes of its files, imklog, the cron log, RELP), logrotate (the 15-minute cron wrapper at
//! nice/ionice, `su` directives, rsyslog's rotation), journald in memory, the rsyslog and
//! chrony systemd drop-ins, chrony and `sync-time`, cron, at and anacron. Ported from
//! upstream's `support/os_image_shared_examples.rb`, `support/os_image_systemd_shared_examples.rb`,
//! `support/os_image_chrony_shared_examples.rb` and `os_image/ubuntu_jammy_spec.rb`. Upstream's
//! stages: `rsyslog_config`, `logrotate_config`, `bosh_ntp`, `cron_config`; ours:
//! `42-rsyslog-logrotate`, `11-systemd` (journald), `43-time-sync`, `48-cron-at`, with the
//! packages of `13-base-extras`. (The cron and at permissions of `stemcells/go_agent_spec.rb`
//! and the logrotate cron rows of `support/stemcell_shared_examples.rb` are in `agent`; stages
//! 42, 48 and 89-harden make them hold.)

use std::collections::{BTreeMap, BTreeSet};

use super::common::check as ck;
use super::system::{custom, is_file, list_dir, unit_enabled, version, version_numbers};
use super::test::{first_match, Verdict};
use super::tree::Tree;
use super::{Check, Test};

const OS: &str = "os_image/ubuntu_jammy_spec.rb";
const SH: &str = "support/os_image_shared_examples.rb";
const SD: &str = "support/os_image_systemd_shared_examples.rb";
const CH: &str = "support/os_image_chrony_shared_examples.rb";
const CONF: &str = "/etc/rsyslog.conf";
const DROPIN: &str = "/etc/systemd/system/rsyslog.service.d/00-override.conf";
const WAIT: &str = "/usr/local/bin/wait_for_var_log_to_be_mounted";
const SYNC: &str = "/var/vcap/bosh/bin/sync-time";
const LR: &str = "/etc/logrotate.d/rsyslog";

/// The checks of this topic.
pub fn checks() -> Vec<Check> {
    let mut v = rsyslog();
    v.extend(journal_and_rotation());
    v.extend(time());
    v.extend(cron());
    v
}

/// `rsyslog_config`: rsyslog.conf, 50-default.conf, its log files, its systemd drop-in.
#[rustfmt::skip]
fn rsyslog() -> Vec<Check> {
    vec![
        ck("rsyslog-conf-file", SH, "/etc/rsyslog.conf is a file", Test::File(CONF)),
        ck("rsyslog-conf-file-2", SH, "/etc/rsyslog.conf is a file (upstream's second assertion)", Test::File(CONF)),
        ck("rsyslog-conf-omrelp", SH, "rsyslog loads the RELP output with OpenSSL TLS (package rsyslog-relp; an rsyslog before 8.2008, Raspbian buster's or trusty's, cannot choose the TLS library and loads it plain)", custom("the omrelp line of /etc/rsyslog.conf, packages rsyslog and rsyslog-relp", relp)),
        ck("rsyslog-conf-filegroup", SH, "rsyslog's files belong to group syslog (V-38519)", Test::Matches { path: CONF, pattern: r"\$FileGroup syslog" }),
        ck("rsyslog-conf-fileowner", SH, "rsyslog's files belong to user syslog (V-38518)", Test::Matches { path: CONF, pattern: r"\$FileOwner syslog" }),
        ck("rsyslog-conf-filecreatemode", SH, "rsyslog makes its files 0600 (V-38623)", Test::Matches { path: CONF, pattern: r"\$FileCreateMode 0600" }),
        ck("rsyslog-conf-imklog", SH, "rsyslog reads the kernel's messages (imklog)", Test::Matches { path: CONF, pattern: "ModLoad imklog" }),
        ck("rsyslogd-config-valid", SH, "rsyslog's configuration is valid: upstream runs `rsyslogd -N 1`, as stage 42 does at build time; here every module it loads is installed and every included directory exists", custom("the modules and includes of /etc/rsyslog.conf and /etc/rsyslog.d/*.conf", rsyslog_valid)),
        ck("rsyslogd-version-8", SH, "rsyslogd is version 8", custom("the version of package rsyslog", |t| {
            let v = version(t, "rsyslog")?.ok_or("rsyslog is not installed")?;
            if version_numbers(&v).first() == Some(&8) { Ok(format!("rsyslog {v}")) } else { Err(format!("rsyslog {v} is not version 8")) }
        })),
        ck("V-75865", SH, "cron logs to /var/log/cron.log", Test::Matches { path: "/etc/rsyslog.d/50-default.conf", pattern: r"^cron\.\*\s+/var/log/cron\.log$" }),
        ck("V-38519+V-38518+V-38623", SH, "every log file rsyslog writes is syslog:syslog 0600, unreadable by vcap", custom("the /var/log files named in /etc/rsyslog.conf and /etc/rsyslog.d", log_files)),
        ck("rsyslog-enabled", SD, "rsyslog is enabled", custom("a link to rsyslog.service in /etc/systemd/system/*.wants", |t| unit_enabled(t, "rsyslog.service", "rsyslog"))),
        ck("rsyslog-dropin-file", SD, "rsyslog's systemd drop-in 00-override.conf is a file", Test::File(DROPIN)),
        ck("rsyslog-dropin-content", SD, "rsyslog starts once the agent has mounted /var/log, not into the root filesystem's /var/log hidden under it", Test::Matches { path: DROPIN, pattern: r"^ExecStartPre=/usr/local/bin/wait_for_var_log_to_be_mounted" }),
        ck("wait-var-log-file", OS, "wait_for_var_log_to_be_mounted is a file", Test::File(WAIT)),
        ck("wait-var-log-mode", OS, "wait_for_var_log_to_be_mounted is mode 0755", Test::Perm { path: WAIT, mode: 0o755 }),
    ]
}

fn relp(t: &Tree) -> Verdict {
    let relp = version(t, "rsyslog-relp")?.ok_or("rsyslog-relp (omrelp) is not installed")?;
    let v = version(t, "rsyslog")?.ok_or("rsyslog is not installed")?;
    let text = t.text(CONF)?.ok_or("/etc/rsyslog.conf is missing")?;
    if let Some(l) = first_match(&text, r#"^module\( load="omrelp" tls.tlslib="openssl" \)$"#)? {
        return Ok(format!("{l} (rsyslog-relp {relp})"));
    }
    if version_numbers(&v)[..] < [8, 2008][..] {
        if let Some(l) = first_match(&text, r#"^module\( load="omrelp" \)$"#)? {
            return Ok(format!("{l} (rsyslog {v} has no tls.tlslib)"));
        }
    }
    Err(format!(
        "/etc/rsyslog.conf does not load omrelp with tls.tlslib=\"openssl\" (rsyslog {v})"
    ))
}

/// /etc/rsyslog.conf and the `*.conf` files of /etc/rsyslog.d, as rsyslogd reads them.
fn rsyslog_confs(t: &Tree) -> Result<Vec<(String, String)>, String> {
    let mut out = vec![(
        CONF.to_string(),
        t.text(CONF)?.ok_or("/etc/rsyslog.conf is missing")?,
    )];
    for n in list_dir(t, "/etc/rsyslog.d")? {
        let p = format!("/etc/rsyslog.d/{n}");
        if n.ends_with(".conf") && is_file(t, &p)? {
            out.push((p.clone(), t.text(&p)?.unwrap_or_default()));
        }
    }
    Ok(out)
}

fn rsyslog_valid(t: &Tree) -> Verdict {
    let re = |p: &str| regex_lite::Regex::new(p).map_err(|e| e.to_string());
    let module = re(r#"(?m)^\s*(?:\$ModLoad\s+|module\(\s*load\s*=\s*")([\w.:]+)"#)?;
    let include = re(r"(?m)^\s*\$IncludeConfig\s+(\S+)")?;
    let mut dirs = vec!["/usr/lib/rsyslog".to_string()];
    dirs.extend(
        list_dir(t, "/usr/lib")?
            .into_iter()
            .map(|d| format!("/usr/lib/{d}/rsyslog")),
    );
    let builtin = [
        "omfile",
        "omfwd",
        "omusrmsg",
        "ompipe",
        "omshell",
        "omdiscard",
    ];
    let mut loaded = Vec::new();
    for (path, text) in rsyslog_confs(t)? {
        for c in module.captures_iter(&text) {
            let name = c[1].trim_end_matches(".so");
            if name.starts_with("builtin:") || builtin.contains(&name) {
                continue;
            }
            let mut found = None;
            for d in &dirs {
                let p = format!("{d}/{name}.so");
                if is_file(t, &p)? {
                    found = Some(p);
                    break;
                }
            }
            loaded.push(found.ok_or_else(|| {
                format!("{path} loads {name}, which no installed package provides ({name}.so)")
            })?);
        }
        for c in include.captures_iter(&text) {
            let dir = c[1].rsplit_once('/').map_or("/", |(d, _)| d);
            if !t.meta_followed(dir)?.is_some_and(|m| m.dir) {
                return Err(format!(
                    "{path} includes {}, but {dir} is no directory",
                    &c[1]
                ));
            }
        }
    }
    Ok(format!("modules: {}", loaded.join(", ")))
}

/// Upstream's list: lines naming `/var/log/` that do not start with `#`, their last field
/// without the `-` of unsynced writes.
fn log_files(t: &Tree) -> Verdict {
    let mut files = BTreeSet::new();
    for (_, text) in rsyslog_confs(t)? {
        for l in text
            .lines()
            .filter(|l| l.contains("/var/log/") && !l.starts_with('#'))
        {
            if let Some(last) = l.split_whitespace().last() {
                files.insert(last.trim_start_matches('-').to_string());
            }
        }
    }
    if files.is_empty() {
        return Err("rsyslog names no file under /var/log".into());
    }
    let (syslog_u, syslog_g) = (
        t.id_of("syslog", false)?.ok_or("there is no user syslog")?,
        t.id_of("syslog", true)?.ok_or("there is no group syslog")?,
    );
    let vcap_uid = t.id_of("vcap", false)?.ok_or("there is no user vcap")?;
    let vcap_gids = groups_of(t, "vcap")?;
    for f in &files {
        let m = t.meta(f)?.ok_or_else(|| format!("{f} is missing"))?;
        if (m.uid, m.gid, m.mode & 0o777) != (syslog_u, syslog_g, 0o600) {
            return Err(format!(
                "{f} is {:04o} {}:{}; wants 0600 syslog:syslog",
                m.mode, m.uid, m.gid
            ));
        }
        if (m.mode & 0o400 != 0 && m.uid == vcap_uid)
            || (m.mode & 0o040 != 0 && vcap_gids.contains(&m.gid))
            || m.mode & 0o004 != 0
        {
            return Err(format!("vcap can read {f}"));
        }
    }
    Ok(format!(
        "{}: syslog:syslog 0600",
        files.into_iter().collect::<Vec<_>>().join(", ")
    ))
}

/// The gids of `user`: its primary group and every group listing it.
fn groups_of(t: &Tree, user: &str) -> Result<BTreeSet<u32>, String> {
    let passwd = t.text("/etc/passwd")?.unwrap_or_default();
    let group = t.text("/etc/group")?.unwrap_or_default();
    let mut gids = BTreeSet::new();
    for l in passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
        if l.len() > 3 && l[0] == user {
            gids.extend(l[3].parse::<u32>().ok());
        }
    }
    for l in group.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
        if l.len() > 3 && l[3].split(',').any(|m| m == user) {
            gids.extend(l[2].parse::<u32>().ok());
        }
    }
    Ok(gids)
}

/// journald in memory, and logrotate's rules for rsyslog.
#[rustfmt::skip]
fn journal_and_rotation() -> Vec<Check> {
    vec![
        ck("journald-dropin-file", SD, "a journald drop-in sets where the journal is kept (upstream's is 00-override.conf, ours 60-bosh.conf, stage 11)", custom("the *.conf files of /etc/systemd/journald.conf.d that set Storage=", journald_dropin)),
        ck("journald-volatile", SD, "the journal is kept in memory (the last Storage= journald reads is volatile): the agent mounts /var/log over the root filesystem's", custom("Storage= in journald.conf, then in its drop-ins in name order", journald_volatile)),
        ck("logrotate-rsyslog-file", SH, "/etc/logrotate.d/rsyslog is a file", Test::File(LR)),
        ck("logrotate-rsyslog-hup", SH, "logrotate makes rsyslogd reopen its files with SIGHUP (the pid file's, else through systemd)", Test::Matches { path: LR, pattern: r"sudo kill -SIGHUP \$\(cat /var/run/rsyslogd\.pid\)" }),
        ck("logrotate-rsyslog-no-restart", SH, "logrotate does not restart rsyslog", Test::NotMatches { path: LR, pattern: "restart rsyslog" }),
    ]
}

fn journald_dropin(t: &Tree) -> Verdict {
    for n in list_dir(t, "/etc/systemd/journald.conf.d")?
        .into_iter()
        .filter(|n| n.ends_with(".conf"))
    {
        let p = format!("/etc/systemd/journald.conf.d/{n}");
        if let Some(l) = first_match(&t.text(&p)?.unwrap_or_default(), r"^Storage=")? {
            return Ok(format!("{p}: {l}"));
        }
    }
    Err("no *.conf in /etc/systemd/journald.conf.d sets Storage=".into())
}

fn journald_volatile(t: &Tree) -> Verdict {
    // Drop-ins by name, /etc over /run over /usr/lib, read after journald.conf in name order.
    let mut dropins = BTreeMap::new();
    for dir in [
        "/usr/lib/systemd/journald.conf.d",
        "/lib/systemd/journald.conf.d",
        "/run/systemd/journald.conf.d",
        "/etc/systemd/journald.conf.d",
    ] {
        for n in list_dir(t, dir)?
            .into_iter()
            .filter(|n| n.ends_with(".conf"))
        {
            dropins.insert(n.clone(), format!("{dir}/{n}"));
        }
    }
    let mut last = None;
    for p in std::iter::once("/etc/systemd/journald.conf".to_string()).chain(dropins.into_values())
    {
        for l in t.text(&p)?.unwrap_or_default().lines() {
            if let Some(v) = l.trim().strip_prefix("Storage=") {
                last = Some((p.clone(), v.trim().to_string()));
            }
        }
    }
    match last {
        Some((p, v)) if v == "volatile" => Ok(format!("{p}: Storage=volatile")),
        Some((p, v)) => Err(format!("{p}: Storage={v}")),
        None => Err("nothing sets Storage= (journald's default, auto, keeps the journal in /var/log/journal)".into()),
    }
}

/// chrony, its drop-in, `sync-time`.
#[rustfmt::skip]
fn time() -> Vec<Check> {
    vec![
        ck("chrony-enabled", SD, "chrony is enabled", custom("a link to chrony.service in /etc/systemd/system/*.wants", |t| unit_enabled(t, "chrony.service", "chrony"))),
        ck("chronyd-dropin-file", SD, "chrony has a systemd drop-in for BOSH (upstream's chronyd.service.d/prevent_mount_locking.conf; ours chrony.service.d/60-bosh.conf, stage 43)", custom("*.conf in /etc/systemd/system/chrony.service.d or chronyd.service.d", |t| chrony_dropin(t, false))),
        ck("chronyd-dropin-content", SD, "chronyd cannot see /var/vcap/store, so its mount namespace never holds the persistent disk busy", custom("`InaccessiblePaths=-/var/vcap/store` in chrony's drop-ins", |t| chrony_dropin(t, true))),
        ck("sync-time-file", SH, "/var/vcap/bosh/bin/sync-time is a file", Test::File(SYNC)),
        ck("sync-time-exec", SH, "sync-time is executable", Test::Executable(SYNC)),
        ck("V-38620+V-38621/sync-time-file", CH, "sync-time is a file (chrony's examples)", Test::File(SYNC)),
        ck("V-38620+V-38621/reload", CH, "sync-time makes chrony reload its sources", Test::Matches { path: SYNC, pattern: "chronyc reload sources" }),
        ck("V-38620+V-38621/waitsync", CH, "sync-time waits for chrony to synchronise (upstream: 10 tries, ours 30: a Pi has no real-time clock)", Test::Matches { path: SYNC, pattern: r"chronyc waitsync [0-9]+" }),
        ck("V-38620+V-38621/chrony-conf", CH, "/etc/chrony/chrony.conf is a file", Test::File("/etc/chrony/chrony.conf")),
        ck("V-38620+V-38621/makestep", CH, "chrony steps the clock when it is over 1 s off in its first 3 updates", Test::Matches { path: "/etc/chrony/chrony.conf", pattern: "makestep 1 3" }),
    ]
}

fn chrony_dropin(t: &Tree, content: bool) -> Verdict {
    for dir in [
        "/etc/systemd/system/chrony.service.d",
        "/etc/systemd/system/chronyd.service.d",
    ] {
        for n in list_dir(t, dir)?
            .into_iter()
            .filter(|n| n.ends_with(".conf"))
        {
            let p = format!("{dir}/{n}");
            if !content && is_file(t, &p)? {
                return Ok(format!("{p} is a file"));
            }
            if let Some(l) = first_match(
                &t.text(&p)?.unwrap_or_default(),
                r"^InaccessiblePaths=-/var/vcap/store",
            )? {
                return Ok(format!("{p}: {l}"));
            }
        }
    }
    Err(if content {
        "no chrony drop-in makes /var/vcap/store inaccessible"
    } else {
        "chrony has no drop-in in /etc/systemd/system"
    }
    .into())
}

/// cron, anacron and upstream's `cron_config`.
#[rustfmt::skip]
fn cron() -> Vec<Check> {
    vec![
        ck("V-38605/pkg", OS, "cron is installed", Test::Package("cron")),
        ck("V-38605/service", OS, "cron is enabled", custom("a link to cron.service in /etc/systemd/system/*.wants", |t| unit_enabled(t, "cron.service", "cron"))),
        ck("crontab-installed", SH, "crontab is installed", Test::Executable("/usr/bin/crontab")),
        ck("man-db-cron-daily-absent", OS, "man-db's daily cron job is gone", Test::Absent("/etc/cron.daily/man-db")),
        ck("man-db-cron-weekly-absent", OS, "man-db's weekly cron job is gone", Test::Absent("/etc/cron.weekly/man-db")),
        ck("apt-periodic-disabled", OS, "apt's periodic jobs are off (APT::Periodic Enable \"0\" in 02periodic, stage 48)", custom("the text of /etc/apt/apt.conf.d/02periodic", |t| {
            let text = t.text("/etc/apt/apt.conf.d/02periodic")?.ok_or("/etc/apt/apt.conf.d/02periodic is missing")?;
            if text.contains("APT::Periodic {\n  Enable \"0\";\n}\n") { Ok("APT::Periodic { Enable \"0\"; }".into()) } else { Err("02periodic does not say `APT::Periodic {\\n  Enable \"0\";\\n}`".into()) }
        })),
        ck("anacrontab-file", SH, "/etc/anacrontab is a file (anacron, stage 13)", Test::File("/etc/anacrontab")),
        ck("anacrontab-random-delay", SH, "anacron starts its jobs up to 60 minutes late (RANDOM_DELAY=60 before any job, stage 48)", custom("the lines of /etc/anacrontab", anacron_delay)),
    ]
}

/// Upstream's rule: a line `RANDOM_DELAY=60`, and no job line (`PERIOD DELAY cron.x`) up to it.
fn anacron_delay(t: &Tree) -> Verdict {
    let text = t
        .text("/etc/anacrontab")?
        .ok_or("/etc/anacrontab is missing")?;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let at = lines
        .iter()
        .position(|l| *l == "RANDOM_DELAY=60")
        .ok_or("/etc/anacrontab has no line RANDOM_DELAY=60")?;
    for l in &lines[..=at] {
        if first_match(l, r"(\S+\s+){2}cron\.")?.is_some() {
            return Err(format!("the job `{l}` comes before RANDOM_DELAY=60"));
        }
    }
    Ok(format!(
        "RANDOM_DELAY=60 on line {}, before every job",
        at + 1
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A tree of these files; user and group syslog and vcap get the ids of whoever runs this.
    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().unwrap();
        let m = std::fs::metadata(dir.path()).unwrap();
        let (u, g) = (m.uid(), m.gid());
        let mut all = vec![
            (
                "etc/passwd".to_string(),
                format!(
                    "syslog:x:{u}:{g}::/:/bin/false\nvcap:x:{}:{}::/:/bin/bash\n",
                    u + 1,
                    g + 1
                ),
            ),
            (
                "etc/group".to_string(),
                format!("syslog:x:{g}:\nvcap:x:{}:syslog\n", g + 1),
            ),
        ];
        all.extend(files.iter().map(|(p, t)| (p.to_string(), t.to_string())));
        for (p, text) in all {
            let p = dir.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let t = Tree::new(dir.path());
        (dir, t)
    }

    #[test]
    fn anacron_delay_must_precede_every_job() {
        let (_d, t) = tree(&[(
            "etc/anacrontab",
            "SHELL=/bin/sh\nRANDOM_DELAY=60\n1\t5\tcron.daily\trun-parts /etc/cron.daily\n",
        )]);
        assert!(anacron_delay(&t).is_ok());
        let (_d, t) = tree(&[(
            "etc/anacrontab",
            "1\t5\tcron.daily\trun-parts /etc/cron.daily\nRANDOM_DELAY=60\n",
        )]);
        assert!(anacron_delay(&t).unwrap_err().contains("cron.daily"));
    }

    #[test]
    fn the_last_storage_journald_reads_wins() {
        let (_d, t) = tree(&[
            (
                "etc/systemd/journald.conf",
                "[Journal]\nStorage=persistent\n",
            ),
            (
                "etc/systemd/journald.conf.d/60-bosh.conf",
                "[Journal]\nStorage=volatile\n",
            ),
        ]);
        assert!(journald_volatile(&t).is_ok());
        let (_d, t) = tree(&[
            (
                "etc/systemd/journald.conf.d/60-bosh.conf",
                "Storage=volatile\n",
            ),
            (
                "usr/lib/systemd/journald.conf.d/70-x.conf",
                "Storage=auto\n",
            ),
        ]);
        assert!(journald_volatile(&t).unwrap_err().contains("70-x.conf"));
    }

    #[test]
    fn rsyslogs_files_are_syslogs_alone() {
        let conf = "$FileOwner syslog\n# /var/log/not-a-file\n";
        let rules = "auth.*\t/var/log/auth.log\n*.*\t-/var/log/syslog\n";
        let files = [
            ("etc/rsyslog.conf", conf),
            ("etc/rsyslog.d/50-default.conf", rules),
            ("var/log/auth.log", ""),
            ("var/log/syslog", ""),
        ];
        let (d, t) = tree(&files);
        assert_eq!(
            log_files(&t).unwrap(),
            "/var/log/auth.log, /var/log/syslog: syslog:syslog 0600"
        );
        std::fs::set_permissions(
            d.path().join("var/log/syslog"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        assert!(log_files(&t).unwrap_err().contains("/var/log/syslog"));
        std::fs::remove_file(d.path().join("var/log/auth.log")).unwrap();
        assert!(log_files(&t)
            .unwrap_err()
            .contains("/var/log/auth.log is missing"));
    }
}
