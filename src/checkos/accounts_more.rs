//! Upstream's "allowed user accounts" (`os_image/ubuntu_jammy_spec.rb`): the exact jammy
//! /etc/passwd, /etc/shadow, /etc/group and /etc/gshadow, which do not port (Debian and Raspbian
//! have other system accounts and ids), registered as not applicable; and the properties those
//! lists protect, checked on any profile: only root and vcap log in, unique names and ids, one
//! shadow entry per account and none empty, no ageing that locks an account (the agent's users
//! included), vcap's groups, no group passwords.

use super::accounts::{entries, field, groups_of, mask, none_of, JAMMY, NOLOGIN};
use super::common::check;
use super::test::Verdict;
use super::tree::Tree;
use super::{Applies, Check, Test};

/// Why upstream's exact jammy account lists do not apply.
const JAMMY_LIST: &str = "the exact account list, names and ids of Ubuntu jammy's base system: Debian and Raspbian create other system accounts with other ids (and none of runit-log, _runit-log, tcpdump, sgx); what the list protects is checked by the allowed-accounts-*/… checks";

/// Upstream's exact jammy lists (not applicable) and the properties they protect.
pub fn checks() -> Vec<Check> {
    let no = |id, title, upstream| Check {
        id,
        source: JAMMY,
        title,
        test: Test::Upstream(upstream),
        applies: Applies::No(JAMMY_LIST),
    };
    vec![
        no("allowed-accounts-passwd", "/etc/passwd is exactly jammy's 31 accounts", "/etc/passwd content == root, daemon, bin, … sshd, vcap (jammy's names, uids, gids, homes and shells)"),
        check("allowed-accounts-passwd/logins", JAMMY, "only root and vcap have a login shell (what jammy's exact list has): every other account has nologin, false or sync", Test::Custom {
            looks_at: "every `/etc/passwd` account but root and vcap has shell `/usr/sbin/nologin`, `/sbin/nologin`, `/bin/false` or (sync) `/bin/sync`",
            run: only_root_and_vcap_log_in,
        }),
        check("allowed-accounts-passwd/vcap", JAMMY, "names and uids are unique, and vcap is `vcap:x:1000:<vcap's gid>:BOSH System User:/home/vcap:/bin/bash` as in jammy's list", Test::Custom {
            looks_at: "`/etc/passwd`: no name or uid twice; vcap's line",
            run: passwd_unique_and_vcap,
        }),
        no("allowed-accounts-shadow", "/etc/shadow matches jammy's template", "/etc/shadow =~ \\Aroot:(.+):(\\d{5}):0:99999:7:::\\ndaemon:\\*:… vcap:(.+):(\\d{5}):1:99999:7:::\\Z"),
        check("allowed-accounts-shadow/entries", JAMMY, "every account has one /etc/shadow entry, none with an empty password field (jammy's template: `*`, `!` or a hash)", Test::Custom {
            looks_at: "the names of `/etc/shadow` are those of `/etc/passwd`, once each; no empty second field",
            run: shadow_entries,
        }),
        check("allowed-accounts-shadow/ageing", JAMMY, "no ageing locks an account (jammy's template: max days 99999, no expiry, no forced change), nor the accounts bosh ssh creates (login.defs PASS_MAX_DAYS 99999)", Test::Custom {
            looks_at: "every `/etc/shadow` entry: last change not 0, max days empty or 99999, inactive and expiry empty; `/etc/login.defs` PASS_MAX_DAYS 99999 or unset",
            run: no_ageing_lock,
        }),
        no("allowed-accounts-group", "/etc/group is exactly jammy's 60 groups", "/etc/group content == root:x:0:, daemon:x:1:, … vcap:x:1000:syslog, bosh_sshers:x:1001:vcap, bosh_sudoers:x:1002:"),
        check("allowed-accounts-group/members", JAMMY, "group names and gids are unique, vcap is in jammy's groups (adm, dialout, cdrom, floppy, sudo, audio, dip, video, plugdev, admin, bosh_sshers), syslog in vcap, bosh_sudoers empty", Test::Custom {
            looks_at: "`/etc/group`: no name or gid twice; vcap's and syslog's memberships; no member in bosh_sudoers",
            run: group_members,
        }),
        no("allowed-accounts-gshadow", "/etc/gshadow is exactly jammy's 60 groups", "/etc/gshadow content == root:*::, daemon:*::, … bosh_sudoers:!::"),
        check("allowed-accounts-gshadow/locked", JAMMY, "no group has a password (every /etc/gshadow entry is `*` or `!`, as in jammy's list), and every group has an entry", Test::Custom {
            looks_at: "every `/etc/group` group has one `/etc/gshadow` entry whose second field is `*` or `!`",
            run: gshadow_locked,
        }),
    ]
}

