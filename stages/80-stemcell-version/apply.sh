version=${SPEC_STEMCELL_VERSION:?the spec gives no stemcell.version}
case "$version" in
  *[!A-Za-z0-9._+~-]*) echo "stemcell.version '$version' has characters a version may not have" >&2; exit 1 ;;
esac
printf '%s' "$version" > /var/vcap/bosh/etc/stemcell_version
chmod 0644 /var/vcap/bosh/etc/stemcell_version
# The agent logs "Running on stemcell version V (git: SHA)"; upstream writes the builder's
# commit here. pistemcell has no such value to give the stage yet.
if [ ! -s /var/vcap/bosh/etc/stemcell_git_sha1 ]; then
  printf 'unknown' > /var/vcap/bosh/etc/stemcell_git_sha1
  chmod 0644 /var/vcap/bosh/etc/stemcell_git_sha1
fi
