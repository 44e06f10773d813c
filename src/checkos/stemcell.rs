//! The stemcell's own assertions: `support/stemcell_shared_examples.rb`,
//! `stemcells/warden_spec.rb` and the rows of `stemcells/ubuntu_jammy_spec.rb` about the image
//! rather than one cloud (the cloud-only and grub rows are registered as not applicable, in
//! `agent_clouds`).

use super::common::{check, not_a_file, not_here, only};
use super::test::Verdict;
use super::tree::Tree;
use super::{Applies, Check, Test};

const SHARED: &str = "support/stemcell_shared_examples.rb";
const JAMMY: &str = "stemcells/ubuntu_jammy_spec.rb";
const WARDEN: &str = "stemcells/warden_spec.rb";

/// The checks of this topic.
pub fn checks() -> Vec<Check> {
    let mut v = shared();
    v.extend(image());
    v
}

/// `support/stemcell_shared_examples.rb`.
fn shared() -> Vec<Check> {
    vec![
        check("stemcell-version-file", SHARED, "the image records its stemcell version", Test::File("/var/vcap/bosh/etc/stemcell_version")),
        check("stemcell-version-content", SHARED, "the stemcell version is one line, no newline (upstream: the build number)", Test::Matches {
            path: "/var/vcap/bosh/etc/stemcell_version",
            pattern: r"\A[0-9A-Za-z][0-9A-Za-z.+~-]*\z",
        }),
        check("stemcell-git-sha1-file", SHARED, "the image records the commit it was built from", Test::File("/var/vcap/bosh/etc/stemcell_git_sha1")),
        check("stemcell-git-sha1-content", SHARED, "the builder's commit: 40 hex digits, `+` when the tree was dirty", Test::Matches {
            path: "/var/vcap/bosh/etc/stemcell_git_sha1",
            pattern: r"\A[0-9a-f]{40}\+?\n?\z",
        }),
        check("ssh-host-keys-absent", SHARED, "no ssh host keys in the image (each VM makes its own)", Test::Custom {
            looks_at: "no `/etc/ssh/*_key*` files",
            run: no_host_keys,
        }),
        not_here("grub-ipv6-disabled", SHARED, "ipv6.disable=1 on the kernel line", Test::Matches { path: "/boot/grub/grub.cfg", pattern: r"^\s+(kernel|linux)\s.*\sipv6\.disable=1\s.*$" },
            "no grub on a Pi (the firmware reads cmdline.txt), and the agent needs IPv6: the kernel line keeps it"),
        not_here("efi-grub-ipv6-disabled", SHARED, "ipv6.disable=1 on the EFI kernel line (vsphere, vcloud)", Test::Matches { path: "/boot/efi/EFI/grub/grub.cfg", pattern: r"^\s+(kernel|linux)\s.*\sipv6\.disable=1\s.*$" },
            "no EFI grub on a Pi, and the agent needs IPv6"),
        check("V-38491/rhosts", SHARED, "no .rhosts files under /home", Test::Custom {
            looks_at: "no file named `.rhosts` under `/home`",
            run: |t| no_file_named(t, "/home", ".rhosts"),
        }),
        check("V-38491/hosts-equiv", SHARED, "no /etc/hosts.equiv", Test::Custom {
            looks_at: "`/etc/hosts.equiv` is not a regular file",
            run: |t| not_a_file(t, "/etc/hosts.equiv"),
        }),
        check("V-38466/lib", SHARED, "/lib is owned by root", Test::Owner { path: "/lib", user: "root" }),
        check("V-38466/lib64", SHARED, "/lib64 is owned by root, where there is one", Test::Custom {
            looks_at: "`/lib64`, when present, is owned by root (ARM images have none)",
            run: |t| root_owned_if_present(t, "/lib64"),
        }),
        check("V-38466/usr-lib", SHARED, "/usr/lib is owned by root", Test::Owner { path: "/usr/lib", user: "root" }),
        check("usr-lib64-owner", SHARED, "/usr/lib64 is owned by root, where there is one", Test::Custom {
            looks_at: "`/usr/lib64`, when present, is owned by root",
            run: |t| root_owned_if_present(t, "/usr/lib64"),
        }),
        check("micro-bosh-cache-dir", SHARED, "the agent's blob cache directory exists", Test::Dir("/var/vcap/micro_bosh/data/cache")),
        check("V-38465", SHARED, "library files are not group- or world-writable", Test::Custom {
            looks_at: "no regular file under `/lib`, `/lib64`, `/usr/lib`, `/usr/lib64` with mode bits 022",
            run: |t| no_writable(t, &["/lib", "/lib64", "/usr/lib", "/usr/lib64"]),
        }),
        check("V-38469", SHARED, "system commands are not group- or world-writable", Test::Custom {
            looks_at: "no regular file under the command directories with mode bits 022",
            run: |t| no_writable(t, COMMAND_DIRS),
        }),
        check("V-38472", SHARED, "system commands are owned by root", Test::Custom {
            looks_at: "every file under `/bin`, `/usr/bin`, `/usr/local/bin`, `/sbin`, `/usr/sbin`, `/usr/local/sbin` is owned by uid 0",
            run: commands_owned_by_root,
        }),
        check("V-38619", SHARED, "no .netrc files", Test::Custom {
            looks_at: "no file named `.netrc` under `/root`, `/home`, `/var/vcap`",
            run: |t| {
                for d in ["/root", "/home", "/var/vcap"] {
                    no_file_named(t, d, ".netrc")?;
                }
                Ok("no .netrc".into())
            },
        }),
        check("rsyslog-d-only-default", SHARED, "rsyslog reads only its default rules file", Test::Custom {
            looks_at: "`/etc/rsyslog.d` holds only `50-default.conf`",
            run: rsyslog_d_only_default,
        }),
        check("restart-networking-file", SHARED, "the agent's network restart script is a file", Test::File("/var/vcap/bosh/bin/restart_networking")),
        check("restart-networking-exec", SHARED, "the agent's network restart script is executable", Test::Executable("/var/vcap/bosh/bin/restart_networking")),
        check("restart-networking-owner", SHARED, "the agent's network restart script is owned by root", Test::Owner { path: "/var/vcap/bosh/bin/restart_networking", user: "root" }),
        check("restart-networking-group", SHARED, "the agent's network restart script has group root", Test::Group { path: "/var/vcap/bosh/bin/restart_networking", group: "root" }),
        only("restart-networking-content", SHARED, "the network restart script restarts systemd-networkd (upstream: exactly `systemctl restart systemd-networkd`; ours may say why and `exec` it)", Test::Matches {
            path: "/var/vcap/bosh/bin/restart_networking",
            pattern: r"\A#!/bin/(ba)?sh\n(#.*\n)*(exec )?systemctl restart systemd-networkd(\.service)?\n\z",
        }, Applies::Except(&["warden"])),
        only("restart-networking-warden", SHARED, "the network restart script does nothing on warden (the container's network is preconfigured)", Test::Matches {
            path: "/var/vcap/bosh/bin/restart_networking",
            pattern: r"^echo .skip network restart",
        }, Applies::Only(&["warden"])),
        check("logrotate-cron-ionice", SHARED, "logrotate runs at the lowest CPU and I/O priority", Test::Matches {
            path: "/usr/bin/logrotate-cron",
            pattern: r"^\s*nice -n 19 ionice -c3 /usr/sbin/logrotate\b",
        }),
        check("logrotate-cron-d-mode", SHARED, "logrotate's cron entry has mode 600", Test::Perm { path: "/etc/cron.d/logrotate", mode: 0o600 }),
        check("logrotate-cron-d-schedule", SHARED, "logrotate runs every 15 minutes", Test::Matches {
            path: "/etc/cron.d/logrotate",
            pattern: r"\A0,15,30,45 \* \* \* \* root /usr/bin/logrotate-cron\n?\z",
        }),
        check("logrotate-default-su", SHARED, "logrotate's default `su root root` directive", Test::Matches {
            path: "/etc/logrotate.d/default_su_directive",
            pattern: r"\A(#.*\n)*su root root\n?\z",
        }),
        only("runsvdir-start-file", WARDEN, "runit's runsvdir-start is a file (the container's init)", Test::File("/usr/sbin/runsvdir-start"), Applies::Only(&["warden"])),
        only("warden-infrastructure", WARDEN, "the image names its infrastructure: warden", Test::Matches { path: "/var/vcap/bosh/etc/infrastructure", pattern: "warden" }, Applies::Only(&["warden"])),
        only("warden-sv-rsyslog-run", WARDEN, "runit runs rsyslogd in the foreground", Test::Matches { path: "/etc/sv/rsyslog/run", pattern: "exec rsyslogd -n" }, Applies::Only(&["warden"])),
        only("warden-sv-rsyslog-exec", WARDEN, "rsyslog's run script is executable", Test::Executable("/etc/sv/rsyslog/run"), Applies::Only(&["warden"])),
        only("warden-service-rsyslog-link", WARDEN, "runit supervises rsyslog", Test::Custom { looks_at: "`/etc/service/rsyslog` resolves to `/etc/sv/rsyslog`", run: |t| service_link(t, "rsyslog") }, Applies::Only(&["warden"])),
        only("warden-sv-ssh-run", WARDEN, "runit runs sshd in the foreground", Test::Matches { path: "/etc/sv/ssh/run", pattern: r"exec /usr/sbin/sshd -D" }, Applies::Only(&["warden"])),
        only("warden-sv-ssh-exec", WARDEN, "sshd's run script is executable", Test::Executable("/etc/sv/ssh/run"), Applies::Only(&["warden"])),
        only("warden-service-ssh-link", WARDEN, "runit supervises sshd", Test::Custom { looks_at: "`/etc/service/ssh` resolves to `/etc/sv/ssh`", run: |t| service_link(t, "ssh") }, Applies::Only(&["warden"])),
        only("warden-sv-cron-run", WARDEN, "runit runs cron in the foreground", Test::Matches { path: "/etc/sv/cron/run", pattern: "exec cron -f" }, Applies::Only(&["warden"])),
        only("warden-sv-cron-exec", WARDEN, "cron's run script is executable", Test::Executable("/etc/sv/cron/run"), Applies::Only(&["warden"])),
        only("warden-service-cron-link", WARDEN, "runit supervises cron", Test::Custom { looks_at: "`/etc/service/cron` resolves to `/etc/sv/cron`", run: |t| service_link(t, "cron") }, Applies::Only(&["warden"])),
    ]
}

