# Groups vcap and bosh ssh users join. adm, audio, cdrom, dialout, floppy, video, dip, plugdev
# and utmp come with base-passwd; check rather than assume.
for g in adm audio cdrom dialout floppy video dip plugdev utmp; do
  getent group "$g" >/dev/null || { echo "group $g is missing from the base system" >&2; exit 1; }
done
# The agent runs `chown root:syslog` on the log directory (fatal when the group is missing):
# Debian has no syslog user or group, Ubuntu has both.
getent group syslog >/dev/null || groupadd --system syslog
getent passwd syslog >/dev/null ||
  useradd --system --gid syslog --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin syslog

# vcap must be uid 1000: releases and the agent assume it.
owner=$(getent passwd 1000 | cut -d: -f1 || true)
if [ -n "$owner" ] && [ "$owner" != vcap ]; then
  echo "uid 1000 belongs to '$owner'; the profile must leave uid 1000 to vcap" >&2
  exit 1
fi
# vcap's group first, so it gets gid 1000 as on upstream stemcells.
if ! getent group vcap >/dev/null; then
  if getent group 1000 >/dev/null; then groupadd vcap; else groupadd --gid 1000 vcap; fi
fi
getent group admin >/dev/null || groupadd --system admin
getent group bosh_sshers >/dev/null || groupadd bosh_sshers
getent group bosh_sudoers >/dev/null || groupadd bosh_sudoers
if ! getent passwd vcap >/dev/null; then
  useradd --uid 1000 --gid vcap --create-home --home-dir /home/vcap --shell /bin/bash \
    --comment 'BOSH System User' vcap
fi
usermod --shell /bin/bash --groups admin,adm,audio,cdrom,dialout,floppy,video,dip,plugdev,bosh_sshers vcap
chmod 0700 /home/vcap
# syslog: in vcap (the contract), and in adm like on Ubuntu, since rsyslogd, running as syslog,
# gives the files it creates to group adm.
usermod --append --groups vcap,adm syslog

# No password logins: ssh takes keys only, and the director sets vcap's password from
# env.bosh.password when a deployment asks for one. '*' (not '!') so sshd does not treat the
# accounts as locked for key logins.
usermod --password '*' vcap
usermod --password '*' root
# No group passwords (newgrp into a system group).
sed -i 's/^\([^:]*\):[^:]*:/\1:*:/' /etc/gshadow

# No one but root reads the password and group password files (upstream's
# base_file_permission). root reads them anyway; sshd, login, su and sudo run as root.
chown root:root /etc/shadow /etc/gshadow
chmod 0000 /etc/shadow /etc/gshadow

# The agent's tools on the PATH of interactive shells, and the instance in the prompt, as
# upstream's bosh_users: /etc/profile.d/00-bosh-ps1 (no .sh: only the bashrcs source it, last,
# after the distribution's own PS1). /etc/skel's is what bosh ssh users get (useradd -m): they
# get the PATH too (upstream gives it root and vcap only; /etc/profile resets pam_env's PATH).
install -m 0644 "$STAGE_DIR/files/bosh-prompt.sh" /etc/profile.d/00-bosh-ps1
for rc in /root/.bashrc /home/vcap/.bashrc /etc/skel/.bashrc; do
  [ -f "$rc" ] || install -m 0644 /dev/null "$rc"
  grep -qxF 'export PATH=/var/vcap/bosh/bin:$PATH' "$rc" || echo 'export PATH=/var/vcap/bosh/bin:$PATH' >> "$rc"
  grep -qxF 'source /etc/profile.d/00-bosh-ps1' "$rc" || echo 'source /etc/profile.d/00-bosh-ps1' >> "$rc"
done
chown vcap:vcap /home/vcap/.bashrc
# root's login shell reads its bashrc (Debian's and Ubuntu's /root/.profile do; make sure).
[ -f /root/.profile ] || install -m 0644 /dev/null /root/.profile
grep -q '\.bashrc' /root/.profile ||
  printf '%s\n' 'if [ -n "${BASH:-}" ] && [ -f ~/.bashrc ]; then . ~/.bashrc; fi' >> /root/.profile
