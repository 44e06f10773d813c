tmp=$(mktemp /etc/sudoers.XXXXXX)
install -m 0440 "$STAGE_DIR/files/sudoers" "$tmp"
# Refuse a file sudo would reject before it replaces the working one.
if ! visudo -c -f "$tmp"; then
  rm -f "$tmp"
  echo "the new /etc/sudoers does not pass visudo -c" >&2
  exit 1
fi
chown root:root "$tmp"
mv -f "$tmp" /etc/sudoers
[ -d /etc/sudoers.d ] || install -d -m 0755 /etc/sudoers.d
visudo -c
