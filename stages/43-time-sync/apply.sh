conf=/etc/chrony/chrony.conf
[ -f "$conf" ] || { echo "$conf is missing (chrony)" >&2; exit 1; }
# Time sources come from the director (sync-time writes sources.d/bosh.sources); no public
# pools, a BOSH network may have no way out.
sed -i -E '/^(pool|server|peer) /d' "$conf"
grep -q '^sourcedir /etc/chrony/sources.d' "$conf" || echo 'sourcedir /etc/chrony/sources.d' >> "$conf"
install -d -m 0755 /etc/chrony/sources.d
# Step the clock whenever it is more than a second off during the first three updates (a Pi
# boots with the time fake-hwclock saved, possibly long ago).
sed -i '/^makestep /d' "$conf"
echo 'makestep 1 3' >> "$conf"

install -m 0755 "$STAGE_DIR/files/sync-time" /var/vcap/bosh/bin/sync-time

if [ "$INIT" = systemd ]; then
  install -d -m 0755 /etc/systemd/system/chrony.service.d
  install -m 0644 "$STAGE_DIR/files/chrony-bosh.conf" /etc/systemd/system/chrony.service.d/60-bosh.conf
  # fake-hwclock restores the last saved time early at boot and saves it at shutdown.
  systemctl enable fake-hwclock.service
fi
