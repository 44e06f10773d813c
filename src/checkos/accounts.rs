//! Users and groups, sudo, the shells' PATH and prompt, home directories: the assertions of
//! `support/os_image_shared_examples.rb` (bosh_sudoers, bosh_users, the STIG file modes of
//! /etc/passwd, /etc/group, /etc/gshadow and /etc/shadow, the account checks) and of
//! `os_image/ubuntu_jammy_spec.rb` (bosh_user, "allowed user accounts"). Upstream's stages:
//! `bosh_users`, `bosh_sudoers`, `bosh_environment`, `base_file_permission`. Ours:
//! `20-users-groups`, `21-sudoers`, `22-login-defaults`, `23-password-policies`.
//!
//! Upstream runs `id`, `getent`, `awk` and `egrep` in the image; here the same questions are
//! answered from the image's `/etc/passwd`, `/etc/group`, `/etc/shadow`, `/etc/gshadow`.
//! Upstream's exact jammy account lists do not port (Debian and Raspbian have other system
//! accounts and ids): those rows are registered as not applicable, and what they protect (no
//! other account can log in, none has an empty password or a group password, vcap's groups,
//! no ageing that locks an account) is checked by the `allowed-accounts-*/…` checks, in
//! `accounts_more`.

use super::common::check;
use super::test::Verdict;
use super::tree::Tree;
use super::{Check, Test};

const SHARED: &str = "support/os_image_shared_examples.rb";
pub(super) const JAMMY: &str = "os_image/ubuntu_jammy_spec.rb";

/// The checks of this topic.
pub fn checks() -> Vec<Check> {
    let mut v = files();
    v.extend(accounts());
    v.extend(sudo());
    v.extend(shells());
    v
}

/// The modes and owners of the account files (STIG), and what /etc/passwd holds.
fn files() -> Vec<Check> {
    vec![
        check("passwd-file", JAMMY, "/etc/passwd is a file", Test::File("/etc/passwd")),
        check("passwd-vcap-home-shell", JAMMY, "vcap's home is /home/vcap and its shell bash", Test::Matches { path: "/etc/passwd", pattern: "/home/vcap:/bin/bash" }),
        check("V-38450", SHARED, "/etc/passwd is owned by root", Test::Owner { path: "/etc/passwd", user: "root" }),
        check("V-38451", SHARED, "/etc/passwd has group root", Test::Group { path: "/etc/passwd", group: "root" }),
        check("V-38457", SHARED, "/etc/passwd has mode 644", Test::Perm { path: "/etc/passwd", mode: 0o644 }),
        check("V-38499", SHARED, "/etc/passwd holds no password hashes (every password field is `x`)", Test::Custom {
            looks_at: "the second field of every non-comment line of `/etc/passwd` is `x`",
            run: no_hash_in_passwd,
        }),
        check("V-38458", SHARED, "/etc/group is owned by root", Test::Owner { path: "/etc/group", user: "root" }),
        check("V-38459", SHARED, "/etc/group has group root", Test::Group { path: "/etc/group", group: "root" }),
        check("V-38461", SHARED, "/etc/group has mode 644", Test::Perm { path: "/etc/group", mode: 0o644 }),
        check("V-38443", SHARED, "/etc/gshadow is owned by root", Test::Owner { path: "/etc/gshadow", user: "root" }),
        check("V-38448", SHARED, "/etc/gshadow has group root", Test::Group { path: "/etc/gshadow", group: "root" }),
        check("V-38449", SHARED, "/etc/gshadow has mode 000", Test::Perm { path: "/etc/gshadow", mode: 0o000 }),
        check("V-38502", SHARED, "/etc/shadow is owned by root (upstream's test looks at the group, V-38503's; the owner is what it names)", Test::Owner { path: "/etc/shadow", user: "root" }),
        check("V-38503", SHARED, "/etc/shadow has group root", Test::Group { path: "/etc/shadow", group: "root" }),
        check("V-38504", SHARED, "/etc/shadow has mode 000", Test::Perm { path: "/etc/shadow", mode: 0o000 }),
    ]
}

