#!/usr/bin/env bash
# Benchmark: the readers of untrusted stemcells (inspect, diff, audit, sbom) on the largest
# hostile inputs of issue 16, each under `prlimit --as` of 512 MiB, with a private TMPDIR.
# Prints per command and input: exit code, wall time, peak memory (max RSS, GNU time), peak
# scratch (du of TMPDIR, sampled every 0.1 s) and the first line of the error.
#
#   sudo benches/hostile.sh [SIZE_GIB]
#
# SIZE_GIB (default 10) is the size of the zero-filled `image` member and of the manifest
# (capped at 1 GiB). Needs root (audit and diff mount disk images), GNU time, pigz, GNU tar.
set -euo pipefail
cd "$(dirname "$0")/.."

size=${1:-10}
cargo build --quiet --release
bin=$PWD/target/release/pistemcell
scratch=$(mktemp -d /var/tmp/pistemcell-hostile.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/in" "$scratch/tmp"

# A manifest BOSH would take, for stemcells whose other members are hostile.
cat >"$scratch/in/stemcell.MF" <<'EOF'
name: bosh-pi-bakery-debian-bookworm-armhf
version: '1'
bosh_protocol: 1
api_version: 3
sha1: '0000000000000000000000000000000000000000'
operating_system: debian-bookworm
stemcell_formats: [piimg]
cloud_properties: {architecture: armhf, infrastructure: bakery}
EOF

# 1. A stemcell whose `image` is SIZE GiB of zeros, not gzip (it wrote 10 GiB to /tmp once).
(
  cd "$scratch/in" && mkdir -p zero && cp stemcell.MF zero/ && truncate -s "${size}G" zero/image
  tar -C zero -cf - stemcell.MF image | pigz -1 >zero-image.tgz && rm -rf zero
)
# 2. A stemcell whose manifest is 1 GiB (it cost 1 GiB of memory once).
(
  cd "$scratch/in" && mkdir -p big && head -c $((1 << 30)) /dev/zero | tr '\0' '#' >big/stemcell.MF
  truncate -s 1M big/image
  tar -C big -cf - stemcell.MF image | pigz -1 >big-manifest.tgz && rm -rf big
)
# 3. A 1 KB manifest nested 100000 deep (it cost minutes of CPU once).
(
  cd "$scratch/in" && mkdir -p deep && printf 'name: %s\n' "$(head -c 100000 /dev/zero | tr '\0' '[')" >deep/stemcell.MF
  truncate -s 1M deep/image
  tar -C deep -cf - stemcell.MF image | pigz -1 >deep-manifest.tgz && rm -rf deep
)
# 4. Stemcells whose `image` is a SIZE GiB MBR disk with an empty ext4 root: as is (piimg),
#    and gzipped (rawdisk, a gzip inside the gzip). The real path: copied sparse, mounted.
(
  cd "$scratch/in" && mkdir -p disk && cp stemcell.MF disk/ && truncate -s "${size}G" disk/image
  echo 'start=2048, type=83' | sfdisk -q disk/image
  mkfs.ext4 -q -F -E offset=1048576 disk/image $(( (size << 20) - 2048 ))k
  tar -C disk -cf - stemcell.MF image | pigz -1 >sparse-disk.tgz
  pigz -1 disk/image && mv disk/image.gz disk/image
  tar -C disk -cf - stemcell.MF image | pigz -1 >gzip-disk.tgz && rm -rf disk
)
# 5. A rootfs tree whose dpkg database, lists, copyright files and component records are
#    links to /dev/zero and FIFOs (memory grew until the process died, or it hung).
(
  t=$scratch/in/tree
  mkdir -p "$t/var/lib/dpkg/info" "$t/usr/share/doc/bash" "$t/var/lib/pistemcell/components" "$t/etc"
  ln -s /dev/zero "$t/var/lib/dpkg/status"
  mkfifo "$t/var/lib/dpkg/info/bash.list"
  ln -s /dev/zero "$t/usr/share/doc/bash/copyright"
  printf 'Name: monit\nPath: ../../../../etc/shadow\n' >"$t/var/lib/pistemcell/components/monit"
  echo ID=debian >"$t/etc/os-release"
)
ls -l "$scratch/in"

# Runs NAME COMMAND... under the limit; prints one row.
measure() {
  local name=$1; shift
  rm -rf "$scratch/tmp" && mkdir -p "$scratch/tmp"
  local peak=0 du
  TMPDIR=$scratch/tmp /usr/bin/time -f '%M %e' -o "$scratch/time" \
    prlimit --as=$((512 << 20)) "$@" >"$scratch/out" 2>"$scratch/err" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    du=$(du -sk "$scratch/tmp" 2>/dev/null | cut -f1 || echo 0)
    [ "${du:-0}" -gt "$peak" ] && peak=$du
    sleep 0.1
  done
  local rc=0
  wait "$pid" || rc=$?
  read -r rss secs < <(tail -n 1 "$scratch/time") || true
  local why
  why=$(grep -m1 -E '^error|caused by' "$scratch/err" | cut -c1-110 || true)
  printf '%-34s rc=%-3s %7ss  peak RSS %6s MiB  peak scratch %6s MiB  %s\n' \
    "$name" "$rc" "$secs" "$((rss / 1024))" "$((peak / 1024))" "$why"
}

w=(--work-dir "$scratch/work" --cache-dir "$scratch/cache")
for input in zero-image big-manifest deep-manifest sparse-disk gzip-disk; do
  f=$scratch/in/$input.tgz
  measure "inspect $input" "$bin" "${w[@]}" inspect "$f"
  measure "audit $input" "$bin" "${w[@]}" audit "$f"
  measure "sbom $input" "$bin" "${w[@]}" sbom "$f" -o "$scratch/sbom"
  measure "diff $input $input" "$bin" "${w[@]}" diff "$f" "$f"
done
t=$scratch/in/tree
measure "audit tree (/dev/zero, FIFO)" "$bin" "${w[@]}" audit "$t"
measure "sbom tree (/dev/zero, FIFO)" "$bin" "${w[@]}" sbom "$t" -o "$scratch/sbom"
measure "diff tree tree" "$bin" "${w[@]}" diff "$t" "$t"
