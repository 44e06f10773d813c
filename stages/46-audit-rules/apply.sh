# auditd (installed by 10-base-packages, kept from starting at boot by 45-logging-auditing) as
# upstream's bosh_audit_ubuntu leaves it: augenrules loads /etc/audit/rules.d, auditd.conf's
# space and error actions, the syslog plugin, /var/log/audit root's, and upstream's rules
# appended to the package's audit.rules, written for this architecture (see
# files/bosh-audit.rules). The agent starts auditd through bosh-start-logging-and-auditing.
arch="${ARCH:-$(dpkg --print-architecture)}"
case "$arch" in
  armhf) b32=arm ;;
  arm64) b32=arm; b64=aarch64 ;;
  *) echo "46-audit-rules: no audit rules for architecture $arch (armhf, arm64)" >&2; exit 1 ;;
esac

# auditd.conf: upstream's values (override_default_audit_variables); a key the file lacks is added.
conf=/etc/audit/auditd.conf
[ -f "$conf" ] || { echo "$conf is missing: is auditd installed?" >&2; exit 1; }
set_conf() { # key value
  if grep -q "^$1 = " "$conf"; then
    sed -i "s/^$1 = .*\$/$1 = $2/" "$conf"
  else
    echo "$1 = $2" >> "$conf"
  fi
}
set_conf disk_error_action SYSLOG
set_conf disk_full_action SYSLOG
set_conf admin_space_left_action SYSLOG
set_conf space_left_action SYSLOG
set_conf num_logs 5
set_conf max_log_file 6
set_conf max_log_file_action ROTATE
set_conf log_group root
set_conf space_left 75
set_conf admin_space_left 50

# Records also go to syslog (auditd 3 keeps its plugins in /etc/audit, auditd 2 in /etc/audisp).
plugin=
for f in /etc/audit/plugins.d/syslog.conf /etc/audisp/plugins.d/syslog.conf; do
  if [ -f "$f" ]; then plugin=$f; break; fi
done
[ -n "$plugin" ] || { echo "auditd's syslog plugin configuration is missing" >&2; exit 1; }
sed -i 's/^active = .*$/active = yes/' "$plugin"

# The log directory is root's (the package gives it group adm), as upstream's chown.
install -d -m 0750 /var/log/audit
chown root:root /var/log/audit
chmod 0750 /var/log/audit

# The unit loads /etc/audit/rules.d with augenrules rather than a fixed audit.rules: a copy in
# /etc/systemd/system as upstream's (enabling it is left to nobody: the agent starts it).
if [ "$INIT" = systemd ] && [ -f /lib/systemd/system/auditd.service ]; then
  unit=/etc/systemd/system/auditd.service
  cp /lib/systemd/system/auditd.service "$unit"
  sed -i '/#ExecStartPost=-\/sbin\/augenrules --load/s/^#//g' "$unit"
  sed -i '/^ExecStartPost=-\/sbin\/auditctl -R \/etc\/audit\/audit.rules/s/^/#/g' "$unit"
  grep -qx 'ExecStartPost=-/sbin/augenrules --load' "$unit" \
    || { echo "$unit does not load the rules with augenrules" >&2; exit 1; }
  chown root:root "$unit"
  chmod 0644 "$unit"
fi

# The rules: the package's audit.rules (-D, the buffer, the failure mode) and upstream's after it.
rules=/etc/audit/rules.d/audit.rules
install -d -m 0750 /etc/audit/rules.d
if [ ! -f "$rules" ]; then
  printf '%s\n' '## First rule - delete all' '-D' '' '-b 8192' '' '-f 1' > "$rules"
fi
# auditd 3 goes on past a rule the kernel refuses (-c) instead of dropping every rule after it.
if auditctl -v 2>/dev/null | grep -q 'version [3-9]'; then
  printf '\n## Keep loading past a rule this kernel refuses\n-c\n' >> "$rules"
fi

# Tags in files/bosh-audit.rules: "arm64| " lines are for arm64 only; "opt| " lines (the
# syscalls 32-bit ARM calls beyond upstream's) only when auditctl's table knows every syscall
# they name; all other lines are for every architecture. Every syscall is checked against
# the image's own tables, arch=b32 against arm's and arch=b64 against aarch64's.
ausyscall "$b32" --dump | awk 'NR > 1 { print $2 }' > /tmp/audit-syscalls.b32
if [ -n "${b64:-}" ]; then
  ausyscall "$b64" --dump | awk 'NR > 1 { print $2 }' > /tmp/audit-syscalls.b64
fi
known() { # line: every -S name of a rule (-a) is in its architecture's table
  case "$1" in
    -a\ *arch=b64*) table=/tmp/audit-syscalls.b64 ;;
    -a\ *arch=b32*) table=/tmp/audit-syscalls.b32 ;;
    *) return 0 ;;
  esac
  [ -f "$table" ] || return 1
  for s in $(printf '%s\n' "$1" | grep -oE -- '-S [A-Za-z0-9_]+' | cut -d' ' -f2); do
    grep -qx "$s" "$table" || { echo "$s is not a syscall auditctl knows for ${1#*arch=}" >&2; return 1; }
  done
}
while IFS= read -r line; do
  case "$line" in
    "opt| "*)
      line=${line#opt| }
      known "$line" || { echo "46-audit-rules: left out: $line" >&2; continue; }
      ;;
    *"| "*)
      tag=${line%%| *}
      case "$tag" in *[!a-z0-9]*) ;; *) [ "$tag" = "$arch" ] || continue; line=${line#"$tag| "} ;; esac
      ;;
  esac
  case "$line" in
    -a\ *arch=b64*) [ "$arch" = arm64 ] || { echo "46-audit-rules: a b64 rule on $arch: $line" >&2; exit 1; } ;;
  esac
  known "$line" || { echo "46-audit-rules: this rule would not load: $line" >&2; exit 1; }
  printf '%s\n' "$line" >> "$rules"
done < "$STAGE_DIR/files/bosh-audit.rules"
rm -f /tmp/audit-syscalls.b32 /tmp/audit-syscalls.b64

# Every setuid/setgid program (record_use_of_privileged_binaries), sorted so that two builds
# write the same file; 89-privileged-audit adds those later stages install.
dirs=()
for d in /bin /sbin /usr/bin /usr/sbin /boot; do
  if [ -e "$d" ]; then dirs+=("$d"); fi
done
find "${dirs[@]}" -xdev \( -perm -4000 -o -perm -2000 \) -type f | LC_ALL=C sort | while IFS= read -r p; do
  printf -- '-a always,exit -F path=%s -F perm=x -F auid>=500 -F auid!=4294967295 -k privileged\n' "$p"
done >> "$rules"

if grep -q -- '-e 2' "$rules"; then
  echo "$rules makes the rules immutable (-e 2): the agent must be able to reload them" >&2
  exit 1
fi
chown root:root "$rules"
chmod 0640 "$rules"

# /etc/audit/audit.rules as augenrules compiles it (what `auditctl -R` loads, and a file
# upstream's modes check); no .prev copy. An auditd without augenrules loads it as it is.
if command -v augenrules >/dev/null; then
  augenrules >/dev/null
  rm -f /etc/audit/audit.rules.prev
else
  install -m 0640 -o root -g root "$rules" /etc/audit/audit.rules
fi
