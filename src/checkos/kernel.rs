//! The kernel: sysctl settings and blocked modules. Ported from upstream's
//! `support/os_image_linux_kernel_shared_examples.rb` (bosh_sysctl's files and keys),
//! `support/os_image_shared_examples.rb` (its sysctl rows),
//! `support/os_image_linux_kernel_modules_shared_examples.rb` and
//! `support/udf_module_disabled.rb` (`/etc/modprobe.d/blacklist.conf`, bluetooth) and
//! `os_image/ubuntu_jammy_spec.rb` (no zfs modules). Upstream's stages: `bosh_sysctl`,
//! `system_kernel_modules`; ours: `41-sysctl`, `47-kernel-modules`.
//!
//! Upstream greps `/etc/sysctl.d/60-bosh-sysctl.conf` for each `key=value`; here each key's
//! value is the one the image applies at boot: the last setting of it in the `*.conf` files of
//! `/etc/sysctl.d`, `/run/sysctl.d`, `/usr/local/lib/sysctl.d`, `/usr/lib/sysctl.d`,
//! `/lib/sysctl.d` (in file-name order, a name in an earlier directory hiding the later ones,
//! as systemd-sysctl reads them), then `/etc/sysctl.conf` (read last by `sysctl --system`).
//!
//! Two of upstream's module rows do not apply to a Pi: usb-storage (Pis boot from USB disks)
//! and `options ipv6 disable=1` (the agent turns IPv6 on). The modules a netbooted Pi needs
//! (USB Ethernet, NFS) are not on upstream's list.

use super::common::check as ck;
use std::collections::BTreeMap;

use super::test::Verdict;
use super::tree::Tree;
use super::{Applies, Check, Test};

const KERNEL: &str = "support/os_image_linux_kernel_shared_examples.rb";
const SHARED: &str = "support/os_image_shared_examples.rb";
const MODULES: &str = "support/os_image_linux_kernel_modules_shared_examples.rb";
const BLACKLIST: &str = "/etc/modprobe.d/blacklist.conf";

