#!/usr/bin/env bash
# Gate: the benchmarks (benches/single.rs, benches/compare.rs and all peers) build.
# CI never runs them (no timed assertions); scripts/bench.sh does, by hand.
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
if ! cargo bench --no-run --locked >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "GATE bench-build: FAILED (cargo bench --no-run, see above)"
  exit 1
fi
benches=$(grep -c 'Executable benches/' "$log" || true)
echo "GATE bench-build: ok (${benches} bench binaries built in $(( $(date +%s) - start )) s)"
