//! End-to-end: the default spec's rootfs, built through every OS stage (`stages/NN-*`), has what
//! the BOSH agent, monit and Bakery need (`../shared/BOSH-CONTRACT.md`): users and groups,
//! sudoers, the `/var/vcap` tree with owners and modes, the agent's and monit's runit services,
//! sshd settings, sysctl values, nothing of the build left behind, the compilers and the list
//! of their files (in the image and the stemcell), and for `bakery` the agent.json and the disk
//! shim.
//!
//! Needs root, a reachable mirror (`PISTEMCELL_TEST_MIRROR`, else the host's apt sources) and
//! qemu-user emulation for armhf; each missing piece skips the test with the reason.
//! `PISTEMCELL_SKIP_MIRROR_TESTS=1` skips it on purpose (it takes several minutes).
//! The build runs to the end, so the built-in monit, agent and audit stages are checked too
//! (`os_stages/builtins.rs`).
//! `PISTEMCELL_TEST_OS_ROOTFS=DIR` checks an already built rootfs instead of building one
//! (`PISTEMCELL_TEST_OS_INFRASTRUCTURE`, default `bakery`, names its infrastructure).
//! `PISTEMCELL_TEST_RAW_STEMCELL=TGZ` boot-tests a raw stemcell built with the real agent
//! instead (and `PISTEMCELL_TEST_UNPATCHED_AGENT=BIN` a copy with an unpatched agent).

#[path = "os_stages/bakery.rs"]
mod bakery;
#[path = "os_stages/boot.rs"]
mod boot;
#[path = "os_stages/builtins.rs"]
mod builtins;
#[path = "os_stages/cpi_vm.rs"]
mod cpi_vm;
#[path = "os_stages/dev_tools.rs"]
mod dev_tools;
#[path = "os_stages/os_image.rs"]
mod os_image;
#[path = "os_stages/stemcell_image.rs"]
mod stemcell_image;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

#[rustfmt::skip]
const PACKAGES: [&str; 22] = [
    "parted", "util-linux", "mount", "e2fsprogs", "udev", "passwd", "iproute2", "procps", "tar",
    "bash", "ca-certificates", "runit", "resolvconf", "iputils-arping", "sudo", "openssh-server",
    "rsyslog", "logrotate", "cron", "chrony", "fake-hwclock", "auditd",
];

#[rustfmt::skip]
const GROUPS: [&str; 13] = [
    "admin", "adm", "audio", "cdrom", "dialout", "floppy", "video", "dip", "bosh_sshers",
    "bosh_sudoers", "vcap", "syslog", "utmp",
];

#[rustfmt::skip]
const VCAP_GROUPS: [&str; 9] = [
    "admin", "adm", "audio", "cdrom", "dialout", "floppy", "video", "dip", "bosh_sshers",
];

#[rustfmt::skip]
const SUDOERS_LINES: [&str; 3] = [
    "%admin ALL=(ALL) ALL", "%bosh_sudoers ALL=(ALL) NOPASSWD: ALL", "#includedir /etc/sudoers.d",
];

const D: bool = true; // a directory
const F: bool = false; // a file

/// Path, directory or file, mode, owner, group: as the agent creates or expects them.
#[rustfmt::skip]
const NODES: [(&str, bool, u32, &str, &str); 20] = [
    ("/var/vcap", D, 0o755, "root", "root"),
    ("/var/vcap/bosh", D, 0o700, "root", "root"),
    ("/var/vcap/bosh/bin", D, 0o755, "root", "root"),
    ("/var/vcap/bosh/etc", D, 0o755, "root", "root"),
    ("/var/vcap/bosh/etc/monitrc", F, 0o700, "root", "root"),
    ("/var/vcap/bosh/log", D, 0o700, "root", "root"),
    ("/var/vcap/bosh/agent.json", F, 0o600, "root", "root"),
    ("/var/vcap/monit", D, 0o755, "root", "root"),
    ("/var/vcap/monit/alerts.monitrc", F, 0o600, "root", "root"),
    ("/var/vcap/monit/empty.monitrc", F, 0o644, "root", "root"),
    ("/var/vcap/monit/svlog", D, 0o700, "root", "root"),
    ("/var/vcap/jobs", D, 0o750, "root", "vcap"),
    ("/var/vcap/packages", D, 0o755, "root", "vcap"),
    ("/var/vcap/store", D, 0o755, "root", "root"),
    ("/var/vcap/micro_bosh/data/cache", D, 0o755, "root", "root"),
    ("/home/vcap", D, 0o700, "vcap", "vcap"),
    ("/etc/sudoers", F, 0o440, "root", "root"),
    ("/etc/sv/agent", D, 0o700, "root", "root"),
    ("/etc/sv/monit", D, 0o755, "root", "root"),
    ("/etc/ssh/sshd_config", F, 0o600, "root", "root"),
];

