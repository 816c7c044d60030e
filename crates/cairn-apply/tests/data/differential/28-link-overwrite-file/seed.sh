# A regular file and a symlink with another target, both replaced by links.
printf 'TZif-not-really\n' > "$ROOT/etc/localtime"
chmod 0644 "$ROOT/etc/localtime"
ln -s /old/resolv.conf "$ROOT/etc/resolv.conf"
