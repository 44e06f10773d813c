#!/usr/bin/env bash
# Checks the pinned monit source tarball from the `monit-tarball` resource against its sha256
# and stages it, with a .sha256 beside it, in the `monit` output. pistemcell cross-compiles it
# and proves it answers the agent during the build.
set -euo pipefail

: "${MONIT_VERSION:?set MONIT_VERSION (5.2.5: newer monit refuses the agent)}"
: "${MONIT_SHA256:?set MONIT_SHA256 to the tarball sha256}"

name="monit-${MONIT_VERSION}.tar.gz"
src="monit-tarball/$name"
if [[ ! -f $src ]]; then
  echo "error: $src not found; the monit-tarball resource gave:" >&2
  ls -l monit-tarball >&2
  echo "upload $name (https://mmonit.com/monit/dist/$name) to the bucket, see ci/README.md" >&2
  exit 1
fi

actual=$(sha256sum "$src" | cut -d' ' -f1)
if [[ $actual != "$MONIT_SHA256" ]]; then
  echo "error: $src has sha256 $actual, expected $MONIT_SHA256 (monit $MONIT_VERSION)" >&2
  exit 1
fi
# (grep reads the whole listing: with -q it could stop tar early and pipefail would trip.)
if ! tar -tzf "$src" | grep -x "monit-${MONIT_VERSION}/configure" >/dev/null; then
  echo "error: $src is not monit ${MONIT_VERSION}'s source (no monit-${MONIT_VERSION}/configure in it)" >&2
  exit 1
fi

install -m 0644 "$src" "monit/$name"
printf '%s  %s\n' "$actual" "$name" >"monit/$name.sha256"
cat "monit/$name.sha256"
