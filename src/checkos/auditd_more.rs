//! The audit rules: every rule upstream's `support/os_image_shared_examples.rb` asserts in
//! `/etc/audit/rules.d/audit.rules` (module loading, time, deletions, sudoers, logins,
//! sessions, identity, network, MAC policy, sudo, mounts, permission changes, failed access,
//! privileged programs, immutability), written by upstream's `bosh_audit_ubuntu` and by our
//! `46-audit-rules` and `89-privileged-audit`.
//!
//! ARM: upstream writes its syscall rules for x86_64, as `arch=b64` and `arch=b32` pairs.
//! auditctl rejects a rule for an architecture the kernel does not have (`b64` on a 32-bit ARM
//! kernel) or with a syscall its table lacks (aarch64 has no open, creat, unlink, rmdir, rename,
//! chmod, chown, lchown), and stops loading every rule after it. So the rules are written per
//! architecture, and each `arch=b64` check accepts the image's form, said in its title:
//! - arm64: the `b64` rule, without the syscalls aarch64 lacks (their `*at` forms are kept),
//!   and no `b64` rule in the file naming one of those;
//! - armhf: no `b64` rule at all, and the `b32` rule in its place (32-bit ARM is `b32`, also as
//!   compat processes on a 64-bit kernel);
//! - any other image (x86_64): upstream's rule as written.
//!
//! `arch=b32` rules load on both ARM architectures as upstream writes them, and are checked so.

use std::collections::HashSet;

use super::test::{first_match, Verdict};
use super::tree::Tree;
use super::{Applies, Check, Test};

const SHARED: &str = "support/os_image_shared_examples.rb";
const RULES: &str = "/etc/audit/rules.d/audit.rules";
/// An `arch=b64` rule naming a syscall of upstream's that aarch64 does not have.
const AARCH64_LACKS: &str =
    r"^\s*-a\s.*arch=b64.*-S (open|creat|unlink|rmdir|rename|chmod|chown|lchown|stime)(\s|$)";

fn ck(id: &'static str, title: &'static str, test: Test) -> Check {
    Check {
        id,
        source: SHARED,
        title,
        test,
        applies: Applies::Yes,
    }
}

fn rule(id: &'static str, title: &'static str, pattern: &'static str) -> Check {
    ck(
        id,
        title,
        Test::Matches {
            path: RULES,
            pattern,
        },
    )
}

/// An `arch=b64` row: upstream's pattern, the arm64 form, the armhf (`b32`) form.
macro_rules! b64 {
    ($id:literal, $title:literal, $up:literal, $armhf:literal) => {
        b64!($id, $title, $up, $up, $armhf)
    };
    ($id:literal, $title:literal, $up:literal, $arm64:literal, $armhf:literal) => {
        ck(
            $id,
            $title,
            Test::Custom {
                looks_at: concat!(
                    "`/etc/audit/rules.d/audit.rules` by the image's dpkg architecture: arm64 `",
                    $arm64,
                    "`; armhf `",
                    $armhf,
                    "` and no `arch=b64` rule; others `",
                    $up,
                    "`"
                ),
                run: |t| by_arch(t, $up, $arm64, $armhf),
            },
        )
    };
}

/// The checks of the audit rules.
pub fn checks() -> Vec<Check> {
    let mut v = watches();
    v.extend(syscalls());
    v.extend(programs());
    v
}