/// Where systemd-sysctl reads `*.conf`, earlier directories first.
const SYSCTL_DIRS: [&str; 5] = [
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

/// A sysctl row: `key` has `value` at boot.
macro_rules! sysctl {
    ($id:literal, $src:expr, $key:literal, $val:literal) => {
        sysctl!($id, $src, $key, $val, "")
    };
    ($id:literal, $src:expr, $key:literal, $val:literal, $note:literal) => {
        ck(
            $id,
            $src,
            concat!("sysctl ", $key, " is ", $val, $note),
            Test::Custom {
                looks_at: concat!(
                    "the last `",
                    $key,
                    "` in the image's sysctl.d `*.conf` files and /etc/sysctl.conf is ",
                    $val
                ),
                run: |t| sysctl_is(t, $key, $val),
            },
        )
    };
}

/// A module upstream blocks with `install MODULE /bin/true`.
fn blocked(
    id: &'static str,
    source: &'static str,
    title: &'static str,
    pattern: &'static str,
) -> Check {
    ck(
        id,
        source,
        title,
        Test::Matches {
            path: BLACKLIST,
            pattern,
        },
    )
}

/// The checks of this topic.
pub fn checks() -> Vec<Check> {
    let mut v = sysctl();
    v.extend(modules());
    v
}

/// bosh_sysctl's files and keys.
fn sysctl() -> Vec<Check> {
    vec![
        ck("sysctl-file", KERNEL, "/etc/sysctl.d/60-bosh-sysctl.conf is a file (the agent edits its IPv6 lines)", Test::File("/etc/sysctl.d/60-bosh-sysctl.conf")),
        sysctl!("V-38526", KERNEL, "net.ipv4.conf.all.secure_redirects", "0"),
        sysctl!("V-38524", KERNEL, "net.ipv4.conf.all.accept_redirects", "0"),
        sysctl!("V-38529", KERNEL, "net.ipv4.conf.default.accept_source_route", "0"),
        sysctl!("V-38523", KERNEL, "net.ipv4.conf.all.accept_source_route", "0"),
        sysctl!("V-38548", KERNEL, "net.ipv6.conf.default.accept_redirects", "0"),
        sysctl!("V-38532", KERNEL, "net.ipv4.conf.default.secure_redirects", "0"),
        sysctl!("V-38600", KERNEL, "net.ipv4.conf.default.send_redirects", "0"),
        sysctl!("V-38601", KERNEL, "net.ipv4.conf.all.send_redirects", "0"),
        sysctl!("V-38542+CIS-7.2.7", KERNEL, "net.ipv4.conf.all.rp_filter", "1"),
        sysctl!("V-38544+CIS-7.2.7", KERNEL, "net.ipv4.conf.default.rp_filter", "1"),
        sysctl!("CIS-3.2.4/ipv4-conf-all-log_martians", KERNEL, "net.ipv4.conf.all.log_martians", "1"),
        sysctl!("CIS-3.2.4/ipv4-conf-default-log_martians", KERNEL, "net.ipv4.conf.default.log_martians", "1"),
        sysctl!("CIS-7.3.1/ipv6-conf-all-accept_ra", KERNEL, "net.ipv6.conf.all.accept_ra", "0", " (the agent sets 1 when a deployment enables IPv6)"),
        sysctl!("CIS-7.3.1/ipv6-conf-default-accept_ra", KERNEL, "net.ipv6.conf.default.accept_ra", "0", " (the agent sets 1 when a deployment enables IPv6)"),
        sysctl!("CIS-7.3.1/ipv6-route-flush", KERNEL, "net.ipv6.route.flush", "1"),
        sysctl!("CIS-7.2.5", KERNEL, "net.ipv4.icmp_echo_ignore_broadcasts", "1"),
        sysctl!("CIS-7.2.6", KERNEL, "net.ipv4.icmp_ignore_bogus_error_responses", "1"),
        sysctl!("sysctl-tcp-syncookies", KERNEL, "net.ipv4.tcp_syncookies", "1"),
        sysctl!("sysctl-tcp-max-syn-backlog", KERNEL, "net.ipv4.tcp_max_syn_backlog", "1280"),
        sysctl!("CIS-4.1/fs-suid_dumpable", KERNEL, "fs.suid_dumpable", "0", " (no core dumps of setuid programs)"),
        ck("sysctl-neigh-fix-file", KERNEL, "/etc/sysctl.d/60-bosh-sysctl-neigh-fix.conf is a file", Test::File("/etc/sysctl.d/60-bosh-sysctl-neigh-fix.conf")),
        sysctl!("CIS-7.3.2", SHARED, "net.ipv6.conf.all.accept_redirects", "0", " (upstream only asks that it be set; CIS 7.3.2 wants 0)"),
        sysctl!("V-38511", SHARED, "net.ipv4.ip_forward", "0"),
        sysctl!("V-38596", SHARED, "kernel.randomize_va_space", "2", " (full address space randomization)"),
        sysctl!("V-38539", SHARED, "net.ipv4.tcp_syncookies", "1"),
        sysctl!("V-38546/all", SHARED, "net.ipv6.conf.all.disable_ipv6", "1", " (IPv6 off until a deployment enables it: the agent then sets 0 in 60-bosh-sysctl.conf)"),
        sysctl!("V-38546/default", SHARED, "net.ipv6.conf.default.disable_ipv6", "1", " (IPv6 off until a deployment enables it: the agent then sets 0 in 60-bosh-sysctl.conf)"),
        sysctl!("tcp-keepalive-time", SHARED, "net.ipv4.tcp_keepalive_time", "120"),
        sysctl!("tcp-keepalive-intvl", SHARED, "net.ipv4.tcp_keepalive_intvl", "30"),
        sysctl!("tcp-keepalive-probes", SHARED, "net.ipv4.tcp_keepalive_probes", "8"),
        sysctl!("keys-root-maxkeys", SHARED, "kernel.keys.root_maxkeys", "1000000"),
        sysctl!("keys-maxkeys", SHARED, "kernel.keys.maxkeys", "1000000"),
        sysctl!("dmesg-restrict", SHARED, "kernel.dmesg_restrict", "1", " (only root reads the kernel log)"),
    ]
}

/// system_kernel_modules' blacklist, bluetooth, zfs.
fn modules() -> Vec<Check> {
    vec![
        ck("V-38682/file", MODULES, "/etc/modprobe.d/blacklist.conf is a file", Test::File(BLACKLIST)),
        blocked("V-38682/bluetooth", MODULES, "the bluetooth module is blocked", "install bluetooth /bin/true"),
        blocked("V-38517", MODULES, "the tipc module (TIPC protocol) is blocked", "install tipc /bin/true"),
        blocked("V-38515", MODULES, "the sctp module (SCTP protocol) is blocked", "install sctp /bin/true"),
        blocked("V-38514", MODULES, "the dccp module (DCCP protocol) is blocked", "install dccp /bin/true"),
        ck("V-38691", MODULES, "the bluetooth service is not started at boot", Test::Custom {
            looks_at: "no `bluetooth.service` link in a `.wants`/`.requires` directory of `/etc/systemd/system`, no upstart job, no SysV start link in `/etc/rc2.d` (`systemctl is-enabled bluetooth` is not `enabled`)",
            run: |t| match super::system::unit_enabled(t, "bluetooth.service", "bluetooth") {
                Ok(why) => Err(why),
                Err(why) => Ok(why),
            },
        }),
        Check {
            id: "V-38490",
            source: MODULES,
            title: "the usb-storage module is blocked",
            test: Test::Matches { path: BLACKLIST, pattern: "install usb-storage /bin/true" },
            applies: Applies::No("Raspberry Pis boot from USB mass storage (Pi 3B+, 4, 5 USB boot; raw images on a USB disk) and take disks over USB: blocking usb-storage would leave them without their root or data disk"),
        },
        Check {
            id: "V-38546+V-38444+V-38553+V-38551",
            source: MODULES,
            title: "the ipv6 module is loaded disabled (options ipv6 disable=1)",
            test: Test::Matches { path: BLACKLIST, pattern: "options ipv6 disable=1" },
            applies: Applies::No("the BOSH agent turns IPv6 on when a deployment asks (it sets net.ipv6.conf.*.disable_ipv6=0), which needs the IPv6 stack: with ipv6 a module (Raspberry Pi kernels) this option removes it; IPv6 is off by default through sysctl instead (V-38546/all, V-38546/default)"),
        },
        blocked("CIS-2.18", MODULES, "the cramfs module is blocked", "install cramfs /bin/true"),
        blocked("CIS-2.19", MODULES, "the freevxfs module is blocked", "install freevxfs /bin/true"),
        blocked("CIS-2.20", MODULES, "the jffs2 module is blocked", "install jffs2 /bin/true"),
        blocked("CIS-2.21", MODULES, "the hfs module is blocked", "install hfs /bin/true"),
        blocked("CIS-2.22", MODULES, "the hfsplus module is blocked", "install hfsplus /bin/true"),
        blocked("CIS-2.23", MODULES, "the squashfs module is blocked", "install squashfs /bin/true"),
        blocked("CIS-7.5.3", MODULES, "the rds module (RDS protocol) is blocked", "install rds /bin/true"),
        blocked("CIS-2.24", "support/udf_module_disabled.rb", "the udf module is blocked", r"install udf \/bin\/true"),
        ck("zfs-kernel-dir-absent", "os_image/ubuntu_jammy_spec.rb", "no kernel ships zfs modules (/lib/modules/*/kernel/zfs)", Test::Custom {
            looks_at: "no `/lib/modules/*/kernel/zfs` directory",
            run: no_zfs,
        }),
    ]
}

/// One line of a sysctl file as (key with dots, value), if it sets one.
fn sysctl_line(line: &str) -> Option<(String, &str)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
        return None;
    }
    let (k, v) = line.trim_start_matches('-').split_once('=')?;
    Some((k.trim().replace('/', "."), v.trim()))
}

