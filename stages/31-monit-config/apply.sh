# monit itself (5.2.5, pinned) is installed by a built-in stage after the OS stages.
install -m 0700 -o root -g root "$ASSETS/services/monit/monitrc" /var/vcap/bosh/etc/monitrc
install -m 0600 -o root -g root "$ASSETS/services/monit/alerts.monitrc" /var/vcap/monit/alerts.monitrc
# monit refuses to start when an include pattern matches nothing.
[ -e /var/vcap/monit/empty.monitrc ] || install -m 0644 /dev/null /var/vcap/monit/empty.monitrc
