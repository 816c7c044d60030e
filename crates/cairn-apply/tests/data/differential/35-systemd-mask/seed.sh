# A unit file in /etc that a mask replaces with a link to /dev/null.
mkdir -m 0755 -p "$ROOT/etc/systemd/system"
printf '[Service]\nExecStart=/bin/false\n' > "$ROOT/etc/systemd/system/existing.service"
chmod 0644 "$ROOT/etc/systemd/system/existing.service"
