# Package indices and downloaded packages (apt-get update on the VM fetches fresh ones).
find /var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name lock ! -name partial -exec rm -rf {} +
find /var/lib/apt/lists/partial -mindepth 1 -delete 2>/dev/null || true
find /var/cache/apt -name '*.bin' -delete
find /var/cache/apt/archives -name '*.deb' -delete 2>/dev/null || true
find /var/cache/debconf -name '*-old' -delete 2>/dev/null || true
rm -f /var/lib/dpkg/*-old
# ldconfig's aux cache records inodes and ctimes of this build: it differs between two builds
# of the same inputs, and ldconfig rebuilds it when needed.
rm -f /var/cache/ldconfig/aux-cache

# Logs of the build: keep the files (owners and modes matter), empty them; drop rotated ones.
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
find /var/log -type f -exec truncate -s 0 {} +

# Each VM makes its own identity: an empty machine-id (not a missing one) lets systemd
# generate it on first boot; ssh host keys (ssh-host-keys.service); no random seed.
if [ -e /etc/machine-id ] || [ "$INIT" = systemd ]; then
  : > /etc/machine-id
  chmod 0444 /etc/machine-id
fi
rm -f /var/lib/dbus/machine-id
rm -f /var/lib/systemd/random-seed
rm -f /etc/ssh/ssh_host_*key /etc/ssh/ssh_host_*key.pub

# No name servers of the build host. resolvconf owns /etc/resolv.conf (a link into /run);
# make sure it is that link and that its inputs are empty.
if [ -d /etc/resolvconf ]; then
  ln -sfn ../run/resolvconf/resolv.conf /etc/resolv.conf
  for f in head base tail original; do
    if [ -f "/etc/resolvconf/resolv.conf.d/$f" ]; then : > "/etc/resolvconf/resolv.conf.d/$f"; fi
  done
else
  rm -f /etc/resolv.conf
fi

# Temporary files and anything left in /run (a tmpfs at boot). Never what the runner mounted
# there, nor this stage's own copies.
keep() { # path: a mount point, or holds STAGE_DIR / ASSETS
  mountpoint -q "$1" && return 0
  case "$STAGE_DIR/" in "$1"/*) return 0 ;; esac
  case "$ASSETS/" in "$1"/*) return 0 ;; esac
  return 1
}
for dir in /tmp /var/tmp /run; do
  [ -d "$dir" ] || continue
  mountpoint -q "$dir" && continue
  for entry in "$dir"/* "$dir"/.[!.]* "$dir"/..?*; do
    { [ -e "$entry" ] || [ -L "$entry" ]; } || continue
    [ "$entry" = /run/lock ] && continue
    keep "$entry" || rm -rf "$entry"
  done
done
chmod 1777 /tmp /var/tmp
rm -f /root/.bash_history /home/vcap/.bash_history

# fake-hwclock's postinst saved the build machine's clock. A Pi without RTC starts from this
# time until NTP answers: make it the image's own date (the build's epoch), the same on every build.
if [ -f /etc/fake-hwclock.data ] && [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
  date -u -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%d %H:%M:%S' > /etc/fake-hwclock.data
fi
