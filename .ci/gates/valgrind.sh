#!/usr/bin/env bash
# GATE valgrind: memcheck on testkit's leak_check driver (threads churning a small cache, then drop and
# flush_deferred; the binary itself checks every session was dropped exactly once). Fails on
# definite, indirect or possible leaks and on any memcheck error. crossbeam-epoch's global
# collector is "still reachable" by design and does not count.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
if ! command -v valgrind >/dev/null; then
  apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
nice -n 15 cargo build --profile ci-test -p session-cache-testkit --bin leak_check -q
log=target/valgrind-leak-check.log
THREADS=${THREADS:-4} OPS=${OPS:-5000} valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible \
  --suppressions=.ci/gates/valgrind.supp \
  --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
  target/ci-test/leak_check >"$log" 2>&1 && rc=0 || rc=$?
leaks=$(grep -E 'definitely lost|indirectly lost|possibly lost' "$log" | sed 's/==[0-9]*== *//' | tr '\n' ';' || true)
errors=$(grep -E 'ERROR SUMMARY' "$log" | sed 's/==[0-9]*== *//' || true)
if [ "$rc" -ne 0 ]; then
  tail -80 "$log"
  echo "GATE valgrind: FAILED (rc $rc; $errors; $leaks) in $(( $(date +%s) - start ))s"
  exit 1
fi
echo "GATE valgrind: ok ($errors; ${leaks:-no leaks}) in $(( $(date +%s) - start ))s"
