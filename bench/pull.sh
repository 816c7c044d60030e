#!/usr/bin/env bash
# Pull benchmark: `cairn repo pull` vs `ostree pull` of the same commit from nginx on
# loopback, into empty repos of the same mode; median of N runs.
#
#   bench/pull.sh                      # uses the tree bench/store.sh builds
#   RUNS=5 TREE=/path/to/tree bench/pull.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
WORK=${WORK:-/var/tmp/cairn-bench}
TREE=${TREE:-$WORK/tree}
CAIRN=${CAIRN:-$PWD/target/release/cairn}
PORT=${PORT:-18099}
export PATH="$PATH:/usr/sbin:/sbin"
[ -x "$CAIRN" ] || cargo build --release --quiet
[ -d "$TREE" ] || { echo "no tree at $TREE: run bench/store.sh first (it builds one)" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 1; }

P=$WORK/pull; rm -rf "$P"; mkdir -p "$P/nginx-tmp"
# The served repository: written by ostree, so neither client pulls its own writer's output.
ostree --repo="$P/src" init --mode=archive
ostree --repo="$P/src" commit -b main --tree=dir="$TREE" >/dev/null
ostree --repo="$P/src" summary -u
OBJECTS=$(find "$P/src/objects" -type f | wc -l)
cat > "$P/nginx.conf" <<CONF
daemon on; worker_processes 2; pid $P/nginx.pid; error_log $P/error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; keepalive_requests 100000;
  client_body_temp_path $P/nginx-tmp; proxy_temp_path $P/nginx-tmp; fastcgi_temp_path $P/nginx-tmp;
  uwsgi_temp_path $P/nginx-tmp; scgi_temp_path $P/nginx-tmp;
  server { listen 127.0.0.1:$PORT; root $P/src; } }
CONF
nginx -c "$P/nginx.conf" -p "$P"
trap 'kill $(cat "$P/nginx.pid") 2>/dev/null || true' EXIT
URL=http://127.0.0.1:$PORT/
echo "serving $OBJECTS objects from $P/src on $URL; $RUNS runs" >&2

declare -A T
settle() { sync; sleep 6; }
timed() { local key=$1; shift; settle; local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); T[$key]="${T[$key]:-} $(echo "$e - $s" | bc)"; }
for run in $(seq 1 "$RUNS"); do
  echo "run $run/$RUNS" >&2
  for mode in archive bare-user; do
    rm -rf "$P/o" "$P/c"
    ostree --repo="$P/o" init --mode=$mode
    ostree --repo="$P/o" remote add --no-gpg-verify origin "$URL"
    "$CAIRN" repo init --repo "$P/c" --mode $mode
    "$CAIRN" repo remote add --repo "$P/c" --no-gpg-verify origin "$URL"
    timed "ostree_$mode" ostree --repo="$P/o" pull origin main
    timed "cairn_$mode" "$CAIRN" repo pull --repo "$P/c" origin main
  done
done
rm -rf "$P/o" "$P/c"

# The everyday update: change 1% of the files, commit, and let ostree generate the delta
# (both clients then pull the same delta from the same server into bare-user repos
# that hold the previous commit).
echo "delta: baseline repos" >&2
ostree --repo="$P/o-base" init --mode=bare-user
ostree --repo="$P/o-base" remote add --no-gpg-verify origin "$URL"
ostree --repo="$P/o-base" pull origin main >/dev/null
"$CAIRN" repo init --repo "$P/c-base" --mode bare-user
"$CAIRN" repo remote add --repo "$P/c-base" --no-gpg-verify origin "$URL"
"$CAIRN" repo pull --repo "$P/c-base" origin main >/dev/null 2>&1
NEWTREE=$P/tree2; cp -a "$TREE" "$NEWTREE"
find "$NEWTREE" -type f -perm -u+w | sort | awk 'NR % 100 == 0' | while read -r f; do echo "cairn pull bench" >> "$f"; done
ostree --repo="$P/src" commit -b main --tree=dir="$NEWTREE" >/dev/null
ostree --repo="$P/src" static-delta generate main >/dev/null
ostree --repo="$P/src" summary -u
rm -rf "$NEWTREE"
for run in $(seq 1 "$RUNS"); do
  echo "delta run $run/$RUNS" >&2
  rm -rf "$P/o" "$P/c"
  cp -a "$P/o-base" "$P/o"; cp -a "$P/c-base" "$P/c"
  settle
  s=$(date +%s.%N); OUT=$(ostree --repo="$P/o" pull origin main 2>&1 | tail -1); e=$(date +%s.%N)
  T[ostree_delta]="${T[ostree_delta]:-} $(echo "$e - $s" | bc)"
  OSTREE_DELTA_LINE=$OUT
  settle
  s=$(date +%s.%N); JSON=$("$CAIRN" repo pull --repo "$P/c" --json origin main); e=$(date +%s.%N)
  T[cairn_delta]="${T[cairn_delta]:-} $(echo "$e - $s" | bc)"
  CAIRN_DELTA_BYTES=$(echo "$JSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_fetched"])')
done
rm -rf "$P/o" "$P/c" "$P/o-base" "$P/c-base"

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
row() { local o c; o=$(echo "${T[$2]}" | median); c=$(echo "${T[$3]}" | median)
  printf "| %-40s | %8.2f s | %8.2f s | %6.1fx |\n" "$1" "$o" "$c" "$(echo "$o / $c" | bc -l)"; }
echo
echo "| pull of $OBJECTS objects from nginx (median of $RUNS) | ostree | cairn | speed-up |"
echo "|---|---|---|---|"
row "pull into an empty archive repo" ostree_archive cairn_archive
row "pull into an empty bare-user repo" ostree_bare-user cairn_bare-user
row "update after a 1% change, with the delta" ostree_delta cairn_delta
echo
echo "delta pull, last run: ostree: $OSTREE_DELTA_LINE"
echo "delta pull, last run: cairn: $CAIRN_DELTA_BYTES bytes transferred"
