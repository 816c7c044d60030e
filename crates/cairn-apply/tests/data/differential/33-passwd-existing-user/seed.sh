# A user that exists already (usermod path), with its home; and root's home.
printf 'legacy:x:1100:1100:Old:/home/legacy:/bin/sh\n' >> "$ROOT/etc/passwd"
printf 'legacy:!:19000:0:99999:7:::\n' >> "$ROOT/etc/shadow"
printf 'legacy:x:1100:\n' >> "$ROOT/etc/group"
printf 'legacy:!::\n' >> "$ROOT/etc/gshadow"
mkdir -m 0700 "$ROOT/home/legacy" "$ROOT/root"
printf 'old profile\n' > "$ROOT/home/legacy/.profile"
chmod 0644 "$ROOT/home/legacy/.profile"
chown -R 1100:1100 "$ROOT/home/legacy"