/// The `-w` watches and `-e 2`.
fn watches() -> Vec<Check> {
    vec![
        rule(
            "V-38580/insmod",
            "running insmod is audited (key modules)",
            r"^-w \/sbin\/insmod -p x -k modules$",
        ),
        rule(
            "V-38580/rmmod",
            "running rmmod is audited (key modules)",
            r"^-w \/sbin\/rmmod -p x -k modules$",
        ),
        rule(
            "V-38580/modprobe",
            "running modprobe is audited (key modules)",
            r"^-w \/sbin\/modprobe -p x -k modules$",
        ),
        rule(
            "V-38580/kmod",
            "running kmod is audited (key modules; insmod, rmmod, modprobe are its links)",
            r"^-w \/bin\/kmod -p x -k modules$",
        ),
        rule(
            "CIS-8.1.4/localtime",
            "changes to /etc/localtime are audited (key time-change)",
            r"^-w \/etc\/localtime -p wa -k time-change$",
        ),
        ck(
            "CIS-8.1.18",
            "the audit rules stay changeable: no `-e 2` (the agent reloads them)",
            Test::NotMatches {
                path: RULES,
                pattern: "-e 2",
            },
        ),
        rule(
            "CIS-8.1.15/sudoers",
            "changes to /etc/sudoers are audited (key scope)",
            r"^-w \/etc\/sudoers -p wa -k scope$",
        ),
        rule(
            "CIS-8.1.15/sudoers-d",
            "changes to /etc/sudoers.d are audited (key scope)",
            r"^-w \/etc\/sudoers\.d -p wa -k scope$",
        ),
        rule(
            "CIS-8.1.8/faillog",
            "changes to /var/log/faillog are audited (key logins)",
            r"^-w \/var\/log\/faillog -p wa -k logins$",
        ),
        rule(
            "CIS-8.1.8/lastlog",
            "changes to /var/log/lastlog are audited (key logins)",
            r"^-w \/var\/log\/lastlog -p wa -k logins$",
        ),
        rule(
            "CIS-8.1.8/tallylog",
            "changes to /var/log/tallylog are audited (key logins)",
            r"^-w \/var\/log\/tallylog -p wa -k logins$",
        ),
        rule(
            "CIS-8.1.8/faillock",
            "changes to /var/run/faillock are audited (key logins)",
            r"^-w \/var\/run\/faillock -p wa -k logins$",
        ),
        rule(
            "CIS-8.1.9/utmp",
            "changes to /var/run/utmp are audited (key session)",
            r"^-w \/var\/run\/utmp -p wa -k session$",
        ),
        rule(
            "CIS-8.1.9/wtmp",
            "changes to /var/log/wtmp are audited (key session)",
            r"^-w \/var\/log\/wtmp -p wa -k session$",
        ),
        rule(
            "CIS-8.1.9/btmp",
            "changes to /var/log/btmp are audited (key session)",
            r"^-w \/var\/log\/btmp -p wa -k session$",
        ),
        rule(
            "CIS-8.1.5/group",
            "changes to /etc/group are audited (key identity)",
            r"^-w \/etc\/group -p wa -k identity$",
        ),
        rule(
            "CIS-8.1.5/passwd",
            "changes to /etc/passwd are audited (key identity)",
            r"^-w \/etc\/passwd -p wa -k identity$",
        ),
        rule(
            "CIS-8.1.5/gshadow",
            "changes to /etc/gshadow are audited (key identity)",
            r"^-w \/etc\/gshadow -p wa -k identity$",
        ),
        rule(
            "CIS-8.1.5/shadow",
            "changes to /etc/shadow are audited (key identity)",
            r"^-w \/etc\/shadow -p wa -k identity$",
        ),
        rule(
            "CIS-8.1.5/opasswd",
            "changes to /etc/security/opasswd are audited (key identity)",
            r"^-w \/etc\/security\/opasswd -p wa -k identity$",
        ),
        rule(
            "CIS-4.1.6/issue",
            "changes to /etc/issue are audited (key system-locale)",
            r"^-w \/etc\/issue -p wa -k system-locale$",
        ),
        rule(
            "CIS-4.1.6/issue.net",
            "changes to /etc/issue.net are audited (key system-locale)",
            r"^-w \/etc\/issue\.net -p wa -k system-locale$",
        ),
        rule(
            "CIS-4.1.6/hosts",
            "changes to /etc/hosts are audited (key system-locale)",
            r"^-w \/etc\/hosts -p wa -k system-locale$",
        ),
        rule(
            "CIS-4.1.6/network",
            "changes to /etc/network are audited (key system-locale)",
            r"^-w \/etc\/network -p wa -k system-locale$",
        ),
        rule(
            "CIS-4.1.6/networks",
            "changes to /etc/networks are audited (key system-locale)",
            r"^-w \/etc\/networks -p wa -k system-locale$",
        ),
        rule(
            "CIS-4.1.7/apparmor",
            "changes to /etc/apparmor/ are audited (key MAC-policy)",
            r"^-w \/etc\/apparmor\/ -p wa -k MAC-policy$",
        ),
        rule(
            "CIS-4.1.7/apparmor-d",
            "changes to /etc/apparmor.d/ are audited (key MAC-policy)",
            r"^-w \/etc\/apparmor\.d\/ -p wa -k MAC-policy$",
        ),
    ]
}