/// Who can log in, with which password and groups.
fn accounts() -> Vec<Check> {
    vec![
        check("V-38500", SHARED, "root is the only account with uid 0", Test::Custom {
            looks_at: "the lines of `/etc/passwd` with uid 0 are exactly `root:x:0:0:root:/root:/bin/bash`",
            run: only_root_uid_0,
        }),
        check("CIS-10.2", SHARED, "system accounts (uid < 500) cannot log in: nologin or false as shell", Test::Custom {
            looks_at: "every `/etc/passwd` account with uid < 500 but root, sync, shutdown, halt has shell `/usr/sbin/nologin`, `/sbin/nologin` or `/bin/false`",
            run: system_accounts_nologin,
        }),
        check("V-38496", SHARED, "no account but root and vcap has a password (system accounts are locked)", Test::Custom {
            looks_at: "every `/etc/shadow` entry but root's and vcap's has a password field starting with `!` or `*`",
            run: system_accounts_locked,
        }),
        check("V-38477/shadow", SHARED, "every account with a password (root aside) may change it at most once a day (min days 1)", Test::Custom {
            looks_at: "every `/etc/shadow` entry but root's whose password does not start with `!` or `*` has min days 1 (upstream asserts it twice, lines 492 and 499)",
            run: min_days_one,
        }),
        check("vcap-primary-group", SHARED, "vcap's primary group is vcap", Test::Custom {
            looks_at: "vcap's gid in `/etc/passwd` is group vcap's in `/etc/group` (`id -gn vcap`)",
            run: vcap_primary_group,
        }),
        check("vcap-in-bosh-sshers", SHARED, "vcap is in group bosh_sshers (sshd allows only bosh_sshers)", Test::Custom {
            looks_at: "`id -Gn vcap` from `/etc/passwd` and `/etc/group` includes bosh_sshers",
            run: |t| user_in_group(t, "vcap", "bosh_sshers"),
        }),
        check("vcap-home-mode", SHARED, "vcap's home has mode 700", Test::Custom {
            looks_at: "the home directory `/etc/passwd` gives vcap has permissions 700",
            run: vcap_home_mode,
        }),
        check("syslog-user-exists", SHARED, "user syslog exists (rsyslogd runs as syslog; the agent chowns its log dir to group syslog)", Test::Custom {
            looks_at: "`/etc/passwd` has user syslog",
            run: |t| user_exists(t, "syslog"),
        }),
        check("syslog-in-vcap-group", SHARED, "user syslog is in group vcap", Test::Custom {
            looks_at: "`id -Gn syslog` from `/etc/passwd` and `/etc/group` includes vcap",
            run: |t| user_in_group(t, "syslog", "vcap"),
        }),
        check("group-adm-exists", SHARED, "group adm exists", Test::Custom {
            looks_at: "`/etc/group` has group adm",
            run: |t| group_exists(t, "adm"),
        }),
        check("group-bosh-sudoers-exists", SHARED, "group bosh_sudoers exists (bosh ssh users sudo without a password)", Test::Custom {
            looks_at: "`/etc/group` has group bosh_sudoers",
            run: |t| group_exists(t, "bosh_sudoers"),
        }),
        check("group-bosh-sshers-exists", SHARED, "group bosh_sshers exists (bosh ssh users may log in)", Test::Custom {
            looks_at: "`/etc/group` has group bosh_sshers",
            run: |t| group_exists(t, "bosh_sshers"),
        }),
    ]
}

/// bosh_sudoers: sudoers as upstream writes it.
fn sudo() -> Vec<Check> {
    vec![
        check("sudoers-file", SHARED, "/etc/sudoers is a file", Test::File("/etc/sudoers")),
        check("sudoers-bosh-sudoers", SHARED, "members of bosh_sudoers (bosh ssh users) sudo without a password", Test::Matches { path: "/etc/sudoers", pattern: r"%bosh_sudoers ALL=\(ALL\) NOPASSWD: ALL" }),
        check("sudoers-includedir", SHARED, "sudoers includes /etc/sudoers.d", Test::Matches { path: "/etc/sudoers", pattern: "#includedir /etc/sudoers.d" }),
        check("V-58901", SHARED, "sudo asks for a password: no NOPASSWD or !authenticate but for %bosh_sudoers", Test::Custom {
            looks_at: "no line of `/etc/sudoers` or a file in `/etc/sudoers.d` has `NOPASSWD` or `!authenticate`, but comments and `%bosh_sudoers ` lines",
            run: sudo_asks_for_password,
        }),
    ]
}

