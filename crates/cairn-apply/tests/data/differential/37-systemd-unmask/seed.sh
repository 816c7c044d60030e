# A unit masked before provisioning: mask false removes the /dev/null link.
mkdir -m 0755 -p "$ROOT/etc/systemd/system"
ln -s /dev/null "$ROOT/etc/systemd/system/was-masked.service"
