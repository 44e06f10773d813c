# Upstream's password_policies, restrict_su_command and tty_config (bosh-linux-stemcell-builder),
# as edits that hold on Debian, Raspbian and Ubuntu alike (upstream patches jammy's exact files).
#
# None of this is on the BOSH agent's path: ssh takes keys only (no PAM auth stack), bosh ssh
# users are in bosh_sudoers and sudo without a password (no auth stack either), the agent's
# useradd, usermod -G and usermod -p do not use PAM, and PASS_MAX_DAYS stays 99999, so the
# users it creates never expire. Only password logins (console, su, sudo with a password) and
# password changes see these rules.

# The path of PAM module $1, if it is installed.
module() {
  local d
  for d in /lib/*/security /usr/lib/*/security /lib/security /usr/lib/security; do
    if [ -f "$d/$1" ]; then
      echo "$d/$1"
      return 0
    fi
  done
  return 1
}
for m in pam_unix.so pam_pwquality.so pam_wheel.so; do
  module "$m" >/dev/null || { echo "PAM module $m is missing" >&2; exit 1; }
done

strip_trailing_whitespace() { sed -i -e 's/[[:space:]]*$//' "$1"; }
for f in common-account common-auth common-password login su; do
  [ -f "/etc/pam.d/$f" ] || { echo "/etc/pam.d/$f is missing" >&2; exit 1; }
  strip_trailing_whitespace "/etc/pam.d/$f"
done
# Exactly one pam_unix line in a stack, or the edits below would be wrong.
one_line() { # file pattern
  local n
  n=$(grep -cE "$2" "$1" || true)
  [ "$n" = 1 ] || { echo "$1: expected one line matching '$2', found $n" >&2; exit 1; }
}

# V-38497: no module accepts an empty password.
find /etc/pam.d -type f -print0 | xargs -0 sed -i -r 's%\bnullok[^ ]*%%g'

# common-password: password quality (upstream: pam_cracklib, gone from Debian and Ubuntu; the
# same options for pam_pwquality), sha512 instead of yescrypt, the last 24 remembered, at least
# 14 characters. Every unix password line names sha512 (V-38574).
f=/etc/pam.d/common-password
one_line "$f" '^password.*pam_unix\.so'
sed -i -E '/^password.*pam_(pwquality|cracklib)\.so/d' "$f"
quality='pam_pwquality.so retry=3 minlen=14 dcredit=-1 ucredit=-1 ocredit=-1 lcredit=-1 difok=8'
unix_args='obscure use_authtok try_first_pass sha512 remember=24 minlen=14 rounds=5000'
sed -i -E "s%^(password.*pam_unix\.so).*%password\trequired\t\t\t$quality\n\1 $unix_args%" "$f"
# V-51875: failed logins since the last one are shown (a session line, as upstream puts it here).
# Only with the module there: a missing module in a required session line would fail every login.
if module pam_lastlog.so >/dev/null; then
  grep -q 'pam_lastlog\.so showfailed' "$f" ||
    printf 'session\trequired\t\t\tpam_lastlog.so showfailed\n' >> "$f"
else
  echo "warning: no pam_lastlog.so on this profile: V-51875 will fail" >&2
fi

# common-auth, common-account: lock an account for a week after 3 failures in 15 minutes
# (pam_faillock; PAM before 1.4 has pam_tally2 instead). root is never locked (no even_deny_root).
opts='deny=3 unlock_time=604800 fail_interval=900'
auth=/etc/pam.d/common-auth
one_line "$auth" '^auth.*pam_unix\.so'
if ! grep -q 'pam_\(faillock\|tally2\)\.so' "$auth"; then
  if module pam_faillock.so >/dev/null; then
    sed -i -E "/^auth.*pam_unix\.so/{
i auth\trequired\t\t\tpam_faillock.so preauth silent $opts
a auth\t[default=die]\t\t\tpam_faillock.so authfail $opts\nauth    sufficient pam_faillock.so authsucc audit $opts
}" "$auth"
    printf 'account\trequired\t\t\tpam_faillock.so\n' >> /etc/pam.d/common-account
  elif module pam_tally2.so >/dev/null; then
    sed -i -E "/^auth.*pam_unix\.so/i auth\trequired\t\t\tpam_tally2.so onerr=fail deny=3 unlock_time=604800" "$auth"
    printf 'account\trequired\t\t\tpam_tally2.so\n' >> /etc/pam.d/common-account
  else
    echo "neither pam_faillock.so nor pam_tally2.so is installed" >&2
    exit 1
  fi
