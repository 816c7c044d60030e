#!/usr/bin/env bash
# Config translation benchmark: `cairn config translate` of a generated 5,000-line YAML
# config with 1,000 files (inline contents, modes, owners) and a few units; median of
# N runs, in milliseconds. Butane, the reference, is not packaged for Debian, so there
# is no peer figure on this machine; the target is an absolute 100 ms.
#
#   bench/config.sh            # RUNS=11 by default
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-11}
WORK=${WORK:-/var/tmp/cairn-bench/config}
CAIRN=${CAIRN:-$PWD/target/release/cairn}
[ -x "$CAIRN" ] || cargo build --release --quiet
mkdir -p "$WORK"
Y=$WORK/big.bu
{
  echo "variant: fcos"
  echo "version: 1.6.0"
  echo "storage:"
  echo "  files:"
  for i in $(seq 1 1000); do
    echo "    - path: /etc/cairn-bench/file-$i.conf"
    echo "      mode: 0644"
    echo "      contents:"
    echo "        inline: |"
    echo "          # generated file $i"
  done
  echo "systemd:"
  echo "  units:"
  for i in $(seq 1 40); do
    echo "    - name: bench-$i.service"
    echo "      enabled: true"
    echo "      contents: |"
    echo "        [Service]"
    echo "        ExecStart=/usr/bin/true $i"
  done
} > "$Y"
LINES=$(wc -l < "$Y")
times=()
for _ in $(seq 1 "$RUNS"); do
  start=$(date +%s%N)
  "$CAIRN" config translate "$Y" > "$WORK/big.ign"
  end=$(date +%s%N)
  times+=( $(( (end - start) / 1000000 )) )
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
echo "translate: $LINES lines, 1000 files -> $(wc -c < "$WORK/big.ign") bytes of JSON"
echo "runs (ms): ${times[*]}"
echo "median: ${median} ms (target < 100 ms)"