/// `stemcells/ubuntu_jammy_spec.rb`: the rows about the image itself.
fn image() -> Vec<Check> {
    vec![
        check("operating-system-ubuntu", JAMMY, "the agent's platform is `ubuntu` (the agent knows no other Linux)", Test::Matches {
            path: "/var/vcap/bosh/etc/operating_system",
            pattern: r"\Aubuntu\n?\z",
        }),
        check("dev-tools-file-list", JAMMY, "the dev tools list names the compiler (remove_dev_tools removes them)", Test::Matches {
            path: "/var/vcap/bosh/etc/dev_tools_file_list",
            pattern: "/usr/bin/gcc",
        }),
        check("static-libraries-list-file", JAMMY, "the image lists its static libraries", Test::File("/var/vcap/bosh/etc/static_libraries_list")),
        check("static-libraries-superset", JAMMY, "every static library in the image is in the list", Test::Custom {
            looks_at: "every `*.a` file in the image is a line of `/var/vcap/bosh/etc/static_libraries_list`",
            run: static_libraries_listed,
        }),
        check("setuid-binaries", JAMMY, "only su, sudo and sudoedit are setuid or setgid", Test::Custom {
            looks_at: "the setuid/setgid regular files of the image are only `su`, `sudo`, `sudoedit`",
            run: setuid_only_su_sudo,
        }),
        check("hostname-file", JAMMY, "/etc/hostname is a file", Test::File("/etc/hostname")),
        check("hostname-content", JAMMY, "the image's hostname is bosh-stemcell", Test::Matches { path: "/etc/hostname", pattern: r"\Abosh-stemcell\n?\z" }),
        check("V-38654+V-38652/file", JAMMY, "/etc/fstab is a file", Test::File("/etc/fstab")),
        check("V-38654+V-38652/no-nfs", JAMMY, "/etc/fstab mounts no NFS (nosuid/nodev on remote filesystems)", Test::NotMatches { path: "/etc/fstab", pattern: "nfs" }),
        not_here("no-rpcbind-port", JAMMY, "nothing listens on TCP 111", Test::Custom {
            looks_at: "`lsof -iTCP:111` on the running VM",
            run: |_| Err("a property of a running VM".into()),
        }, "a running VM's ports, not a file of the image; and Bakery's NFS root needs rpcbind: `boot-test` sees the VM"),
    ]
}

