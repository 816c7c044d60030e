#!/usr/bin/env bash
# Lock service benchmark: FleetLock lock+unlock pairs per second from concurrent clients on
# loopback, on the embedded store and on etcd, with etcd's own compare-and-swap rate measured
# in the same run. Median of ROUNDS rounds, rounds interleaved.
#
#   bench/lock.sh                        # ROUNDS=3 DURATION=5 (seconds) CLIENTS=64
#   CLIENTS=16 bench/lock.sh             # another load shape
#   ETCD=none bench/lock.sh              # embedded store only
#
# Each client (crates/cairn-lock-server/examples/fleetlock_load.rs) keeps one HTTP/1.1
# connection and loops: POST /v1/pre-reboot, POST /v1/steady-state, with its own id, in a
# group with more slots than clients (a full group would measure waiting, not the service).
# Every answer is durable before it is sent: the embedded store fdatasyncs its journal (group
# commit), etcd commits each write to its WAL with fsync.
#
# etcd's own CAS rate (crates/cairn-lock/examples/etcd_cas.rs --mode cas): the same number
# of clients, each reading its own key and compare-and-swapping it (one txn with a
# mod_revision compare) through etcd's v3 JSON gateway, with no lock service in between.
# That is the most etcd gives a client doing CAS. The lock service needs one CAS per FleetLock
# request (two per pair), so the ratio compares the service's requests/s with etcd's CAS/s.
# Targets: >= 10,000 pairs/s embedded; the etcd backend within 2x of etcd's own CAS rate.
# Everything shares the machine's 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECONDS_PER_ROUND=${DURATION:-5}
CLIENTS=${CLIENTS:-64}
ETCD=${ETCD:-$(command -v etcd || echo none)}
cargo build --release --quiet -p cairn-cli
cargo build --release --quiet -p cairn-lock-server --example fleetlock_load
cargo build --release --quiet -p cairn-lock --example etcd_cas
CAIRN=$PWD/target/release/cairn
LOAD=$PWD/target/release/examples/fleetlock_load
CAS=$PWD/target/release/examples/etcd_cas
mkdir -p /var/tmp/cairn-bench
WORK=$(mktemp -d /var/tmp/cairn-bench/lock.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

# --- the embedded store --------------------------------------------------------------------
EMBEDDED_PORT=$(free_port)
printf '[groups.bench]\nslots = 100000\n' > "$WORK/lock.toml"
"$CAIRN" lock serve --listen "127.0.0.1:$EMBEDDED_PORT" --config "$WORK/lock.toml" \
  --data-dir "$WORK/embedded" 2>"$WORK/embedded.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$EMBEDDED_PORT/metrics"

# --- etcd, and the lock service on it -----------------------------------------------------
if [ "$ETCD" != none ]; then
  CLIENT_PORT=$(free_port); PEER_PORT=$(free_port); ETCD_PORT=$(free_port)
  "$ETCD" --name bench --data-dir "$WORK/etcd" \
    --listen-client-urls "http://127.0.0.1:$CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
    --initial-cluster "bench=http://127.0.0.1:$PEER_PORT" 2>"$WORK/etcd.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$CLIENT_PORT/health"
  printf '[groups.bench]\nslots = 100000\n[etcd]\nendpoints = ["http://127.0.0.1:%s"]\nprefix = "bench/"\n' \
    "$CLIENT_PORT" > "$WORK/lock-etcd.toml"
  "$CAIRN" lock serve --listen "127.0.0.1:$ETCD_PORT" --config "$WORK/lock-etcd.toml" \
    2>"$WORK/etcd-service.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$ETCD_PORT/metrics"
fi

load() { "$LOAD" --url "http://127.0.0.1:$1" --clients "$CLIENTS" --seconds "$SECONDS_PER_ROUND" --group bench; }
: > "$WORK/embedded.pairs"; : > "$WORK/embedded.p99"; : > "$WORK/etcd.pairs"; : > "$WORK/etcd.p99"; : > "$WORK/cas"
echo "warming up" >&2
load "$EMBEDDED_PORT" >/dev/null
[ "$ETCD" = none ] || load "$ETCD_PORT" >/dev/null
for round in $(seq "$ROUNDS"); do
  line=$(load "$EMBEDDED_PORT"); echo "round $round embedded: $line" >&2
  echo "$line" | field pairs_per_s >> "$WORK/embedded.pairs"; echo "$line" | field p99_ms >> "$WORK/embedded.p99"
  if [ "$ETCD" != none ]; then
    line=$(load "$ETCD_PORT"); echo "round $round etcd service: $line" >&2
    echo "$line" | field pairs_per_s >> "$WORK/etcd.pairs"; echo "$line" | field p99_ms >> "$WORK/etcd.p99"
    line=$("$CAS" --endpoints "http://127.0.0.1:$CLIENT_PORT" --clients "$CLIENTS" --seconds "$SECONDS_PER_ROUND" --mode cas)
    echo "round $round etcd own CAS: $line" >&2
    echo "$line" | field ops_per_second >> "$WORK/cas"
  fi
done

embedded=$(median < "$WORK/embedded.pairs"); embedded_p99=$(median < "$WORK/embedded.p99")
echo
echo "clients=$CLIENTS rounds=$ROUNDS seconds=$SECONDS_PER_ROUND (medians)"
printf 'embedded store:  %6d lock+unlock pairs/s  p99 %s ms per pair   (target >= 10000)\n' "$embedded" "$embedded_p99"
if [ "$ETCD" != none ]; then
  etcd=$(median < "$WORK/etcd.pairs"); etcd_p99=$(median < "$WORK/etcd.p99"); cas=$(median < "$WORK/cas")
  printf 'etcd backend:    %6d lock+unlock pairs/s  p99 %s ms per pair   = %d FleetLock requests/s\n' "$etcd" "$etcd_p99" $((2 * etcd))
  printf "etcd's own CAS:  %6d read+CAS/s, one key per client, no lock service\n" "$cas"
  awk -v r=$((2 * etcd)) -v c="$cas" 'BEGIN { printf "ratio: the service answers %.2fx of etcd'"'"'s own CAS rate (target: within 2x, i.e. >= 0.50)\n", r / c }'
fi