/// The syscall rules, `b64` by architecture and `b32` as upstream writes them.
fn syscalls() -> Vec<Check> {
    vec![
        b64!("V-38580/syscalls", "module loading and unloading syscalls are audited (arm64: arch=b64; armhf: arch=b32)",
            "-a always,exit -F arch=b64 -S finit_module -S init_module -S delete_module -k modules",
            "-a always,exit -F arch=b32 -S finit_module -S init_module -S delete_module -k modules"),
        b64!("CIS-8.1.4/b64-adjtimex", "adjtimex and settimeofday are audited (arm64: arch=b64; armhf: the arch=b32 rule)",
            r"^-a always,exit -F arch=b64 -S adjtimex -S settimeofday -k time-change$",
            r"^-a always,exit -F arch=b32 -S adjtimex -S settimeofday -S stime -k time-change$"),
        rule("CIS-8.1.4/b32-adjtimex", "32-bit adjtimex, settimeofday and stime are audited (key time-change)", r"^-a always,exit -F arch=b32 -S adjtimex -S settimeofday -S stime -k time-change$"),
        b64!("CIS-8.1.4/b64-clock", "clock_settime is audited (arm64: arch=b64; armhf: the arch=b32 rule)",
            r"^-a always,exit -F arch=b64 -S clock_settime -k time-change$",
            r"^-a always,exit -F arch=b32 -S clock_settime -k time-change$"),
        rule("CIS-8.1.4/b32-clock", "32-bit clock_settime is audited (key time-change)", r"^-a always,exit -F arch=b32 -S clock_settime -k time-change$"),
        b64!("CIS-8.1.14/b64", "deletions and renames by users are audited (arm64: arch=b64 unlinkat, renameat, renameat2, as aarch64 has no unlink, rmdir, rename; armhf: the arch=b32 rule)",
            r"^-a always,exit -F arch=b64 -S unlink -S unlinkat -S rmdir -S rename -S renameat -F auid>=500 -F auid!=4294967295 -k delete$",
            r"^-a always,exit -F arch=b64 -S unlinkat -S renameat -S renameat2 -F auid>=500 -F auid!=4294967295 -k delete$",
            r"^-a always,exit -F arch=b32 -S unlink -S unlinkat -S rmdir -S rename -S renameat -F auid>=500 -F auid!=4294967295 -k delete$"),
        rule("CIS-8.1.14/b32", "32-bit deletions and renames by users are audited (key delete)", r"^-a always,exit -F arch=b32 -S unlink -S unlinkat -S rmdir -S rename -S renameat -F auid>=500 -F auid!=4294967295 -k delete$"),
        b64!("CIS-4.1.6/b64", "sethostname and setdomainname are audited (arm64: arch=b64; armhf: the arch=b32 rule)",
            r"^-a exit,always -F arch=b64 -S sethostname -S setdomainname -k system-locale$",
            r"^-a exit,always -F arch=b32 -S sethostname -S setdomainname -k system-locale$"),
        rule("CIS-4.1.6/b32", "32-bit sethostname and setdomainname are audited (key system-locale)", r"^-a exit,always -F arch=b32 -S sethostname -S setdomainname -k system-locale$"),
        b64!("CIS-8.1.16/b64", "programs users run as root are audited (sudo_log; arm64: arch=b64; armhf: the arch=b32 rule)",
            r"^-a always,exit -F arch=b64 -S execve -F euid=0 -F auid>=1000 -F auid!=4294967295 -F key=sudo_log$",
            r"^-a always,exit -F arch=b32 -S execve -F euid=0 -F auid>=1000 -F auid!=4294967295 -F key=sudo_log$"),
        rule("CIS-8.1.16/b32", "32-bit programs users run as root are audited (key sudo_log)", r"^-a always,exit -F arch=b32 -S execve -F euid=0 -F auid>=1000 -F auid!=4294967295 -F key=sudo_log$"),
        b64!("CIS-8.1.13/b64", "mounts by users are audited (arm64: arch=b64; armhf: the arch=b32 rule)",
            r"^-a always,exit -F arch=b64 -S mount -F auid>=500 -F auid!=4294967295 -k mounts$",
            r"^-a always,exit -F arch=b32 -S mount -F auid>=500 -F auid!=4294967295 -k mounts$"),
        rule("CIS-8.1.13/b32", "32-bit mounts by users are audited (key mounts)", r"^-a always,exit -F arch=b32 -S mount -F auid>=500 -F auid!=4294967295 -k mounts$"),
        b64!("CIS-8.1.10/mount-b64", "mounts by users are audited, as CIS-8.1.13 (arm64: arch=b64; armhf: the arch=b32 rule)",
            r"^-a always,exit -F arch=b64 -S mount -F auid>=500 -F auid!=4294967295 -k mounts$",
            r"^-a always,exit -F arch=b32 -S mount -F auid>=500 -F auid!=4294967295 -k mounts$"),
        rule("CIS-8.1.10/mount-b32", "32-bit mounts by users are audited, as CIS-8.1.13 (key mounts)", r"^-a always,exit -F arch=b32 -S mount -F auid>=500 -F auid!=4294967295 -k mounts$"),
        b64!("CIS-8.1.10/chmod-b64", "mode changes by users are audited (arm64: arch=b64 fchmod, fchmodat, as aarch64 has no chmod; armhf: the arch=b32 rule)",
            r"^-a always,exit -F arch=b64 -S chmod -S fchmod -S fchmodat -F auid>=500 -F auid!=4294967295 -k perm_mod$",
            r"^-a always,exit -F arch=b64 -S fchmod -S fchmodat -F auid>=500 -F auid!=4294967295 -k perm_mod$",
            r"^-a always,exit -F arch=b32 -S chmod -S fchmod -S fchmodat -F auid>=500 -F auid!=4294967295 -k perm_mod$"),
        rule("CIS-8.1.10/chmod-b32", "32-bit mode changes by users are audited (key perm_mod)", r"^-a always,exit -F arch=b32 -S chmod -S fchmod -S fchmodat -F auid>=500 -F auid!=4294967295 -k perm_mod$"),
        b64!("CIS-8.1.10/chown-b64", "owner changes by users are audited (arm64: arch=b64 fchown, fchownat, as aarch64 has no chown, lchown; armhf: the arch=b32 rule)",
            r"^-a always,exit -F arch=b64 -S chown -S fchown -S fchownat -S lchown -F auid>=500 -F auid!=4294967295 -k perm_mod$",
            r"^-a always,exit -F arch=b64 -S fchown -S fchownat -F auid>=500 -F auid!=4294967295 -k perm_mod$",
            r"^-a always,exit -F arch=b32 -S chown -S fchown -S fchownat -S lchown -F auid>=500 -F auid!=4294967295 -k perm_mod$"),
        rule("CIS-8.1.10/chown-b32", "32-bit owner changes by users are audited (key perm_mod)", r"^-a always,exit -F arch=b32 -S chown -S fchown -S fchownat -S lchown -F auid>=500 -F auid!=4294967295 -k perm_mod$"),
        b64!("CIS-8.1.10/xattr-b64", "extended attribute changes by users are audited (arm64: arch=b64; armhf: the arch=b32 rule)",
            r"^-a always,exit -F arch=b64 -S setxattr -S lsetxattr -S fsetxattr -S removexattr -S lremovexattr -S fremovexattr -F auid>=500 -F auid!=4294967295 -k perm_mod$",
            r"^-a always,exit -F arch=b32 -S setxattr -S lsetxattr -S fsetxattr -S removexattr -S lremovexattr -S fremovexattr -F auid>=500 -F auid!=4294967295 -k perm_mod$"),
        rule("CIS-8.1.10/xattr-b32", "32-bit extended attribute changes by users are audited (key perm_mod)", r"^-a always,exit -F arch=b32 -S setxattr -S lsetxattr -S fsetxattr -S removexattr -S lremovexattr -S fremovexattr -F auid>=500 -F auid!=4294967295 -k perm_mod$"),
        b64!("CIS-8.1.11/eacces-b64", "opens and truncations users are refused (EACCES) are audited (arm64: arch=b64 without creat and open, which aarch64 lacks; armhf: the arch=b32 rule)",
            r"^-a always,exit -F arch=b64 -S creat -S open -S open_by_handle_at -S openat -S truncate -S ftruncate -F exit=-EACCES -F auid>=500 -F auid!=4294967295 -k access",
            r"^-a always,exit -F arch=b64 -S open_by_handle_at -S openat -S truncate -S ftruncate -F exit=-EACCES -F auid>=500 -F auid!=4294967295 -k access",
            r"^-a always,exit -F arch=b32 -S creat -S open -S open_by_handle_at -S openat -S truncate -S ftruncate -F exit=-EACCES -F auid>=500 -F auid!=4294967295 -k access"),
        rule("CIS-8.1.11/eacces-b32", "32-bit opens and truncations users are refused (EACCES) are audited (key access)", r"^-a always,exit -F arch=b32 -S creat -S open -S open_by_handle_at -S openat -S truncate -S ftruncate -F exit=-EACCES -F auid>=500 -F auid!=4294967295 -k access"),
        b64!("CIS-8.1.11/eperm-b64", "opens and truncations users are refused (EPERM) are audited (arm64: arch=b64 without creat and open, which aarch64 lacks; armhf: the arch=b32 rule)",
            r"^-a always,exit -F arch=b64 -S creat -S open -S open_by_handle_at -S openat -S truncate -S ftruncate -F exit=-EPERM -F auid>=500 -F auid!=4294967295 -k access",
            r"^-a always,exit -F arch=b64 -S open_by_handle_at -S openat -S truncate -S ftruncate -F exit=-EPERM -F auid>=500 -F auid!=4294967295 -k access",
            r"^-a always,exit -F arch=b32 -S creat -S open -S open_by_handle_at -S openat -S truncate -S ftruncate -F exit=-EPERM -F auid>=500 -F auid!=4294967295 -k access"),
        rule("CIS-8.1.11/eperm-b32", "32-bit opens and truncations users are refused (EPERM) are audited (key access)", r"^-a always,exit -F arch=b32 -S creat -S open -S open_by_handle_at -S openat -S truncate -S ftruncate -F exit=-EPERM -F auid>=500 -F auid!=4294967295 -k access"),
        b64!("V-75689/b64-uid", "programs run with another effective uid (setuid) are audited (arm64: arch=b64; armhf: the arch=b32 rule)",
            r"^-a always,exit -F arch=b64 -S execve -C uid!=euid -F key=execpriv",
            r"^-a always,exit -F arch=b32 -S execve -C uid!=euid -F key=execpriv"),
        b64!("V-75689/b64-gid", "programs run with another effective gid (setgid) are audited (arm64: arch=b64; armhf: the arch=b32 rule)",
            r"^-a always,exit -F arch=b64 -S execve -C gid!=egid -F key=execpriv",
            r"^-a always,exit -F arch=b32 -S execve -C gid!=egid -F key=execpriv"),
        rule("V-75689/b32-uid", "32-bit programs run with another effective uid are audited (key execpriv)", r"^-a always,exit -F arch=b32 -S execve -C uid!=euid -F key=execpriv"),
        rule("V-75689/b32-gid", "32-bit programs run with another effective gid are audited (key execpriv)", r"^-a always,exit -F arch=b32 -S execve -C gid!=egid -F key=execpriv"),
    ]
}

