# The runner installed the packages. Debian's vim-tiny registers vi, view, ex and editor but
# no vim; upstream's vim_tiny stage links it, and so do we unless a full vim came with the spec.
if [ ! -e /usr/bin/vim ] && [ ! -L /usr/bin/vim ]; then
  ln -s vim.tiny /usr/bin/vim
fi
missing=()
for cmd in dig vim.tiny vim anacron; do
  command -v "$cmd" >/dev/null || missing+=("$cmd")
done
if ((${#missing[@]})); then
  echo "commands missing after installing dnsutils, vim-tiny and anacron: ${missing[*]}" >&2
  exit 1
fi
if ! dpkg-query -L rsyslog-relp | grep -q '/omrelp\.so$'; then
  echo "rsyslog-relp installed no omrelp.so" >&2
  exit 1
fi
