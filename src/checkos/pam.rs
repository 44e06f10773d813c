//! Password and login policy: PAM (password quality and history, sha512, faillock, lastlog, no
//! `nullok`), su restricted by pam_wheel, securetty, login.defs. The assertions of
//! `os_image/ubuntu_jammy_spec.rb` (PAM, CIS-9.5) and `support/os_image_shared_examples.rb`
//! (nullok, sha512, securetty, login.defs); upstream's stages `password_policies`,
//! `restrict_su_command` and `tty_config`, ours `23-password-policies`.
//!
//! Debian bookworm and Ubuntu jammy have no `pam_cracklib` any more: `pam_pwquality` takes the
//! same options, and the checks accept either. PAM before 1.4 (Raspbian buster, Ubuntu trusty)
//! has no `pam_faillock`: `pam_tally2` does the same there, and is accepted too.

use super::accounts::entries;
use super::common::check;
use super::test::Verdict;
use super::tree::Tree;
use super::{Check, Test};

const SHARED: &str = "support/os_image_shared_examples.rb";
const JAMMY: &str = "os_image/ubuntu_jammy_spec.rb";

/// The checks of this topic.
pub fn checks() -> Vec<Check> {
    vec![
        check("pam-cracklib-so", JAMMY, "a password quality module is installed: pam_pwquality or pam_cracklib (upstream looks for pam_cracklib.so under /lib/x86_64-linux-gnu)", Test::Custom {
            looks_at: "`pam_pwquality.so` or `pam_cracklib.so` in a `security` directory of `/lib`, `/usr/lib` or their multiarch directories",
            run: quality_module_installed,
        }),
        check("V-38658", JAMMY, "the last 24 passwords may not be used again (pam_unix remember=24)", Test::Matches {
            path: "/etc/pam.d/common-password",
            pattern: r"password.*pam_unix\.so.*remember=24",
        }),
        check("V-38475", JAMMY, "passwords have at least 14 characters (pam_unix minlen=14)", Test::Matches {
            path: "/etc/pam.d/common-password",
            pattern: r"password.*pam_unix\.so.*minlen=14",
        }),
        check("CIS-9.2.1", JAMMY, "password quality: 3 tries, 14 characters, a digit, an upper- and a lower-case letter and another character (pam_pwquality or pam_cracklib)", Test::Matches {
            path: "/etc/pam.d/common-password",
            pattern: r"password.*pam_(cracklib|pwquality)\.so.*retry=3.*minlen=14.*dcredit=-1.*ucredit=-1.*ocredit=-1.*lcredit=-1",
        }),
        check("V-38573/account", JAMMY, "a successful login resets the failure count (pam_faillock, or pam_tally2 before PAM 1.4, in common-account)", Test::Matches {
            path: "/etc/pam.d/common-account",
            pattern: r"account.*required.*pam_(faillock|tally2)\.so",
        }),
        check("V-38573/auth", JAMMY, "an account is locked after 3 failed logins (pam_faillock, or pam_tally2 before PAM 1.4, deny=3)", Test::Matches {
            path: "/etc/pam.d/common-auth",
            pattern: r"auth.*pam_(faillock|tally2)\.so.*deny=3",
        }),
        check("V-51875", JAMMY, "logins show the failed attempts since the last one (pam_lastlog showfailed)", Test::Matches {
            path: "/etc/pam.d/common-password",
            pattern: "session\trequired\t\t\tpam_lastlog\\.so showfailed",
        }),
        check("V-38497", SHARED, "no PAM module accepts an empty password (no `nullok` under /etc/pam.d)", Test::Custom {
            looks_at: "no file under `/etc/pam.d` contains `nullok` (`grep -R nullok /etc/pam.d`: exit 1, no output)",
            run: no_nullok,
        }),
        check("V-38574", SHARED, "pam_unix hashes new passwords with sha512", Test::Custom {
            looks_at: "every line under `/etc/pam.d` starting `password` and naming `pam_unix.so` also says `sha512`",
            run: pam_unix_sha512,
        }),
        check("CIS-9.5/pam-wheel", JAMMY, "su is restricted to the wheel (or root) group: pam_wheel use_uid in /etc/pam.d/su", Test::Matches {
            path: "/etc/pam.d/su",
            pattern: r"^\s*auth\s*required\s*pam_wheel.so\s*use_uid",
        }),
        check("CIS-9.5/vcap-exists", JAMMY, "user vcap exists", Test::Custom {
            looks_at: "`/etc/passwd` has user vcap (`id vcap`)",
            run: vcap_exists,
        }),
        check("CIS-9.5/vcap-sudo", JAMMY, "vcap is in group sudo (restrict_su_command adds it)", Test::Custom {
            looks_at: "`id -Gn vcap` from `/etc/passwd` and `/etc/group` includes sudo",
            run: vcap_in_sudo,
        }),
        check("V-38492", SHARED, "root may not log in on virtual consoles (no vc/N in /etc/securetty; upstream's grep is basic, where `+` is literal, ported as meant)", Test::NotMatches {
            path: "/etc/securetty",
            pattern: r"^vc/[0-9]+",
        }),
        check("CIS-9.4", SHARED, "root may log in on the console only: /etc/securetty lists nothing but `console`", Test::Custom {
            looks_at: "`/etc/securetty` exists and the first word of each line that is not blank or a comment is `console`",
            run: securetty_console_only,
        }),
        check("V-38477/login-defs", SHARED, "a password may be changed at most once a day (login.defs PASS_MIN_DAYS 1; upstream's regex also takes 10, 11…, ported as meant)", Test::Matches {
            path: "/etc/login.defs",
            pattern: r"^PASS_MIN_DAYS\s+1\s*$",
        }),
        check("V-38576", SHARED, "new passwords are hashed with SHA512 (login.defs ENCRYPT_METHOD)", Test::Matches {
            path: "/etc/login.defs",
            pattern: r"^ENCRYPT_METHOD SHA512",
        }),
    ]
}

