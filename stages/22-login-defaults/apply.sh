# No core dumps (they can hold credentials of jobs).
install -d -m 0755 /etc/security/limits.d
echo '*               hard    core            0' > /etc/security/limits.d/60-bosh.conf
chmod 0644 /etc/security/limits.d/60-bosh.conf

# (Who may use cron and at, and cron's modes: stages 48-cron-at and 89-harden.)

# Login banners (sshd shows issue.net) and an empty motd.
install -m 0644 "$STAGE_DIR/files/issue" /etc/issue
install -m 0644 "$STAGE_DIR/files/issue" /etc/issue.net
: > /etc/motd
chmod 0644 /etc/motd

# The agent's tools on every login's PATH (pam_env reads /etc/environment): upstream's
# bosh_environment line, as its spec checks it.
touch /etc/environment
sed -i '/^PATH/d' /etc/environment
echo 'PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games:/usr/local/games:/var/vcap/bosh/bin"' >> /etc/environment