fi

# login: 4 s after a failed login (upstream's login.patch).
sed -i -E 's/(pam_faildelay\.so[[:space:]]+delay=)[0-9]+/\14000000/' /etc/pam.d/login
# tty_config: root logs in on the console only. Debian's login stack no longer reads
# /etc/securetty: add pam_securetty as Ubuntu's has it (root has no password anyway).
install -m 0644 "$STAGE_DIR/files/securetty" /etc/securetty
if module pam_securetty.so >/dev/null && ! grep -q '^[^#]*pam_securetty\.so' /etc/pam.d/login; then
  sed -i -E '0,/^@include common-auth/s//auth [success=ok new_authtok_reqd=ok ignore=ignore user_unknown=bad default=die] pam_securetty.so\n&/' /etc/pam.d/login
fi

# restrict_su_command (CIS 9.5): su only for the wheel group (none here, so root's group).
# Upstream appends the line to /etc/pam.d/su, after common-auth, whose `sufficient` faillock
# line returns before it is reached; here it goes right after pam_rootok (root still su's).
f=/etc/pam.d/su
one_line "$f" '^auth[[:space:]]+sufficient[[:space:]]+pam_rootok\.so'
if ! grep -qE '^[[:space:]]*auth[[:space:]]+required[[:space:]]+pam_wheel\.so[[:space:]]+use_uid' "$f"; then
  sed -i -E '/^auth[[:space:]]+sufficient[[:space:]]+pam_rootok\.so/a auth       required   pam_wheel.so use_uid' "$f"
fi
usermod -aG sudo vcap

# login.defs: a password may change once a day (new accounts), SHA512 for new passwords (the
# distributions' default; made sure). PASS_MAX_DAYS is left at 99999: nothing expires.
sed -i -r 's/^PASS_MIN_DAYS.+/PASS_MIN_DAYS 1/' /etc/login.defs
grep -q '^PASS_MIN_DAYS 1$' /etc/login.defs || echo 'PASS_MIN_DAYS 1' >> /etc/login.defs
if grep -q '^ENCRYPT_METHOD' /etc/login.defs; then
  sed -i -r 's/^ENCRYPT_METHOD.*/ENCRYPT_METHOD SHA512/' /etc/login.defs
else
  echo 'ENCRYPT_METHOD SHA512' >> /etc/login.defs
fi
if ! awk '$1 == "PASS_MAX_DAYS" && $2 != "99999" { bad = 1 } END { exit bad }' /etc/login.defs; then
  echo "/etc/login.defs: PASS_MAX_DAYS is not 99999: the users bosh ssh creates would expire" >&2
  exit 1
fi
# and for vcap, which exists already (login.defs only applies to new accounts).
chage --mindays 1 vcap

# pam-auth-update (run by later packages) keeps these edits: it leaves locally modified files
# alone. Check the result once more.
want() { # file pattern what
  grep -qE "$2" "$1" || { echo "$1: $3 is missing after the edits" >&2; exit 1; }
}
want /etc/pam.d/common-password '^password.*pam_unix\.so.*sha512.*remember=24.*minlen=14' 'pam_unix sha512 remember=24 minlen=14'
want /etc/pam.d/common-password '^password.*pam_pwquality\.so.*retry=3.*minlen=14.*dcredit=-1.*ucredit=-1.*ocredit=-1.*lcredit=-1' 'pam_pwquality with upstream options'
want /etc/pam.d/common-auth '^auth.*pam_(faillock|tally2)\.so.*deny=3' 'the failed-login lock'
want /etc/pam.d/common-account '^account.*required.*pam_(faillock|tally2)\.so' 'the failed-login count reset'
want /etc/pam.d/su '^auth[[:space:]]+required[[:space:]]+pam_wheel\.so[[:space:]]+use_uid' 'pam_wheel'
if grep -rl nullok /etc/pam.d >&2; then
  echo "nullok is still in the files above" >&2
  exit 1
fi
