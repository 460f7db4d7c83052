#!/usr/bin/env bash
# Gate for the rustls / OpenSSL integrations.
# - makes sure the system `openssl` binary (s_client) and libssl headers are installed (apt);
#   a still-missing binary fails the gate instead of skipping the tests;
#   (the integration unit, doc, rustls store and s_client tests run in .ci/run's test command,
#   `cargo test --release --all-features`, with clippy and rustdoc on all features);
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

# Each feature depends only on what it uses: `rustls` brings no crypto provider and no logging
# (the application chooses), `openssl` no direct openssl-sys (the openssl crate's types suffice).
deps() { cargo tree --quiet --edges normal --no-default-features --features "$1" --depth "$2" --prefix none; }
for banned in ring log aws-lc-rs; do
  if deps rustls 10 | grep -qE "^$banned v"; then fail "feature rustls pulls in $banned"; fi
done
if deps openssl 1 | grep -qE '^openssl-sys v'; then fail "feature openssl depends on openssl-sys directly"; fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Both examples, small N, must finish by themselves and resume at least half of the handshakes
# of each TLS version (the tls_resumption baseline line, without resumption, is not checked).
summary=""
check_example() {
  local name=$1
  cargo run --release --quiet --all-features --example "$name" -- -n 200 -t 2 >"$log" 2>/dev/null || {
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

echo "GATE integrations: ok (resumed:${summary} $((SECONDS - start)) s)"
