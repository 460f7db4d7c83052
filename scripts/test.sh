#!/usr/bin/env bash
# The test command: installs the system packages that the tests of every feature need, when
# they are missing (Debian: apt-get, as root), then runs the whole suite. CI calls this script.
# The suite builds with the `ci-test` profile (Cargo.toml): release code with debug assertions
# and overflow checks on.
#
#   openssl              the `openssl s_client` tests
#   pkg-config libssl-dev   openssl-sys (the OpenSSL adapter and the libssl differential)
#   redis-server         the fleet tier's tests, against a real server they start themselves
#
# Extra arguments go to `cargo test` (for example `-- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v openssl >/dev/null 2>&1 || need+=(openssl)
{ command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl 2>/dev/null; } || need+=(pkg-config libssl-dev)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "missing system packages: ${need[*]} (Debian: sudo apt-get install ${need[*]})" >&2
        exit 1
    fi
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

exec cargo test --profile ci-test --all-features "$@"
