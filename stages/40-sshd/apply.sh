tmp=$(mktemp /etc/ssh/sshd_config.XXXXXX)
cat "$STAGE_DIR/files/sshd_config" > "$tmp"
# OpenSSH >= 7.3 reads drop-ins; trusty's 6.6 would reject the keyword.
if [ -d /etc/ssh/sshd_config.d ]; then
  printf '\nInclude /etc/ssh/sshd_config.d/*.conf\n' >> "$tmp"
fi
chmod 0600 "$tmp"

# Check the configuration with a throwaway host key before it replaces the working one.
check=$(mktemp -d)
ssh-keygen -q -t ed25519 -N '' -f "$check/key"
install -d -m 0755 /run/sshd
if ! /usr/sbin/sshd -t -f "$tmp" -h "$check/key"; then
  rm -rf "$check" "$tmp"
  echo "sshd rejects the new sshd_config" >&2
  exit 1
fi
rm -rf "$check"
mv -f "$tmp" /etc/ssh/sshd_config

# Host keys are made on each VM's first boot, never shipped.
rm -f /etc/ssh/ssh_host_*key /etc/ssh/ssh_host_*key.pub
case "$INIT" in
  systemd)
    install -m 0644 "$STAGE_DIR/files/ssh-host-keys.service" /etc/systemd/system/ssh-host-keys.service
    systemctl enable ssh-host-keys.service
    ;;
  upstart)
    install -m 0644 "$STAGE_DIR/files/ssh-host-keys.upstart" /etc/init/ssh-host-keys.conf
    ;;
  *)
    echo "no first-boot host key generation for init system '$INIT'" >&2
    exit 1
    ;;
esac

# Ubuntu's motd-news fetches news at login: off, as upstream (the file is made on every
# profile, so the setting holds if a package brings motd-news later).
if [ -f /etc/default/motd-news ]; then
  sed -i 's/^ENABLED=.*/ENABLED=0/' /etc/default/motd-news
  grep -q '^ENABLED=0' /etc/default/motd-news || echo 'ENABLED=0' >> /etc/default/motd-news
else
  echo 'ENABLED=0' > /etc/default/motd-news
  chmod 0644 /etc/default/motd-news
fi
