version=${SPEC_STEMCELL_VERSION:?the spec gives no stemcell.version}
case "$version" in
  *[!A-Za-z0-9._+~-]*) echo "stemcell.version '$version' has characters a version may not have" >&2; exit 1 ;;
esac
printf '%s' "$version" > /var/vcap/bosh/etc/stemcell_version
chmod 0644 /var/vcap/bosh/etc/stemcell_version
# The agent logs "Running on stemcell version V (git: SHA)"; upstream writes its builder's
# commit here, and so do we: the pistemcell commit whose stages and assets built the image
# (`+` when its tree had changes; `unknown` outside a git checkout, which check-os reports).
printf '%s' "${SPEC_BUILDER_COMMIT:?no builder.commit}" > /var/vcap/bosh/etc/stemcell_git_sha1
chmod 0644 /var/vcap/bosh/etc/stemcell_git_sha1
