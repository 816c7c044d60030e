# A relative symlink to a directory: paths under it land in the real directory.
mkdir -m 0755 -p "$ROOT/opt/real"
ln -s real "$ROOT/opt/link"
