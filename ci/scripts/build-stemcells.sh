#!/usr/bin/env bash
# Builds the stemcells of one profile and architecture, one per infrastructure in
# INFRASTRUCTURES, into the `stemcells` output: each .tgz with its .sha1 and .sha256, the
# build's JSON summary and `pistemcell inspect --json` of it.
#
# Needs a privileged container: the build uses loop devices, mounts and binfmt_misc (qemu-user
# runs the ARM maintainer scripts). `pistemcell doctor --fix --yes` installs the missing host
# packages and registers the ARM interpreters first.
set -euo pipefail

: "${PROFILE:?set PROFILE (debian-bookworm, raspbian-bookworm, ...)}"
: "${ARCHITECTURE:?set ARCHITECTURE (armhf or arm64)}"
: "${INFRASTRUCTURES:?set INFRASTRUCTURES (one or more of: bakery raw warden)}"
: "${AGENT_BINARY:?set AGENT_BINARY (a file of the agent input, e.g. bosh-agent-linux-armv7)}"
CPU=${CPU:-}
BOOT_TEST=${BOOT_TEST:-}

root=$PWD
bin="$root/pistemcell-bin/pistemcell"
out="$root/stemcells"
cache="$root/cache/pistemcell"
work="$root/work"
mkdir -p "$cache" "$work"
# The binary was compiled elsewhere: its stages and assets are the checked-out source's.
export PISTEMCELL_STAGES_DIR="$root/pistemcell/stages"
export PISTEMCELL_ASSETS_DIR="$root/pistemcell/assets"

# A file's sha256, checked against the FILE.sha256 an earlier task wrote beside it.
verified_sha256() {
  local file=$1
  (cd "$(dirname "$file")" && sha256sum --check --quiet "$(basename "$file").sha256") >&2
  cut -d' ' -f1 <"$file.sha256"
}

version=$(cat "$root/version/version")
agent="$root/agent/$AGENT_BINARY"
agent_sha256=$(verified_sha256 "$agent")
shopt -s nullglob
monits=("$root"/monit/monit-*.tar.gz)
shopt -u nullglob
if [[ ${#monits[@]} -ne 1 ]]; then
  echo "error: expected one monit-*.tar.gz in the monit input, found ${#monits[@]}" >&2
  exit 1
fi
monit=${monits[0]}
monit_sha256=$(verified_sha256 "$monit")

target=(--set "profile=$PROFILE" --set "architecture=$ARCHITECTURE")
if [[ -n $CPU ]]; then
  target+=(--set "cpu=$CPU")
fi
dirs=(--cache-dir "$cache" --work-dir "$work")

"$bin" --version
"$bin" doctor "${dirs[@]}" "${target[@]}" --fix --yes

read -r -a infras <<<"$INFRASTRUCTURES"
read -r -a boot_tested <<<"$BOOT_TEST"
for infra in "${infras[@]}"; do
  args=(build "${dirs[@]}" "${target[@]}"
    --set "infrastructure=$infra"
    --set "stemcell.version=$version"
    --set "agent.binary.path=$agent" --set "agent.binary.sha256=$agent_sha256"
    --set "monit.source.path=$monit" --set "monit.source.sha256=$monit_sha256"
    --stemcell-dir "$out" --json)
  for b in "${boot_tested[@]}"; do
    if [[ $b == "$infra" ]]; then
      args+=(--boot-test)
    fi
  done
  echo "pistemcell ${args[*]}"
  "$bin" "${args[@]}" >"$out/build-summary-$PROFILE-$ARCHITECTURE-$infra.json"
done

shopt -s nullglob
stemcells=("$out"/bosh-stemcell-*.tgz)
shopt -u nullglob
if [[ ${#stemcells[@]} -ne ${#infras[@]} ]]; then
  echo "error: expected ${#infras[@]} stemcells in $out, found ${#stemcells[@]}" >&2
  ls -l "$out" >&2
  exit 1
fi
for tgz in "${stemcells[@]}"; do
  "$bin" inspect --json "$tgz" >"$tgz.inspect.json"
done
ls -l "$out"
