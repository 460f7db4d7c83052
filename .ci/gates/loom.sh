#!/usr/bin/env bash
# GATE loom: the loom models of loom-tests/ (see loom-tests/README.md).
#  1. every model (three-thread ones included) on the drop-at-end collector, preemption bound
#     LOOM_MAX_PREEMPTIONS (default 3); the growth models (tg_*) at bound 1;
#  2. the two-thread and growth models (t2_*, tg_*) on crossbeam-epoch's real collector;
#  3. one build per mutant: its model must FAIL. The mutants and their models are the
#     `// mutant:` lines of loom-tests/*.rs; each runs only its own model, which stops at its
#     first failing execution.
# Both --cfg session_cache_loom and --cfg crossbeam_loom are always set: without the second the
# table's atomics are plain std atomics and the models pass while checking nothing.
#
# Builds are shared: RUSTFLAGS is the same for every build, and the collector and the mutant are
# chosen through the environment (build.rs), so the dependencies are compiled once per profile
# (release for the suites, the faster-to-build debug profile for the mutants) and each variant
# recompiles only this crate.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
export RUSTFLAGS="--cfg session_cache_loom --cfg crossbeam_loom -C debug-assertions"
export LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-3}
pb=$LOOM_MAX_PREEMPTIONS
out=${LOOM_OUT:-target/loom-gate}
mkdir -p "$out"
summary=()
status=0

secs() { echo $(( $(date +%s) - $1 )); }

# variant profile-flag graveyard(0|1) mutant -> builds; the test binary's path on stdout
build() {
  local name=$1 prof=$2 gy=$3 mutant=$4 dir
  dir=target/loom-$([ -n "$prof" ] && echo release || echo debug)
  if ! CARGO_TARGET_DIR=$dir SESSION_CACHE_GRAVEYARD=$gy SESSION_CACHE_MUTANT=$mutant \
      nice -n 15 cargo test $prof --test loom --no-run --message-format=json \
      >"$out/$name.build.json" 2>"$out/$name.build.log"; then
    tail -30 "$out/$name.build.log" >&2
    return 1
  fi
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' "$out/$name.build.json" | tail -1
}

# suite name graveyard prefix-regex -> runs each matching model in its own process (a failing
# model can abort the process on the real collector)
suite() {
  local name=$1 gy=$2 re=$3 t0 bin ok=0 failed=()
  t0=$(date +%s)
  bin=$(build "$name" --release "$gy" "") || { echo "GATE loom: FAILED ($name build)"; exit 1; }
  echo "  [$name] built in $(secs "$t0")s"
  : >"$out/$name.log"
  local tests
  tests=$("$bin" --list 2>/dev/null | sed -n 's/: test$//p' | grep -E "$re" || true)
  [ -n "$tests" ] || { echo "GATE loom: FAILED ($name: no models found)"; exit 1; }
  for t in $tests; do
    local t1; t1=$(date +%s)
    if nice -n 15 "$bin" --exact "$t" --nocapture >>"$out/$name.log" 2>&1; then
      ok=$((ok + 1))
    else
      failed+=("$t")
    fi
    echo "  [$name] $t: $(secs "$t1")s, $(grep -oE "^${t##*::}: [0-9]+ executions[^)]*\)" "$out/$name.log" | tail -1 | cut -d' ' -f2-)"
  done
  if [ ${#failed[@]} -gt 0 ]; then
    grep -E 'panicked at|assertion|Causality' -A2 "$out/$name.log" | head -40
    summary+=("$name: FAILED ${failed[*]}; $ok ok ($(secs "$t0")s)")
    status=1
  else
    summary+=("$name: $ok models ok ($(secs "$t0")s)")
  fi
}

suite graveyard 1 '::(t2|t3|tg|tc)_'
suite epoch 0 '::(t2|tg)_'

# The mutants, each with the model that must catch it: the `// mutant: NAME[ (epoch)]: ...`
# lines right above a model in loom-tests/*.rs are the only list (module:fn:collector).
mapfile -t mutants < <(awk '
  /^\/\/ mutant: / { m = $3; sub(/:$/, "", m); c = ($4 == "(epoch):") ? "epoch" : "graveyard"; want = 1; next }
  want && /^fn / { f = $2; sub(/\(.*/, "", f); mod = FILENAME; sub(/.*\//, "", mod); sub(/\.rs$/, "", mod)
                   print m ":" mod "::" f ":" c; want = 0 }
' loom-tests/*.rs)
[ "${#mutants[@]}" -gt 0 ] || { echo "GATE loom: FAILED (no // mutant: lines in loom-tests/)"; exit 1; }
# Every fault the sources can inject must have its model.
for m in $(grep -rhoE 'session_cache_mutant = "[a-z_]+"' src | sed -E 's/.*"(.*)"/\1/' | sort -u); do
  printf '%s\n' "${mutants[@]}" | grep -q "^$m:" ||
    { echo "GATE loom: FAILED (mutant $m in src/ has no // mutant: line in loom-tests/)"; exit 1; }
done

caught=0
if [ "${LOOM_MUTANTS:-1}" = 1 ]; then
  t0=$(date +%s)
  for entry in "${mutants[@]}"; do
    IFS=: read -r m mod _ fn collector <<<"$entry"
    test="$mod::$fn"
    gy=1
    [ "$collector" = epoch ] && gy=0
    t1=$(date +%s)
    bin=$(build "mutant-$m" "" "$gy" "$m") || { echo "GATE loom: FAILED (mutant $m does not build)"; exit 1; }
    log="$out/mutant-$m.log"
    if nice -n 15 "$bin" --exact "$test" --nocapture >"$log" 2>&1; then
      echo "  mutant $m: SURVIVED $test"
      status=1
    # Caught = the model fails: an assertion or loom's causality check panics, or the fault
    # frees memory twice and glibc aborts the process (double free / heap corruption detected).
    elif ! grep -qE 'panicked at (loom-tests|testkit|src)|Causality violation|panicked at .*loom|double free|corrupted|malloc|SIGABRT' "$log"; then
      tail -30 "$log"
      echo "  mutant $m: $test did not fail in a model"
      status=1
    else
      echo "  mutant $m: caught by $test in $(secs "$t1")s ($(grep -m1 -oE 'panicked at [^ ]+|Causality violation|double free[^(]*|corrupted[^(]*|malloc[^(]*' "$log"))"
      caught=$((caught + 1))
    fi
  done
  summary+=("$caught/${#mutants[@]} mutants caught ($(secs "$t0")s)")
else
  summary+=("mutants skipped (LOOM_MUTANTS=0)")
fi
if [ "$status" -ne 0 ]; then
  echo "GATE loom: FAILED ($(IFS=';'; echo "${summary[*]}"); LOOM_MAX_PREEMPTIONS=$pb) in $(secs "$start")s"
  exit 1
fi
echo "GATE loom: ok ($(IFS=';'; echo "${summary[*]}"); LOOM_MAX_PREEMPTIONS=$pb) in $(secs "$start")s"