/// Lines files must hold (trimmed, whole lines).
#[rustfmt::skip]
const LINES: [(&str, &str); 9] = [
    ("/var/vcap/bosh/etc/monitrc", "set httpd port 2822 and use address 127.0.0.1"),
    ("/var/vcap/bosh/etc/monitrc", "allow cleartext /var/vcap/monit/monit.user"),
    ("/var/vcap/bosh/etc/monitrc", "include /var/vcap/monit/*.monitrc"),
    ("/var/vcap/bosh/etc/monitrc", "include /var/vcap/monit/job/*.monitrc"),
    ("/var/vcap/monit/alerts.monitrc", "set mailserver 127.0.0.1 port 2825"),
    ("/etc/sv/agent/log/run", "exec svlogd -tt /var/vcap/bosh/log"),
    ("/etc/sv/monit/log/run", "exec svlogd -tt /var/vcap/monit/svlog"),
    // the exact lines the agent rewrites to enable IPv6
    ("/etc/sysctl.d/60-bosh-sysctl.conf", "net.ipv6.conf.all.disable_ipv6=1"),
    ("/etc/sysctl.d/60-bosh-sysctl.conf", "net.ipv6.conf.default.disable_ipv6=1"),
];

/// Text files must contain.
#[rustfmt::skip]
const CONTAINS: [(&str, &str); 3] = [
    ("/etc/sv/agent/run", "export PATH=/var/vcap/bosh/bin:$PATH"),
    ("/etc/sv/agent/run", "/var/vcap/bosh/bin/bosh-agent -P ubuntu -C /var/vcap/bosh/agent.json"),
    ("/etc/sv/monit/run", "/var/vcap/bosh/bin/monit -I -c /var/vcap/bosh/etc/monitrc"),
];

/// Scripts that must be executable and pass `bash -n`.
#[rustfmt::skip]
const SCRIPTS: [&str; 9] = [
    "/var/vcap/bosh/bin/bosh-agent-rc", "/var/vcap/bosh/bin/bosh-start-logging-and-auditing",
    "/var/vcap/bosh/bin/restart_networking", "/var/vcap/bosh/bin/sync-time",
    "/var/vcap/bosh/bin/setup-logrotate.sh", "/etc/sv/agent/run", "/etc/sv/agent/log/run",
    "/etc/sv/monit/run", "/etc/sv/monit/log/run",
];

#[rustfmt::skip]
const SSHD: [(&str, &str); 8] = [
    ("allowgroups", "bosh_sshers"), ("denyusers", "root"), ("permitrootlogin", "no"),
    ("passwordauthentication", "no"), ("permitemptypasswords", "no"), ("x11forwarding", "no"),
    ("usedns", "no"), ("maxauthtries", "3"),
];

#[rustfmt::skip]
const SYSCTL: [(&str, &str); 13] = [
    ("net.ipv4.ip_forward", "0"), ("net.ipv4.tcp_syncookies", "1"),
    ("net.ipv4.conf.all.accept_redirects", "0"), ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.all.accept_source_route", "0"), ("net.ipv4.conf.all.rp_filter", "1"),
    ("net.ipv4.icmp_echo_ignore_broadcasts", "1"), ("net.ipv4.tcp_keepalive_time", "120"),
    ("net.ipv6.conf.all.disable_ipv6", "1"), ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("kernel.randomize_va_space", "2"), ("kernel.dmesg_restrict", "1"), ("fs.suid_dumpable", "0"),
];

const BAKERY_AGENT_JSON: &str = r#"{"Platform":{"Linux":{"PartitionerType":"parted",
  "CreatePartitionIfNoEphemeralDisk":false,"DevicePathResolutionType":"virtio"}},"Infrastructure":{"NetworkingType":"dynamic","Settings":
  {"Sources":[{"Type":"File","SettingsPath":"/piConfig/settings.json"}],"UseServerName":true,
  "UseRegistry":false}}}"#;

