# A skeleton with a file and a subdirectory: useradd copies it into new homes.
printf '# skel bashrc\nalias ll="ls -l"\n' > "$ROOT/etc/skel/.bashrc"
chmod 0644 "$ROOT/etc/skel/.bashrc"
mkdir -m 0700 "$ROOT/etc/skel/.config"
printf 'setting=1\n' > "$ROOT/etc/skel/.config/app.conf"
chmod 0600 "$ROOT/etc/skel/.config/app.conf"
ln -s .bashrc "$ROOT/etc/skel/.profile-link"
