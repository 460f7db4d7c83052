#!/usr/bin/env bash
# GATE differential: tests/openssl_differential.rs against the machine's libssl (OpenSSL 3.0):
# random add/remove/resize/flush sequences compared step by step, plus the documented
# differences (N-1 capacity, replace after shrink, empty ids).
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
if ! pkg-config --exists openssl 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq libssl-dev pkg-config >/dev/null
fi
ver=$(pkg-config --modversion openssl)
log=target/differential.log
mkdir -p target
if nice -n 15 cargo test --profile ci-test --all-features --test openssl_differential -- --nocapture >"$log" 2>&1; then
  n=$(grep -oE '[0-9]+ sequences x [0-9]+ steps' "$log" || echo '?')
  echo "GATE differential: ok (OpenSSL $ver; $n matched; 3 documented differences shown) in $(( $(date +%s) - start ))s"
else
  tail -40 "$log"
  echo "GATE differential: FAILED (OpenSSL $ver) in $(( $(date +%s) - start ))s"
  exit 1
fi