fn check(ok: bool, what: impl Display) {
    assert!(ok, "{what}");
}

/// JSON is valid YAML: the spec's YAML parser reads agent.json and the expectations alike.
fn json(text: &str) -> serde_norway::Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("not JSON: {e}\n{text}"))
}

/// A built rootfs, read from the host; names of users and groups come from its own databases.
struct Root {
    dir: PathBuf,
    users: BTreeMap<String, Vec<String>>,
    groups: BTreeMap<String, Vec<String>>,
}

#[rustfmt::skip]
impl Root {
    fn new(dir: &Path) -> Root {
        let mut r = Root { dir: dir.to_path_buf(), users: BTreeMap::new(), groups: BTreeMap::new() };
        r.users = r.db("/etc/passwd");
        r.groups = r.db("/etc/group");
        r
    }

    fn path(&self, path: &str) -> PathBuf {
        self.dir.join(path.trim_start_matches('/'))
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn exists(&self, path: &str) -> bool {
        self.path(path).symlink_metadata().is_ok()
    }

    /// `name -> fields` of a colon-separated database (passwd, group, shadow).
    fn db(&self, path: &str) -> BTreeMap<String, Vec<String>> {
        let fields = |l: &str| l.split(':').map(str::to_string).collect::<Vec<_>>();
        let text = self.read(path);
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| (fields(l)[0].clone(), fields(l))).collect()
    }

    fn id(db: &BTreeMap<String, Vec<String>>, name: &str) -> u32 {
        db.get(name).unwrap_or_else(|| panic!("no user or group {name}"))[2].parse().unwrap()
    }

    fn members(&self, group: &str) -> BTreeSet<String> {
        let g = self.groups.get(group).unwrap_or_else(|| panic!("no group {group}"));
        g[3].split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
    }

    /// Asserts a directory or file with exactly this mode and owner (not a symlink).
    fn node(&self, path: &str, dir: bool, mode: u32, user: &str, group: &str) {
        let m = self.path(path).symlink_metadata().unwrap_or_else(|e| panic!("{path}: {e}"));
        let found = (m.is_dir(), m.permissions().mode() & 0o7777, m.uid(), m.gid());
        let want = (dir, mode, Root::id(&self.users, user), Root::id(&self.groups, group));
        assert_eq!(found, want, "{path}: (dir, mode, uid, gid); expected {user}:{group} {mode:o}");
    }

    /// Asserts an executable file that `bash -n` (the host's, syntax only) accepts.
    fn script(&self, path: &str) {
        let m = self.path(path).metadata().unwrap_or_else(|e| panic!("{path}: {e}"));
        check(m.is_file() && m.permissions().mode() & 0o100 != 0, format!("{path}: not executable"));
        let out = Command::new("bash").arg("-n").arg(self.path(path)).output().unwrap();
        check(out.status.success(), format!("bash -n {path}: {}", String::from_utf8_lossy(&out.stderr)));
    }

