#!/usr/bin/env bash
# Benchmark: whole stemcell builds, in one go, each with its wall time, the stage breakdown and
# the largest RSS (GNU time, whole process tree's largest single process):
#   1. cold: empty work dir and caches, the downloads included;
#   2. warm rebuild after adding one package (bc) to 10-base-packages;
#   3. rebuild after editing 90-cleanup (a comment appended to its apply.sh);
#   4. --check-reproducible (two builds from scratch, compared byte for byte).
# Then the stage cache's and the download cache's disk use.
#
#   sudo benches/build.sh [SETS_FILE] [-- EXTRA BUILD ARGS]
#
# SETS_FILE: one spec override per line (KEY=VALUE, passed as --set; # comments), e.g. the
# real agent and monit sources and local trees of the blobstore clients (the defaults fetch
# from GitHub). The mirror comes from the host's apt sources unless EXTRA BUILD ARGS name
# one (--mirror URL). Edits are made to a copy of stages/, never to the source tree. Needs
# root, qemu-user for armhf and GNU time; builds pistemcell in release mode first.
set -euo pipefail
cd "$(dirname "$0")/.."
sets_file=${1:-}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
extra=("$@")
command -v /usr/bin/time >/dev/null || { echo "missing GNU time: apt-get install time" >&2; exit 2; }
cargo build --quiet --release
bin=$PWD/target/release/pistemcell
scratch=$(mktemp -d /var/tmp/pistemcell-build-bench.XXXXXX)
# On exit, a build killed with the script may have left its chroot mounts: release them first,
# and never let rm cross into another filesystem.
cleanup() {
  awk -v s="$scratch/" 'index($2, s) == 1 {print $2}' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system "$scratch"
}
trap cleanup EXIT
sets=()
if [ -n "$sets_file" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%%#*}
    line=$(echo "$line" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
    [ -n "$line" ] && sets+=(--set "$line")
  done < "$sets_file"
fi
cp -a stages "$scratch/stages"
common=(--work-dir "$scratch/work" --cache-dir "$scratch/cache" --stages-dir "$scratch/stages"
  "${sets[@]}" "${extra[@]}")

declare -A secs rss
run() { # NAME BUILD-ARGS...
  local name=$1; shift
  sync
  if ! /usr/bin/time -f '%e %M' -o "$scratch/$name.time" "$bin" build "${common[@]}" "$@" \
      > "$scratch/$name.out" 2> "$scratch/$name.log"; then
    echo "$name failed:" >&2; tail -40 "$scratch/$name.log" >&2; exit 1
  fi
  read -r secs[$name] rss[$name] < "$scratch/$name.time"
  echo "== $name: ${secs[$name]} s, largest RSS ${rss[$name]} KiB"
  # The stage breakdown: every stage that ran, and the image and pack steps.
  grep -E ': (done in|built in|restored in)|image:|stemcell:|reproducible:|proof passed|initramfs of|ran .* once' \
    "$scratch/$name.log" | sed -e 's/^/   /' | grep -v ': cached' || true
  echo "   stages cached: $(grep -cE '] [0-9]{2}-[a-z0-9-]+: cached$' "$scratch/$name.log" || true)"
}

run cold --stemcell-dir "$scratch/out"
sed -i -e 's/^packages:$/packages:\n  - bc/' "$scratch/stages/10-base-packages/stage.yml"
grep -q '^  - bc$' "$scratch/stages/10-base-packages/stage.yml" || { echo "could not add bc" >&2; exit 1; }
run add-package --stemcell-dir "$scratch/out"
echo "# benchmark edit" >> "$scratch/stages/90-cleanup/apply.sh"
run edit-cleanup --stemcell-dir "$scratch/out"
run reproducible --check-reproducible

echo "== disk"
echo "   stage cache ($scratch/cache/stages): $(du -sm "$scratch/cache/stages" | cut -f1) MB in $(find "$scratch/cache/stages" -name '*.tar.zst' | wc -l) snapshots"
echo "   download cache, all: $(du -sm "$scratch/cache" | cut -f1) MB"
echo "   work dir: $(du -sm "$scratch/work" | cut -f1) MB"
printf '%-14s %9s %14s\n' run seconds "largest RSS KiB"
for n in cold add-package edit-cleanup reproducible; do
  printf '%-14s %9s %14s\n' "$n" "${secs[$n]}" "${rss[$n]}"
done