fn only_root_and_vcap_log_in(t: &Tree) -> Verdict {
    let bad = entries(t, "/etc/passwd")?
        .iter()
        .filter(|e| !matches!(field(e, 0), "root" | "vcap"))
        .filter(|e| {
            !(NOLOGIN.contains(&field(e, 6))
                || (field(e, 0) == "sync" && field(e, 6) == "/bin/sync"))
        })
        .map(|e| format!("{} has shell {}", field(e, 0), field(e, 6)))
        .collect();
    none_of(bad, "only root and vcap have a login shell")
}

fn passwd_unique_and_vcap(t: &Tree) -> Verdict {
    let passwd = entries(t, "/etc/passwd")?;
    let mut bad = duplicates(&passwd, 0, "name");
    bad.extend(duplicates(&passwd, 2, "uid"));
    let gid = t
        .id_of("vcap", true)?
        .map(|g| g.to_string())
        .unwrap_or_default();
    let want = format!("vcap:x:1000:{gid}:BOSH System User:/home/vcap:/bin/bash");
    match passwd.iter().find(|e| field(e, 0) == "vcap") {
        Some(e) if e.join(":") == want => {}
        Some(e) => bad.push(format!("vcap is `{}`; wants `{want}`", e.join(":"))),
        None => bad.push("no user vcap".into()),
    }
    none_of(bad, &want)
}

/// "NAME used twice" for each value of field `i` seen more than once.
fn duplicates(list: &[Vec<String>], i: usize, what: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for e in list {
        *seen.entry(field(e, i)).or_default() += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(v, n)| format!("{what} {v} is used {n} times"))
        .collect()
}

fn shadow_entries(t: &Tree) -> Verdict {
    let passwd = entries(t, "/etc/passwd")?;
    let shadow = entries(t, "/etc/shadow")?;
    let mut bad = duplicates(&shadow, 0, "shadow entry");
    for e in &passwd {
        if !shadow.iter().any(|s| field(s, 0) == field(e, 0)) {
            bad.push(format!("{} has no /etc/shadow entry", field(e, 0)));
        }
    }
    for s in &shadow {
        if !passwd.iter().any(|e| field(e, 0) == field(s, 0)) {
            bad.push(format!(
                "/etc/shadow names {}, which /etc/passwd does not",
                field(s, 0)
            ));
        }
        if field(s, 1).is_empty() {
            bad.push(format!(
                "{} has an empty password (a login without one)",
                field(s, 0)
            ));
        }
    }
    none_of(
        bad,
        &format!(
            "{} accounts, one shadow entry each, none empty",
            passwd.len()
        ),
    )
}

