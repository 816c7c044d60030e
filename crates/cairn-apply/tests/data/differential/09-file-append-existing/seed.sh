printf '# existing line\n' > "$ROOT/etc/profile.local"
chmod 0640 "$ROOT/etc/profile.local"