/// bosh_users and bosh_environment: the agent's bin on PATH, the bosh prompt.
fn shells() -> Vec<Check> {
    vec![
        check("etc-environment-path", SHARED, "every login's PATH (pam_env's /etc/environment) ends with /var/vcap/bosh/bin", Test::Matches {
            path: "/etc/environment",
            pattern: r#"PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games:/usr/local/games:/var/vcap/bosh/bin""#,
        }),
        check("root-bashrc-path", SHARED, "root's bashrc puts /var/vcap/bosh/bin on PATH (upstream's grep pattern ends in a newline and so matches any file; ported as meant)", Test::Matches {
            path: "/root/.bashrc",
            pattern: r"^export PATH=/var/vcap/bosh/bin:\$PATH$",
        }),
        check("vcap-bashrc-path", SHARED, "vcap's bashrc puts /var/vcap/bosh/bin on PATH (upstream's grep matches any file; ported as meant)", Test::Matches {
            path: "/home/vcap/.bashrc",
            pattern: r"^export PATH=/var/vcap/bosh/bin:\$PATH$",
        }),
        check("root-bashrc-file", SHARED, "/root/.bashrc is a file", Test::File("/root/.bashrc")),
        check("root-bashrc-ps1", SHARED, "root's bashrc sets the bosh prompt", Test::Matches { path: "/root/.bashrc", pattern: "source /etc/profile.d/00-bosh-ps1" }),
        check("vcap-bashrc-file", SHARED, "/home/vcap/.bashrc is a file", Test::File("/home/vcap/.bashrc")),
        check("vcap-bashrc-ps1", SHARED, "vcap's bashrc sets the bosh prompt", Test::Matches { path: "/home/vcap/.bashrc", pattern: "source /etc/profile.d/00-bosh-ps1" }),
        check("skel-bashrc-file", SHARED, "/etc/skel/.bashrc is a file (bosh ssh users' bashrc)", Test::File("/etc/skel/.bashrc")),
        check("skel-bashrc-ps1", SHARED, "new users' (bosh ssh) bashrc sets the bosh prompt", Test::Matches { path: "/etc/skel/.bashrc", pattern: "source /etc/profile.d/00-bosh-ps1" }),
        check("bosh-ps1-file", SHARED, "the bosh prompt script is a file", Test::File("/etc/profile.d/00-bosh-ps1")),
        check("root-profile-sources-bashrc", SHARED, "root's login shell reads its bashrc", Test::Matches { path: "/root/.profile", pattern: ".bashrc" }),
    ]
}

/// The non-empty, non-comment lines of a colon-separated account file, split into fields.
pub(super) fn entries(t: &Tree, path: &str) -> Result<Vec<Vec<String>>, String> {
    let text = t.text(path)?.ok_or_else(|| format!("{path} is missing"))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect())
}

/// Field `i` of an entry, empty when the line is short.
pub(super) fn field(e: &[String], i: usize) -> &str {
    e.get(i).map_or("", String::as_str)
}

/// Passes when `bad` is empty, listing at most ten of them otherwise.
pub(super) fn none_of(bad: Vec<String>, ok: &str) -> Verdict {
    if bad.is_empty() {
        return Ok(ok.to_string());
    }
    let n = bad.len();
    let shown: Vec<String> = bad.into_iter().take(10).collect();
    Err(if n > 10 {
        format!("{} (and {} more)", shown.join("; "), n - 10)
    } else {
        shown.join("; ")
    })
}

/// `id -Gn USER`: its primary group's name, then every group that lists it as a member.
pub(super) fn groups_of(t: &Tree, user: &str) -> Result<Vec<String>, String> {
    let passwd = entries(t, "/etc/passwd")?;
    let me = passwd
        .iter()
        .find(|e| field(e, 0) == user)
        .ok_or_else(|| format!("/etc/passwd has no user {user}"))?;
    let gid = field(me, 3);
    let mut out = Vec::new();
    for g in entries(t, "/etc/group")? {
        if field(&g, 2) == gid || field(&g, 3).split(',').any(|m| m.trim() == user) {
            out.push(field(&g, 0).to_string());
        }
    }
    Ok(out)
}

fn user_in_group(t: &Tree, user: &str, group: &str) -> Verdict {
    let groups = groups_of(t, user)?;
    if groups.iter().any(|g| g == group) {
        Ok(format!("{user}: {}", groups.join(" ")))
    } else {
        Err(format!("{user} is in {}, not {group}", groups.join(" ")))
    }
}

fn user_exists(t: &Tree, user: &str) -> Verdict {
    match entries(t, "/etc/passwd")?
        .iter()
        .find(|e| field(e, 0) == user)
    {
        Some(e) => Ok(e.join(":")),
        None => Err(format!("/etc/passwd has no user {user}")),
    }
}

fn group_exists(t: &Tree, group: &str) -> Verdict {
    match entries(t, "/etc/group")?
        .iter()
        .find(|e| field(e, 0) == group)
    {
        Some(e) => Ok(e.join(":")),
        None => Err(format!("/etc/group has no group {group}")),
    }
}

fn no_hash_in_passwd(t: &Tree) -> Verdict {
    let bad = entries(t, "/etc/passwd")?
        .iter()
        .filter(|e| field(e, 1) != "x")
        .map(|e| format!("{} has password field `{}`", field(e, 0), mask(field(e, 1))))
        .collect();
    none_of(bad, "every password field is x")
}

/// A password field as shown in a report: its first three characters.
pub(super) fn mask(pw: &str) -> String {
    if pw.chars().count() <= 3 {
        pw.to_string()
    } else {
        format!("{}…", pw.chars().take(3).collect::<String>())
    }
}