fn no_ageing_lock(t: &Tree) -> Verdict {
    let mut bad = Vec::new();
    for s in entries(t, "/etc/shadow")? {
        let name = field(&s, 0);
        if field(&s, 2) == "0" {
            bad.push(format!(
                "{name} must change its password at the next login (last change 0)"
            ));
        }
        if !matches!(field(&s, 4), "" | "99999") {
            bad.push(format!(
                "{name}'s password expires after {} days",
                field(&s, 4)
            ));
        }
        if !field(&s, 6).is_empty() {
            bad.push(format!(
                "{name} is locked {} days after its password expires",
                field(&s, 6)
            ));
        }
        if !field(&s, 7).is_empty() {
            bad.push(format!("{name} expires on day {}", field(&s, 7)));
        }
    }
    if let Some(text) = t.text("/etc/login.defs")? {
        for l in text.lines() {
            let mut w = l.split_whitespace();
            if w.next() == Some("PASS_MAX_DAYS") {
                let v = w.next().unwrap_or_default();
                if v != "99999" {
                    bad.push(format!(
                        "login.defs PASS_MAX_DAYS {v}: the users bosh ssh creates would expire"
                    ));
                }
            }
        }
    }
    none_of(bad, "no account expires or must change its password")
}

fn group_members(t: &Tree) -> Verdict {
    let groups = entries(t, "/etc/group")?;
    let mut bad = duplicates(&groups, 0, "group");
    bad.extend(duplicates(&groups, 2, "gid"));
    let vcap = groups_of(t, "vcap")?;
    for g in [
        "adm",
        "dialout",
        "cdrom",
        "floppy",
        "sudo",
        "audio",
        "dip",
        "video",
        "plugdev",
        "admin",
        "bosh_sshers",
    ] {
        if !vcap.iter().any(|v| v == g) {
            bad.push(format!("vcap is not in {g}"));
        }
    }
    if !groups_of(t, "syslog")?.iter().any(|g| g == "vcap") {
        bad.push("syslog is not in vcap".into());
    }
    if let Some(g) = groups.iter().find(|g| field(g, 0) == "bosh_sudoers") {
        if !field(g, 3).is_empty() {
            bad.push(format!(
                "bosh_sudoers has members in the image: {}",
                field(g, 3)
            ));
        }
    }
    none_of(bad, &format!("vcap: {}", vcap.join(" ")))
}

