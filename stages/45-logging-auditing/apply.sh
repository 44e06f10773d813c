install -m 0755 "$STAGE_DIR/files/bosh-start-logging-and-auditing" /var/vcap/bosh/bin/bosh-start-logging-and-auditing
# auditd writes under /var/log/audit, which the agent replaces at bootstrap; it starts auditd
# through the script above.
case "$INIT" in
  systemd) systemctl disable auditd.service ;;
  upstart) update-rc.d auditd disable ;;
esac
