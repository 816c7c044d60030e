# A directory with files, a subdirectory and a symlink: overwrite leaves it empty.
mkdir -m 0755 -p "$ROOT/var/cache/app/sub"
printf 'stale\n' > "$ROOT/var/cache/app/stale"
printf 'deeper\n' > "$ROOT/var/cache/app/sub/deeper"
ln -s stale "$ROOT/var/cache/app/link"
chmod 0644 "$ROOT/var/cache/app/stale" "$ROOT/var/cache/app/sub/deeper"
