//! auditd: the package and its files, how it is started, `auditd.conf`, the syslog plugin and
//! the audit log's directory. Ported from upstream's `os_image/ubuntu_jammy_spec.rb` (the
//! package, the modes of its files, the unit that loads `rules.d` with augenrules, unmodified
//! package files, the agent's `bosh-start-logging-and-auditing`) and
//! `support/os_image_shared_examples.rb` (not enabled at boot, `/var/log/audit`, `auditd.conf`,
//! the syslog plugin). The rules in `/etc/audit/rules.d/audit.rules` are in `auditd_more`.
//! Upstream's stages: `bosh_audit_ubuntu`, `bosh_log_audit_start`; ours: `45-logging-auditing`,
//! `46-audit-rules`, `89-privileged-audit`.
//!
//! Profiles: auditd 3 (bookworm, jammy) keeps its plugins in `/etc/audit/plugins.d`; auditd 2
//! (Raspbian buster) in `/etc/audisp/plugins.d`: the plugin checks take whichever the image has.

use super::common::check as ck;
use super::test::Verdict;
use super::tree::Tree;
use super::{Applies, Check, Test};

const JAMMY: &str = "os_image/ubuntu_jammy_spec.rb";
const SHARED: &str = "support/os_image_shared_examples.rb";
const CONF: &str = "/etc/audit/auditd.conf";
const START: &str = "/var/vcap/bosh/bin/bosh-start-logging-and-auditing";

/// Upstream's auditd files (jammy's auditd 3.0.7; bookworm's 3.0.9 has the same) and their modes.
const FILES: [(u32, &str); 23] = [
    (0o644, "/usr/share/lintian/overrides/auditd"),
    (0o755, "/usr/bin/auvirt"),
    (0o755, "/usr/bin/ausyscall"),
    (0o755, "/usr/bin/aulastlog"),
    (0o755, "/usr/bin/aulast"),
    (0o750, "/var/log/audit"),
    (0o755, "/sbin/aureport"),
    (0o755, "/sbin/auditd"),
    (0o755, "/sbin/autrace"),
    (0o755, "/sbin/ausearch"),
    (0o755, "/sbin/augenrules"),
    (0o755, "/sbin/auditctl"),
    (0o750, "/etc/audit/plugins.d"),
    (0o640, "/etc/audit/plugins.d/af_unix.conf"),
    (0o640, "/etc/audit/plugins.d/syslog.conf"),
    (0o755, "/etc/init.d/auditd"),
    (0o750, "/etc/audit"),
    (0o750, "/etc/audit/rules.d"),
    (0o640, "/etc/audit/rules.d/audit.rules"),
    (0o640, "/etc/audit/audit.rules"),
    (0o640, "/etc/audit/auditd.conf"),
    (0o644, "/etc/default/auditd"),
    (0o644, "/lib/systemd/system/auditd.service"),
];

fn conf(id: &'static str, title: &'static str, pattern: &'static str) -> Check {
    ck(
        id,
        SHARED,
        title,
        Test::Matches {
            path: CONF,
            pattern,
        },
    )
}

