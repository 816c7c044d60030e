#!/usr/bin/env bash
# Provisioning benchmark: `cairn provision apply` vs Ignition 2.14's fetch + files stages
# (Debian's package, run by crates/cairn-apply/tests/peer/ignition-files-stage.sh) on the
# same generated config, each on a fresh copy of the same seeded root; interleaved,
# median of N runs.
#
#   bench/provision.sh            # RUNS=3 by default; needs root and `apt-get install ignition`
#
# The config (Ignition spec 3.3.0, the newest 2.14 accepts): 1,000 files in 50 directories
# under /opt/bench and /etc/bench (data: URLs, 100 B - 8 KiB, some with a mode, some owned
# by name by a created user), 20 systemd units (half enabled, two with drop-ins, one
# masked), 5 users with SSH keys (one in wheel) and 1 group. The seeded root is the one the
# peer script's --seed-etc creates; its seeding commands are taken from the script itself.
#
# Peer figures come from one invocation of a copy of the peer script that records the time
# (bash's $EPOCHREALTIME, no process) before the fetch stage, between the stages and after
# the files stage: the whole script (including its `find` dump of the tree), fetch + files
# (the script up to the dump: both stages each parse the config, as cairn does), and the
# files stage alone. As a floor, each run also times `cp -a` of the root cairn produced:
# the same inodes and bytes written by the simplest tool.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench/provision.sh must run as root (chown, useradd --root)" >&2; exit 1; }
RUNS=${RUNS:-3}
CAIRN=${CAIRN:-$PWD/target/release/cairn}
IGN=/usr/lib/dracut/modules.d/30ignition/ignition
PEER_SRC=crates/cairn-apply/tests/peer/ignition-files-stage.sh
[ -x "$IGN" ] || { echo "Ignition 2.14 is not installed (apt-get install ignition)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed to generate the config" >&2; exit 1; }
cargo build --release --quiet -p cairn-cli
mkdir -p /var/tmp/cairn-bench
WORK=$(mktemp -d /var/tmp/cairn-bench/provision.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"   # Ignition writes SSH keys as the user: the roots must be reachable

# --- the config -------------------------------------------------------------------------
CFG=$WORK/config.ign
python3 - "$CFG" <<'EOF'
import base64, json, random, sys
rng = random.Random(20261125)
users = [f"bench{i}" for i in range(1, 6)]
def key(i):
    blob = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes([i] * 32)).decode()
    return f"ssh-ed25519 {blob} bench{i}@example"
