# Why runit and not systemd units, on systemd profiles too: see assets/services/README.md.
src="$ASSETS/services/runit"
for svc in agent monit; do
  rm -rf "/etc/sv/$svc"
  install -d -m 0755 "/etc/sv/$svc" "/etc/sv/$svc/log"
  install -m 0755 "$src/$svc/run" "/etc/sv/$svc/run"
  install -m 0755 "$src/$svc/log/run" "/etc/sv/$svc/log/run"
done
install -m 0644 "$src/monit/down" /etc/sv/monit/down
# The agent's service holds its start line and is root's alone; monit's stays readable since
# processes monit starts inherit it as working directory.
chown -R root:root /etc/sv/agent /etc/sv/monit
chmod -R go-rwx /etc/sv/agent

case "$INIT" in
  systemd)
    # Debian's /etc/runit/2 (run by runit.service) points /etc/service at runsvdir/svmanaged
    # when runit is not PID 1: a link made in /etc/service at build time (runsvdir/default)
    # would never start. The agent links monit through /etc/service at run time, which then
    # is svmanaged.
    [ -x /etc/runit/2 ] || { echo "/etc/runit/2 is missing (runit)" >&2; exit 1; }
    install -d -m 0755 /etc/runit/runsvdir/svmanaged
    ln -sfn /etc/sv/agent /etc/runit/runsvdir/svmanaged/agent
    # A runit whose /etc/runit/2 does not switch to svmanaged (older packagings) scans the
    # directory /etc/service points at now; only one of the two is ever scanned.
    current=$(readlink -f /etc/service || true)
    if [ -n "$current" ] && [ -d "$current" ] && [ "$current" != /etc/runit/runsvdir/svmanaged ]; then
      ln -sfn /etc/sv/agent "$current/agent"
    fi
    install -m 0644 "$ASSETS/services/systemd/runit.service" /etc/systemd/system/runit.service
    systemctl enable runit.service
    ;;
  upstart)
    # Ubuntu trusty's runit runs runsvdir on the /etc/service directory from upstart.
    if [ -L /etc/service ]; then
      echo "/etc/service is a link on an upstart profile; expected trusty's directory" >&2
      exit 1
    fi
    install -d -m 0755 /etc/service
    ln -sfn /etc/sv/agent /etc/service/agent
    ;;
  *)
    echo "no runit supervision for init system '$INIT'" >&2
    exit 1
    ;;
esac
