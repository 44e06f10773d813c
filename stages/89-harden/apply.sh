# Upstream's base_file_permission (restrict_binary_setuid): only su and sudo (sudoedit is a
# link to it) keep their setuid/setgid bits; bosh ssh users need sudo. The agent runs as root
# and needs none (mount, mount.nfs, passwd...); no job may rely on crontab's setgid either.
# This runs after the last stage that installs packages.
find / -xdev -type f -perm /6000 ! \( -name su -o -name sudo -o -name sudoedit \) \
  -printf 'setuid/setgid bits removed: %p (%m)\n' -exec chmod ug-s {} +
for need in sudo su; do
  path=$(command -v "$need") || { echo "$need is missing" >&2; exit 1; }
  [ -u "$(readlink -f "$path")" ] || { echo "$path is not setuid: bosh ssh needs sudo and su" >&2; exit 1; }
done

# No regular file anyone may write.
find / -xdev -type f -perm -0002 -printf 'world-writable: %p (%m), made o-w\n' -exec chmod o-w {} +

# cron's files are root's alone (dpkg resets a directory's mode when a package ships it, so
# this comes after the last package; stage 48-cron-at says who may use cron and at).
for d in /etc/cron.hourly /etc/cron.daily /etc/cron.weekly /etc/cron.monthly /etc/cron.d; do
  install -d -m 0700 -o root -g root "$d"
  chown root:root "$d"
  chmod 0700 "$d"
done
for f in /etc/crontab /etc/cron.allow /etc/at.allow; do
  if [ -f "$f" ]; then
    chown root:root "$f"
    chmod 0600 "$f"
  fi
done

# Lock files for vcap's jobs, as upstream's bosh_go_agent: /var/lock (a link to /run/lock)
# root:vcap 0770. /run is a tmpfs on a running VM, where systemd-tmpfiles makes /run/lock
# again, as on upstream's stemcells.
lock=$(readlink -f /var/lock)
install -d "$lock"
chmod 0770 "$lock"
chown -h root:vcap /var/lock
chown -R root:vcap "$lock"

# Ctrl-Alt-Del on a Pi's keyboard does not reboot it: systemd logs that the masked target was
# refused (and pressed 7 times in 2 s does nothing either, rather than force a reboot);
# upstart logs the key press instead (upstream's escape_ctrl_alt_del).
case "$INIT" in
  systemd)
    systemctl mask ctrl-alt-del.target
    install -d -m 0755 /etc/systemd/system.conf.d
    printf '[Manager]\nCtrlAltDelBurstAction=none\n' > /etc/systemd/system.conf.d/60-bosh-ctrl-alt-del.conf
    chmod 0644 /etc/systemd/system.conf.d/60-bosh-ctrl-alt-del.conf
    ;;
  upstart)
    install -d -m 0755 /etc/init
    echo 'exec /usr/bin/logger -p security.info "Control-Alt-Delete pressed"' > /etc/init/control-alt-delete.override
    ;;
esac