/// The directories PAM modules live in, on every profile and architecture.
const MODULE_DIRS: &[&str] = &[
    "/lib/security",
    "/usr/lib/security",
    "/lib/arm-linux-gnueabihf/security",
    "/usr/lib/arm-linux-gnueabihf/security",
    "/lib/aarch64-linux-gnu/security",
    "/usr/lib/aarch64-linux-gnu/security",
    "/lib/x86_64-linux-gnu/security",
    "/usr/lib/x86_64-linux-gnu/security",
];

fn quality_module_installed(t: &Tree) -> Verdict {
    for dir in MODULE_DIRS {
        for module in ["pam_pwquality.so", "pam_cracklib.so"] {
            let path = format!("{dir}/{module}");
            if t.meta_followed(&path)?.is_some_and(|m| m.file) {
                return Ok(path);
            }
        }
    }
    Err("no pam_pwquality.so or pam_cracklib.so (install libpam-pwquality)".into())
}

/// The regular files under /etc/pam.d with their text.
fn pam_files(t: &Tree) -> Result<Vec<(String, String)>, String> {
    let mut paths = Vec::new();
    t.walk("/etc/pam.d", &mut |p, m| {
        if m.file {
            paths.push(p.to_string());
        }
    })?;
    let mut out = Vec::new();
    for p in paths {
        if let Some(text) = t.text(&p)? {
            out.push((p, text));
        }
    }
    Ok(out)
}

fn no_nullok(t: &Tree) -> Verdict {
    let mut bad = Vec::new();
    for (p, text) in pam_files(t)? {
        for l in text.lines().filter(|l| l.contains("nullok")) {
            bad.push(format!("{p}: {}", l.trim()));
        }
    }
    if bad.is_empty() {
        Ok("no nullok in /etc/pam.d".into())
    } else {
        Err(bad.join("; "))
    }
}

fn pam_unix_sha512(t: &Tree) -> Verdict {
    let mut seen = 0;
    let mut bad = Vec::new();
    for (p, text) in pam_files(t)? {
        for l in text.lines() {
            if l.starts_with("password") && l.contains("pam_unix.so") {
                seen += 1;
                if !l.contains("sha512") {
                    bad.push(format!("{p}: {}", l.trim()));
                }
            }
        }
    }
    if bad.is_empty() {
        Ok(format!("{seen} pam_unix password lines, all sha512"))
    } else {
        Err(bad.join("; "))
    }
}

