# Upstream records the use of every setuid/setgid program in /bin, /sbin, /usr/bin, /usr/sbin
# and /boot (CIS-8.1.12). 46-audit-rules wrote rules for those of the OS image; this adds one
# for each program a later stage installed (mount.nfs of 70-infra-bakery, ...), after
# 89-harden took the bits off all but su and sudo. Sorted, so two builds write the same file.
rules=/etc/audit/rules.d/audit.rules
[ -f "$rules" ] || { echo "$rules is missing (46-audit-rules writes it)" >&2; exit 1; }
dirs=()
for d in /bin /sbin /usr/bin /usr/sbin /boot; do
  if [ -e "$d" ]; then dirs+=("$d"); fi
done
programs=$(find "${dirs[@]}" -xdev \( -perm -4000 -o -perm -2000 \) -type f | LC_ALL=C sort)
added=0
while IFS= read -r p; do
  [ -n "$p" ] || continue
  line="-a always,exit -F path=$p -F perm=x -F auid>=500 -F auid!=4294967295 -k privileged"
  if ! grep -qxF -- "$line" "$rules"; then
    printf '%s\n' "$line" >> "$rules"
    added=$((added + 1))
  fi
done <<< "$programs"
echo "89-privileged-audit: $added rule(s) added"
if [ "$added" -gt 0 ] && command -v augenrules >/dev/null; then
  augenrules >/dev/null
  rm -f /etc/audit/audit.rules.prev
fi
