# The runner installed the packages; check that every command the agent runs is there, so a
# missing one fails the build here instead of crash-looping the agent on a Pi.
missing=()
for cmd in parted partprobe blkid lsblk wipefs mkswap partx mount umount swapon mke2fs \
  resize2fs udevadm useradd usermod userdel chpasswd ip pkill tar bash update-ca-certificates \
  sv runsv runsvdir svlogd resolvconf arping sudo visudo sshd ssh-keygen rsyslogd logrotate \
  chronyc fake-hwclock auditctl curl; do
  command -v "$cmd" >/dev/null || missing+=("$cmd")
done
if ((${#missing[@]})); then
  echo "commands the BOSH agent needs are missing: ${missing[*]}" >&2
  exit 1
fi
# growpart would turn on the agent's root-device name check, which every Pi root device fails.
if command -v growpart >/dev/null; then
  echo "growpart (cloud-guest-utils) is installed: remove it, the agent would reject the Pi's root device" >&2
  exit 1
fi
