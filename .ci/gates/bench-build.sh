#!/usr/bin/env bash
# Gate: the benchmarks (benches/single.rs, benches/compare.rs and all peers) build.
# CI never runs them (no timed assertions); scripts/bench.sh does, by hand.
#
# `cargo build --release --benches` checks exactly what `cargo bench --no-run` checks, but in
# the release profile, so it reuses every dependency that CI's `cargo test --release` already
# built (dev-dependencies are compiled for tests too); `cargo bench` would rebuild them all
# under the bench profile (debuginfo). Set BENCH_GATE_PROFILE=bench for the literal command.
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
  cmd=(cargo bench --no-run --locked)
else
  cmd=(cargo build --release --benches --locked)
fi
if ! "${cmd[@]}" >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "GATE bench-build: FAILED (${cmd[*]}, see above)"
  exit 1
fi
echo "GATE bench-build: ok (${cmd[*]}: single + compare built in $(( $(date +%s) - start )) s)"
