#!/usr/bin/env bash
# Every benchmark, then BENCHMARKS.md at the repository root, from one command. Run it on an
# idle machine: a benchmark taken while other work runs is not a measurement (the load average
# before and after is recorded).
#
#   scripts/bench.sh           # full run: about 30 minutes on 2 cores, plus the first build
#   scripts/bench.sh --quick   # smoke test (2 short rounds, fewer operations; numbers
#                              # meaningless), writes target/bench-results/BENCHMARKS.quick.md
#
# Environment: ROUNDS (9), SECS (seconds per throughput cell, 0.8), TAIL_SECS (5), MEM_OPS
# (operations of the memory churn; default: the compare binary's), OUT (where the report goes).
# Raw results stay in target/bench-results/: throughput, ceilings, holds, memory and tail as JSON
# lines, callgrind/ as scripts/callgrind.sh leaves it.
#
# Single-thread criterion benches are separate: cargo bench -p session-cache-bench.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    *) echo "usage: scripts/bench.sh [--quick]" >&2; exit 2 ;;
  esac
done
RES=target/bench-results
if [ "$QUICK" = 1 ]; then
  ROUNDS="${ROUNDS:-2}" SECS="${SECS:-0.05}" TAIL_SECS="${TAIL_SECS:-0.5}" MEM_OPS="${MEM_OPS:-200000}"
  CG_N="${CG_N:-2048}" OUT="${OUT:-$RES/BENCHMARKS.quick.md}"
else
  ROUNDS="${ROUNDS:-9}" SECS="${SECS:-0.8}" TAIL_SECS="${TAIL_SECS:-5}" MEM_OPS="${MEM_OPS:-}"
  CG_N="${CG_N:-20480}" OUT="${OUT:-BENCHMARKS.md}"
fi
SUBJECTS="session-cache papaya dashmap scc-HashMap scc-HashCache moka quick_cache mutex-fifo rustls openssl"
command -v python3 >/dev/null || { echo "bench.sh needs python3" >&2; exit 1; }

echo "== build" >&2
cargo build --release --locked -p session-cache-bench --bin compare >&2
bin=target/release/compare
# The tail run's binary, with the work counters (separately, so that no throughput run pays for
# them). Built now with the other, so that no measurement follows a build.
CARGO_TARGET_DIR=target/bench-work-stats cargo build --release --locked -p session-cache-bench \
  --features work-stats --bin compare >&2
# Let the load the builds left settle (the 1-minute average decays in about a minute), so the
# load average recorded before the run is the idle machine's; at most 3 minutes.
if [ "$QUICK" = 0 ]; then
  for _ in $(seq 36); do
    awk '{exit !($1 > 0.8)}' /proc/loadavg || break
    sleep 5
  done
fi

start=$(date +%s)
rm -rf "$RES"
mkdir -p "$RES"
{
  echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu:      $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores (nproc); L2 $(lscpu | sed -n 's/^L2 cache: *//p'), L3 $(lscpu | sed -n 's/^L3 cache: *//p')"
  echo "memory:   $(free -g | awk '/^Mem:/{print $2}') GiB"
  echo "kernel:   $(uname -srm)"
  echo "rustc:    $(rustc -V)"
  echo "commit:   $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (work tree differs from it)')"
  echo "load avg before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$RES/machine.txt"
cmd="scripts/bench.sh$(if [ "$QUICK" = 1 ]; then echo ' --quick'; fi)"
for v in ROUNDS SECS TAIL_SECS MEM_OPS CG_N; do
  # Record the settings that differ from the defaults of this mode.
  eval "val=\${$v}"
  case "$QUICK:$v:$val" in
    0:ROUNDS:9|0:SECS:0.8|0:TAIL_SECS:5|0:MEM_OPS:|0:CG_N:20480) ;;
    1:ROUNDS:2|1:SECS:0.05|1:TAIL_SECS:0.5|1:MEM_OPS:200000|1:CG_N:2048) ;;
    *) cmd="$v=$val $cmd" ;;
  esac
done
echo "$cmd" > "$RES/command.txt"

echo "== check, and what each subject holds" >&2
"$bin" check --out "$RES/holds.jsonl" >&2

echo "== throughput: $ROUNDS rounds x 3 workloads x threads 1,2,4 x 10 subjects x ${SECS}s" >&2
"$bin" throughput --rounds "$ROUNDS" --secs "$SECS" --out "$RES/throughput.jsonl"

# The ceilings beside session-cache and the peers that were ever best (benches/compare/ceiling.rs):
# lookups at every thread count, churn at one (a ceiling takes one writer only).
CEIL="session-cache,ceiling,ceiling-no-clock,ceiling-no-pin,ceiling-bare,papaya,dashmap,scc-HashMap"
CEIL="$CEIL,scc-HashCache,quick_cache,mutex-fifo"
echo "== ceilings: $ROUNDS rounds x (resume, 1/2/4 threads; churn, 1) x 11 subjects x ${SECS}s" >&2
"$bin" throughput --rounds "$ROUNDS" --secs "$SECS" --mixes resume --subjects "$CEIL" \
  --out "$RES/ceiling-resume.jsonl"
"$bin" throughput --rounds "$ROUNDS" --secs "$SECS" --mixes churn --threads 1 --subjects "$CEIL" \
  --out "$RES/ceiling-churn.jsonl"
cat "$RES/ceiling-resume.jsonl" "$RES/ceiling-churn.jsonl" > "$RES/ceiling.jsonl"

# The shared ceilings (benches/compare/ceiling_shared.rs) and the associative probes
# (ceiling_assoc.rs), sound with many writers: the write mixes at every thread count, beside the
# peers that lead them.
SHARED="session-cache,ceiling-shared,ceiling-shared-no-clock,ceiling-assoc,ceiling-assoc-credit"
SHARED="$SHARED,papaya,dashmap,scc-HashMap,scc-HashCache,quick_cache"
echo "== shared ceilings: $ROUNDS rounds x (handshake, churn) x 1/2/4 threads x 10 subjects x ${SECS}s" >&2
"$bin" throughput --rounds "$ROUNDS" --secs "$SECS" --mixes handshake,churn --subjects "$SHARED" \
  --out "$RES/ceiling-shared.jsonl"

echo "== tail latency" >&2
target/bench-work-stats/release/compare tail --secs "$TAIL_SECS" --threads 2 --out "$RES/tail.jsonl"

echo "== memory" >&2
for s in $SUBJECTS; do
  "$bin" memory --subject "$s" ${MEM_OPS:+--ops "$MEM_OPS"} >> "$RES/memory.jsonl"
done

echo "== primitives" >&2
"$bin" primitives > "$RES/primitives.jsonl"

echo "== callgrind" >&2
DIR="$RES/callgrind" N="$CG_N" scripts/callgrind.sh >/dev/null

end=$(date +%s)
{
  echo "load avg after the run:  $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wall time of the run:    $((end - start)) s (after the build)"
} >> "$RES/machine.txt"
python3 scripts/bench_report.py report "$RES" > "$OUT"
echo "wrote $OUT in $((end - start)) s" >&2