/// The directories upstream's V-38469 and V-38472 search.
const COMMAND_DIRS: &[&str] = &[
    "/bin",
    "/usr/bin",
    "/usr/local/bin",
    "/sbin",
    "/usr/sbin",
    "/usr/local/sbin",
];

/// `/etc/service/NAME` resolves (inside the image) to `/etc/sv/NAME`.
fn service_link(t: &Tree, name: &str) -> Verdict {
    let link = format!("etc/service/{name}");
    let want = t.root().join(format!("etc/sv/{name}"));
    match crate::inside::safepath::host_path_followed(t.root(), &link)? {
        Some(p) if p == want => Ok(format!("/{link} -> /etc/sv/{name}")),
        Some(p) => Err(format!("/{link} resolves to {}", p.display())),
        None => Err(format!("/{link} is missing")),
    }
}

fn no_host_keys(t: &Tree) -> Verdict {
    let mut keys = Vec::new();
    t.walk("/etc/ssh", &mut |p, _| {
        let name = p.rsplit('/').next().unwrap_or_default();
        if p.matches('/').count() == 3 && name.contains("_key") {
            keys.push(p.to_string());
        }
    })?;
    if keys.is_empty() {
        Ok("no host keys".into())
    } else {
        Err(keys.join(", "))
    }
}

