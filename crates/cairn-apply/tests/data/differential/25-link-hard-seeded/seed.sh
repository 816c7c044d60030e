printf 'seeded\n' > "$ROOT/etc/seeded-original"
chmod 0600 "$ROOT/etc/seeded-original"
chown 1000:1000 "$ROOT/etc/seeded-original"
