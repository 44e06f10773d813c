#!/usr/bin/env bash
# Cross-compiles bosh-agent for the ARM targets in AGENT_TARGETS (armv6, armv7, arm64) into the
# `agent` output as bosh-agent-linux-TARGET, each with a .sha256 beside it.
#
# Built the way pistemcell's own agent stage builds one: Go >= 1.25, CGO_ENABLED=0,
# -trimpath -buildvcs=false, offline from the tree's vendor/. For 32-bit ARM the patches in
# pistemcell's assets/agent/patches are applied first: without them the agent parses disk
# sizes as a 32-bit int and crash-loops on any disk of 2 GiB or more.
set -euo pipefail

root=$PWD
src="$root/bosh-agent"
patch_dir="$root/pistemcell/assets/agent/patches"
out="$root/agent"
read -r -a targets <<<"${AGENT_TARGETS:-armv6 armv7 arm64}"
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "error: AGENT_TARGETS is empty; give one or more of: armv6 armv7 arm64" >&2
  exit 1
fi

# Go >= 1.25, and only the image's toolchain (no download of another one).
go_version=$(go env GOVERSION)
if [[ ! $go_version =~ ^go([0-9]+)\.([0-9]+) ]] ||
  ((BASH_REMATCH[1] < 1 || (BASH_REMATCH[1] == 1 && BASH_REMATCH[2] < 25))); then
  echo "error: bosh-agent needs Go >= 1.25, this image has ${go_version}; use a newer golang image tag" >&2
  exit 1
fi

export CGO_ENABLED=0 GOOS=linux GOFLAGS=-mod=vendor GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local
export GOCACHE="$root/go-cache/build"
export GOPATH="$root/go-cache/path"
mkdir -p "$GOCACHE" "$GOPATH"

# The version the agent reports: AGENT_VERSION, else the tag the git resource checked out.
version=${AGENT_VERSION:-}
if [[ -z $version ]]; then
  version=$(git -c safe.directory='*' -C "$src" describe --tags --always)
  version=${version#v}
fi

shopt -s nullglob
patches=("$patch_dir"/*.patch)
shopt -u nullglob

for target in "${targets[@]}"; do
  case $target in
  armv6) goarch=arm goarm=6 ;;
  armv7) goarch=arm goarm=7 ;;
  arm64) goarch=arm64 goarm= ;;
  *)
    echo "error: unknown agent target '$target' in AGENT_TARGETS; use armv6, armv7 or arm64" >&2
    exit 1
    ;;
  esac
  name="bosh-agent-linux-$target"
  work=$(mktemp -d)
  tar -C "$src" --exclude=./.git -cf - . | tar -C "$work" -xf -
  if [[ $goarch == arm ]]; then
    if [[ ${#patches[@]} -eq 0 ]]; then
      echo "error: no patches in $patch_dir: a 32-bit agent without them crash-loops on disks >= 2 GiB" >&2
      exit 1
    fi
    for p in "${patches[@]}"; do
      echo "applying $(basename "$p") for $target"
      (cd "$work" && git apply --verbose "$p")
    done
  fi
  echo "building $name: go $go_version GOARCH=$goarch GOARM=${goarm:-unset} version $version"
  (
    cd "$work"
    if [[ -n $goarm ]]; then
      export GOARM=$goarm
    else
      unset GOARM
    fi
    GOARCH=$goarch go build -trimpath -buildvcs=false \
      -ldflags="-s -w -X 'main.VersionLabel=${version}'" \
      -o "$out/$name" ./main
  )
  rm -rf "$work"
  # The binary says what it was built for; check it is what was asked.
  info=$(go version -m "$out/$name")
  grep -q "GOARCH=$goarch\$" <<<"$info" || {
    echo "error: $name is not GOARCH=$goarch:" >&2
    echo "$info" >&2
    exit 1
  }
  if [[ -n $goarm ]]; then
    grep -q "GOARM=$goarm\$" <<<"$info" || {
      echo "error: $name is not GOARM=$goarm:" >&2
      echo "$info" >&2
      exit 1
    }
  fi
  (cd "$out" && sha256sum "$name" >"$name.sha256")
  cat "$out/$name.sha256"
done
