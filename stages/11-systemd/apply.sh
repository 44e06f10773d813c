for cmd in systemctl shutdown sfdisk; do
  command -v "$cmd" >/dev/null || { echo "$cmd is missing after installing systemd, systemd-sysv, fdisk" >&2; exit 1; }
done
[ -x /sbin/init ] || { echo "/sbin/init is missing (systemd-sysv)" >&2; exit 1; }

install -d -m 0755 /etc/systemd/journald.conf.d /etc/systemd/logind.conf.d
install -m 0644 "$STAGE_DIR/files/journald-bosh.conf" /etc/systemd/journald.conf.d/60-bosh.conf
install -m 0644 "$STAGE_DIR/files/logind-bosh.conf" /etc/systemd/logind.conf.d/60-bosh.conf

# No unattended apt runs on a BOSH VM: the stemcell is replaced, not upgraded in place.
for timer in apt-daily.timer apt-daily-upgrade.timer; do
  if [ -e "/lib/systemd/system/$timer" ] || [ -e "/usr/lib/systemd/system/$timer" ]; then
    systemctl disable "$timer" 2>/dev/null || true
    systemctl mask "$timer"
  fi
done