/// Upstream's list of programs whose use is recorded, and every setuid/setgid program.
fn programs() -> Vec<Check> {
    vec![
        rule("audit-privileged-bin/sbin-unix_chkpwd", "running /sbin/unix_chkpwd is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/sbin\/unix_chkpwd -k privileged"),
        rule("audit-privileged-bin/sbin-mount-nfs", "running /sbin/mount.nfs is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/sbin\/mount\.nfs -k privileged"),
        rule("audit-privileged-bin/usr-sbin-pam_timestamp_check", "running /usr/sbin/pam_timestamp_check is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/sbin\/pam_timestamp_check -k privileged"),
        rule("audit-privileged-bin/usr-bin-write", "running /usr/bin/write is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/bin\/write -k privileged"),
        rule("audit-privileged-bin/bin-mount", "running /bin/mount is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/bin\/mount \-k privileged"),
        rule("audit-privileged-bin/usr-bin-newgrp", "running /usr/bin/newgrp is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/bin\/newgrp -k privileged"),
        rule("audit-privileged-bin/usr-bin-wall", "running /usr/bin/wall is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/bin\/wall -k privileged"),
        rule("audit-privileged-bin/usr-bin-passwd", "running /usr/bin/passwd is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/bin\/passwd -k privileged"),
        rule("audit-privileged-bin/bin-umount", "running /bin/umount is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/bin\/umount \-k privileged"),
        rule("audit-privileged-bin/usr-bin-crontab", "running /usr/bin/crontab is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/bin\/crontab -k privileged"),
        rule("audit-privileged-bin/usr-bin-chfn", "running /usr/bin/chfn is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/bin\/chfn -k privileged"),
        rule("audit-privileged-bin/usr-bin-ssh-agent", "running /usr/bin/ssh-agent is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/bin\/ssh-agent -k privileged"),
        rule("audit-privileged-bin/usr-bin-gpasswd", "running /usr/bin/gpasswd is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/bin\/gpasswd -k privileged"),
        rule("audit-privileged-bin/usr-bin-chsh", "running /usr/bin/chsh is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/bin\/chsh -k privileged"),
        rule("audit-privileged-bin/usr-bin-chage", "running /usr/bin/chage is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/bin\/chage -k privileged"),
        rule("audit-privileged-bin/usr-bin-mount", "running /usr/bin/mount is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/bin\/mount -k privileged"),
        rule("audit-privileged-bin/usr-bin-su", "running /usr/bin/su is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/bin\/su -k privileged"),
        rule("audit-privileged-bin/usr-bin-umount", "running /usr/bin/umount is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/bin\/umount -k privileged"),
        rule("audit-privileged-bin/usr-sbin-mount-nfs", "running /usr/sbin/mount.nfs is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/sbin\/mount.nfs -k privileged"),
        rule("audit-privileged-bin/usr-sbin-netreport", "running /usr/sbin/netreport is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/sbin\/netreport -k privileged"),
        rule("audit-privileged-bin/usr-sbin-postdrop", "running /usr/sbin/postdrop is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/sbin\/postdrop -k privileged"),
        rule("audit-privileged-bin/usr-sbin-postqueue", "running /usr/sbin/postqueue is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/sbin\/postqueue -k privileged"),
        rule("audit-privileged-bin/usr-sbin-usernetctl", "running /usr/sbin/usernetctl is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/sbin\/usernetctl -k privileged"),
        rule("audit-privileged-bin/usr-sbin-service", "running /usr/sbin/service is audited (key privileged)", r"^-a always,exit -F perm=x -F auid>=500 -F auid!=4294967295 -F path=\/usr\/sbin\/service -k privileged"),
        rule("V-75707", "running ssh-keysign is audited (key privileged-ssh)", r"^-a always,exit -F path=\/usr\/lib\/openssh\/ssh-keysign -F perm=x -F auid>=500 -F auid!=4294967295 -k privileged-ssh"),
        rule("V-75757", "running sudoedit is audited (key priv_cmd)", r"^-a always,exit -F path=\/usr\/bin\/sudoedit -F perm=x -F auid>=500 -F auid!=4294967295 -k priv_cmd"),
        rule("V-75765", "running apparmor_parser is audited (key perm_chng)", r"^-a always,exit -F path=\/sbin\/apparmor_parser -F perm=x -F auid>=500 -F auid!=4294967295 -k perm_chng"),
        rule("V-75785", "running usermod is audited (key privileged-usermod)", r"^-a always,exit -F path=\/usr\/sbin\/usermod -F perm=x -F auid>=500 -F auid!=4294967295 -k privileged-usermod"),
        rule("V-80969", "running chcon is audited (key perm_chng)", r"^-a always,exit -F path=\/usr\/bin\/chcon -F perm=x -F auid>=500 -F auid!=4294967295 -k perm_chng"),
        rule("V-75779", "running unix_update is audited (key privileged-unix-update)", r"^-a always,exit -F path=\/sbin\/unix_update -F perm=x -F auid>=500 -F auid!=4294967295 -k privileged-unix-update"),
        ck("CIS-8.1.12", "running any setuid or setgid program is audited (key privileged)", Test::Custom {
            looks_at: "for every regular file with setuid or setgid under /bin, /sbin, /usr/bin, /usr/sbin, /boot (not through a symlinked /bin or /sbin, as find does not), `/etc/audit/rules.d/audit.rules` has `-a always,exit -F path=P -F perm=x -F auid>=500 -F auid!=4294967295 -k privileged`",
            run: every_privileged_program,
        }),
    ]
}

