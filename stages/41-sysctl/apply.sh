install -d -m 0755 /etc/sysctl.d
install -m 0644 "$STAGE_DIR/files/60-bosh-sysctl.conf" /etc/sysctl.d/60-bosh-sysctl.conf
install -m 0644 "$STAGE_DIR/files/60-bosh-sysctl-neigh-fix.conf" /etc/sysctl.d/60-bosh-sysctl-neigh-fix.conf
# Every line is key=value (a typo here would only show as a boot-time warning).
if grep -Ev '^\s*(#|$)' /etc/sysctl.d/60-bosh-sysctl*.conf | grep -Ev ':[a-z0-9_.]+=[0-9]+$'; then
  echo "malformed lines in /etc/sysctl.d/60-bosh-sysctl*.conf" >&2
  exit 1
fi

# Enabling IPv6, the agent also reads /boot/grub/grub.cfg (to drop ipv6.disable=1 and reboot)
# and fails when it cannot. A Pi boots without grub: give it a file with nothing to drop.
if [ ! -e /boot/grub/grub.cfg ]; then
  install -d -m 0755 /boot/grub
  printf '# No grub on this board; read by the BOSH agent when it enables IPv6.\n' > /boot/grub/grub.cfg
  chmod 0644 /boot/grub/grub.cfg
fi
