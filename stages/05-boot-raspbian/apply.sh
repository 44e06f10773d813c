# Where the firmware went: /boot/firmware (bookworm) or /boot (buster).
boot=
for d in /boot/firmware /boot; do
  if ls "$d"/start*.elf >/dev/null 2>&1; then boot=$d; break; fi
done
[ -n "$boot" ] || { echo "raspberrypi-bootloader put no start*.elf in /boot/firmware or /boot" >&2; exit 1; }
ls "$boot"/kernel*.img >/dev/null 2>&1 || {
  echo "raspberrypi-kernel put no kernel*.img in $boot" >&2
  exit 1
}

# The firmware's settings, unless a package wrote them: the UART on (the console BOSH
# operators read), and the initramfs that comes with the kernel where there is one.
if [ ! -e "$boot/config.txt" ]; then
  {
    echo "# Written by pistemcell (05-boot-raspbian). The firmware picks kernel.img, kernel7.img,"
    echo "# kernel7l.img or kernel8.img for the board."
    echo "[all]"
    echo "enable_uart=1"
    if ls "$boot"/initramfs* >/dev/null 2>&1; then echo "auto_initramfs=1"; fi
  } > "$boot/config.txt"
fi
