#!/usr/bin/env bash
# Gate for the rustls / OpenSSL integrations (issue 5).
# - makes sure the system `openssl` binary (s_client) and libssl headers are installed (apt);
#   a still-missing binary fails the gate instead of skipping the tests;
# - runs clippy and rustdoc with --all-features, the integration doc and unit tests, the in-memory rustls store tests and the real-client
#   s_client tests with --all-features;
# - runs both examples with a small N and checks that they resumed.
# Run from the repository root.
set -euo pipefail

start=$SECONDS
fail() {
  echo "GATE integrations: FAILED ($*)"
  exit 1
}

apt_updated=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq || true
    apt_updated=1
  fi
  apt-get install -y -qq "$@" >/dev/null
}

if ! command -v openssl >/dev/null 2>&1; then
  echo "integrations: installing the openssl binary (apt-get install openssl)"
  apt_install openssl || true
fi
command -v openssl >/dev/null 2>&1 || fail "the openssl binary is still missing after apt-get install openssl"
# openssl-sys builds against the system libssl: it needs pkg-config and the headers.
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists openssl 2>/dev/null; then
  echo "integrations: installing pkg-config and libssl-dev"
  apt_install pkg-config libssl-dev || fail "apt-get install pkg-config libssl-dev failed"
fi
echo "integrations: $(openssl version)"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# The feature-gated code is invisible to the default clippy/doc gates: check it here.
cargo clippy --all-features --all-targets -- -D warnings || fail "clippy --all-features"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features || fail "cargo doc --all-features"
cargo test --all-features --doc integrations 2>&1 | tee "$log" | grep -E '^test |test result' || true
grep -q 'test result: ok' "$log" || fail "integration doc tests"

cargo test --all-features --lib integrations:: 2>&1 | tee "$log" | grep -E '^test |test result' || true
grep -q 'test result: ok' "$log" || fail "integration unit tests"
unit=$(grep -oE '[0-9]+ passed' "$log" | tail -1)

cargo test --all-features --test rustls_stores --test s_client 2>&1 | tee "$log" | grep -E '^test |test result|panicked' || true
if grep -q 'FAILED\|panicked\|error\[' "$log" || [ "$(grep -c 'test result: ok' "$log")" != 2 ]; then
  tail -40 "$log"
  fail "rustls_stores / s_client tests"
fi
passed=$(grep -oE '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s}')

# Both examples, small N, must finish by themselves and resume at least half of the handshakes
# of each TLS version (the tls_resumption baseline line, without resumption, is not checked).
summary=""
check_example() {
  local name=$1
  cargo run --quiet --all-features --example "$name" -- -n 200 -t 2 >"$log" 2>/dev/null || {
    cat "$log"
    fail "example $name exited non-zero"
  }
  cat "$log"
  local results
  results=$(sed -nE 's/^(TLS 1\.[23]):.*resumed ([0-9]+)\/([0-9]+).*/\1 \2 \3/p' "$log")
  [ "$(echo "$results" | grep -c .)" = 2 ] || fail "example $name did not print both TLS result lines"
  local tls ver r n
  while read -r tls ver r n; do
    [ $((2 * r)) -ge "$n" ] || fail "example $name resumed only $r of $n $tls $ver handshakes"
    summary+=" $name $tls $ver $r/$n;"
  done <<<"$results"
}
check_example tls_resumption
check_example openssl_server

echo "GATE integrations: ok (unit ${unit}, store+s_client tests ${passed} passed; resumed:${summary} $((SECONDS - start)) s)"
