# Existing files and a config that names them without contents: the content stays,
# mode and owner become the config's.
printf 'keep me\n' > "$ROOT/etc/keep-absent"
printf 'keep me too\n' > "$ROOT/etc/keep-false"
chmod 0644 "$ROOT/etc/keep-absent" "$ROOT/etc/keep-false"