dirs = [f"/opt/bench/d{i:02}" for i in range(25)] + [f"/etc/bench/d{i:02}" for i in range(25)]
files = []
for n in range(1000):
    size = rng.randint(100, 8192)
    line = f"# bench file {n}: generated line {rng.getrandbits(64):016x}\n"
    data = (line * (size // len(line) + 1))[:size].encode()
    f = {"path": f"{dirs[n % len(dirs)]}/file-{n:04}.conf",
         "contents": {"source": "data:;base64," + base64.b64encode(data).decode()}}
    if n % 3 == 0:
        f["mode"] = [0o600, 0o640, 0o755][n // 3 % 3]
    if n % 5 == 0:
        f["user"] = {"name": users[n // 5 % len(users)]}
    if n % 10 == 0:
        f["group"] = {"name": "wheel"}
    files.append(f)
units = []
for i in range(1, 21):
    name = f"bench-{i:02}.service"
    if i == 20:
        units.append({"name": name, "mask": True})
        continue
    u = {"name": name,
         "contents": f"[Unit]\nDescription=bench unit {i}\n\n[Service]\nType=oneshot\n"
                     f"ExecStart=/usr/bin/true {i}\n\n[Install]\nWantedBy=multi-user.target\n"}
    if i % 2 == 1:
        u["enabled"] = True
    if i in (3, 4):
        u["dropins"] = [{"name": "10-bench.conf",
                         "contents": f"[Service]\nEnvironment=BENCH={i}\n"}]
    units.append(u)
config = {
    "ignition": {"version": "3.3.0"},
    "passwd": {
        "users": [dict({"name": u, "sshAuthorizedKeys": [key(i + 1)]},
                       **({"groups": ["wheel"]} if i == 0 else {}))
                  for i, u in enumerate(users)],
        "groups": [{"name": "benchgrp"}],
    },
    "storage": {"files": files},
    "systemd": {"units": units},
}
with open(sys.argv[1], "w") as out:
    json.dump(config, out)
EOF

# --- the seeded root: the peer script's own --seed-etc commands, run once --------------
SEED=$WORK/seed.sh
sed -n '/^if \[ "\$SEED" = "--seed-etc" \]; then$/,/^fi$/p' "$PEER_SRC" > "$SEED"
grep -q 'login.defs' "$SEED" || { echo "could not find the --seed-etc block in $PEER_SRC" >&2; exit 1; }
TEMPLATE=$WORK/template
mkdir -p "$TEMPLATE"
SEED=--seed-etc ROOT=$TEMPLATE bash -euo pipefail "$WORK/seed.sh"

# --- the peer, instrumented: three timestamps into $PEER_MARKS ---------------------------
PEER=$WORK/ignition-files-stage.sh
sed -e '/^rc=0$/i echo "$EPOCHREALTIME" >> "$PEER_MARKS"' \
    -e '/^\[ \$rc -eq 0 \] && {/i echo "$EPOCHREALTIME" >> "$PEER_MARKS"' \
    -e '/^echo "=== rc=\$rc"$/i echo "$EPOCHREALTIME" >> "$PEER_MARKS"' "$PEER_SRC" > "$PEER"
[ "$(grep -c PEER_MARKS "$PEER")" -eq 3 ] || { echo "could not instrument $PEER_SRC" >&2; exit 1; }

NFILES=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["storage"]["files"]))' "$CFG")
echo "config: $(wc -c < "$CFG") bytes, $NFILES files, 20 units, 5 users, 1 group; $RUNS runs; $(nproc) cores" >&2

# This machine's ext4 has no journal, and then ext4 skips inodes freed in the last 60 s
# (300 s while their inode table block is dirty) when it allocates new ones, each skip a
# lookup: an allocation after many deletions costs several times more. So nothing is
# deleted while the runs go on (every run gets its own copy of the template; all are
# removed at the end), the first run waits out any earlier deletion (a previous run of
# this script removes ~10,000 inodes at its end), and every step starts after a sync.
settle() { sync; sleep "${SETTLE:-6}"; }
fresh_root() { cp -a "$TEMPLATE" "$1"; }
count() { find "$1/opt/bench" "$1/etc/bench" -type f 2>/dev/null | wc -l; }
secs() { printf "%.3f" "$(echo "$2 - $1" | bc)"; }

P_ALL=(); P_FF=(); P_FILES=(); C_ALL=(); CP_ALL=()
for run in $(seq 1 "$RUNS"); do
  echo "run $run/$RUNS" >&2
  # peer
  fresh_root "$WORK/peer-$run"; rm -f "$WORK/marks"
  if [ "$run" -eq 1 ]; then SETTLE=${FIRST_SETTLE:-61} settle; else settle; fi
  s=$EPOCHREALTIME
  rc=0; PEER_MARKS=$WORK/marks bash "$PEER" "$CFG" "$WORK/peer-$run" > "$WORK/peer.out" 2>&1 || rc=$?
  e=$EPOCHREALTIME
  [ $rc -eq 0 ] || { echo "Ignition failed (exit $rc):" >&2; grep -v '^[-dlrwxst]\{10\} ' "$WORK/peer.out" | tail -40 >&2; exit 1; }
  mapfile -t m < "$WORK/marks"
  P_ALL+=( "$(secs "$s" "$e")" ); P_FF+=( "$(secs "$s" "${m[2]}")" ); P_FILES+=( "$(secs "${m[1]}" "${m[2]}")" )
  # cairn
  fresh_root "$WORK/cairn-$run"; settle
  s=$EPOCHREALTIME
  rc=0; "$CAIRN" provision apply --root "$WORK/cairn-$run" "$CFG" > "$WORK/cairn.out" 2>&1 || rc=$?
  e=$EPOCHREALTIME
  [ $rc -eq 0 ] || { echo "cairn provision apply failed (exit $rc):" >&2; cat "$WORK/cairn.out" >&2; exit 1; }
  C_ALL+=( "$(secs "$s" "$e")" )
  # the filesystem's floor: cp -a of the root cairn produced (the same inodes and bytes)
  settle
  s=$EPOCHREALTIME; cp -a "$WORK/cairn-$run" "$WORK/copy-$run"; e=$EPOCHREALTIME
  CP_ALL+=( "$(secs "$s" "$e")" )
  PC=$(count "$WORK/peer-$run"); CC=$(count "$WORK/cairn-$run")
  printf 'run %d: ignition script %ss (fetch+files %ss, files stage %ss), cairn %ss, cp -a %ss; files under /opt/bench and /etc/bench: ignition %d, cairn %d\n' \
    "$run" "${P_ALL[-1]}" "${P_FF[-1]}" "${P_FILES[-1]}" "${C_ALL[-1]}" "${CP_ALL[-1]}" "$PC" "$CC"
  [ "$PC" -eq "$NFILES" ] && [ "$CC" -eq "$NFILES" ] || { echo "file count mismatch (expected $NFILES)" >&2; exit 1; }
done
echo "cairn output (last run): $(cat "$WORK/cairn.out")"

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
c=$(median "${C_ALL[@]}")
row() { # row LABEL PEER_TIMES...
  local label=$1; shift
  local p; p=$(median "$@")
  printf "| %-48s | %7.3f s | %7.3f s | %6.1fx |\n" "$label" "$p" "$c" "$(echo "$p / $c" | bc -l)"
}
echo
echo "| cairn provision apply vs Ignition 2.14 (median of $RUNS) | ignition | cairn | speed-up |"
echo "|---|---|---|---|"
row "whole peer script (fetch, files, find dump)" "${P_ALL[@]}"
row "fetch + files stages (script without the dump)" "${P_FF[@]}"
row "files stage alone" "${P_FILES[@]}"
echo
printf "floor: cp -a of cairn's resulting root, median %.3f s (cairn takes %.1fx that)\n" "$(median "${CP_ALL[@]}")" "$(echo "$c / $(median "${CP_ALL[@]}")" | bc -l)"
echo "target: >= 10x faster than the files stage"