fn only_root_uid_0(t: &Tree) -> Verdict {
    let zero: Vec<String> = entries(t, "/etc/passwd")?
        .iter()
        .filter(|e| field(e, 2) == "0")
        .map(|e| e.join(":"))
        .collect();
    if zero == ["root:x:0:0:root:/root:/bin/bash"] {
        Ok(zero[0].clone())
    } else {
        Err(format!("uid 0: {}", zero.join("; ")))
    }
}

pub(super) const NOLOGIN: &[&str] = &["/usr/sbin/nologin", "/sbin/nologin", "/bin/false"];

fn system_accounts_nologin(t: &Tree) -> Verdict {
    let bad = entries(t, "/etc/passwd")?
        .iter()
        .filter(|e| !matches!(field(e, 0), "root" | "sync" | "shutdown" | "halt"))
        .filter(|e| field(e, 2).parse::<u64>().is_ok_and(|uid| uid < 500))
        .filter(|e| !NOLOGIN.contains(&field(e, 6)))
        .map(|e| {
            format!(
                "{} (uid {}) has shell {}",
                field(e, 0),
                field(e, 2),
                field(e, 6)
            )
        })
        .collect();
    none_of(bad, "every system account has a nologin shell")
}

fn system_accounts_locked(t: &Tree) -> Verdict {
    let bad = entries(t, "/etc/shadow")?
        .iter()
        .filter(|e| !matches!(field(e, 0), "root" | "vcap"))
        .filter(|e| !field(e, 1).starts_with(['!', '*']))
        .map(|e| format!("{} has password field `{}`", field(e, 0), mask(field(e, 1))))
        .collect();
    none_of(bad, "every account but root and vcap is locked")
}

fn min_days_one(t: &Tree) -> Verdict {
    let bad = entries(t, "/etc/shadow")?
        .iter()
        .filter(|e| field(e, 0) != "root")
        .filter(|e| !field(e, 1).starts_with(['!', '*']))
        .filter(|e| field(e, 3) != "1")
        .map(|e| {
            format!(
                "{} has a password and min days `{}`",
                field(e, 0),
                field(e, 3)
            )
        })
        .collect();
    none_of(bad, "every account with a password has min days 1")
}

fn vcap_primary_group(t: &Tree) -> Verdict {
    let groups = groups_of(t, "vcap")?;
    let passwd = entries(t, "/etc/passwd")?;
    let gid = passwd
        .iter()
        .find(|e| field(e, 0) == "vcap")
        .map(|e| field(e, 3).to_string())
        .unwrap_or_default();
    let primary = entries(t, "/etc/group")?
        .into_iter()
        .find(|g| field(g, 2) == gid)
        .map(|g| field(&g, 0).to_string());
    match primary {
        Some(name) if name == "vcap" => Ok(format!(
            "vcap: gid {gid} (vcap); groups {}",
            groups.join(" ")
        )),
        Some(name) => Err(format!("vcap's primary group is {name} (gid {gid})")),
        None => Err(format!("vcap's gid {gid} is no group")),
    }
}

fn vcap_home_mode(t: &Tree) -> Verdict {
    let home = entries(t, "/etc/passwd")?
        .iter()
        .find(|e| field(e, 0) == "vcap")
        .map(|e| field(e, 5).to_string())
        .ok_or("/etc/passwd has no user vcap")?;
    if !home.starts_with('/') {
        return Err(format!("vcap's home `{home}` is not an absolute path"));
    }
    let m = t
        .meta_followed(&home)?
        .ok_or_else(|| format!("vcap's home {home} is missing"))?;
    if m.dir && m.mode & 0o777 == 0o700 {
        Ok(format!("{home}: 700"))
    } else {
        Err(format!(
            "{home} is {:03o}{}; wants a directory 700",
            m.mode & 0o777,
            if m.dir { "" } else { ", not a directory" }
        ))
    }
}

fn sudo_asks_for_password(t: &Tree) -> Verdict {
    let mut files = vec!["/etc/sudoers".to_string()];
    t.walk("/etc/sudoers.d", &mut |p, m| {
        if m.file && p.matches('/').count() == 3 {
            files.push(p.to_string());
        }
    })?;
    let mut bad = Vec::new();
    for f in &files {
        let Some(text) = t.text(f)? else { continue };
        for l in text.lines() {
            if (l.contains("NOPASSWD") || l.contains("!authenticate"))
                && !l.starts_with('#')
                && !l.contains("%bosh_sudoers ")
            {
                bad.push(format!("{f}: {}", l.trim()));
            }
        }
    }
    none_of(
        bad,
        &format!("only %bosh_sudoers is NOPASSWD ({})", files.join(", ")),
    )
}
