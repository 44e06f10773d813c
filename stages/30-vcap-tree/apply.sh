# Owners and modes follow what the agent creates itself (bosh-agent platform/linux_platform.go,
# agent/applier/bundlecollection): it chowns but never chmods directories that already exist,
# so a directory made here keeps the mode given here.
d() { install -d -m "$1" -o "$2" -g "$3" "$4"; chmod "$1" "$4"; chown "$2:$3" "$4"; }
d 0755 root root /var/vcap
d 0700 root root /var/vcap/bosh          # agent.json, settings.json, certificates
d 0755 root root /var/vcap/bosh/bin
d 0755 root root /var/vcap/bosh/etc
d 0700 root root /var/vcap/bosh/log      # svlogd of the agent: may hold secrets
d 0755 root root /var/vcap/monit
d 0700 root root /var/vcap/monit/svlog   # svlogd of monit
d 0750 root vcap /var/vcap/jobs          # links to /var/vcap/data/jobs/*
d 0755 root vcap /var/vcap/packages      # links to /var/vcap/data/packages/*
d 0755 root root /var/vcap/store         # persistent disk mount point
# Used by bosh create-env's blobstore (micro/https_handler in the agent).
d 0755 root root /var/vcap/micro_bosh
d 0755 root root /var/vcap/micro_bosh/data
d 0755 root root /var/vcap/micro_bosh/data/cache
# /var/vcap/sys is the agent's link to the ephemeral disk's sys directory (SetupDataDir);
# ship the same link so nothing writes into the root filesystem there before it runs.
if [ -d /var/vcap/sys ] && [ ! -L /var/vcap/sys ]; then rmdir /var/vcap/sys; fi
ln -sfn /var/vcap/data/sys /var/vcap/sys
# /var/vcap/data is NOT made here: the agent creates it (0750) and mounts the ephemeral disk
# on it; upstream's stemcell tests assert it is absent. Infrastructures without an ephemeral
# disk (raw) create it in their own stage.

# The platform name the agent is started with: bosh-agent knows ubuntu, dummy and windows
# only; Debian and Raspbian run as ubuntu too.
printf ubuntu > /var/vcap/bosh/etc/operating_system
chmod 0644 /var/vcap/bosh/etc/operating_system

install -m 0755 "$STAGE_DIR/files/bosh-agent-rc" /var/vcap/bosh/bin/bosh-agent-rc

# /etc/fstab: a disk stemcell's is written when its image is made (root and boot by PARTUUID,
# see `pistemcell image`); a warden rootfs has no partitions to mount. Until then, a file that
# says so (upstream images carry one, and check-os asserts it mounts no NFS).
if [ ! -e /etc/fstab ]; then
  printf '# <file system> <mount point> <type> <options> <dump> <pass>\n# Written by pistemcell: a disk stemcell'"'"'s image lists its root and boot partitions here.\n' > /etc/fstab
  chmod 0644 /etc/fstab
fi
