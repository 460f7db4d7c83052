#!/usr/bin/env bash
# Gate: the benchmark package (benches/: session-cache-bench, with every peer) builds: the
# criterion benches and the compare binary; and compare's unit tests pass. CI never runs the
# benchmarks (no timed assertions);
# scripts/bench.sh does, by hand, on an idle machine.
#
# Release profile, as scripts/bench.sh and scripts/callgrind.sh build them. The crate's own
# `cargo test` compiles none of the peers, so this is the only place CI builds them.
# Set BENCH_GATE_PROFILE=bench for the literal `cargo bench --no-run`.
set -euo pipefail
cd "$(dirname "$0")/../.."

# openssl-sys (the OpenSSL peer) needs libssl's headers and pkg-config.
if ! dpkg -s libssl-dev pkg-config >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq libssl-dev pkg-config >/dev/null
fi

start=$(date +%s)
log=$(mktemp)
if [ "${BENCH_GATE_PROFILE:-release}" = bench ]; then
  cmd=(cargo bench --no-run --locked -p session-cache-bench)
else
  cmd=(cargo build --release --locked -p session-cache-bench --bins --benches)
fi
if ! "${cmd[@]}" >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "GATE bench-build: FAILED (${cmd[*]}, see above)"
  exit 1
fi
# The comparison binary's own tests (the associative probe's duplicate-key rule): not timed.
test=(cargo test --release --locked -p session-cache-bench --bin compare)
if ! "${test[@]}" >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "GATE bench-build: FAILED (${test[*]}, see above)"
  exit 1
fi
echo "GATE bench-build: ok (${cmd[*]}: single + compare built, and ${test[*]} passed, in $(( $(date +%s) - start )) s)"
