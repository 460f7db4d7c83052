#!/usr/bin/env bash
# Run every issue-4 benchmark (~10 minutes on a 2-core machine, plus the first build) and
# write BENCHMARKS.md at the repository root.
#
#   scripts/bench.sh                 # full run
#   ROUNDS=2 SECS=0.1 LAT_SECS=0.3 scripts/bench.sh   # quick smoke run (numbers meaningless)
#
# Raw results stay in target/bench-results/ (throughput/memory/latency JSON lines) and
# target/criterion/single/ (criterion estimates).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-7}"        # interleaved throughput rounds (medians are taken over them)
SECS="${SECS:-0.4}"          # seconds per throughput cell
LAT_SECS="${LAT_SECS:-1}"    # seconds of latency sampling per subject
LAT_THREADS="${LAT_THREADS:-2}"
OUT="${OUT:-BENCHMARKS.md}"
RES=target/bench-results
command -v python3 >/dev/null || { echo "bench.sh needs python3" >&2; exit 1; }

start=$(date +%s)
rm -rf "$RES" target/criterion/single
mkdir -p "$RES"
{
  echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu:      $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores (nproc); L2 $(lscpu | sed -n 's/^L2 cache: *//p'), L3 $(lscpu | sed -n 's/^L3 cache: *//p')"
  echo "memory:   $(free -g | awk '/^Mem:/{print $2}') GiB"
  echo "kernel:   $(uname -srm)"
  echo "rustc:    $(rustc -V)"
  echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "load avg before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$RES/machine.txt"
echo "ROUNDS=$ROUNDS SECS=$SECS LAT_SECS=$LAT_SECS LAT_THREADS=$LAT_THREADS scripts/bench.sh" > "$RES/command.txt"

echo "== build" >&2
cargo bench --no-run >&2
bench() { cargo bench -q --bench compare -- "$@"; }

echo "== check" >&2
bench check >&2

echo "== single-thread (criterion)" >&2
cargo bench -q --bench single >&2

echo "== throughput: $ROUNDS rounds x 3 mixes x threads 1,2,4 x 10 subjects x ${SECS}s" >&2
bench throughput --rounds "$ROUNDS" --secs "$SECS" --out "$RES/throughput.jsonl"

echo "== memory" >&2
for s in session-cache papaya dashmap scc-HashMap scc-HashCache moka quick_cache mutex-fifo rustls openssl; do
  bench memory --subject "$s" >> "$RES/memory.jsonl"
done

echo "== tail latency" >&2
bench latency --secs "$LAT_SECS" --threads "$LAT_THREADS" --out "$RES/latency.jsonl"

end=$(date +%s)
{
  echo "load avg after the run:  $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wall time of the run:    $((end - start)) s (including any build)"
} >> "$RES/machine.txt"
python3 scripts/bench_report.py "$RES" target/criterion > "$OUT"
echo "wrote $OUT in $((end - start)) s" >&2
