#!/usr/bin/env bash
# Per-operation cost of every subject under callgrind (instruction counts and simulated cache
# misses are stable on a busy machine, unlike timings), as a markdown table.
#
#   scripts/callgrind.sh                                 # every subject, ~2-3 minutes
#   SUBJECTS="session-cache quick_cache hashbrown" scripts/callgrind.sh
#
# Single thread, a full cache of 20 480 sessions with 32-byte ids, the sessions allocated
# before the measured loops: get hit (every cached id once, in random order), get miss, add
# (each evicts; the release of the evicted sessions is counted), remove (4 096 cached ids spread
# over the cache), churn (after 81 920 unmeasured adds of fresh ids, each removed again but every
# eighth, 20 480 more measured the same way: per add, with the remove that follows it; not for
# rustls, whose remove scans every key). `hashbrown` is the floor: a plain map with ahash, get + `Arc` clone.
# `ceiling` and `ceiling-shared` are the ideal tables of benches/compare/ceiling*.rs, not caches:
# what the contract's per-operation costs come to without the rest of a cache;
# `ceiling-assoc-credit` the associative probe (ceiling_assoc.rs), a set-associative table with
# what a cache keeps of the contract's counts.
# Only the `measure_*` functions of the compare binary are counted (--toggle-collect), and each
# figure is divided by that function's iteration count. D1 and LL misses are data misses,
# reads + writes, under the tool's default cache geometry (taken from the host).
#
# Output: the table on stdout; target/callgrind/<subject>.out.<n> (one dump per measured
# function; callgrind_annotate reads them) and <subject>.json, and
# target/callgrind/callgrind.jsonl (read by scripts/bench_report.py).
set -euo pipefail
cd "$(dirname "$0")/.."
SUBJECTS="${SUBJECTS:-session-cache papaya dashmap scc-HashMap scc-HashCache moka quick_cache mutex-fifo rustls openssl hashbrown ceiling ceiling-shared ceiling-assoc-credit}"
N="${N:-20480}"
DIR="${DIR:-target/callgrind}"
JOBS="${JOBS:-$(nproc)}"   # valgrind runs at a time (instruction counts do not depend on it)

if ! command -v valgrind >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
  else
    echo "callgrind.sh needs valgrind (Debian: sudo apt-get install valgrind)" >&2
    exit 1
  fi
fi
command -v python3 >/dev/null || { echo "callgrind.sh needs python3" >&2; exit 1; }

cargo build --release --locked -q -p session-cache-bench --bin compare >&2
bin=target/release/compare
mkdir -p "$DIR"
rm -f "$DIR"/*.out* "$DIR"/*.json "$DIR"/*.log "$DIR/callgrind.jsonl"
one() {
  local s=$1 fns f
  echo "== callgrind: $s" >&2
  # One dump as each measured function returns (--dump-after takes exact names).
  if [ "$s" = hashbrown ]; then fns="measure_floor_get_hit measure_floor_get_miss"
  elif [ "$s" = rustls ]; then fns="measure_get_hit measure_get_miss measure_add measure_remove"
  else fns="measure_get_hit measure_get_miss measure_add measure_remove measure_churn"; fi
  local dumps=()
  for f in $fns; do dumps+=("--dump-after=compare::$f"); done
  valgrind --tool=callgrind --cache-sim=yes --collect-atstart=no --toggle-collect='*measure_*' \
    "${dumps[@]}" --callgrind-out-file="$DIR/$s.out" "$bin" profile --subject "$s" --n "$N" \
    >"$DIR/$s.json" 2>"$DIR/$s.log" || { tail -20 "$DIR/$s.log" >&2; return 1; }
}
pids=()
for s in $SUBJECTS; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 0.2; done
  one "$s" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { echo "callgrind.sh: a run failed" >&2; exit 1; }; done
python3 scripts/bench_report.py callgrind "$DIR" $SUBJECTS
