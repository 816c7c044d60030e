# Existing files with other content, mode and owner: overwrite replaces all three.
printf 'old-name-that-is-longer\n' > "$ROOT/etc/hostname"
chmod 0600 "$ROOT/etc/hostname"
chown 5:5 "$ROOT/etc/hostname"
printf 'old issue\n' > "$ROOT/etc/issue"
chmod 0755 "$ROOT/etc/issue"
