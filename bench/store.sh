#!/usr/bin/env bash
# Store benchmark: cairn vs ostree on the same tree, side by side, median of N runs.
#
#   bench/store.sh                  # builds the tree from /usr on first use
#   RUNS=5 TREE=/path/to/tree bench/store.sh
#
# Prints one line per operation: ostree's median, cairn's median, and the ratio.
# Needs ostree (apt-get install ostree) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
WORK=${WORK:-/var/tmp/cairn-bench}
TREE=${TREE:-$WORK/tree}
CAIRN=${CAIRN:-$PWD/target/release/cairn}
[ -x "$CAIRN" ] || cargo build --release --quiet
command -v ostree >/dev/null || { echo "ostree is not installed (apt-get install ostree)" >&2; exit 1; }
mkdir -p "$WORK"

if [ ! -d "$TREE" ]; then
  echo "building the test tree in $TREE from /usr (share, include, lib/x86_64-linux-gnu)" >&2
  mkdir -p "$TREE/usr/lib"
  cp -a /usr/share /usr/include "$TREE/usr/"
  cp -a /usr/lib/x86_64-linux-gnu "$TREE/usr/lib/"
fi
FILES=$(find "$TREE" -type f | wc -l)
LINKS=$(find "$TREE" -type l | wc -l)
BYTES=$(du -sb "$TREE" | cut -f1)
echo "tree: $TREE: $FILES files, $LINKS symlinks, $((BYTES / 1000000)) MB; $RUNS runs; $(nproc) cores" >&2

declare -A T
now() { date +%s.%N; }
# ext4 scans recently freed inodes when it allocates new ones; let deletions settle
# (sync, then wait out its 5-second window) so no timed step pays for the previous one.
# Directory and symlink creation also skips inodes freed in the last 60 seconds (ext4's
# recently_deleted), so checkouts, which create thousands of each, wait longer.
settle() { sync; sleep "${SETTLE:-6}"; }
timed() { # timed KEY command...
  local key=$1; shift
  settle
  local s; s=$(now)
  "$@" >/dev/null
  local e; e=$(now)
  T[$key]="${T[$key]:-} $(echo "$e - $s" | bc)"
}

# Change 1% of the files: append a line to every 100th regular file (stable order).
change_one_percent() {
  find "$TREE" -type f -perm -u+w | sort | awk 'NR % 100 == 0' | while read -r f; do echo "cairn bench $RANDOM" >> "$f"; done
}

for run in $(seq 1 "$RUNS"); do
  echo "run $run/$RUNS" >&2
  R=$WORK/run; rm -rf "$R"; mkdir -p "$R"

  # archive: first commit, then the everyday rebuild after a 1% change
  ostree --repo="$R/o-archive" init --mode=archive
  "$CAIRN" repo init --repo "$R/c-archive" --mode archive
  timed ostree_archive ostree --repo="$R/o-archive" commit -b main --tree=dir="$TREE"
  timed cairn_archive "$CAIRN" repo commit --repo "$R/c-archive" -b main "$TREE"
  "$CAIRN" repo init --repo "$R/c-archive1" --mode archive
  timed cairn_archive_l1 "$CAIRN" repo commit --repo "$R/c-archive1" -b main --compression-level 1 "$TREE"
  SIZES="ostree $(du -sm "$R/o-archive" | cut -f1) MB, cairn $(du -sm "$R/c-archive" | cut -f1) MB, cairn level 1 $(du -sm "$R/c-archive1" | cut -f1) MB"
  rm -rf "$R/c-archive1"
  change_one_percent
  timed ostree_rebuild ostree --repo="$R/o-archive" commit -b main --tree=dir="$TREE"
  timed cairn_rebuild "$CAIRN" repo commit --repo "$R/c-archive" -b main "$TREE"
  rm -rf "$R/o-archive" "$R/c-archive"

  # bare-user commit, and cp -a of the same tree as the physical reference
  ostree --repo="$R/o-bu" init --mode=bare-user
  "$CAIRN" repo init --repo "$R/c-bu" --mode bare-user
  timed ostree_bareuser ostree --repo="$R/o-bu" commit -b main --tree=dir="$TREE"
  timed cairn_bareuser "$CAIRN" repo commit --repo "$R/c-bu" -b main "$TREE"
  timed cp_a cp -a "$TREE" "$R/copy"
  rm -rf "$R/copy"

  # hardlink checkout from bare-user; each tool's own repo; nothing deleted in between
  # and the order alternates between runs
  if [ $((run % 2)) -eq 1 ]; then
    SETTLE=61 timed ostree_checkout ostree --repo="$R/o-bu" checkout -U -H main "$R/o-co"
    SETTLE=61 timed cairn_checkout_noverify "$CAIRN" repo checkout --repo "$R/c-bu" -U -H --no-verify main "$R/c-co1"
  else
    SETTLE=61 timed cairn_checkout_noverify "$CAIRN" repo checkout --repo "$R/c-bu" -U -H --no-verify main "$R/c-co1"
    SETTLE=61 timed ostree_checkout ostree --repo="$R/o-bu" checkout -U -H main "$R/o-co"
  fi
  SETTLE=61 timed cairn_checkout "$CAIRN" repo checkout --repo "$R/c-bu" -U -H main "$R/c-co2"
  rm -rf "$R"
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
row() { # row LABEL OSTREE_KEY CAIRN_KEY
  local o c; o=$(echo "${T[$2]}" | median); c=$(echo "${T[$3]}" | median)
  printf "| %-44s | %8.2f s | %8.2f s | %6.1fx |\n" "$1" "$o" "$c" "$(echo "$o / $c" | bc -l)"
}
echo
echo "| operation ($FILES files, $((BYTES / 1000000)) MB, median of $RUNS) | reference | cairn | speed-up |"
echo "|---|---|---|---|"
row "commit, archive (vs ostree)" ostree_archive cairn_archive
row "commit, archive, --compression-level 1" ostree_archive cairn_archive_l1
row "commit, bare-user (vs ostree)" ostree_bareuser cairn_bareuser
row "commit, bare-user (vs cp -a)" cp_a cairn_bareuser
row "hardlink checkout -U -H (vs ostree)" ostree_checkout cairn_checkout
row "hardlink checkout --no-verify (vs ostree)" ostree_checkout cairn_checkout_noverify
row "second commit after 1% change, archive" ostree_rebuild cairn_rebuild
echo
echo "archive repository sizes (last run): $SIZES"
