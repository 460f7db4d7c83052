#!/usr/bin/env bash
# GATE fuzz: runs each cargo-fuzz target for FUZZ_SECONDS (default 60) under AddressSanitizer,
# then replays fuzz/regressions/ and the hand-made seeds on stable (tests/fuzz_regressions.rs).
# A crash is copied to fuzz/regressions/<target>/ (commit it: it becomes a stable regression
# test) and fails the gate.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
secs=${FUZZ_SECONDS:-60}
summary=()
cargo test --profile ci-test --all-features --test fuzz_regressions -q 2>&1 | tail -3
summary+=("stable replay ok")
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "GATE fuzz: SKIPPED (no nightly toolchain; stable replay passed) in $(( $(date +%s) - start ))s"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  nice -n 15 cargo install cargo-fuzz --locked
fi
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
nice -n 15 cargo +nightly fuzz build
for t in model concurrent; do
  mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
  log="fuzz/target/fuzz-$t.log"
  mkdir -p "$(dirname "$log")"
  if nice -n 15 cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "fuzz/regressions/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=4096 -timeout=30 >"$log" 2>&1; then
    runs=$(grep -oE 'Done [0-9]+ runs' "$log" | tail -1 | grep -oE '[0-9]+' || echo '?')
    summary+=("$t: $runs runs, no crash")
  else
    tail -60 "$log"
    for a in fuzz/artifacts/"$t"/*; do
      [ -f "$a" ] && cp "$a" "fuzz/regressions/$t/$(basename "$a")"
    done
    echo "GATE fuzz: FAILED ($t crashed; input copied to fuzz/regressions/$t/) in $(( $(date +%s) - start ))s"
    exit 1
  fi
done
echo "GATE fuzz: ok ($(IFS=';'; echo "${summary[*]}"); ${secs}s per target) in $(( $(date +%s) - start ))s"
