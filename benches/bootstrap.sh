#!/usr/bin/env bash
# Benchmark: bootstrap a bookworm minbase rootfs with debootstrap, mmdebstrap and pistemcell,
# on the same mirror, cold (empty caches) and warm (packages already downloaded), and print
# the times and pistemcell's ratios to mmdebstrap.
#
#   sudo benches/bootstrap.sh [ARCH] [MIRROR]
#
# ARCH defaults to armhf; MIRROR to the host's apt source for bookworm. Needs root,
# debootstrap, mmdebstrap, qemu-user-static; builds pistemcell in release mode first.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:-armhf}
mirror=${2:-}
if [ -z "$mirror" ]; then
  mirror=$(cargo run --quiet --release --example host_mirror 2>/dev/null || true)
fi
if [ -z "$mirror" ]; then
  echo "no mirror: pass one as the second argument" >&2
  exit 2
fi
cargo build --quiet --release
bin=$PWD/target/release/pistemcell
scratch=$(mktemp -d /var/tmp/pistemcell-bench.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

time_of() { # NAME COMMAND... ; prints seconds, logs to scratch
  local name=$1; shift
  local start end
  sync
  start=$(date +%s.%N)
  if ! "$@" >"$scratch/$name.log" 2>&1; then
    echo "$name failed; last lines:" >&2
    tail -20 "$scratch/$name.log" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

echo "bootstrap benchmark: bookworm $arch minbase from $mirror ($(nproc) cores)"

t_deb=$(time_of debootstrap debootstrap --variant=minbase --arch="$arch" bookworm "$scratch/debootstrap" "$mirror")
rm -rf "$scratch/debootstrap"

t_mm_cold=$(time_of mmdebstrap-cold mmdebstrap --variant=minbase --architectures="$arch" \
  --customize-hook="sync-out /var/cache/apt/archives $scratch/mm-cache" \
  --skip=download/empty bookworm "$scratch/mm.tar" "$mirror")
rm -f "$scratch/mm.tar"
# Warm: the same .debs copied in before apt runs, so nothing is downloaded.
t_mm_warm=$(time_of mmdebstrap-warm mmdebstrap --variant=minbase --architectures="$arch" \
  --setup-hook="mkdir -p \"\$1\"/var/cache/apt/archives && cp $scratch/mm-cache/*.deb \"\$1\"/var/cache/apt/archives/" \
  bookworm "$scratch/mm.tar" "$mirror")
rm -f "$scratch/mm.tar"

run_ours() {
  "$bin" -q --work-dir "$scratch/work" --cache-dir "$scratch/cache" --mirror "$mirror" \
    --set "architecture=$arch" bootstrap --output "$scratch/ours"
}
t_ours_cold=$(time_of pistemcell-cold run_ours)
t_ours_warm=$(time_of pistemcell-warm run_ours)

ratio() { echo "scale=2; $1 / $2" | bc; }
printf '%-22s %8s\n' tool seconds
printf '%-22s %8.1f\n' "debootstrap" "$t_deb"
printf '%-22s %8.1f\n' "mmdebstrap cold" "$t_mm_cold"
printf '%-22s %8.1f\n' "mmdebstrap warm" "$t_mm_warm"
printf '%-22s %8.1f\n' "pistemcell cold" "$t_ours_cold"
printf '%-22s %8.1f\n' "pistemcell warm" "$t_ours_warm"
echo "pistemcell cold / mmdebstrap cold: $(ratio "$t_ours_cold" "$t_mm_cold")  (target <= 0.60)"
echo "pistemcell warm / mmdebstrap cold: $(ratio "$t_ours_warm" "$t_mm_cold")  (target <= 0.45)"
echo "pistemcell warm / mmdebstrap warm: $(ratio "$t_ours_warm" "$t_mm_warm")"
echo "pistemcell cold / debootstrap:     $(ratio "$t_ours_cold" "$t_deb")"
