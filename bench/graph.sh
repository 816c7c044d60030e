#!/usr/bin/env bash
# Update graph service benchmark: `cairn graph serve` answering Cincinnati's
# `GET /v1/graph` for the stable stream, loaded from loopback with wrk; median of N rounds
# per query, in requests/s and 99th-percentile latency.
#
#   bench/graph.sh            # ROUNDS=3, DURATION=10s, THREADS=2, CONNS=64 by default
#   THREADS=1 CONNS=16 bench/graph.sh      # another load shape
#   CAIRN=/path/to/cairn NGINX=none bench/graph.sh   # another binary, no nginx reference
#
# The inputs are generated (python3) in the format of Fedora CoreOS's own documents
# (crates/cairn-graph/tests/data/synthetic/, shared/data/fcos-updates/): a release index
# of 200 stable releases, every one for x86_64, aarch64 from the 21st on, container images
# (oci-images) for both from the 121st on; and updates/stable.json with 15 barriers, 2 dead
# ends and 2 rollouts, one complete (started 14 days ago, 2 days long) and one in progress
# (started 1 day ago, 3 days long, so a third of the fleet sees it now). They are checked
# with `cairn graph build` before the server starts.
#
# Three queries, each warmed up for 2 s, then measured ROUNDS times, interleaved:
#   wariness   basearch=x86_64&stream=stable&rollout_wariness=0.5
#   node_uuid  basearch=x86_64&stream=stable&node_uuid=<fixed>   (wariness derived per request)
#   oci        basearch=x86_64&stream=stable&rollout_wariness=0.5&oci=true
# wrk and the server run on the same 2 cores: the figures are for both together.
#
# The reference, in the same rounds: nginx (Debian's nginx-light, a test peer of
# scripts/test; 2 workers, sendfile, no access log) serving the very bytes cairn answered,
# as static files. It parses no query and applies no policy: the ceiling of wrk, loopback
# TCP and these 2 cores for a response of that size. Skipped when nginx is not installed.
# Target: >= 50,000 requests/s and p99 < 2 ms for the stable stream.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
CAIRN=${CAIRN:-$PWD/target/release/cairn}
command -v python3 >/dev/null || { echo "python3 is needed to generate the inputs" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
  [ "$(id -u)" -eq 0 ] || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
  echo "installing wrk" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
cargo build --release --quiet -p cairn-cli
mkdir -p /var/tmp/cairn-bench
WORK=$(mktemp -d /var/tmp/cairn-bench/graph.XXXXXX)
chmod 755 "$WORK"   # nginx workers run as nobody
SERVER=
NGINX=${NGINX:-/usr/sbin/nginx}
[ -x "$NGINX" ] || NGINX=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  if [ -s "$WORK/nginx/nginx.pid" ]; then kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true; sleep 0.5; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the inputs --------------------------------------------------------------------------
python3 - "$WORK" <<'EOF'
import datetime, hashlib, json, sys, time
work = sys.argv[1]
now = int(time.time())
N = 200
AARCH64_FROM, OCI_FROM = 20, 120
def hexid(*parts):
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()
releases, versions = [], []
day = datetime.date(2020, 1, 8)
for i in range(N):
    major = 31 + (day - datetime.date(2020, 1, 8)).days // 182
    version = f"{major}.{day:%Y%m%d}.3.{1 if i % 9 == 4 else 0}"
    versions.append(version)
    arches = ["x86_64"] + (["aarch64"] if i >= AARCH64_FROM else [])
    release = {"commits": [{"architecture": a, "checksum": hexid("commit", version, a)}
                           for a in arches]}
    if i >= OCI_FROM:
        release["oci-images"] = [{
            "architecture": a,
            "image": "quay.io/fedora/fedora-coreos:stable",
            "digest-ref": "quay.io/fedora/fedora-coreos@sha256:" + hexid("oci", version, a),
        } for a in arches]
    release["version"] = version
    release["metadata"] = (f"https://builds.coreos.fedoraproject.org/prod/streams/stable/"
                           f"builds/{version}/release.json")
    releases.append(release)
    day += datetime.timedelta(days=13 if i % 3 else 14)
stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
index = {
    "note": "SYNTHETIC benchmark input (bench/graph.sh), not real FCOS data",
    "releases": releases,
    "metadata": {"last-modified": stamp},
    "stream": "stable",
}
# 15 barriers, every 13th release from the 6th; dead ends on two releases between them;
# the newest release is rolling out now, the one before it finished rolling out.
barriers = {5 + 13 * k for k in range(15)}
deadends = {63, 144}
assert not barriers & deadends and max(barriers) < N - 2
entries = []
for i, version in enumerate(versions):
    meta = {}
    if i in barriers:
        meta["barrier"] = {"reason": f"https://github.com/coreos/fedora-coreos-tracker/issues/{400 + i}"}
    if i in deadends:
        meta["deadend"] = {"reason": f"https://github.com/coreos/fedora-coreos-tracker/issues/{900 + i}"}
    if i == N - 2:
        meta["rollout"] = {"duration_minutes": 2880, "start_epoch": now - 14 * 86400, "start_percentage": 0.0}
    if i == N - 1:
        meta["rollout"] = {"duration_minutes": 4320, "start_epoch": now - 86400, "start_percentage": 0.0}
    if meta:
        entries.append({"version": version, "metadata": meta})
updates = {"stream": "stable", "metadata": {"last-modified": stamp}, "releases": entries}
with open(f"{work}/releases-stable.json", "w") as out:
    json.dump(index, out, indent=2)
with open(f"{work}/updates-stable.json", "w") as out:
    json.dump(updates, out, indent=2)
EOF
INDEX="$WORK/releases-{stream}.json"
UPDATES="$WORK/updates-{stream}.json"
# The inputs must build, for each architecture and payload kind.
for arch in x86_64 aarch64; do
  for oci in "" --oci; do
    "$CAIRN" graph build --release-index "$INDEX" --updates "$UPDATES" --stream stable \
      --basearch "$arch" $oci > /dev/null
  done
done
describe() { python3 - "$@" <<'EOF'
import json, sys
index = json.load(open(sys.argv[1])); updates = json.load(open(sys.argv[2]))
rs = index["releases"]; es = updates["releases"]
count = lambda key: sum(1 for e in es if key in e["metadata"])
print(f"release index: {len(rs)} releases ({sum(1 for r in rs if 'oci-images' in r)} with oci-images), "
      f"{len(open(sys.argv[1]).read())} bytes; updates: {count('barrier')} barriers, "
      f"{count('deadend')} dead ends, {count('rollout')} rollouts")
EOF
}
describe "$WORK/releases-stable.json" "$WORK/updates-stable.json" >&2

# --- the server --------------------------------------------------------------------------
PORT=${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
BASE=http://127.0.0.1:$PORT
"$CAIRN" graph serve --listen "127.0.0.1:$PORT" --release-index "$INDEX" --updates "$UPDATES" \
  --stream stable > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
  curl -fs "$BASE/status" 2>/dev/null | grep -q '"serving":true' && break
  kill -0 "$SERVER" 2>/dev/null || { echo "the server exited:" >&2; cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -fs "$BASE/status" | grep -q '"serving":true' || { echo "the server never loaded the stream:" >&2; curl -s "$BASE/status" >&2; exit 1; }

NAMES=(wariness node_uuid oci)
declare -A QUERY=(
  [wariness]="basearch=x86_64&stream=stable&rollout_wariness=0.5"
  [node_uuid]="basearch=x86_64&stream=stable&node_uuid=e4f5a8d1c2b34e6f9a0b1c2d3e4f5a6b"
  [oci]="basearch=x86_64&stream=stable&rollout_wariness=0.5&oci=true"
)
declare -A SIZE
mkdir -p "$WORK/nginx/www" "$WORK/nginx/tmp"
for name in "${NAMES[@]}"; do
  url="$BASE/v1/graph?${QUERY[$name]}"
  curl -fs -o "$WORK/$name.json" "$url" || { echo "GET $url failed" >&2; exit 1; }
  cp "$WORK/$name.json" "$WORK/nginx/www/$name.json"
  SIZE[$name]=$(wc -c < "$WORK/$name.json")
  python3 -c 'import json, sys; g = json.load(open(sys.argv[1])); print(sys.argv[2] + ":", len(g["nodes"]), "nodes,", len(g["edges"]), "edges,", sys.argv[3], "bytes")' \
    "$WORK/$name.json" "$name" "${SIZE[$name]}" >&2
done

# --- the reference: nginx serving the same bytes -------------------------------------------
if [ -n "$NGINX" ]; then
  NPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  N=$WORK/nginx
  cat > "$N/nginx.conf" <<EOF
worker_processes 2;
pid $N/nginx.pid;
error_log $N/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $N/tmp; proxy_temp_path $N/tmp; fastcgi_temp_path $N/tmp;
  uwsgi_temp_path $N/tmp; scgi_temp_path $N/tmp;
  sendfile on; tcp_nopush on; open_file_cache max=16;
  default_type application/json;
  server { listen 127.0.0.1:$NPORT; root $N/www; }
}
EOF
  "$NGINX" -c "$N/nginx.conf" -e "$N/error.log"
  for name in "${NAMES[@]}"; do
    cmp -s <(curl -fs "http://127.0.0.1:$NPORT/$name.json") "$WORK/$name.json" \
      || { echo "nginx does not serve $name.json:" >&2; cat "$N/error.log" >&2; exit 1; }
  done
fi

# --- load ----------------------------------------------------------------------------------
# run_wrk URL DURATION: prints "REQ_PER_SEC P99_MS"; fails on errors or non-2xx answers.
run_wrk() {
  local out=$WORK/wrk.out
  wrk -t"$THREADS" -c"$CONNS" -d"$2" --latency "$1" > "$out"
  if grep -q -e 'Non-2xx' -e 'Socket errors' "$out"; then
    echo "wrk reported errors for $1:" >&2; cat "$out" >&2; exit 1
  fi
  awk '
    /^Requests\/sec:/ { rps = $2 }
    /^ +99%/ { v = $2; u = v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u);
               p99 = (u == "us") ? v / 1000 : (u == "ms") ? v : (u == "s") ? v * 1000 : -1 }
    END { if (rps == "" || p99 == "" || p99 < 0) exit 1; printf "%s %.3f\n", rps, p99 }' "$out" \
    || { echo "could not read wrk output:" >&2; cat "$out" >&2; exit 1; }
}
echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency; $ROUNDS rounds; $(nproc) cores shared by wrk and the server" >&2
SERVERS=(cairn); [ -n "$NGINX" ] && SERVERS+=(nginx)
url() { # url SERVER NAME
  if [ "$1" = cairn ]; then echo "$BASE/v1/graph?${QUERY[$2]}"; else echo "http://127.0.0.1:$NPORT/$2.json"; fi
}
for server in "${SERVERS[@]}"; do
  for name in "${NAMES[@]}"; do run_wrk "$(url "$server" "$name")" 2s > /dev/null; done
done
declare -A RPS P99
for round in $(seq 1 "$ROUNDS"); do
  for name in "${NAMES[@]}"; do
    for server in "${SERVERS[@]}"; do
      result=$(run_wrk "$(url "$server" "$name")" "$DURATION")
      read -r rps p99 <<< "$result"
      RPS[$server.$name]+="$rps "; P99[$server.$name]+="$p99 "
      printf 'round %d %-9s %-5s %10.0f req/s  p99 %6.3f ms\n' "$round" "$name" "$server" "$rps" "$p99" >&2
    done
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# shellcheck disable=SC2086
med() { median $1; }
echo
echo "| /v1/graph query (median of $ROUNDS, wrk -t$THREADS -c$CONNS -d$DURATION) | response | cairn req/s | cairn p99 | nginx, same bytes: req/s | p99 | target (>= 50,000/s, p99 < 2 ms) |"
echo "|---|---|---|---|---|---|---|"
for name in "${NAMES[@]}"; do
  rps=$(med "${RPS[cairn.$name]}"); p99=$(med "${P99[cairn.$name]}")
  if [ -n "$NGINX" ]; then
    ref=$(printf '%.0f | %.2f ms' "$(med "${RPS[nginx.$name]}")" "$(med "${P99[nginx.$name]}")")
  else
    ref="- | -"
  fi
  met=$(awk -v r="$rps" -v p="$p99" 'BEGIN { print (r >= 50000 && p < 2) ? "met" : "not met" }')
  printf '| `%s` | %s B | %.0f | %.2f ms | %s | %s |\n' "${QUERY[$name]}" "${SIZE[$name]}" "$rps" "$p99" "$ref" "$met"
done