    fn link(&self, path: &str) -> String {
        let target = std::fs::read_link(self.path(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        target.to_string_lossy().into_owned()
    }

    /// Follows symlinks inside the rootfs (absolute targets are relative to it).
    fn resolve(&self, path: &str) -> String {
        let mut p = PathBuf::from(path);
        for _ in 0..16 {
            let Ok(t) = std::fs::read_link(self.path(&p.to_string_lossy())) else { break };
            p = if t.is_absolute() { t } else { p.parent().unwrap().join(t) };
        }
        p.to_string_lossy().into_owned()
    }

    fn has_line(&self, path: &str, line: &str) {
        let text = self.read(path);
        check(text.lines().any(|l| l.trim() == line), format!("{path} lacks `{line}`:\n{text}"));
    }

    /// Packages dpkg lists as installed.
    fn installed(&self) -> BTreeSet<String> {
        let status = self.read("/var/lib/dpkg/status");
        let name = |p: &str| p.lines().find_map(|l| l.strip_prefix("Package: ")).map(str::to_string);
        let ok = |p: &&str| p.lines().any(|l| l == "Status: install ok installed");
        status.split("\n\n").filter(ok).filter_map(name).collect()
    }

    fn systemd(&self) -> bool {
        self.exists("/lib/systemd/systemd") || self.exists("/usr/lib/systemd/systemd")
    }

    fn enabled(&self, target: &str, unit: &str) -> bool {
        self.exists(&format!("/etc/systemd/system/{target}.wants/{unit}"))
    }

    /// sshd's effective settings: sshd_config and the files it includes in reading order,
    /// first value wins, keywords lower-cased.
    fn sshd(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        self.sshd_file("/etc/ssh/sshd_config", &mut out);
        out
    }

    fn sshd_file(&self, path: &str, out: &mut BTreeMap<String, String>) {
        let text = std::fs::read_to_string(self.path(path)).unwrap_or_default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let (key, value) = (key.to_lowercase(), value.trim().to_string());
            if key == "match" {
                return; // conditional blocks are not global settings
            }
            if key != "include" {
                out.entry(key).or_insert(value);
                continue;
            }
            for pattern in value.split_whitespace() {
                let (dir, glob) = pattern.rsplit_once('/').unwrap();
                let mut files = self.entries_or_none(dir);
                files.retain(|f| f.ends_with(glob.trim_start_matches('*')));
                files.sort();
                for f in files {
                    self.sshd_file(&format!("{dir}/{f}"), out);
                }
            }
        }
    }

    fn sysctl(&self, path: &str) -> BTreeMap<String, String> {
        let text = self.read(path);
        let pair = |l: &str| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{path}: bad line {l:?}"));
            (k.trim().to_string(), v.trim().to_string())
        };
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(pair).collect()
    }

    fn entries_or_none(&self, dir: &str) -> Vec<String> {
        let Ok(list) = std::fs::read_dir(self.path(dir)) else { return Vec::new() };
        list.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
    }

    fn entries(&self, dir: &str) -> Vec<String> {
        check(self.path(dir).is_dir(), format!("{dir} is not a directory"));
        self.entries_or_none(dir)
    }
}

