# anacron (stage 13) runs the daily, weekly and monthly jobs: start them up to an hour late so
# VMs booted together do not run them at once (upstream's RANDOM_DELAY=60 as anacrontab's
# second line, before any job).
if [ -f /etc/anacrontab ]; then
  { sed -n '1p' /etc/anacrontab; echo 'RANDOM_DELAY=60'; sed '1d' /etc/anacrontab | { grep -v '^RANDOM_DELAY' || true; }; } > /etc/anacrontab.new
  chmod 0644 /etc/anacrontab.new
  mv -f /etc/anacrontab.new /etc/anacrontab
fi

# Nothing new is installed on a VM: no man-db rebuilds, no unattended apt runs.
rm -f /etc/cron.weekly/man-db /etc/cron.daily/man-db /etc/cron.daily/man-db.cron
if [ -d /etc/apt/apt.conf.d ]; then
  printf 'APT::Periodic {\n  Enable "0";\n}\n' > /etc/apt/apt.conf.d/02periodic
  chmod 0644 /etc/apt/apt.conf.d/02periodic
fi

# Only vcap (and root, always) may use crontab and at; cron's files are root's alone.
# (Stage 89-harden applies the modes again after the last package is installed.)
rm -f /etc/cron.deny /etc/at.deny
for f in /etc/cron.allow /etc/at.allow; do
  echo vcap > "$f"
  chown root:root "$f"
  chmod 0600 "$f"
done
for d in /etc/cron.hourly /etc/cron.daily /etc/cron.weekly /etc/cron.monthly /etc/cron.d; do
  install -d -m 0700 -o root -g root "$d"
  chown root:root "$d"
  chmod 0700 "$d"
done
if [ -f /etc/crontab ]; then
  chown root:root /etc/crontab
  chmod 0600 /etc/crontab
fi
