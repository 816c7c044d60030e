# Existing directories with contents: mode and owner change, contents stay.
mkdir -m 0755 "$ROOT/srv" "$ROOT/srv/data" "$ROOT/srv/data-default"
printf 'inside\n' > "$ROOT/srv/data/inside"
chmod 0644 "$ROOT/srv/data/inside"
chmod 0700 "$ROOT/srv/data-default"
chown 3:3 "$ROOT/srv/data-default"
