install -d -m 0755 /etc/systemd/network
install -m 0644 "$STAGE_DIR/files/90-bosh-dhcp.network" /etc/systemd/network/90-bosh-dhcp.network
install -m 0755 "$STAGE_DIR/files/restart_networking" /var/vcap/bosh/bin/restart_networking
install -d -m 0755 /usr/local/sbin
install -m 0755 "$STAGE_DIR/files/networkd-resolvconf" /usr/local/sbin/networkd-resolvconf
install -m 0644 "$STAGE_DIR/files/networkd-resolvconf.service" /etc/systemd/system/networkd-resolvconf.service
install -m 0644 "$STAGE_DIR/files/networkd-resolvconf.path" /etc/systemd/system/networkd-resolvconf.path

systemctl enable systemd-networkd.service networkd-resolvconf.path networkd-resolvconf.service
# The agent brings the network up itself; do not hold the boot for "online".
systemctl disable systemd-networkd-wait-online.service 2>/dev/null || true
systemctl mask systemd-networkd-wait-online.service
# ifupdown would fight networkd over the interfaces.
if [ -f /etc/network/interfaces ]; then
  printf 'auto lo\niface lo inet loopback\n' > /etc/network/interfaces
fi
