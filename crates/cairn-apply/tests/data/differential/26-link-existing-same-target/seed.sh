# The links exist already with the config's targets: nothing to do.
ln -s /usr/share/existing "$ROOT/etc/existing-link"
ln -s somewhere/else "$ROOT/etc/existing-relative"
