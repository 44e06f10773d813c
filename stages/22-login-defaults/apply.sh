# No core dumps (they can hold credentials of jobs).
install -d -m 0755 /etc/security/limits.d
echo '*               hard    core            0' > /etc/security/limits.d/60-bosh.conf
chmod 0644 /etc/security/limits.d/60-bosh.conf

# Only vcap (and root, always) may use cron and at.
rm -f /etc/cron.deny /etc/at.deny
for f in /etc/cron.allow /etc/at.allow; do
  echo vcap > "$f"
  chown root:root "$f"
  chmod 0600 "$f"
done
for d in /etc/cron.hourly /etc/cron.daily /etc/cron.weekly /etc/cron.monthly /etc/cron.d; do
  if [ -d "$d" ]; then chown root:root "$d"; chmod 0700 "$d"; fi
done
if [ -f /etc/crontab ]; then chown root:root /etc/crontab; chmod 0600 /etc/crontab; fi

# Login banners (sshd shows issue.net) and an empty motd.
install -m 0644 "$STAGE_DIR/files/issue" /etc/issue
install -m 0644 "$STAGE_DIR/files/issue" /etc/issue.net
: > /etc/motd
chmod 0644 /etc/motd

# The agent's tools on every login's PATH (pam_env reads /etc/environment).
touch /etc/environment
sed -i '/^PATH=/d' /etc/environment
echo 'PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/var/vcap/bosh/bin"' >> /etc/environment
