#!/bin/bash
# (Kept in the repository for tests/it/differential.rs, which runs it on a clean clone;
# the original is ../shared/peers/ignition-files-stage.sh.)
# Differential peer: run Debian's Ignition 2.14 (apt-get install -y ignition)
# fetch + files stages against a scratch root directory and dump the tree.
# Usage: ign-peer.sh CONFIG.ign ROOTDIR [--seed-etc]
#   --seed-etc : create minimal /etc/{passwd,group,shadow,gshadow,login.defs,
#                default/useradd,skel} and /etc/selinux/config in ROOTDIR first
# Needs root (chown, chroot-based user lookups, useradd --root).
# Limits (2.14): spec <= 3.3.0 (+3.4.0-experimental); instantiated units
# (foo@bar.service) with enabled: set fail (D-Bus systemd version probe).
set -euo pipefail
CFG=$(readlink -f "$1"); ROOT=$(readlink -m "$2"); SEED=${3:-}
IGN=/usr/lib/dracut/modules.d/30ignition/ignition
HERE=$(dirname "$(readlink -f "$0")")
SHIM=$(mktemp -d); STATE=$(mktemp -d)
trap 'rm -rf "$SHIM" "$STATE"' EXIT
# setfiles stub: 2.14 is built with SELinux relabeling on; it needs
# /etc/selinux/config (SELINUXTYPE=) in ROOT and a setfiles binary.
printf '#!/bin/sh\ncat >/dev/null\nexit 0\n' > "$SHIM/setfiles"; chmod +x "$SHIM/setfiles"
mkdir -p "$ROOT"
if [ "$SEED" = "--seed-etc" ]; then
  mkdir -p "$ROOT/etc/skel" "$ROOT/etc/default" "$ROOT/etc/selinux" "$ROOT/home"
  printf 'root:x:0:0:root:/root:/bin/bash\n' > "$ROOT/etc/passwd"
  printf 'root:x:0:\nwheel:x:10:\n' > "$ROOT/etc/group"
  printf 'root:*:19000:0:99999:7:::\n' > "$ROOT/etc/shadow"
  printf 'root:*::\nwheel:*::\n' > "$ROOT/etc/gshadow"
  chmod 640 "$ROOT/etc/shadow" "$ROOT/etc/gshadow"
  cp /etc/login.defs "$ROOT/etc/login.defs"
  printf 'HOME=/home\nSHELL=/bin/sh\n' > "$ROOT/etc/default/useradd"
  printf 'SELINUX=permissive\nSELINUXTYPE=targeted\n' > "$ROOT/etc/selinux/config"
fi
export PATH="$SHIM:$PATH"
common=(-platform file -root "$ROOT" -config-cache "$STATE/ignition.json"
        -state-file "$STATE/state" -log-to-stdout)
rc=0
IGNITION_CONFIG_FILE="$CFG" "$IGN" "${common[@]}" -stage fetch -neednet "$STATE/neednet" || rc=$?
[ $rc -eq 0 ] && { "$IGN" "${common[@]}" -stage files || rc=$?; }
echo "=== rc=$rc"
echo "=== tree (mode uid:gid size path [-> target])"
find "$ROOT" -mindepth 1 -printf '%M %U:%G %s %P %l\n' | sort -k4
exit $rc
