# C.UTF-8 ships with libc (no locales package, no locale-gen under emulation).
if [ -d /usr/lib/locale/C.utf8 ] || [ -d /usr/lib/locale/C.UTF-8 ]; then
  lang=C.UTF-8
else
  lang=C
fi
printf 'LANG=%s\n' "$lang" > /etc/default/locale
chmod 0644 /etc/default/locale

# UTC.
[ -e /usr/share/zoneinfo/Etc/UTC ] || { echo "/usr/share/zoneinfo/Etc/UTC is missing (tzdata)" >&2; exit 1; }
ln -sfn /usr/share/zoneinfo/Etc/UTC /etc/localtime
echo Etc/UTC > /etc/timezone

# The agent sets the hostname to the VM's agent id and rewrites /etc/hosts.
echo bosh-stemcell > /etc/hostname
install -m 0644 "$STAGE_DIR/files/hosts" /etc/hosts