/// The checks of this topic (with the audit rules of `auditd_more`).
pub fn checks() -> Vec<Check> {
    let mut v = vec![
        ck("V-38498+V-38495", JAMMY, "auditd is installed", Test::Package("auditd")),
        ck("V-38663+V-38664+V-38665/owner", JAMMY, "auditd's 23 files (its programs, /etc/audit, /var/log/audit, its unit) are owned by root", Test::Custom {
            looks_at: "the owner of each of upstream's 23 auditd paths (`/sbin/auditd`, `/etc/audit/auditd.conf`, `/var/log/audit`, …) is uid 0",
            run: |t| each_file(t, "owner", |_, m| m.uid == 0),
        }),
        ck("V-38663+V-38664+V-38665/mode", JAMMY, "auditd's 23 files have upstream's modes (755 programs, 750 directories, 640 configuration)", Test::Custom {
            looks_at: "the permissions (`stat %a`) of each of upstream's 23 auditd paths are exactly upstream's",
            run: |t| each_file(t, "mode", |mode, m| m.mode & 0o777 == mode),
        }),
        ck("V-38663+V-38664+V-38665/group", JAMMY, "auditd's 23 files have group root (/var/log/audit too, which the package gives group adm)", Test::Custom {
            looks_at: "the group of each of upstream's 23 auditd paths is gid 0",
            run: |t| each_file(t, "group", |_, m| m.gid == 0),
        }),
        ck("auditd-unit-override-file", JAMMY, "/etc/systemd/system/auditd.service is a file (the package's unit, copied)", Test::File("/etc/systemd/system/auditd.service")),
        ck("auditd-unit-augenrules", JAMMY, "auditd's unit loads /etc/audit/rules.d with augenrules", Test::Matches {
            path: "/etc/systemd/system/auditd.service",
            pattern: r"^ExecStartPost=-\/sbin\/augenrules --load$",
        }),
        ck("V-38637", JAMMY, "auditd's files are as packaged but the configuration BOSH changes (upstream asks dpkg about `audit`, which is no package: ported for auditd)", Test::Custom {
            looks_at: "the md5 of every file in dpkg's `auditd.md5sums` and `Conffiles` equals dpkg's, but paths with auditd.conf, default/auditd, audit.rules or syslog.conf (`dpkg -V auditd`, `..5` lines)",
            run: auditd_unmodified,
        }),
        ck("log-audit-start-file", JAMMY, "the agent's bosh-start-logging-and-auditing is a file", Test::File(START)),
        ck("log-audit-start-exec", JAMMY, "bosh-start-logging-and-auditing is executable", Test::Executable(START)),
        Check {
            applies: Applies::Except(&["warden"]),
            ..ck("log-audit-start-content", JAMMY, "bosh-start-logging-and-auditing starts auditd (the agent runs it once /var/log is on the data disk; a warden container has no audit)", Test::Matches {
                path: START,
                pattern: "service auditd start",
            })
        },
        ck("V-38628+V-38631+V-38632", SHARED, "auditd is not started at boot (the agent starts it once /var/log is on the data disk)", Test::Custom {
            looks_at: "no `auditd.service` link in a `.wants`/`.requires` directory of `/etc/systemd/system`, no upstart job, no SysV start link in `/etc/rc2.d` (`systemctl is-enabled auditd` is not `enabled`)",
            run: |t| match super::system::unit_enabled(t, "auditd.service", "auditd") {
                Ok(why) => Err(why),
                Err(why) => Ok(why),
            },
        }),
        ck("audit-log-dir", SHARED, "/var/log/audit is a directory", Test::Dir("/var/log/audit")),
        ck("V-38493/group", SHARED, "the audit log directory is not group-writable", Test::Custom {
            looks_at: "`/var/log/audit` has no group write bit (mode & 020)",
            run: |t| log_dir_bits(t, 0o020),
        }),
        ck("V-38493/other", SHARED, "the audit log directory is not writable by others", Test::Custom {
            looks_at: "`/var/log/audit` has no other write bit (mode & 002)",
            run: |t| log_dir_bits(t, 0o002),
        }),
        conf("V-38464", "auditd logs disk errors to syslog", r"^disk_error_action = SYSLOG$"),
        conf("V-54381+V-38470/admin", "auditd logs to syslog when the disk is almost full (admin_space_left_action)", r"^admin_space_left_action = SYSLOG$"),
        conf("V-54381+V-38470/space", "auditd logs to syslog when the disk runs low (space_left_action)", r"^space_left_action = SYSLOG$"),
        conf("V-38468", "auditd logs to syslog when the disk is full", r"^disk_full_action = SYSLOG$"),
        conf("V-38633", "auditd rotates its log at 6 MB (max_log_file)", r"^max_log_file = 6$"),
        conf("V-38634", "auditd rotates its log when full (max_log_file_action ROTATE)", r"^max_log_file_action = ROTATE$"),
        conf("V-38636", "auditd keeps 5 logs", r"^num_logs = 5$"),
        conf("V-38445", "the audit logs have group root (log_group)", r"^log_group = root$"),
        conf("V-38678/space", "auditd warns with 75 MB left (space_left)", r"^space_left = 75$"),
        conf("V-38678/admin", "auditd acts with 50 MB left (admin_space_left)", r"^admin_space_left = 50$"),
        ck("auditd-syslog-plugin-active", SHARED, "auditd sends its records to syslog (the syslog plugin is active)", Test::Custom {
            looks_at: "`/etc/audit/plugins.d/syslog.conf` (auditd 3; `/etc/audisp/plugins.d/syslog.conf` for auditd 2) matches `^active = yes$`",
            run: syslog_plugin_active,
        }),
    ];
    v.extend(super::auditd_more::checks());
    v
}

/// Upstream's path, or auditd 2's `/etc/audisp/plugins.d` one when the image has only that.
fn plugins_path(tree: &Tree, path: &'static str) -> Result<String, String> {
    if let Some(rest) = path.strip_prefix("/etc/audit/plugins.d") {
        if tree.meta("/etc/audit/plugins.d")?.is_none()
            && tree.meta("/etc/audisp/plugins.d")?.is_some()
        {
            return Ok(format!("/etc/audisp/plugins.d{rest}"));
        }
    }
    Ok(path.to_string())
}