/// The image's dpkg architecture (that of its `dpkg` package), empty when unknown.
fn image_arch(tree: &Tree) -> Result<String, String> {
    let all = crate::rootfs::dpkg::read_status(tree.root()).map_err(|e| e.to_string())?;
    Ok(all
        .get("dpkg")
        .map(|(_, arch, _)| arch.clone())
        .unwrap_or_default())
}

fn matching(text: &str, pattern: &str) -> Verdict {
    match first_match(text, pattern)? {
        Some(line) => Ok(format!("{RULES}: {line}")),
        None => Err(format!("{RULES} has no line matching `{pattern}`")),
    }
}

/// An `arch=b64` row judged in the image architecture's form (see the module's doc).
fn by_arch(tree: &Tree, upstream: &str, arm64: &str, armhf: &str) -> Verdict {
    let text = tree
        .text(RULES)?
        .ok_or_else(|| format!("{RULES} is missing"))?;
    match image_arch(tree)?.as_str() {
        "arm64" => {
            if let Some(line) = first_match(&text, AARCH64_LACKS)? {
                return Err(format!(
                    "arm64: {line}: aarch64 has no such syscall, and auditctl stops at this rule"
                ));
            }
            matching(&text, arm64).map(|s| format!("arm64: {s}"))
        }
        "armhf" | "armel" => {
            if let Some(line) = first_match(&text, r"^\s*-a\s.*arch=b64")? {
                return Err(format!("armhf: {line}: a 32-bit ARM kernel has no b64, and auditctl stops at this rule"));
            }
            matching(&text, armhf).map(|s| format!("armhf (no arch=b64 rule): {s}"))
        }
        _ => matching(&text, upstream),
    }
}

/// CIS-8.1.12: a rule for every setuid or setgid program, as upstream's `find` lists them.
fn every_privileged_program(tree: &Tree) -> Verdict {
    let text = tree
        .text(RULES)?
        .ok_or_else(|| format!("{RULES} is missing"))?;
    let lines: HashSet<&str> = text.lines().map(str::trim_end).collect();
    let (mut seen, mut missing) = (0, Vec::new());
    for dir in ["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/boot"] {
        // `find DIR` does not descend a symlinked DIR (merged /usr's /bin and /sbin).
        if !matches!(tree.meta(dir)?, Some(m) if m.dir) {
            continue;
        }
        tree.walk(dir, &mut |path, m| {
            if m.file && m.mode & 0o6000 != 0 {
                seen += 1;
                let want = format!("-a always,exit -F path={path} -F perm=x -F auid>=500 -F auid!=4294967295 -k privileged");
                if !lines.contains(want.as_str()) {
                    missing.push(path.to_string());
                }
            }
        })?;
    }
    if missing.is_empty() {
        Ok(format!("all {seen} setuid/setgid programs have a rule"))
    } else {
        Err(format!(
            "no `-k privileged` rule for: {}",
            missing.join(", ")
        ))
    }
}
