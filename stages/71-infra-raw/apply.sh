# Settings: /boot/firmware/bosh/settings.json on the boot (FAT) partition, where an operator
# can write it from any computer. The image stage mounts that partition on /boot/firmware,
# readable by root only (it holds the mbus credentials).
#
# Disks (raw.partition_card, default true): a Pi has one disk, its SD card (MBR: p1 FAT32 boot,
# p2 ext4 root, the rest of the card free). With CreatePartitionIfNoEphemeralDisk and no
# ephemeral disk in the settings, the agent partitions the card after the root partition at
# first boot, as on any one-disk BOSH VM: p3 swap (min(RAM, free/2)) and p4 ext4 on
# /var/vcap/data; later boots find them and mount them. It needs the project's agent patch
# 0002 (assets/agent/patches): the agent names /dev/mmcblk0's partitions /dev/mmcblk0pN and
# counts the FAT32 boot partition as the EFI one. The agent does not grow the root partition
# here (upstream grows it only when the VM has an ephemeral disk; growpart is not installed).
# false: SkipDiskSetup, the old behaviour: /var/vcap/data stays on the root filesystem and
# there is no swap.
if [ "$SPEC_RAW_PARTITION_CARD" = true ]; then
  install -m 0600 -o root -g root "$ASSETS/infrastructure/raw/agent.json" /var/vcap/bosh/agent.json
else
  install -m 0600 -o root -g root "$ASSETS/infrastructure/raw/agent-skip-disk-setup.json" /var/vcap/bosh/agent.json
fi
install -d -m 0755 /boot/firmware

# /var/vcap/data: the mount point of the card's data partition (or, without it, a directory of
# the root filesystem). Make it as an ext4 mount point would look (0755), so jobs running as
# vcap can reach data/jobs and data/packages; the agent's MkdirAll would otherwise make it
# 0750 root:root.
install -d -m 0755 -o root -g root /var/vcap/data

# The image names its infrastructure, as upstream's system_parameters stage does (check-os
# scopes its warden-only and not-on-warden checks by it).
printf '%s' raw > /var/vcap/bosh/etc/infrastructure
chmod 0644 /var/vcap/bosh/etc/infrastructure
