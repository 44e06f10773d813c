//! The rest of the system: sshd and the login banners, services systemd starts, ctrl-alt-del,
//! packages that must be absent or present, world-writable files, machine-id, apt, and
//! upstream's grub rows (which do not apply). Ported from upstream's
//! `os_image/ubuntu_jammy_spec.rb`, `support/os_image_shared_examples.rb`,
//! `support/os_image_ubuntu_shared_examples.rb` and `support/os_image_systemd_shared_examples.rb`.
//! Upstream's stages: `base_ssh`, `base_ubuntu_packages`, `vim_tiny`, `escape_ctrl_alt_del`,
//! `clean_machine_id`, `base_apt`; ours: `40-sshd`, `13-base-extras`, `89-harden`,
//! `90-cleanup` (and `22-login-defaults` writes the banners).
//!
//! Also the helpers `logging` shares: `systemctl is-enabled` read from the unit links, a
//! directory's names, package versions.

use super::common::{check as ck, not_here as na};
use super::test::{first_match, Verdict};
use super::tree::Tree;
use super::{Check, Test};

const OS: &str = "os_image/ubuntu_jammy_spec.rb";
const SH: &str = "support/os_image_shared_examples.rb";
const SD: &str = "support/os_image_systemd_shared_examples.rb";
const SSHD: &str = "/etc/ssh/sshd_config";
const NO_GRUB: &str =
    "a Pi's firmware boots the kernel config.txt names, with cmdline.txt: a Pi image has no grub";
const NO_APT_LINES: &str = "the image is built from the profile's release suite alone and names only that suite (the bootstrap writes sources.list): its fixes come with a rebuilt stemcell, since a BOSH VM is replaced, never upgraded in place (stage 11 masks apt's timers, 48 turns APT::Periodic off)";

/// A test in code: what it looks at and a function (a closure that captures nothing).
pub(super) fn custom(looks_at: &'static str, run: fn(&Tree) -> Verdict) -> Test {
    Test::Custom { looks_at, run }
}

/// Whether `path` is a regular file once symlinks are followed (upstream's `file?`).
pub(super) fn is_file(tree: &Tree, path: &str) -> Result<bool, String> {
    Ok(tree.meta_followed(path)?.is_some_and(|m| m.file))
}