/// The files systemd-sysctl then `sysctl --system` read, in order.
fn sysctl_files(tree: &Tree) -> Result<Vec<String>, String> {
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for dir in SYSCTL_DIRS {
        for name in super::system::list_dir(tree, dir)? {
            if name.ends_with(".conf") {
                by_name
                    .entry(name.clone())
                    .or_insert(format!("{dir}/{name}"));
            }
        }
    }
    let mut files: Vec<String> = by_name.into_values().collect();
    files.push("/etc/sysctl.conf".into());
    Ok(files)
}

/// The value `key` gets at boot, with the file that sets it last.
fn sysctl_value(tree: &Tree, key: &str) -> Result<Option<(String, String)>, String> {
    let mut found = None;
    for path in sysctl_files(tree)? {
        let text = match tree.text(&path) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            // A link to /dev/null masks a file of that name.
            Err(_) if matches!(tree.meta(&path)?, Some(m) if m.symlink) => continue,
            Err(e) => return Err(e),
        };
        for line in text.lines() {
            if let Some((k, v)) = sysctl_line(line) {
                if k == key {
                    found = Some((v.to_string(), path.clone()));
                }
            }
        }
    }
    Ok(found)
}

fn sysctl_is(tree: &Tree, key: &str, want: &str) -> Verdict {
    match sysctl_value(tree, key)? {
        Some((v, file)) if v == want => Ok(format!("{key}={v} ({file})")),
        Some((v, file)) => Err(format!("{key}={v} ({file}); wants {want}")),
        None => Err(format!("no sysctl file sets {key}")),
    }
}

fn no_zfs(tree: &Tree) -> Verdict {
    let kernels = super::system::list_dir(tree, "/lib/modules")?;
    let mut found = Vec::new();
    for k in &kernels {
        let dir = format!("/lib/modules/{k}/kernel/zfs");
        if tree.meta(&dir)?.is_some_and(|m| m.dir) {
            found.push(dir);
        }
    }
    if found.is_empty() {
        Ok(format!(
            "{} kernel module trees, none with kernel/zfs",
            kernels.len()
        ))
    } else {
        Err(found.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_lines_parse_as_systemd_reads_them() {
        assert_eq!(
            sysctl_line(" net.ipv4.ip_forward = 0 "),
            Some(("net.ipv4.ip_forward".into(), "0"))
        );
        assert_eq!(
            sysctl_line("-net/ipv6/route/flush=1"),
            Some(("net.ipv6.route.flush".into(), "1"))
        );
        assert_eq!(sysctl_line("# kernel.x=1"), None);
        assert_eq!(sysctl_line("; kernel.x=1"), None);
        assert_eq!(sysctl_line("kernel.x"), None);
    }
}