fn vcap_exists(t: &Tree) -> Verdict {
    match entries(t, "/etc/passwd")?
        .into_iter()
        .find(|e| e.first().is_some_and(|n| n == "vcap"))
    {
        Some(e) => Ok(e.join(":")),
        None => Err("/etc/passwd has no user vcap".into()),
    }
}

fn vcap_in_sudo(t: &Tree) -> Verdict {
    let groups = super::accounts::groups_of(t, "vcap")?;
    if groups.iter().any(|g| g == "sudo") {
        Ok(format!("vcap: {}", groups.join(" ")))
    } else {
        Err(format!("vcap is in {}, not sudo", groups.join(" ")))
    }
}

fn securetty_console_only(t: &Tree) -> Verdict {
    let text = t
        .text("/etc/securetty")?
        .ok_or("/etc/securetty is missing (upstream's awk prints nothing, not `none`)")?;
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| {
            let first = l.split_whitespace().next().unwrap_or("");
            !(first.is_empty() || first.starts_with('#') || first == "console")
        })
        .collect();
    if bad.is_empty() {
        Ok("/etc/securetty: console only".into())
    } else {
        Err(format!("/etc/securetty also lists {}", bad.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let t = Tree::new(dir.path());
        (dir, t)
    }

    /// What 23-password-policies writes (bookworm's files after the stage).
    const COMMON_PASSWORD: &str = "password\trequired\t\t\tpam_pwquality.so retry=3 minlen=14 dcredit=-1 ucredit=-1 ocredit=-1 lcredit=-1 difok=8\n\
        password\t[success=1 default=ignore]\tpam_unix.so obscure use_authtok try_first_pass sha512 remember=24 minlen=14 rounds=5000\n\
        password\trequisite\t\t\tpam_deny.so\n# end of pam-auth-update config\nsession\trequired\t\t\tpam_lastlog.so showfailed\n";

    #[test]
    fn the_stages_pam_files_pass_and_upstreams_defaults_fail() {
        let (_d, t) = tree(&[
            ("etc/pam.d/common-password", COMMON_PASSWORD),
            ("etc/pam.d/common-auth", "auth\trequired\t\t\tpam_faillock.so preauth silent deny=3 unlock_time=604800 fail_interval=900\nauth\t[success=1 default=ignore]\tpam_unix.so\n"),
            ("etc/pam.d/common-account", "account\trequired\t\t\tpam_faillock.so\n"),
            ("etc/pam.d/su", "auth       sufficient pam_rootok.so\nauth       required   pam_wheel.so use_uid\n"),
            ("etc/securetty", "# Only allow access from consoles in a physically secure location\n\nconsole\n"),
            ("etc/login.defs", "PASS_MIN_DAYS 1\nENCRYPT_METHOD SHA512\n"),
            ("usr/lib/aarch64-linux-gnu/security/pam_pwquality.so", ""),
        ]);
        for c in checks()
            .iter()
            .filter(|c| !c.id.starts_with("CIS-9.5/vcap"))
        {
            c.test.run(&t).unwrap_or_else(|e| panic!("{}: {e}", c.id));
        }

        let (_d, t) = tree(&[
            (
                "etc/pam.d/common-password",
                "password\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt\n",
            ),
            (
                "etc/pam.d/common-auth",
                "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n",
            ),
            ("etc/securetty", "console\nvc/1\ntty1\n"),
            ("etc/login.defs", "PASS_MIN_DAYS 10\n"),
        ]);
        let run = |id: &str| {
            checks()
                .into_iter()
                .find(|c| c.id == id)
                .unwrap()
                .test
                .run(&t)
        };
        for bad in [
            "pam-cracklib-so",
            "V-38658",
            "CIS-9.2.1",
            "V-51875",
            "V-38497",
            "V-38574",
            "V-38492",
            "CIS-9.4",
            "V-38477/login-defs",
        ] {
            assert!(run(bad).is_err(), "{bad} passes");
        }
        assert!(run("CIS-9.4").unwrap_err().contains("vc/1, tty1"));
    }
}