/// The names in the tree's directory `dir`, sorted; empty when it is missing.
pub(super) fn list_dir(tree: &Tree, dir: &str) -> Result<Vec<String>, String> {
    let Some(host) = crate::inside::resolve(tree.root(), dir).map_err(|e| e.to_string())? else {
        return Ok(Vec::new());
    };
    let Ok(entries) = std::fs::read_dir(&host) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Where the symlink `path` points (`None` when it is not a symlink).
fn link_target(tree: &Tree, path: &str) -> Result<Option<String>, String> {
    let Some(host) = crate::inside::safepath::host_path(tree.root(), path)? else {
        return Ok(None);
    };
    Ok(std::fs::read_link(host)
        .ok()
        .map(|t| t.to_string_lossy().into_owned()))
}

/// `systemctl is-enabled UNIT` says `enabled`: the unit is linked from a `.wants` or
/// `.requires` directory of `/etc/systemd/system` and not masked. On an upstart image: the job
/// `/etc/init/JOB.conf` without a `manual` override, or a SysV start link in `/etc/rc2.d`.
pub(super) fn unit_enabled(tree: &Tree, unit: &str, job: &str) -> Verdict {
    let own = format!("/etc/systemd/system/{unit}");
    if link_target(tree, &own)?.as_deref() == Some("/dev/null") {
        return Err(format!("{unit} is masked ({own} -> /dev/null)"));
    }
    let mut links = Vec::new();
    tree.walk("/etc/systemd/system", &mut |p, _| {
        if let Some((dir, name)) = p.rsplit_once('/') {
            if name == unit && (dir.ends_with(".wants") || dir.ends_with(".requires")) {
                links.push(p.to_string());
            }
        }
    })?;
    if let Some(l) = links.first() {
        return Ok(format!("{unit} is enabled ({l})"));
    }
    let conf = format!("/etc/init/{job}.conf");
    if tree.meta(&conf)?.is_some() {
        let over = tree
            .text(&format!("/etc/init/{job}.override"))?
            .unwrap_or_default();
        if !over.lines().any(|l| l.trim() == "manual") {
            return Ok(format!("the upstart job {conf} starts at boot"));
        }
    }
    for name in list_dir(tree, "/etc/rc2.d")? {
        if name.starts_with('S') && name.get(3..) == Some(job) {
            return Ok(format!("/etc/rc2.d/{name} starts {job}"));
        }
    }
    Err(format!(
        "{unit} is not enabled (no link to it in /etc/systemd/system/*.wants)"
    ))
}

/// The installed version of `package`, if it is installed.
pub(super) fn version(tree: &Tree, package: &str) -> Result<Option<String>, String> {
    Ok(tree.packages()?.get(package).cloned())
}

/// The leading numbers of a Debian version's upstream part (`1:9.2p1-2` gives `[9, 2]`).
pub(super) fn version_numbers(v: &str) -> Vec<u64> {
    let v = v.split_once(':').map_or(v, |(_, r)| r);
    v.split(|c: char| !c.is_ascii_digit())
        .take_while(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The checks of this topic.
pub fn checks() -> Vec<Check> {
    let mut v = sshd();
    v.extend(packages());
    v.extend(files());
    v.extend(services());
    v.extend(apt());
    v.extend(grub());
    v
}

/// `base_ssh`: sshd_config and the banners.
#[rustfmt::skip]
fn sshd() -> Vec<Check> {
    let rows: [(&str, &str, &str, &str); 17] = [
        ("V-38617", OS, "sshd allows only AES ciphers", r"^Ciphers aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr$"),
        ("sshd-macs", OS, "sshd allows only SHA-2 and UMAC-128 MACs", r"^MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-512,hmac-sha2-256,umac-128@openssh.com$"),
        ("V-38613/a", SH, "sshd disallows root login", r"^PermitRootLogin no$"),
        ("V-38613/b", SH, "sshd disallows root login (upstream's second assertion)", r"^PermitRootLogin no$"),
        ("V-38484", SH, "sshd prints the last login", r"^PrintLastLog yes$"),
        ("sshd-max-auth-tries", SH, "sshd allows 3 authentication tries", r"^MaxAuthTries 3$"),
        ("V-38614", SH, "sshd refuses empty passwords", r"^PermitEmptyPasswords no$"),
        ("V-38612", SH, "sshd refuses host-based authentication", r"^HostbasedAuthentication no$"),
        ("V-38611", SH, "sshd ignores .rhosts", r"^IgnoreRhosts yes$"),
        ("CIS-5.2.12", SH, "sshd checks idle clients every 180 s", r"^ClientAliveInterval 180$"),
        ("CIS-5.2.13", SH, "sshd gives 60 s to log in", r"^LoginGraceTime 60$"),
        ("V-38616", SH, "sshd ignores users' environment options", r"^PermitUserEnvironment no$"),
        ("V-75837", SH, "sshd drops a client after one unanswered keepalive", r"^ClientAliveCountMax 1$"),
        ("CIS-9.3.13", SH, "sshd admits only group bosh_sshers (the agent's bosh ssh users, and vcap)", r"^AllowGroups bosh_sshers$"),
        ("sshd-deny-users-root", SH, "sshd denies user root", r"^DenyUsers root$"),
        ("sshd-password-auth-disabled", SH, "sshd refuses passwords (keys only)", r"^PasswordAuthentication no$"),
        ("V-75851", SH, "sshd compresses only after authentication, or never (ours: `Compression no`, stricter than upstream's `delayed`)", r"^Compression (delayed|no)$"),
    ];
    let mut v: Vec<Check> = rows
        .into_iter()
        .map(|(id, src, title, pattern)| {
            ck(
                id,
                src,
                title,
                Test::Matches {
                    path: SSHD,
                    pattern,
                },
            )
        })
        .collect();
    v.extend([
        ck("sshd-config-mode", SH, "sshd_config is mode 0600", Test::Perm { path: SSHD, mode: 0o600 }),
        ck("sshd-no-dsa-hostkey", SH, "sshd has no DSA host key", Test::NotMatches { path: SSHD, pattern: r"HostKey /etc/ssh/ssh_host_dsa_key$" }),
        ck("sshd-hostkeys", SH, "sshd uses exactly the RSA, ECDSA and ED25519 host keys", custom("the `HostKey` lines of /etc/ssh/sshd_config", host_keys)),
        ck("sshd-x11-forwarding", SH, "sshd forbids X11 forwarding (and sets no X11DisplayOffset)", Test::All(vec![
            Test::Matches { path: SSHD, pattern: r"^X11Forwarding no$" },
            Test::NotMatches { path: SSHD, pattern: r"^X11DisplayOffset" },
        ])),
        ck("V-38607", SH, "sshd speaks only protocol 2: `Protocol 2`, or OpenSSH 7.6 or later (no protocol 1, the keyword deprecated)", custom("`Protocol` in sshd_config and the version of openssh-server", protocol_2)),
        ck("V-38615+V-38593+CIS-11.1", SH, "sshd shows /etc/issue.net before login, which warns in upstream's words, 0644 root:root", Test::All(vec![
            Test::Matches { path: SSHD, pattern: r"^Banner /etc/issue.net$" },
            Test::Matches { path: "/etc/issue.net", pattern: "Unauthorized use is strictly prohibited. All access and activity" },
            Test::Matches { path: "/etc/issue.net", pattern: "is subject to logging and monitoring." },
            Test::Perm { path: "/etc/issue.net", mode: 0o644 },
            Test::Owner { path: "/etc/issue.net", user: "root" },
            Test::Group { path: "/etc/issue.net", group: "root" },
        ])),
        ck("CIS-11.1/issue", SH, "/etc/issue warns in upstream's words, 0644 root:root", Test::All(vec![
            Test::Matches { path: "/etc/issue", pattern: "Unauthorized use is strictly prohibited. All access and activity" },
            Test::Matches { path: "/etc/issue", pattern: "is subject to logging and monitoring." },
            Test::Perm { path: "/etc/issue", mode: 0o644 },
            Test::Owner { path: "/etc/issue", user: "root" },
            Test::Group { path: "/etc/issue", group: "root" },
        ])),
        ck("CIS-11.1/motd", SH, "/etc/motd is empty, 0644 root:root", Test::All(vec![
            custom("the size of /etc/motd", |t| match t.text("/etc/motd")? {
                Some(s) if s.is_empty() => Ok("/etc/motd is empty".into()),
                Some(s) => Err(format!("/etc/motd holds {} bytes", s.len())),
                None => Err("/etc/motd is missing".into()),
            }),
            Test::Perm { path: "/etc/motd", mode: 0o644 },
            Test::Owner { path: "/etc/motd", user: "root" },
            Test::Group { path: "/etc/motd", group: "root" },
        ])),
        ck("motd-news-disabled", SH, "Ubuntu's motd-news is off (stage 40-sshd writes the file on every profile)", Test::Matches { path: "/etc/default/motd-news", pattern: "ENABLED=0" }),
    ]);
    v
}

fn host_keys(t: &Tree) -> Verdict {
    let text = t.text(SSHD)?.ok_or("/etc/ssh/sshd_config is missing")?;
    let mut seen: Vec<&str> = text.lines().filter(|l| l.starts_with("HostKey")).collect();
    seen.sort_unstable();
    let want = [
        "HostKey /etc/ssh/ssh_host_ecdsa_key",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "HostKey /etc/ssh/ssh_host_rsa_key",
    ];
    if seen == want {
        Ok(seen.join(", "))
    } else {
        Err(format!("HostKey lines: {seen:?}; wants exactly {want:?}"))
    }
}

fn protocol_2(t: &Tree) -> Verdict {
    let text = t.text(SSHD)?.ok_or("/etc/ssh/sshd_config is missing")?;
    if let Some(l) = text.lines().find(|l| l.starts_with("Protocol")) {
        return if l.trim() == "Protocol 2" {
            Ok(l.to_string())
        } else {
            Err(l.to_string())
        };
    }
    let v = version(t, "openssh-server")?.ok_or("openssh-server is not installed")?;
    if version_numbers(&v)[..] >= [7, 6][..] {
        Ok(format!(
            "no Protocol line; openssh-server {v} speaks only protocol 2"
        ))
    } else {
        Err(format!(
            "no `Protocol 2` line, and openssh-server {v} still speaks protocol 1"
        ))
    }
}

/// Packages that must be absent, or present.
#[rustfmt::skip]
fn packages() -> Vec<Check> {
    use Test::NoPackage as No;
    vec![
        ck("rpm-not-installed", OS, "rpm is not installed", No("rpm")),
        ck("V-38671", OS, "sendmail is not installed", No("sendmail")),
        ck("V-38604/pkg", OS, "ypbind is not installed (package nis)", No("nis")),
        ck("V-38603", OS, "ypserv is not installed (package nis)", No("nis")),
        ck("V-38660+V-38653", OS, "snmp is not installed", No("snmp")),
        ck("CIS-4.1/apport", OS, "apport is not installed", No("apport")),
        ck("CIS-4.1/whoopsie", OS, "whoopsie is not installed", No("whoopsie")),
        ck("V-38701+V-38609+V-38606", SH, "no TFTP client or server is installed", Test::All(["tftp", "tftpd", "tftp-server", "atftp", "atftpd", "libnet-tftp-ruby", "python-tftpy", "tftp-hpa"].map(No).to_vec())),
        ck("V-38599", SH, "no FTP server is installed", Test::All(vec![No("vsftpd"), No("ftpd")])),
        ck("V-38587+V-38589", SH, "no telnet server is installed", Test::All(["telnet-server", "telnetd", "telnetd-ssl", "telnet-server-krb5", "inetutils-telnetd", "mactelnet-server"].map(No).to_vec())),
        ck("V-43150+V-38638+V-38629+V-38630", SH, "gconf2 is not installed", No("gconf2")),
        ck("V-38598+V-38591+V-38594+V-38602", SH, "rsh-server is not installed", No("rsh-server")),
        ck("V-38582/pkg", SH, "xinetd is not installed", No("xinetd")),
        ck("V-38622+V-38446", SH, "postfix is not installed", No("postfix")),
        ck("V-38674", "support/os_image_ubuntu_shared_examples.rb", "the X server is not installed", No("xserver-xorg")),
        ck("dig-installed", SH, "dig is installed: the agent resolves an HTTP settings source's host with it (package dnsutils, stage 13-base-extras)", Test::Executable("/usr/bin/dig")),
        ck("vim-symlink", OS, "vim is vim.tiny: /usr/bin/vim leads to /usr/bin/vim.tiny (stage 13-base-extras)", custom("where /usr/bin/vim leads, every symlink followed", vim)),
        na("rescan-scsi-bus-file", OS, "/sbin/rescan-scsi-bus is a file (scsitools)", Test::File("/sbin/rescan-scsi-bus"), "scsitools rescans the SCSI and Fibre Channel hosts of cloud VMs; a Pi's disks are its SD card, USB storage the kernel finds itself and Bakery's NFS-backed loop devices, and the agent never runs it"),
        na("rescan-scsi-bus-exec", OS, "/sbin/rescan-scsi-bus is executable", Test::Executable("/sbin/rescan-scsi-bus"), "scsitools is not installed (see rescan-scsi-bus-file)"),
    ]
}

fn vim(t: &Tree) -> Verdict {
    let root = t.root();
    let vim = crate::inside::resolve(root, "/usr/bin/vim").map_err(|e| e.to_string())?;
    let tiny = crate::inside::resolve(root, "/usr/bin/vim.tiny").map_err(|e| e.to_string())?;
    match (vim, tiny) {
        (Some(a), Some(b)) if a == b => Ok("/usr/bin/vim leads to /usr/bin/vim.tiny".into()),
        (None, _) => Err("/usr/bin/vim is missing".into()),
        (_, None) => Err("/usr/bin/vim.tiny is missing (vim-tiny)".into()),
        (Some(a), Some(_)) => Err(format!(
            "/usr/bin/vim leads to /{}",
            a.strip_prefix(root).unwrap_or(&a).display()
        )),
    }
}

/// World-writable files, machine-id, ypbind's pid file.
#[rustfmt::skip]
fn files() -> Vec<Check> {
    vec![
        ck("V-38643", SH, "no regular file is world-writable (stage 89-harden)", custom("every regular file with the o+w bit", world_writable)),
        ck("machine-id-file", OS, "/etc/machine-id is a file", Test::File("/etc/machine-id")),
        ck("machine-id-empty", OS, "/etc/machine-id is empty, so each VM makes its own (upstream's `match ''` is vacuous; this checks what it means)", custom("the text of /etc/machine-id", |t| {
            let text = t.text("/etc/machine-id")?.ok_or("/etc/machine-id is missing")?;
            if text.trim().is_empty() { Ok("/etc/machine-id is empty".into()) } else { Err(format!("/etc/machine-id holds `{}`: every VM would share it", text.trim())) }
        })),
        ck("dbus-machine-id-absent", OS, "/var/lib/dbus/machine-id is not a file", custom("/var/lib/dbus/machine-id, symlinks followed", |t| {
            if is_file(t, "/var/lib/dbus/machine-id")? { Err("/var/lib/dbus/machine-id is a file".into()) } else { Ok("/var/lib/dbus/machine-id is not a file".into()) }
        })),
        ck("V-38604/pid", OS, "ypbind is not running (no /var/run/ypbind.pid)", Test::Absent("/var/run/ypbind.pid")),
    ]
}

fn world_writable(t: &Tree) -> Verdict {
    let mut found = Vec::new();
    walk_all(t, &mut |p, m| {
        if m.file && m.mode & 0o002 != 0 {
            found.push(p.to_string());
        }
    })?;
    if found.is_empty() {
        Ok("none".into())
    } else {
        Err(format!(
            "{} world-writable: {}",
            found.len(),
            found.join(", ")
        ))
    }
}

/// `Tree::walk` over the whole tree, entry by entry of its root (`/proc`, `/sys` and `/dev`
/// left out, as `find / -xdev` leaves their mounts).
fn walk_all(t: &Tree, f: &mut dyn FnMut(&str, &super::tree::Meta)) -> Result<(), String> {
    let entries =
        std::fs::read_dir(t.root()).map_err(|e| format!("{}: {e}", t.root().display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names
        .iter()
        .filter(|n| !matches!(n.as_str(), "proc" | "sys" | "dev"))
    {
        let p = format!("/{n}");
        let Some(m) = t.meta(&p)? else { continue };
        f(&p, &m);
        if m.dir {
            t.walk(&p, f)?;
        }
    }
    Ok(())
}

/// Services enabled or not, runit's unit, ctrl-alt-del.
#[rustfmt::skip]
fn services() -> Vec<Check> {
    vec![
        ck("systemd-networkd-enabled", OS, "systemd-networkd is enabled (the agent writes its network files)", custom("a link to systemd-networkd.service in /etc/systemd/system/*.wants", |t| unit_enabled(t, "systemd-networkd.service", "systemd-networkd"))),
        ck("runit-enabled", SD, "runit, which supervises the agent, is enabled", custom("a link to runit.service in /etc/systemd/system/*.wants", |t| unit_enabled(t, "runit.service", "runit"))),
        ck("runit-service-file", OS, "runit.service is a file (ours is /etc/systemd/system/runit.service, stage 50, which overrides the package's)", custom("the runit.service systemd loads", |t| runit_unit(t, None))),
        ck("runit-service-restart", OS, "runit.service always restarts runsvdir", custom("`Restart=always` in the runit.service systemd loads", |t| runit_unit(t, Some("Restart=always")))),
        ck("runit-service-killmode", OS, "stopping runit.service stops only runsvdir (KillMode=process)", custom("`KillMode=process` in the runit.service systemd loads", |t| runit_unit(t, Some("KillMode=process")))),
        ck("V-38582/service", OS, "xinetd is not enabled", custom("links to xinetd.service in /etc/systemd/system/*.wants", |t| match unit_enabled(t, "xinetd.service", "xinetd") {
            Ok(s) => Err(s),
            Err(_) => Ok("xinetd is not enabled".into()),
        })),
        ck("V-38668/file", OS, "Ctrl-Alt-Del does not reboot: ctrl-alt-del.target masked and CtrlAltDelBurstAction=none (systemd; upstream's file, /etc/init/control-alt-delete.override, on upstart images; stage 89-harden)", custom("/etc/systemd/system/ctrl-alt-del.target and CtrlAltDelBurstAction in system.conf(.d), or the upstart override", ctrl_alt_del)),
        ck("V-38668/content", OS, "Ctrl-Alt-Del is logged instead: systemd logs the masked target it refuses; upstart's override runs logger", custom("the mask, or the upstart override's text", ctrl_alt_del_log)),
    ]
}

/// The runit.service systemd loads (`/etc` before `/lib`) and its line `want`, if any.
fn runit_unit(t: &Tree, want: Option<&str>) -> Verdict {
    for p in [
        "/etc/systemd/system/runit.service",
        "/lib/systemd/system/runit.service",
        "/usr/lib/systemd/system/runit.service",
    ] {
        if !is_file(t, p)? {
            continue;
        }
        let Some(want) = want else {
            return Ok(format!("{p} is a file"));
        };
        let text = t.text(p)?.unwrap_or_default();
        return match text.lines().find(|l| l.trim() == want) {
            Some(l) => Ok(format!("{p}: {l}")),
            None => Err(format!("{p} has no line `{want}`")),
        };
    }
    Err("no runit.service file in /etc/systemd/system or /lib/systemd/system".into())
}

const CAD_OVERRIDE: &str = "/etc/init/control-alt-delete.override";

fn upstart(t: &Tree) -> Result<bool, String> {
    Ok(
        t.meta("/sbin/upstart")?.is_some()
            || t.meta("/etc/init/control-alt-delete.conf")?.is_some(),
    )
}

fn ctrl_alt_del(t: &Tree) -> Verdict {
    if upstart(t)? {
        return if is_file(t, CAD_OVERRIDE)? {
            Ok(format!("{CAD_OVERRIDE} is a file"))
        } else {
            Err(format!("{CAD_OVERRIDE} is missing"))
        };
    }
    // Pressed more than 7 times in 2 s, systemd runs CtrlAltDelBurstAction (default
    // reboot-force) even with the target masked.
    let mut burst = ("systemd's default".to_string(), "reboot-force".to_string());
    let mut confs = vec!["/etc/systemd/system.conf".to_string()];
    for n in list_dir(t, "/etc/systemd/system.conf.d")?
        .into_iter()
        .filter(|n| n.ends_with(".conf"))
    {
        confs.push(format!("/etc/systemd/system.conf.d/{n}"));
    }
    for c in confs {
        for l in t.text(&c)?.unwrap_or_default().lines() {
            if let Some(v) = l.trim().strip_prefix("CtrlAltDelBurstAction=") {
                burst = (c.clone(), v.trim().to_string());
            }
        }
    }
    if burst.1 != "none" {
        return Err(format!(
            "CtrlAltDelBurstAction is {} ({}): pressed 7 times, Ctrl-Alt-Del reboots the Pi",
            burst.1, burst.0
        ));
    }
    match link_target(t, "/etc/systemd/system/ctrl-alt-del.target")? {
        Some(l) if l == "/dev/null" => Ok(format!(
            "ctrl-alt-del.target is masked; {}: CtrlAltDelBurstAction=none",
            burst.0
        )),
        _ => Err(
            "ctrl-alt-del.target is not masked: Ctrl-Alt-Del on the Pi's keyboard reboots it"
                .into(),
        ),
    }
}

fn ctrl_alt_del_log(t: &Tree) -> Verdict {
    if !upstart(t)? {
        return ctrl_alt_del(t).map(|s| format!("{s}; systemd logs each refused Ctrl-Alt-Del"));
    }
    let text = t.text(CAD_OVERRIDE)?.unwrap_or_default();
    let want = r#"exec /usr/bin/logger -p security.info "Control-Alt-Delete pressed""#;
    if text.contains(want) {
        Ok(format!("{CAD_OVERRIDE}: {want}"))
    } else {
        Err(format!("{CAD_OVERRIDE} does not run `{want}`"))
    }
}

/// apt: signatures, the archive key, upstream's sources.
#[rustfmt::skip]
fn apt() -> Vec<Check> {
    vec![
        ck("V-38462+V-38483", OS, "apt verifies package signatures (no AllowUnauthenticated in /etc/apt/apt.conf.d)", custom("every file under /etc/apt/apt.conf.d", allow_unauthenticated)),
        ck("V-38476", OS, "the distribution's archive signing key is installed (upstream: Ubuntu's, via apt-key; here the profile's keyring package and file)", custom("debian-archive-keyring, ubuntu-keyring or raspbian-archive-keyring and its keyring file", archive_key)),
        ck("apt-sources-jammy-main", OS, "apt's sources name the distribution's archive for the image's own suite, component main (upstream: Ubuntu's archive, jammy main universe multiverse)", custom("the `deb` lines of /etc/apt/sources.list and sources.list.d/*.list, the codename in /etc/os-release", apt_main)),
        na("apt-sources-jammy-updates", OS, "sources.list names Ubuntu's archive, jammy-updates", Test::Upstream("/etc/apt/sources.list =~ `deb http://ARCHIVE/ubuntu jammy-updates main universe multiverse`"), NO_APT_LINES),
        na("apt-sources-jammy-security", OS, "sources.list names Ubuntu's security archive, jammy-security", Test::Upstream("/etc/apt/sources.list =~ `deb http://SECURITY/ubuntu jammy-security main universe multiverse`"), NO_APT_LINES),
    ]
}

fn apt_main(t: &Tree) -> Verdict {
    let release = t.text("/etc/os-release")?.unwrap_or_default()
        + &t.text("/etc/lsb-release")?.unwrap_or_default();
    let codename = ["VERSION_CODENAME=", "UBUNTU_CODENAME=", "DISTRIB_CODENAME="]
        .iter()
        .find_map(|k| release.lines().find_map(|l| l.strip_prefix(k)))
        .map(|c| c.trim_matches('"').to_string())
        .filter(|c| !c.is_empty())
        .ok_or("/etc/os-release names no codename")?;
    let mut files = vec!["/etc/apt/sources.list".to_string()];
    for n in list_dir(t, "/etc/apt/sources.list.d")?
        .into_iter()
        .filter(|n| n.ends_with(".list"))
    {
        files.push(format!("/etc/apt/sources.list.d/{n}"));
    }
    for f in files {
        for l in t.text(&f)?.unwrap_or_default().lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() > 3 && w[0] == "deb" && w[2] == codename && w[3..].contains(&"main") {
                return Ok(format!("{f}: {l}"));
            }
        }
    }
    Err(format!(
        "no `deb URL {codename} main` line in /etc/apt/sources.list or sources.list.d"
    ))
}

fn allow_unauthenticated(t: &Tree) -> Verdict {
    let mut found = Vec::new();
    t.walk("/etc/apt/apt.conf.d", &mut |p, m| {
        if m.file {
            found.push(p.to_string());
        }
    })?;
    for p in &found {
        if let Some(l) = first_match(&t.text(p)?.unwrap_or_default(), "AllowUnauthenticated")? {
            return Err(format!("{p}: {l}"));
        }
    }
    Ok(format!(
        "{} files, none says AllowUnauthenticated",
        found.len()
    ))
}

fn archive_key(t: &Tree) -> Verdict {
    let keys = [
        (
            "debian-archive-keyring",
            "/usr/share/keyrings/debian-archive-keyring.gpg",
        ),
        (
            "ubuntu-keyring",
            "/usr/share/keyrings/ubuntu-archive-keyring.gpg",
        ),
        (
            "raspbian-archive-keyring",
            "/usr/share/keyrings/raspbian-archive-keyring.gpg",
        ),
    ];
    for (package, file) in keys {
        if let Some(v) = version(t, package)? {
            return if is_file(t, file)? {
                Ok(format!("{package} {v}: {file}"))
            } else {
                Err(format!("{package} {v} is installed but {file} is missing"))
            };
        }
    }
    Err("no archive keyring package (debian-archive-keyring, ubuntu-keyring, raspbian-archive-keyring) is installed".into())
}

/// Upstream's grub rows: no grub on a Pi.
#[rustfmt::skip]
fn grub() -> Vec<Check> {
    vec![
        na("grub2-installed", OS, "grub2 is installed", Test::Package("grub2"), NO_GRUB),
        na("grub-file-unicode", OS, "/boot/grub/unicode.pf2 is a file", Test::File("/boot/grub/unicode.pf2"), NO_GRUB),
        na("grub-file-menu", OS, "/boot/grub/menu.lst is a file", Test::File("/boot/grub/menu.lst"), NO_GRUB),
        na("grub-file-gfxblacklist", OS, "/boot/grub/gfxblacklist.txt is a file", Test::File("/boot/grub/gfxblacklist.txt"), NO_GRUB),
        na("V-38597", OS, "the CPU's NX/XD protection is in use (upstream reads `lsb_release -r` > 11)", Test::Upstream("`lsb_release -r` gives a major release above 11"), "upstream takes Ubuntu's release number as a proxy for NX support; ARM's execute-never (XN) bit is architectural from ARMv6 on (every Pi), and Debian's or Raspbian's release numbers do not mean the same"),
    ]
}
