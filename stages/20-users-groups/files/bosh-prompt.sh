# pistemcell: interactive shells on a BOSH VM show the instance (written by the agent).
if [ -n "${PS1:-}" ] && [ -r /var/vcap/instance/name ] && [ -r /var/vcap/instance/id ]; then
  PS1="$(cat /var/vcap/instance/name)/$(cat /var/vcap/instance/id):\\w\\$ "
fi
