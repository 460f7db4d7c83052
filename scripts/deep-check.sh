#!/usr/bin/env bash
# The deeper run, on demand (not part of CI): what the CI gates check, at a larger budget.
#
#   - every loom model at preemption bound LOOM_MAX_PREEMPTIONS (default 4), the table-growth
#     models at LOOM_GROWTH_PREEMPTIONS (default 2), and every mutant;
#   - each fuzz target for FUZZ_SECONDS (default 1800) under AddressSanitizer;
#   - the long #[ignore]d tests.
#
# Output goes to target/deep-check/ (one log per part and summary.txt), never into the
# repository. Hours, not minutes, on a 2-core machine; `--only loom|fuzz|long` runs one part.
# Crash inputs the fuzzers find are copied to fuzz/regressions/<target>/ as in CI: commit them.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/deep-check
mkdir -p "$out"
only=${2:-}
[ "${1:-}" = --only ] || only=""
summary="$out/summary.txt"
: >"$summary"

part() { # name command...
  local name=$1 t0 rc=0
  shift
  [ -z "$only" ] || [ "$only" = "$name" ] || return 0
  t0=$(date +%s)
  echo "== $name: $*"
  "$@" >"$out/$name.log" 2>&1 || rc=$?
  local line
  line="$name: $([ "$rc" = 0 ] && echo ok || echo "FAILED rc=$rc") in $(( $(date +%s) - t0 ))s; $(grep -E '^GATE' "$out/$name.log" | tail -1)"
  echo "$line" | tee -a "$summary"
  return 0
}

part loom env LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-4}" \
  LOOM_GROWTH_PREEMPTIONS="${LOOM_GROWTH_PREEMPTIONS:-2}" LOOM_OUT="$out/loom" \
  bash .ci/gates/loom.sh
part fuzz env FUZZ_SECONDS="${FUZZ_SECONDS:-1800}" bash .ci/gates/fuzz.sh
part long bash .ci/gates/long.sh

echo "summary: $summary"
! grep -q FAILED "$summary"
