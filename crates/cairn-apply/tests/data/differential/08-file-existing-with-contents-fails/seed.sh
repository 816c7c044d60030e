# An existing file that the config would replace with overwrite false: both must refuse.
printf 'original\n' > "$ROOT/etc/conflict"
chmod 0644 "$ROOT/etc/conflict"
