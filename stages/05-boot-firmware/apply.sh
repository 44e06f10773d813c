# raspi-firmware's hook writes cmdline.txt from /etc/default/raspi-firmware. Unset, it takes
# the root device and consoles of wherever it runs: at build time, the build host's. Name the
# root by the label pistemcell gives the image's root filesystem and the Pi's serial console
# (the firmware maps serial0 to the board's UART). The image's own cmdline.txt (PARTUUID, or
# NFS for Bakery) is written by the image step; these settings take over on kernel updates.
conf=/etc/default/raspi-firmware
[ -f "$conf" ] || { echo "$conf is missing: raspi-firmware did not install" >&2; exit 1; }
sed -i \
  -e 's|^#\?ROOTPART=.*|ROOTPART="LABEL=rootfs"|' \
  -e 's|^#\?CONSOLES=.*|CONSOLES="tty1 serial0,115200"|' \
  "$conf"
grep -q '^ROOTPART="LABEL=rootfs"$' "$conf" && grep -q '^CONSOLES=' "$conf" || {
  echo "$conf has no ROOTPART/CONSOLES lines to set: raspi-firmware changed its defaults file" >&2
  exit 1
}

# The firmware itself must be there (the kernel comes in the next stage).
ls /boot/firmware/start*.elf /boot/firmware/bootcode.bin >/dev/null || {
  echo "raspi-firmware did not put the firmware in /boot/firmware" >&2
  exit 1
}
