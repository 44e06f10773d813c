# Settings: /boot/firmware/bosh/settings.json on the boot (FAT) partition, where an operator
# can write it from any computer. The image stage mounts that partition on /boot/firmware,
# readable by root only (it holds the mbus credentials).
#
# SkipDiskSetup: the agent names partitions by appending the number (/dev/mmcblk0 would become
# /dev/mmcblk01), so it cannot partition the SD card; /var/vcap/data stays on the root
# filesystem and there is no swap. A USB disk (/dev/sdX) still works as a persistent disk.
install -m 0600 -o root -g root "$ASSETS/infrastructure/raw/agent.json" /var/vcap/bosh/agent.json
install -d -m 0755 /boot/firmware

# Without an ephemeral disk /var/vcap/data is a directory of the root filesystem. Make it as an
# ext4 mount point would look (0755), so jobs running as vcap can reach data/jobs and
# data/packages; the agent's MkdirAll would otherwise make it 0750 root:root.
install -d -m 0755 -o root -g root /var/vcap/data