fn gshadow_locked(t: &Tree) -> Verdict {
    let groups = entries(t, "/etc/group")?;
    let gshadow = entries(t, "/etc/gshadow")?;
    let mut bad = duplicates(&gshadow, 0, "gshadow entry");
    for g in &groups {
        if !gshadow.iter().any(|s| field(s, 0) == field(g, 0)) {
            bad.push(format!("group {} has no /etc/gshadow entry", field(g, 0)));
        }
    }
    for s in &gshadow {
        if !matches!(field(s, 1), "*" | "!") {
            bad.push(format!(
                "group {} has password field `{}`",
                field(s, 0),
                mask(field(s, 1))
            ));
        }
    }
    none_of(
        bad,
        &format!("{} groups, none with a password", gshadow.len()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree holding these files under `etc/`.
    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join("etc").join(name), text).unwrap();
        }
        let t = Tree::new(dir.path());
        (dir, t)
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nsync:x:4:65534:sync:/bin:/bin/sync\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nsyslog:x:100:101::/nonexistent:/usr/sbin/nologin\n\
        vcap:x:1000:1000:BOSH System User:/home/vcap:/bin/bash\n";
    const GROUP: &str = "root:x:0:\nadm:x:4:vcap,syslog\nsudo:x:27:vcap\naudio:x:29:vcap\n\
        dialout:x:20:vcap\ncdrom:x:24:vcap\nfloppy:x:25:vcap\ndip:x:30:vcap\nvideo:x:44:vcap\n\
        plugdev:x:46:vcap\nadmin:x:997:vcap\nsyslog:x:101:\nvcap:x:1000:syslog\n\
        bosh_sshers:x:1001:vcap\nbosh_sudoers:x:1002:\n";

    #[test]
    fn the_list_properties_pass_on_a_good_tree_and_name_what_is_wrong() {
        let shadow =
            "root:*:19000:0:99999:7:::\nsync:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n\
            syslog:!:19000::::::\nvcap:*:19000:1:99999:7:::\n";
        let gshadow: String = GROUP
            .lines()
            .map(|l| format!("{}:*::\n", l.split(':').next().unwrap()))
            .collect();
        let (_d, t) = tree(&[
            ("passwd", PASSWD),
            ("group", GROUP),
            ("shadow", shadow),
            ("gshadow", &gshadow),
            ("login.defs", "PASS_MAX_DAYS\t99999\n"),
        ]);
        for f in [
            only_root_and_vcap_log_in,
            passwd_unique_and_vcap,
            shadow_entries,
            no_ageing_lock,
            group_members,
            gshadow_locked,
        ] {
            f(&t).unwrap();
        }

        let bad_passwd =
            format!("{PASSWD}games:x:5:60:games:/usr/games:/bin/sh\nroot2:x:0:0::/:/bin/false\n");
        let (_d, t) = tree(&[
            ("passwd", &bad_passwd),
            ("group", &GROUP.replace("sudo:x:27:vcap", "sudo:x:27:")),
            (
                "shadow",
                &shadow.replace("vcap:*:19000:1:99999", "vcap::0:1:90"),
            ),
            ("gshadow", &gshadow.replace("adm:*:", "adm:$6$x:")),
            ("login.defs", "PASS_MAX_DAYS 60\n"),
        ]);
        assert!(only_root_and_vcap_log_in(&t)
            .unwrap_err()
            .contains("games has shell /bin/sh"));
        assert!(passwd_unique_and_vcap(&t)
            .unwrap_err()
            .contains("uid 0 is used 2 times"));
        let e = shadow_entries(&t).unwrap_err();
        assert!(
            e.contains("games has no /etc/shadow entry")
                && e.contains("vcap has an empty password"),
            "{e}"
        );
        let e = no_ageing_lock(&t).unwrap_err();
        assert!(
            e.contains("vcap must change")
                && e.contains("expires after 90")
                && e.contains("PASS_MAX_DAYS 60"),
            "{e}"
        );
        assert!(group_members(&t)
            .unwrap_err()
            .contains("vcap is not in sudo"));
        assert!(gshadow_locked(&t)
            .unwrap_err()
            .contains("group adm has password field `$6$…`"));
    }

    #[test]
    fn account_checks_read_passwd_group_shadow_as_id_and_awk_do() {
        use super::super::accounts;
        let (_d, t) = tree(&[
            ("passwd", PASSWD),
            ("group", GROUP),
            ("shadow", "root:$6$abc:19000:0:99999:7:::\nsync:*:1:0::::\ndaemon:$6$x:19000:0:99999:7:::\nvcap:$6$y:19000:0:99999:7:::\n"),
            ("sudoers", "root ALL=(ALL) ALL\n%bosh_sudoers ALL=(ALL) NOPASSWD: ALL\n# %sudo ALL=NOPASSWD: ALL\n"),
        ]);
        assert_eq!(
            groups_of(&t, "vcap").unwrap(),
            [
                "adm",
                "sudo",
                "audio",
                "dialout",
                "cdrom",
                "floppy",
                "dip",
                "video",
                "plugdev",
                "admin",
                "vcap",
                "bosh_sshers"
            ]
        );
        let mut all = accounts::checks();
        all.extend(super::checks());
        let run = |id: &str| all.iter().find(|c| c.id == id).unwrap().test.run(&t);
        for ok in [
            "V-38500",
            "CIS-10.2",
            "V-38499",
            "vcap-primary-group",
            "vcap-in-bosh-sshers",
            "syslog-in-vcap-group",
            "V-58901",
        ] {
            run(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        // daemon has a password; vcap has one with min days 0 (root is exempt from both).
        assert!(run("V-38496")
            .unwrap_err()
            .contains("daemon has password field `$6$…`"));
        let e = run("V-38477/shadow").unwrap_err();
        assert!(
            e.contains("daemon") && e.contains("vcap") && !e.contains("root"),
            "{e}"
        );
    }
}
