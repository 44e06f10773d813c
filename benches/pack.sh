#!/usr/bin/env bash
# Benchmark: pack one rootfs tree into a .tgz with GNU tar (gzip), GNU tar + pigz, bsdtar and
# pistemcell (its own tar writer + parallel gzip), in one run; prints wall time, output size,
# peak memory (max RSS of the whole process tree, from GNU time) and pistemcell's ratios to
# tar + pigz.
#
#   sudo benches/pack.sh ROOTFS
#
# ROOTFS: e.g. the rootfs of `pistemcell build` (several hundred MB). Needs pigz, bsdtar
# (libarchive-tools) and GNU time (time); builds pistemcell in release mode first. Run as root
# so every file is readable.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:?usage: benches/pack.sh ROOTFS}
for tool in pigz bsdtar /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install pigz libarchive-tools time" >&2; exit 2; }
done
cargo build --quiet --release
bin=$PWD/target/release/pistemcell
scratch=$(mktemp -d /var/tmp/pistemcell-pack-bench.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
# Warm the page cache once so every contender reads from memory.
tar -cf - -C "$root" . > /dev/null

declare -A secs size rss
run() { # NAME OUTPUT COMMAND...
  local name=$1 out=$2; shift 2
  sync
  /usr/bin/time -f '%e %M' -o "$scratch/$name.time" "$@" > /dev/null 2> "$scratch/$name.log" || {
    echo "$name failed:" >&2; cat "$scratch/$name.log" >&2; exit 1; }
  read -r secs[$name] rss[$name] < "$scratch/$name.time"
  size[$name]=$(stat -c %s "$out")
}
run tar-gzip "$scratch/a.tgz" tar --numeric-owner -czf "$scratch/a.tgz" -C "$root" .
run tar-pigz "$scratch/b.tgz" tar --numeric-owner -I pigz -cf "$scratch/b.tgz" -C "$root" .
run bsdtar "$scratch/c.tgz" bsdtar --numeric-owner -czf "$scratch/c.tgz" -C "$root" .
run pistemcell "$scratch/d.tgz" "$bin" -q pack "$root" -o "$scratch/d.tgz" --mtime 0

printf '%-12s %9s %12s %12s\n' tool seconds bytes "peak RSS KiB"
for n in tar-gzip tar-pigz bsdtar pistemcell; do
  printf '%-12s %9s %12s %12s\n' "$n" "${secs[$n]}" "${size[$n]}" "${rss[$n]}"
done
awk -v a="${secs[pistemcell]}" -v b="${secs[tar-pigz]}" -v c="${size[pistemcell]}" -v d="${size[tar-pigz]}" \
  'BEGIN { printf "pistemcell / tar+pigz: time %.2fx, size %.3fx (targets: time <= 0.8x, size <= 1x, RSS < 65536 KiB)\n", a/b, c/d }'
gzip -t "$scratch/d.tgz" && echo "gzip -t: ok"