/// Every one of `FILES` exists (lstat) and passes `ok(upstream mode, meta)`; `what` names it.
fn each_file(tree: &Tree, what: &str, ok: fn(u32, &super::tree::Meta) -> bool) -> Verdict {
    let mut bad = Vec::new();
    for (mode, path) in FILES {
        let path = plugins_path(tree, path)?;
        match tree.meta(&path)? {
            None => bad.push(format!("{path} is missing")),
            Some(m) if !ok(mode, &m) => bad.push(format!(
                "{path} is {:03o} {}:{} (wants {what} {})",
                m.mode & 0o777,
                m.uid,
                m.gid,
                if what == "mode" {
                    format!("{mode:03o}")
                } else {
                    "root".into()
                }
            )),
            Some(_) => {}
        }
    }
    if bad.is_empty() {
        Ok(format!(
            "all {} paths have the {what} upstream wants",
            FILES.len()
        ))
    } else {
        Err(bad.join("; "))
    }
}

fn log_dir_bits(tree: &Tree, bits: u32) -> Verdict {
    match tree.meta("/var/log/audit")? {
        Some(m) if m.mode & bits == 0 => Ok(format!("/var/log/audit is {:04o}", m.mode)),
        Some(m) => Err(format!("/var/log/audit is {:04o}", m.mode)),
        None => Err("/var/log/audit is missing".into()),
    }
}

fn syslog_plugin_active(tree: &Tree) -> Verdict {
    let path = plugins_path(tree, "/etc/audit/plugins.d/syslog.conf")?;
    let text = tree
        .text(&path)?
        .ok_or_else(|| format!("{path} is missing"))?;
    if text.lines().any(|l| l == "active = yes") {
        Ok(format!("{path}: active = yes"))
    } else {
        Err(format!("{path} has no line `active = yes`"))
    }
}

/// What `dpkg -V auditd | grep -v … | grep '^..5'` would print, from dpkg's own md5s.
fn auditd_unmodified(tree: &Tree) -> Verdict {
    const SKIP: [&str; 4] = [
        "auditd.conf",
        "default/auditd",
        "audit.rules",
        "syslog.conf",
    ];
    let root = tree.root();
    let mut sums: Vec<(String, String)> = Vec::new();
    let list = crate::inside::read_text(
        root,
        "var/lib/dpkg/info/auditd.md5sums",
        crate::untrusted::SMALL_MAX,
        "a dpkg md5sums file",
    )
    .map_err(|e| e.to_string())?
    .ok_or("/var/lib/dpkg/info/auditd.md5sums is missing: auditd is not installed")?;
    for line in list.lines() {
        if let Some((sum, path)) = line.split_once("  ") {
            sums.push((
                sum.to_string(),
                format!("/{}", path.trim_start_matches('/')),
            ));
        }
    }
    let status = crate::inside::read_text(
        root,
        "var/lib/dpkg/status",
        crate::untrusted::DPKG_STATUS_MAX,
        "a dpkg database",
    )
    .map_err(|e| e.to_string())?
    .unwrap_or_default();
    for para in crate::archive::packages::parse_paragraphs(&status) {
        if crate::archive::packages::field(&para, "Package") != Some("auditd") {
            continue;
        }
        for line in crate::archive::packages::field(&para, "Conffiles")
            .unwrap_or("")
            .lines()
        {
            let mut f = line.split_whitespace();
            if let (Some(path), Some(sum)) = (f.next(), f.next()) {
                if sum != "newconffile" && f.next() != Some("obsolete") {
                    sums.push((sum.to_string(), path.to_string()));
                }
            }
        }
    }
    let (mut seen, mut changed) = (0, Vec::new());
    for (sum, path) in &sums {
        if SKIP.iter().any(|s| path.contains(s)) {
            continue;
        }
        // dpkg -V reports a missing file as `missing`, not `..5`: upstream's grep lets it pass.
        let Ok(Some(bytes)) = crate::inside::read(root, path, HASH_MAX, "a packaged file") else {
            continue;
        };
        seen += 1;
        if hex(&md5(&bytes)) != sum.to_ascii_lowercase() {
            changed.push(path.clone());
        }
    }
    if changed.is_empty() {
        Ok(format!("{seen} files of auditd are as packaged"))
    } else {
        Err(format!("changed since packaged: {}", changed.join(", ")))
    }
}

/// The largest packaged file hashed (auditd's largest is under 1 MB).
const HASH_MAX: u64 = 64 << 20;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// MD5 (RFC 1321), for dpkg's md5sums; nothing here relies on it being collision-resistant.
fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_le_bytes());
    let mut h: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    for block in msg.chunks_exact(64) {
        let w: Vec<u32> = block
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(K[i]).wrapping_add(w[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[(i / 16) * 4 + i % 4]));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 16];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_rfc_1321() {
        assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(&md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        let long =
            b"12345678901234567890123456789012345678901234567890123456789012345678901234567890";
        assert_eq!(hex(&md5(long)), "57edf4a22be3c955ac49da2e2107b67a");
    }
}
