#!/bin/bash
# Makes the CPI release tarball with the real BOSH CLI:
#   cpi-release/build.sh [PISTEMCELL_BINARY] [OUTPUT.tgz]
# The binary (default: target/release/pistemcell) is the one the create-env host runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../target/release/pistemcell}
out=${2:-$here/pistemcell-cpi.tgz}
bosh=${BOSH_CLI:-bosh}
[ -x "$bin" ] || { echo "build.sh: $bin is not an executable: cargo build --release first, or name the binary" >&2; exit 1; }
command -v "$bosh" >/dev/null || { echo "build.sh: no BOSH CLI ($bosh): install bosh or set BOSH_CLI" >&2; exit 1; }
mkdir -p "$here/src/pistemcell"
install -m 0755 "$bin" "$here/src/pistemcell/pistemcell"
cd "$here"
"$bosh" create-release --force --tarball "$out" --name pistemcell-cpi
echo "$out"
