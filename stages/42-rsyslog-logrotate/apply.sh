install -m 0644 "$STAGE_DIR/files/rsyslog.conf" /etc/rsyslog.conf
install -d -m 0755 /etc/rsyslog.d
# Rules shipped by packages would duplicate ours.
find /etc/rsyslog.d -mindepth 1 -maxdepth 1 -name '*.conf' -delete
install -m 0644 "$STAGE_DIR/files/50-default.conf" /etc/rsyslog.d/50-default.conf
install -d -m 0700 -o syslog -g syslog /var/spool/rsyslog
chown syslog:syslog /var/spool/rsyslog
# rsyslogd runs as syslog: /var/log must be writable by its group until the agent replaces it.
chown root:syslog /var/log
chmod 0775 /var/log
rsyslogd -N1 -f /etc/rsyslog.conf

install -m 0644 "$STAGE_DIR/files/logrotate.conf" /etc/logrotate.conf
install -m 0644 "$STAGE_DIR/files/logrotate-rsyslog" /etc/logrotate.d/rsyslog
# wtmp and btmp are rotated in logrotate.conf.
rm -f /etc/logrotate.d/wtmp /etc/logrotate.d/btmp
install -m 0755 "$STAGE_DIR/files/rsyslog-reopen" /var/vcap/bosh/bin/rsyslog-reopen
install -m 0700 "$STAGE_DIR/files/setup-logrotate.sh" /var/vcap/bosh/bin/setup-logrotate.sh
install -m 0755 "$STAGE_DIR/files/logrotate-cron" /var/vcap/bosh/bin/logrotate-cron
# A fixed minute at build time (reproducible); the agent picks a random one on each VM.
firstMinute=0 /var/vcap/bosh/bin/setup-logrotate.sh
logrotate --debug /etc/logrotate.conf >/dev/null 2>&1 || { logrotate --debug /etc/logrotate.conf; exit 1; }
