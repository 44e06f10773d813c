# rsyslog.conf with upstream's settings. omrelp (rsyslog-relp, stage 13) takes tls.tlslib from
# rsyslog 8.2008 on; older ones (Raspbian buster's, trusty's) load it plain.
if dpkg --compare-versions "$(dpkg-query -W -f '${Version}' rsyslog)" ge 8.2008; then
  relp='module( load="omrelp" tls.tlslib="openssl" )'
else
  relp='module( load="omrelp" )'
fi
sed "s|^@RELP@\$|$relp|" "$STAGE_DIR/files/rsyslog.conf" > /etc/rsyslog.conf
chmod 0644 /etc/rsyslog.conf
install -d -m 0755 /etc/rsyslog.d
# Rules shipped by packages would duplicate ours.
find /etc/rsyslog.d -mindepth 1 -maxdepth 1 -name '*.conf' -delete
install -m 0644 "$STAGE_DIR/files/50-default.conf" /etc/rsyslog.d/50-default.conf
install -d -m 0700 -o syslog -g syslog /var/spool/rsyslog
chown syslog:syslog /var/spool/rsyslog
# rsyslogd runs as syslog: /var/log must be writable by its group until the agent replaces it.
chown root:syslog /var/log
chmod 0775 /var/log
# The files rsyslog writes, as it would make them (upstream makes them too).
for f in auth.log cron.log daemon.log kern.log syslog; do
  [ -f "/var/log/$f" ] || : > "/var/log/$f"
  chown syslog:syslog "/var/log/$f"
  chmod 0600 "/var/log/$f"
done
rsyslogd -N1 -f /etc/rsyslog.conf

# rsyslog starts once the agent has mounted /var/log (systemd; under runit and upstart the
# agent's bosh-start-logging-and-auditing starts it).
install -d -m 0755 /usr/local/bin
install -m 0755 "$STAGE_DIR/files/wait_for_var_log_to_be_mounted" /usr/local/bin/wait_for_var_log_to_be_mounted
if [ "$INIT" = systemd ]; then
  install -d -m 0755 /etc/systemd/system/rsyslog.service.d
  install -m 0644 "$STAGE_DIR/files/rsyslog-override.conf" /etc/systemd/system/rsyslog.service.d/00-override.conf
fi

install -m 0644 "$STAGE_DIR/files/logrotate.conf" /etc/logrotate.conf
install -m 0644 "$STAGE_DIR/files/logrotate-rsyslog" /etc/logrotate.d/rsyslog
install -m 0644 "$STAGE_DIR/files/default_su_directive" /etc/logrotate.d/default_su_directive
# wtmp and btmp are rotated in logrotate.conf.
rm -f /etc/logrotate.d/wtmp /etc/logrotate.d/btmp
install -m 0755 "$STAGE_DIR/files/rsyslog-reopen" /var/vcap/bosh/bin/rsyslog-reopen
install -m 0700 "$STAGE_DIR/files/setup-logrotate.sh" /var/vcap/bosh/bin/setup-logrotate.sh
# cron runs logrotate every 15 minutes through this wrapper; the daily job it replaces goes,
# as upstream moves it.
install -m 0755 "$STAGE_DIR/files/logrotate-cron" /usr/bin/logrotate-cron
rm -f /etc/cron.daily/logrotate /var/vcap/bosh/bin/logrotate-cron
# A fixed minute at build time (reproducible); the agent picks a random one on each VM.
firstMinute=0 /var/vcap/bosh/bin/setup-logrotate.sh
logrotate --debug /etc/logrotate.conf >/dev/null 2>&1 || { logrotate --debug /etc/logrotate.conf; exit 1; }