/// Everything the BOSH OS stages promise, checked in a built rootfs at `root` for
/// `infrastructure` (`bakery`, `raw` or `warden`).
#[rustfmt::skip]
pub fn assert_bosh_os(root: &Path, infrastructure: &str) {
    let r = Root::new(root);

    // Packages: the agent's commands; never growpart (it turns on the agent's root-device
    // check, which every Pi root device fails).
    let pkgs = r.installed();
    for p in PACKAGES {
        check(pkgs.contains(p), format!("package {p} is not installed"));
    }
    check(!pkgs.contains("cloud-guest-utils"), "cloud-guest-utils (growpart) is installed");

    // Users and groups.
    let vcap = &r.users["vcap"];
    assert_eq!((&vcap[2][..], &vcap[5][..], &vcap[6][..]), ("1000", "/home/vcap", "/bin/bash"));
    assert_eq!(vcap[3].parse::<u32>().unwrap(), Root::id(&r.groups, "vcap"), "vcap's group");
    for g in GROUPS {
        check(r.groups.contains_key(g), format!("group {g} is missing"));
    }
    for g in VCAP_GROUPS {
        check(r.members(g).contains("vcap"), format!("vcap is not in group {g}"));
    }
    check(r.users.contains_key("syslog"), "user syslog is missing");
    check(r.members("vcap").contains("syslog"), "user syslog is not in group vcap");
    check(r.members("adm").contains("syslog"), "rsyslogd (syslog) gives its files to group adm");
    let shadow = r.db("/etc/shadow");
    for u in ["root", "vcap"] {
        assert_eq!(shadow[u][1], "*", "{u} must have no password (keys only)");
    }

    // Owners and modes, file contents, scripts, sudoers as sudo reads it.
    for (path, dir, mode, user, group) in NODES {
        r.node(path, dir, mode, user, group);
    }
    for (path, line) in LINES.into_iter().chain(SUDOERS_LINES.map(|l| ("/etc/sudoers", l))) {
        r.has_line(path, line);
    }
    for (path, text) in CONTAINS {
        check(r.read(path).contains(text), format!("{path} lacks `{text}`"));
    }
    for path in SCRIPTS {
        r.script(path);
    }
    let out = Command::new("chroot").arg(root).args(["/usr/sbin/visudo", "-c"]).output().unwrap();
    check(out.status.success(), format!("visudo -c: {}", String::from_utf8_lossy(&out.stderr)));

    // /var/vcap: the agent makes data (and mounts the ephemeral disk there), except on raw.
    assert_eq!(r.link("/var/vcap/sys"), "/var/vcap/data/sys");
    if infrastructure == "raw" {
        r.node("/var/vcap/data", D, 0o755, "root", "root");
    } else {
        check(!r.exists("/var/vcap/data"), "/var/vcap/data must be left to the agent");
    }
    // The agent's platform name, not the manifest's operating_system (debian-bookworm-armhf).
    assert_eq!(r.read("/var/vcap/bosh/etc/operating_system").trim(), "ubuntu");
    dev_tools::assert_dev_tools(&r);
    check(!r.read("/var/vcap/bosh/etc/stemcell_version").trim().is_empty(), "no stemcell_version");

    // Supervision: monit is down until the agent starts it; where the agent's link lives.
    check(r.exists("/etc/sv/monit/down"), "monit must be down until the agent starts it");
    if infrastructure == "warden" {
        // runsvdir-start is the container's init and scans /etc/service itself.
        r.script("/usr/sbin/runsvdir-start");
        assert_eq!(r.link(&format!("{}/agent", r.resolve("/etc/service"))), "/etc/sv/agent");
    } else if r.systemd() {
        // Debian's runit, not PID 1, runs runsvdir on /etc/runit/runsvdir/svmanaged.
        assert_eq!(r.link("/etc/runit/runsvdir/svmanaged/agent"), "/etc/sv/agent");
        r.has_line("/etc/systemd/system/runit.service", "ExecStart=/etc/runit/2");
        check(r.enabled("multi-user.target", "runit.service"), "runit.service is not enabled");
    } else {
        assert_eq!(r.link("/etc/service/agent"), "/etc/sv/agent");
    }

    // sshd, and no host keys (each VM makes its own on first boot).
    let sshd = r.sshd();
    for (k, v) in SSHD {
        assert_eq!(sshd.get(k).map(String::as_str), Some(v), "sshd {k}: {sshd:?}");
    }
    check(sshd.get("pubkeyauthentication").is_none_or(|v| v == "yes"), "sshd must take keys");
    let sftp = sshd.get("subsystem").is_some_and(|v| v.starts_with("sftp "));
    check(sftp, "bosh scp needs the sftp subsystem");
    let mut keys = r.entries("/etc/ssh");
    keys.retain(|n| n.starts_with("ssh_host_"));
    check(keys.is_empty(), format!("host keys in the stemcell: {keys:?}"));
    if r.systemd() && infrastructure != "warden" {
        check(r.enabled("ssh.service", "ssh-host-keys.service"), "no first-boot host keys");
    }

    // sysctl: upstream's values (enabling IPv6, the agent also reads grub.cfg).
    let s = r.sysctl("/etc/sysctl.d/60-bosh-sysctl.conf");
    for (k, v) in SYSCTL {
        assert_eq!(s.get(k).map(String::as_str), Some(v), "sysctl {k}");
    }
    check(!r.read("/boot/grub/grub.cfg").contains("ipv6.disable=1"), "grub.cfg disables IPv6");

    // Nothing of the build, nothing of one machine.
    assert_eq!(r.read("/etc/machine-id"), "", "machine-id must be empty (not missing)");
    if r.path("/etc/resolv.conf").is_symlink() {
        assert_eq!(r.link("/etc/resolv.conf"), "../run/resolvconf/resolv.conf");
    } else {
        check(!r.exists("/etc/resolv.conf"), "a resolv.conf of the build is left");
    }
    check(r.entries("/tmp").is_empty(), format!("/tmp is not empty: {:?}", r.entries("/tmp")));
    let mut lists = r.entries("/var/lib/apt/lists");
    lists.retain(|n| n != "lock" && n != "partial");
    check(lists.is_empty(), format!("apt lists left: {lists:?}"));
    check(!r.exists("/usr/sbin/policy-rc.d"), "the build's policy-rc.d is left");

    // The infrastructure's agent settings.
    let agent = json(&r.read("/var/vcap/bosh/agent.json"));
    let linux = &agent["Platform"]["Linux"];
    let sources = &agent["Infrastructure"]["Settings"]["Sources"];
    let file_source = |path: &str| json(&format!(r#"[{{"Type":"File","SettingsPath":"{path}"}}]"#));
    match infrastructure {
        "bakery" => {
            assert_eq!(agent, json(BAKERY_AGENT_JSON), "bakery agent.json");
            bakery::assert_bakery_disks(&r, &pkgs);
        }
        "raw" => {
            // The agent partitions the card at first boot (raw.partition_card, default true).
            assert_eq!(linux["CreatePartitionIfNoEphemeralDisk"], json("true"));
            assert_eq!(linux["SkipDiskSetup"], serde_norway::Value::Null);
            // The agent's sfdisk partitioner misreads util-linux 2.38 and wipes persistent disks.
            assert_eq!(linux["PartitionerType"], json("parted"));
            assert_eq!(sources, &file_source("/boot/firmware/bosh/settings.json"));
        }
        "warden" => {
            for k in ["UseDefaultTmpDir", "UsePreformattedPersistentDisk", "BindMountPersistentDisk", "SkipDiskSetup"] {
                assert_eq!(linux[k], json("true"), "warden agent.json {k}");
            }
            assert_eq!(sources, &file_source("/var/vcap/bosh/warden-cpi-agent-env.json"));
        }
        other => panic!("unknown infrastructure {other}"),
    }
}

/// Bakery's disk shim: the agent runs `/etc/init.d/open-iscsi restart` and then
/// `/etc/init.d/multipath-tools restart` after partitioning a /dev/mapper device.
#[test]
fn default_spec_rootfs_has_the_bosh_os() {
    if let Some(tgz) = std::env::var_os("PISTEMCELL_TEST_RAW_STEMCELL") {
        // A raw stemcell built with the real agent: the card checks, and with
        // PISTEMCELL_TEST_UNPATCHED_AGENT (an ARM agent built without the project's patches)
        // the failure of a copy that carries it.
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let unpatched = std::env::var_os("PISTEMCELL_TEST_UNPATCHED_AGENT").map(PathBuf::from);
        return boot::check_real_raw(Path::new(&tgz), &work, tmp.path(), unpatched.as_deref());
    }
    if let Some(dir) = std::env::var_os("PISTEMCELL_TEST_OS_ROOTFS") {
        let infra = std::env::var("PISTEMCELL_TEST_OS_INFRASTRUCTURE");
        return assert_bosh_os(Path::new(&dir), infra.as_deref().unwrap_or("bakery"));
    }
    let Some(mirror) = support::mirror_for_e2e("os_stages") else {
        return;
    };
    // The whole default spec, with Debian's armhf monit (it fails the proof: skip_proof) and an
    // ARM executable as the agent; --force runs every stage even when the shared cache holds
    // them.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mirror-cache");
    let work = tmp.path().join("work");
    let rootfs = tmp.path().join("rootfs");
    let monit = builtins::debian_monit(&mirror);
    // The agent and the clients' trees where tests/reproducible.rs finds the same ones.
    let shared = builtins::shared_dir();
    let agent = builtins::arm_agent(&shared);
    let Some(go) = support::clients::go() else {
        return;
    };
    // The blobstore clients from stand-in trees (the defaults would fetch from GitHub).
    let mut sets = builtins::sets(&monit, &agent, true);
    sets.extend(support::clients::sets(&shared, &go));
    let out = builtins::pistemcell(
        &work,
        &cache,
        &mirror,
        &sets,
        &["build", "--force", "--output", rootfs.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    check(
        out.status.success(),
        format!("pistemcell build failed:\n{stderr}"),
    );
    assert_bosh_os(&rootfs, "bakery");
    builtins::assert_builtins(&rootfs, &agent, &stderr);
    bakery::assert_host_dpkg(&rootfs, &stderr);
    // The build ends with the stemcell, read back; inspect agrees.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stemcell = Path::new(stdout.trim());
    check(
        stemcell.is_file() && stemcell.starts_with(&work),
        format!("no stemcell: {stdout}"),
    );
    // Built from scratch: the first of the two builds tests/reproducible.rs compares.
    builtins::keep_reference(stemcell, &mirror, &sets);
    let i = pistemcell::pack::inspect::inspect(stemcell).unwrap();
    check(
        i.manifest.stemcell_formats == ["piimg"],
        format!("{:?}", i.manifest),
    );
    check(
        i.members.iter().any(|m| m.0 == "audit.json"),
        "audit.json is in the stemcell",
    );
    check(
        i.manifest.operating_system.ends_with("-armhf"),
        format!("operating_system {}", i.manifest.operating_system),
    );
    dev_tools::assert_stemcell_lists(stemcell, &rootfs, tmp.path());
    // The image as Bakery and a Pi read it; its root holds the same OS.
    {
        let root = stemcell_image::open(stemcell, tmp.path());
        assert_bosh_os(&root.path, "bakery");
    }
    stemcell_image::check_sboms(stemcell, &rootfs, tmp.path());
    stemcell_image::check_provenance(stemcell, &rootfs, tmp.path());
    stemcell_image::check_os_passes(stemcell, tmp.path());
    stemcell_image::rebuild_is_identical(
        |args| builtins::pistemcell(&work, &cache, &mirror, &sets, args),
        stemcell,
        tmp.path(),
    );
    boot::check_default(stemcell, &work, tmp.path());
    cpi_vm::check_default(stemcell, tmp.path());
    // The raw SD-card stemcell from the same build (only the stages from 71-infra-raw on run):
    // its OS, and its boot from an emulated SD card.
    let mut raw_sets = sets.clone();
    raw_sets.push("infrastructure=raw".into());
    let raw_root = tmp.path().join("raw-rootfs");
    let out = builtins::pistemcell(
        &work,
        &cache,
        &mirror,
        &raw_sets,
        &["build", "--output", raw_root.to_str().unwrap()],
    );
    check(
        out.status.success(),
        format!(
            "the raw build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    );
    assert_bosh_os(&raw_root, "raw");
    let raw_stemcell = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    boot::check_raw(&raw_stemcell, &work);
    match boot::real_agent_sets() {
        Some(agent) => {
            // The full proof: the real agent (and monit from source, when given) in a stemcell.
            let mut real: Vec<String> = sets.iter().filter(|s| !s.starts_with("agent.")).cloned().collect();
            real.extend(agent);
            if let Ok(tarball) = std::env::var("PISTEMCELL_TEST_MONIT_TARBALL") {
                real.retain(|s| !s.starts_with("monit."));
                let sha = pistemcell::archive::cache::file_sha256(Path::new(&tarball)).unwrap();
                real.extend([
                    "monit.version=5.2.5".to_string(),
                    format!("monit.source.path={tarball}"),
                    format!("monit.source.sha256={sha}"),
                ]);
            }
            // The deploy proof needs the real dav client: from its git mirror, when given.
            let real_dav = boot::real_dav_sets();
            if let Some(dav) = &real_dav {
                real.retain(|s| !s.starts_with("blobstore_clients.dav."));
                real.extend(dav.iter().cloned());
            }
            let dir = tmp.path().join("real-agent");
            let out = builtins::pistemcell(&work, &cache, &mirror, &real, &["build", "--stemcell-dir", dir.to_str().unwrap()]);
            check(out.status.success(), format!("the build with a real agent failed:\n{}", String::from_utf8_lossy(&out.stderr)));
            let real_stemcell = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            boot::check_real_agent(&real_stemcell, &work, tmp.path(), real_dav.is_some());
            // The raw SD-card stemcell with the real agent: it partitions the card.
            real.push("infrastructure=raw".into());
            let dir = tmp.path().join("real-raw");
            let out = builtins::pistemcell(&work, &cache, &mirror, &real, &["build", "--stemcell-dir", dir.to_str().unwrap()]);
            check(out.status.success(), format!("the raw build with a real agent failed:\n{}", String::from_utf8_lossy(&out.stderr)));
            let real_raw = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            let unpatched = boot::unpatched_agent("armhf", tmp.path());
            boot::check_real_raw(&real_raw, &work, tmp.path(), unpatched.as_deref());
        }
        None => eprintln!("SKIPPED the boot test's agent checks with a real agent: set PISTEMCELL_TEST_AGENT_SRC and PISTEMCELL_TEST_GO (a bosh-agent checkout and Go >= 1.25) or PISTEMCELL_TEST_AGENT_BIN (an ARM bosh-agent)"),
    }
    builtins::reruns(&work, &cache, &mirror, &sets, &monit.0);
    os_image::check(&work, &cache, &mirror, &sets, tmp.path());
    let left = pistemcell::rootfs::mounts::mounts_under(tmp.path());
    check(left.is_empty(), format!("left mounted: {left:?}"));
}
