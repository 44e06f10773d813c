install -m 0600 -o root -g root "$ASSETS/infrastructure/warden/agent.json" /var/vcap/bosh/agent.json
# The warden CPI bind-mounts its development tree here.
install -d -m 0755 /warden-cpi-dev

install -m 0755 "$STAGE_DIR/files/runsvdir-start" /usr/sbin/runsvdir-start
install -m 0755 "$STAGE_DIR/files/bosh-start-logging-and-auditing" /var/vcap/bosh/bin/bosh-start-logging-and-auditing
install -m 0755 "$STAGE_DIR/files/restart_networking" /var/vcap/bosh/bin/restart_networking

for svc in rsyslog cron; do
  install -d -m 0755 "/etc/sv/$svc"
  install -m 0755 "$STAGE_DIR/files/$svc.run" "/etc/sv/$svc/run"
done

# runsvdir-start runs on /etc/service itself. On Debian that is a link to
# /etc/runit/runsvdir/current (the default directory; runit is not switched to svmanaged in a
# container); on trusty a plain directory.
if [ -L /etc/service ]; then
  dir=$(readlink -f /etc/service)
else
  dir=/etc/service
  install -d -m 0755 "$dir"
fi
for svc in agent rsyslog cron; do
  ln -sfn "/etc/sv/$svc" "$dir/$svc"
done
# sshd: Debian's openssh-server ships /etc/sv/ssh (linked by runit-helper); trusty does not.
if [ -d /etc/sv/ssh ]; then
  ln -sfn /etc/sv/ssh "$dir/ssh"
fi

# The image names its infrastructure, as upstream's system_parameters stage does (check-os
# scopes its warden-only and not-on-warden checks by it).
printf '%s' warden > /var/vcap/bosh/etc/infrastructure
chmod 0644 /var/vcap/bosh/etc/infrastructure
