# Appended to /etc/modprobe.d/blacklist.conf as upstream does (Ubuntu's kmod ships the file;
# Debian and Raspbian do not). The initramfs, built after the kernel stages, carries it too.
install -d -m 0755 /etc/modprobe.d
f=/etc/modprobe.d/blacklist.conf
cat "$STAGE_DIR/files/blacklist.conf" >> "$f"
chown root:root "$f"
chmod 0644 "$f"
# Upstream's two lines a Pi must not have, and the modules a netbooted Pi mounts its root with
# (USB Ethernet, NFS): no file of the image may block them.
need='usb[-_]storage|uas|usbnet|smsc95xx|lan78xx|r8152|ax88179_178a|cdc_ether|nfs|nfsv3|nfsv4|sunrpc|lockd|rpcsec_gss_krb5'
if grep -Es "^[[:space:]]*(install|blacklist)[[:space:]]+($need)([[:space:]]|\$)|^[[:space:]]*options[[:space:]]+ipv6[[:space:]].*disable=1" /etc/modprobe.d/*.conf; then
  echo "/etc/modprobe.d blocks a module a Pi needs (USB storage, USB Ethernet, NFS) or IPv6, which the BOSH agent turns on" >&2
  exit 1
fi
