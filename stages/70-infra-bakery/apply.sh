install -m 0600 -o root -g root "$ASSETS/infrastructure/bakery/agent.json" /var/vcap/bosh/agent.json
# Bakery writes settings.json and disks.json here (on the server, into this Pi's root export).
install -d -m 0700 -o root -g root /piConfig

install -m 0755 "$STAGE_DIR/files/open-iscsi" /etc/init.d/open-iscsi
# A real multipath-tools init script (the package) would do; otherwise a no-op one.
if [ ! -e /etc/init.d/multipath-tools ]; then
  install -m 0755 "$STAGE_DIR/files/multipath-tools" /etc/init.d/multipath-tools
fi

case "$INIT" in
  systemd)
    install -m 0644 "$STAGE_DIR/files/bakery-disks.service" /etc/systemd/system/bakery-disks.service
    install -m 0644 "$STAGE_DIR/files/bakery-disks.timer" /etc/systemd/system/bakery-disks.timer
    install -d -m 0755 /etc/systemd/system/runit.service.d
    install -m 0644 "$STAGE_DIR/files/runit-after-disks.conf" /etc/systemd/system/runit.service.d/bakery-disks.conf
    systemctl enable bakery-disks.service bakery-disks.timer
    ;;
  upstart)
    update-rc.d open-iscsi defaults
    install -m 0644 "$STAGE_DIR/files/cron-bakery-disks" /etc/cron.d/bakery-disks
    ;;
esac

# Every tool the shim and the agent's mapper handling use.
for cmd in jq kpartx dmsetup losetup mount.nfs flock mountpoint logger; do
  command -v "$cmd" >/dev/null || { echo "the Bakery disk shim needs $cmd" >&2; exit 1; }
done
bash -n /etc/init.d/open-iscsi

# The image names its infrastructure, as upstream's system_parameters stage does (check-os
# scopes its warden-only and not-on-warden checks by it).
printf '%s' bakery > /var/vcap/bosh/etc/infrastructure
chmod 0644 /var/vcap/bosh/etc/infrastructure
