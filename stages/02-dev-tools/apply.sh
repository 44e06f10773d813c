# The runner installed the packages; a compilation VM needs these commands.
missing=()
for cmd in cc gcc g++ cpp make patch ld as ar bison flex m4 cmake; do
  command -v "$cmd" >/dev/null || missing+=("$cmd")
done
if ((${#missing[@]})); then
  echo "compile tools are missing after installing the stage's packages: ${missing[*]}" >&2
  exit 1
fi

# /var/vcap/bosh/etc/dev_tools_file_list: the files the agent deletes (`rm -rf` of each line)
# when the director's settings say env.bosh.remove_dev_tools, as upstream's dev_tools_config
# stage writes it: `dpkg-query -L` of the compile tools' packages, without directories and
# without what resolves to one (upstream drops `/lib`, a `symbolic link to usr/lib` on merged-/usr
# systems: `rm -rf /lib` would break the VM), sorted and unique. Never a library other programs
# run with (libgcc-s1, libstdc++6, libc6, perl): only the tools' own packages.
# Upstream's names, then the versioned compilers and the target's binutils of every profile.
tools=(binutils bison build-essential cmake cpp debhelper dkms dpkg-dev flex g++ gcc gettext
  intltool-debian libmpc3 make patch po-debconf clang)
versioned='^(cpp|gcc|g\+\+)-[0-9.]+$|^binutils-[a-z0-9_-]+-linux-gnu[a-z]*$|^clang-[0-9.]+$|^libclang(1|-cpp|-common)-?[0-9.]+(-dev)?$|^libllvm[0-9.]+$|^llvm-[0-9.]+-linker-tools$'
packages=()
while read -r _ _ status p; do
  [[ $status == installed ]] || continue
  for t in "${tools[@]}"; do
    if [[ $p == "$t" ]]; then packages+=("$p"); continue 2; fi
  done
  if [[ $p =~ $versioned ]]; then packages+=("$p"); fi
done <<< "$(dpkg-query -W -f '${Status} ${Package}\n')"

etc=/var/vcap/bosh/etc
install -d -m 0755 "$etc" # 30-vcap-tree sets the owners and modes of the tree above it
dpkg-query -L "${packages[@]}" | while IFS= read -r path; do
  [[ $path == /* ]] || continue # dpkg-query's notes ("diverted by ...")
  [[ -d $path ]] && continue    # a directory, or a link to one (/lib -> usr/lib)
  [[ -e $path || -L $path ]] || continue
  printf '%s\n' "$path"
done | LC_ALL=C sort -u > "$etc/dev_tools_file_list"
chmod 0644 "$etc/dev_tools_file_list"
for must in /usr/bin/make /usr/bin/patch; do
  grep -qx "$must" "$etc/dev_tools_file_list" || {
    echo "$etc/dev_tools_file_list lacks $must: the list of the dev tools' files is wrong" >&2
    exit 1
  }
done
grep -q '^/usr/bin/gcc' "$etc/dev_tools_file_list" || {
  echo "$etc/dev_tools_file_list lists no gcc: the list of the dev tools' files is wrong" >&2
  exit 1
}

# /var/vcap/bosh/etc/static_libraries_list: every static library (*.a) of the installed
# packages, which the agent deletes for env.bosh.remove_static_libraries (upstream ships a
# fixed list of the same files).
cat /var/lib/dpkg/info/*.list | { grep '\.a$' || true; } | while IFS= read -r path; do
  [[ -f $path && ! -L $path ]] && printf '%s\n' "$path"
done | LC_ALL=C sort -u > "$etc/static_libraries_list"
chmod 0644 "$etc/static_libraries_list"
