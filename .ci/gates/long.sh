#!/usr/bin/env bash
# GATE long: the long #[ignore]d tests, serially (each spawns its own threads).
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
log=target/long.log
mkdir -p target
if nice -n 15 cargo test --profile ci-test --all-features --tests -- --ignored --test-threads=1 >"$log" 2>&1; then
  n=$(grep -oE 'test result: ok\. [0-9]+ passed' "$log" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
  echo "GATE long: ok ($n ignored tests) in $(( $(date +%s) - start ))s"
else
  tail -60 "$log"
  echo "GATE long: FAILED in $(( $(date +%s) - start ))s"
  exit 1
fi
