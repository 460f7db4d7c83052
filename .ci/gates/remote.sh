#!/usr/bin/env bash
# Gate for the fleet tier on Redis (feature redis): installs redis-server when missing (its tests,
# run by the test command, need it too and fail without it), then runs examples/fleet.rs with a
# small N (built with --all-features, as the test command builds) and checks that clients resumed across nodes. The tier's tests themselves
# (tests/remote.rs, tests/remote_s_client.rs) run in the test command (`--all-features`).
# Run from the repository root. Takes a few seconds once the test command has built.
set -euo pipefail

start=$SECONDS
fail() {
  echo "GATE remote: FAILED ($*)"
  exit 1
}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "remote: installing redis-server (apt-get install redis-server)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq redis-server >/dev/null || fail "apt-get install redis-server failed"
  # The package starts a system instance; the tests and the example start their own.
  service redis-server stop >/dev/null 2>&1 || true
fi
command -v redis-server >/dev/null 2>&1 || fail "redis-server is still missing"
echo "remote: $(redis-server --version)"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo run --release --quiet --all-features --example fleet -- -n 100 >"$log" 2>&1 || {
  cat "$log"
  fail "examples/fleet.rs exited non-zero"
}
cat "$log"
results=$(sed -nE 's/^(TLS 1\.[23]):.*resumed on another node ([0-9]+)\/([0-9]+).*/\1 \2 \3/p' "$log")
[ "$(echo "$results" | grep -c .)" = 2 ] || fail "the fleet example did not print both TLS result lines"
summary=""
while read -r tls ver r n; do
  [ $((2 * r)) -ge "$n" ] || fail "only $r of $n $tls $ver handshakes resumed across nodes"
  summary+=" $tls $ver $r/$n;"
done <<<"$results"
echo "GATE remote: ok (cross-node resumptions:${summary} $((SECONDS - start)) s)"
