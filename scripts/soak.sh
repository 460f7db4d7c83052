#!/usr/bin/env bash
# Runs every concurrent test many times in a row and counts failures: the stable concurrent
# suites (tests/concurrent_ops.rs, the concurrent fuzz replay, tests/release_elsewhere.rs), the
# long model runs with a fresh random input stream each time (tests/model_long.rs prints its
# LONG_SEED so a failure replays), and, with cargo-fuzz on a nightly toolchain, short fuzz runs
# of each target.
#
#   scripts/soak.sh                 # 50 runs of each
#   RUNS=10 FUZZ_SECONDS=5 scripts/soak.sh
#   LOAD=1 scripts/soak.sh          # the same with both cores kept busy by a build
#
# Output: one line per suite, "suite: N/N passed", and the logs of failed runs in target/soak/.
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-50}
FUZZ_SECONDS=${FUZZ_SECONDS:-5}
out=target/soak
mkdir -p "$out"

bins=$(cargo test --profile ci-test --test concurrent_ops --test model_long --test fuzz_regressions \
  --test release_elsewhere --no-run \
  --message-format=json 2>/dev/null | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["kind"]==["test"]: print(m["target"]["name"], m["executable"])')
bin() { echo "$bins" | awk -v n="$1" '$1==n {print $2}'; }

load_pid=
if [ "${LOAD:-0}" = 1 ]; then
  # Two busy cores: a loop of clean rebuilds of the crate in a scratch target directory.
  ( while true; do CARGO_TARGET_DIR=$out/load-target cargo build --release -q >/dev/null 2>&1;
      rm -rf "$out/load-target/release/.fingerprint/session-cache-"*; done ) &
  load_pid=$!
  trap 'kill $load_pid 2>/dev/null; pkill -P $load_pid 2>/dev/null' EXIT
  sleep 20
fi

soak() { # name command...
  local name=$1 ok=0 i; shift
  for i in $(seq 1 "$RUNS"); do
    if "$@" >"$out/$name.log" 2>&1; then ok=$((ok + 1)); else cp "$out/$name.log" "$out/$name.fail.$i.log"; fi
  done
  echo "$name: $ok/$RUNS passed$([ -n "$load_pid" ] && echo ' (loaded)')"
}

soak concurrent_ops "$(bin concurrent_ops)" --test-threads=1
soak concurrent_regressions "$(bin fuzz_regressions)" concurrent
soak model_long "$(bin model_long)" --ignored model_long_run
soak concurrent_long "$(bin model_long)" --ignored concurrent_long_run
soak release_elsewhere "$(bin release_elsewhere)"
if cargo +nightly fuzz --version >/dev/null 2>&1; then
  for t in model concurrent; do
    soak "fuzz-$t" bash -c "cd fuzz && cargo +nightly fuzz run $t -- -max_total_time=$FUZZ_SECONDS -seed=\$RANDOM"
  done
else
  echo "fuzz: skipped (cargo-fuzz on a nightly toolchain is not installed: cargo install cargo-fuzz)"
fi