fn no_file_named(t: &Tree, dir: &str, name: &str) -> Verdict {
    let mut found = Vec::new();
    t.walk(dir, &mut |p, _| {
        if p.rsplit('/').next() == Some(name) {
            found.push(p.to_string());
        }
    })?;
    if found.is_empty() {
        Ok(format!("no {name} under {dir}"))
    } else {
        Err(found.join(", "))
    }
}

fn root_owned_if_present(t: &Tree, path: &str) -> Verdict {
    match t.meta(path)? {
        None => Ok(format!("no {path}")),
        Some(m) if m.uid == 0 => Ok(format!("{path}: owner root")),
        Some(m) => Err(format!("{path} is owned by uid {}", m.uid)),
    }
}

/// Regular files under `dirs` (symlinked directories followed, as `find -L`) with 022 bits.
fn no_writable(t: &Tree, dirs: &[&str]) -> Verdict {
    let mut bad = Vec::new();
    for real in real_dirs(t, dirs)? {
        t.walk(&real, &mut |p, m| {
            if m.file && m.mode & 0o022 != 0 {
                bad.push(format!("{p} ({:04o})", m.mode));
            }
        })?;
    }
    if bad.is_empty() {
        Ok(format!("none in {}", dirs.join(" ")))
    } else {
        Err(bad.join(", "))
    }
}

/// The directories of `dirs` that exist, each once, symlinks resolved inside the image.
fn real_dirs(t: &Tree, dirs: &[&str]) -> Result<std::collections::BTreeSet<String>, String> {
    let mut out = std::collections::BTreeSet::new();
    for d in dirs {
        if t.meta_followed(d)?.is_some_and(|m| m.dir) {
            out.insert(real_dir(t, d)?);
        }
    }
    Ok(out)
}

/// `/bin` under merged /usr is `usr/bin`: the directory a symlink names, inside the image.
fn real_dir(t: &Tree, dir: &str) -> Result<String, String> {
    match t.meta(dir)? {
        Some(m) if m.symlink => {
            let host =
                crate::inside::safepath::host_path_followed(t.root(), dir.trim_start_matches('/'))?
                    .ok_or_else(|| format!("{dir} is a dangling symlink"))?;
            let rel = host
                .strip_prefix(t.root())
                .map_err(|_| format!("{dir} resolves outside the image"))?;
            Ok(format!("/{}", rel.display()))
        }
        _ => Ok(dir.to_string()),
    }
}

fn commands_owned_by_root(t: &Tree) -> Verdict {
    let mut bad = Vec::new();
    for real in real_dirs(t, COMMAND_DIRS)? {
        t.walk(&real, &mut |p, m| {
            if m.uid != 0 {
                bad.push(format!("{p} (uid {})", m.uid));
            }
        })?;
    }
    if bad.is_empty() {
        Ok("every command is owned by root".into())
    } else {
        Err(bad.join(", "))
    }
}

fn rsyslog_d_only_default(t: &Tree) -> Verdict {
    let mut names = Vec::new();
    t.walk("/etc/rsyslog.d", &mut |p, _| {
        if p.matches('/').count() == 3 {
            names.push(p.rsplit('/').next().unwrap_or_default().to_string());
        }
    })?;
    if names == ["50-default.conf"] {
        Ok("/etc/rsyslog.d: 50-default.conf".into())
    } else {
        Err(format!("/etc/rsyslog.d holds {}", names.join(", ")))
    }
}

fn static_libraries_listed(t: &Tree) -> Verdict {
    let list = t
        .text("/var/vcap/bosh/etc/static_libraries_list")?
        .ok_or("/var/vcap/bosh/etc/static_libraries_list is missing")?;
    let listed: std::collections::BTreeSet<&str> = list.lines().map(str::trim).collect();
    let mut missing = Vec::new();
    let mut seen = 0;
    t.walk("/", &mut |p, m| {
        if m.file && p.to_ascii_lowercase().ends_with(".a") {
            seen += 1;
            if !listed.contains(p) {
                missing.push(p.to_string());
            }
        }
    })?;
    if missing.is_empty() {
        Ok(format!("all {seen} static libraries are listed"))
    } else {
        let n = missing.len();
        missing.truncate(5);
        Err(format!("{n} not listed: {}", missing.join(", ")))
    }
}

fn setuid_only_su_sudo(t: &Tree) -> Verdict {
    let mut found = Vec::new();
    t.walk("/", &mut |p, m| {
        if m.file && m.mode & 0o6000 != 0 {
            found.push(p.to_string());
        }
    })?;
    let bad: Vec<&String> = found
        .iter()
        .filter(|p| {
            !matches!(p.rsplit('/').next(), Some("su" | "sudo" | "sudoedit"))
                || !(p.starts_with("/usr/bin/") || p.starts_with("/bin/"))
        })
        .collect();
    if bad.is_empty() {
        Ok(format!("setuid/setgid: {}", found.join(", ")))
    } else {
        Err(format!(
            "{} more: {}",
            bad.len(),
            bad.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}
