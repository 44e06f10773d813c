#!/bin/bash
# Run by the BOSH agent after it writes /etc/logrotate.d/<name> (failures are ignored): run
# logrotate four times an hour, at a random minute so VMs do not rotate all at once.
set -e
first=${firstMinute:-$((RANDOM % 15))}
echo "$first,$((first + 15)),$((first + 30)),$((first + 45)) * * * * root /usr/bin/logrotate-cron" > /etc/cron.d/logrotate.new
chmod 0600 /etc/cron.d/logrotate.new
mv -f /etc/cron.d/logrotate.new /etc/cron.d/logrotate
