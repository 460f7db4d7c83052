#!/usr/bin/env bash
# GATE loom: the loom models of loom-tests/ (see loom-tests/README.md).
#  1. every model (three-thread ones included) on the drop-at-end collector
#     (--cfg session_cache_graveyard), LOOM_MAX_PREEMPTIONS=3;
#  2. the two-thread models (t2_*) on crossbeam-epoch's real collector, LOOM_MAX_PREEMPTIONS=3;
#  3. one build per mutant (--cfg session_cache_mutant="..."): its model must FAIL. The faults of
#     the client store's models (loom-tests/ticket_ring.rs) ride in these builds as a second cfg
#     value instead of costing builds of their own (see `riders` below).
# Both --cfg session_cache_loom and --cfg crossbeam_loom are always set: without the second the
# table's atomics are plain std atomics and the models pass while checking nothing.
# Each RUSTFLAGS set gets its own CARGO_TARGET_DIR so nothing is rebuilt twice.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
base="--cfg session_cache_loom --cfg crossbeam_loom -C debug-assertions"
pb=${LOOM_MAX_PREEMPTIONS:-3}
mkdir -p target
summary=()
status=0

# Mutant builds use the (faster to compile) debug profile: their models fail within a few
# executions. The suites that must pass use --release.
profile() { case $1 in mutant-*) echo "" ;; *) echo "--release" ;; esac; }
build() { # name rustflags
  CARGO_TARGET_DIR="target/loom-$1" RUSTFLAGS="$2" \
    nice -n 15 cargo test $(profile "$1") --test loom --no-run >"target/loom-$1.build.log" 2>&1
}
one() { # name rustflags test -> runs one model in its own process (a failing model can abort
        # the process on the real collector), output appended to target/loom-<name>.log
  CARGO_TARGET_DIR="target/loom-$1" RUSTFLAGS="$2" LOOM_MAX_PREEMPTIONS=$pb \
    nice -n 15 cargo test $(profile "$1") --test loom -q -- --exact "$3" --nocapture \
    >>"target/loom-$1.log" 2>&1
}
suite() { # name rustflags prefix -> runs every model whose name starts with prefix
  local name=$1 flags=$2 prefix=$3 t0 ok=0 failed=()
  t0=$(date +%s)
  : >"target/loom-$name.log"
  if ! build "$name" "$flags"; then
    tail -30 "target/loom-$name.build.log"
    echo "GATE loom: FAILED ($name build) in $(( $(date +%s) - start ))s"
    exit 1
  fi
  local tests
  tests=$(CARGO_TARGET_DIR="target/loom-$name" RUSTFLAGS="$flags" cargo test --release --test loom -q -- --list 2>/dev/null \
    | sed -n 's/: test$//p' | grep -E "::$prefix" || true)
  [ -n "$tests" ] || { echo "GATE loom: FAILED ($name: no models found)"; exit 1; }
  for t in $tests; do
    if one "$name" "$flags" "$t"; then ok=$((ok + 1)); else failed+=("${t#models::}"); fi
  done
  grep -E 'executions$' "target/loom-$name.log" | sed "s/^/  [$name] /" || true
  if [ ${#failed[@]} -gt 0 ]; then
    grep -E 'panicked at loom-tests|assertion|Causality' -A2 "target/loom-$name.log" | head -40
    summary+=("$name: FAILED ${failed[*]}; $ok ok ($(( $(date +%s) - t0 ))s)")
    status=1
  else
    summary+=("$name: $ok models ok ($(( $(date +%s) - t0 ))s)")
  fi
}

suite graveyard "$base --cfg session_cache_graveyard" "t"
suite epoch "$base" "t2_"

# mutant = the model that must catch it (loom-tests/README.md).
mutants=(
  "claim_store:t2_same_id_adds_of_different_objects"
  "identical_rc:t2_identical_readd_vs_replace"
  "relaxed_publish:t2_replace_vs_remove"
  "eager_release:t2_get_vs_replace_reader_holds_old_arc"
  "kill_store:t3_remove_vs_remove_vs_take"
  "evict_by_key:t2_eviction_never_takes_a_fresh_replacement"
  "no_freeze:t2_add_and_remove_racing_a_rebuild"
  "copy_dead:t3_reader_on_frozen_block_vs_completed_remove"
  "evict_own_id:t2_add_never_evicts_its_own_id"
)
# rider:host:model. The client store's faults (src/integrations/client_state.rs) and their
# models (loom-tests/ticket_ring.rs) touch nothing of the raw table, and the host's fault touches
# nothing they run (the ring uses no cache; `replace_retired`'s model makes no identical re-add,
# the only path `identical_rc` changes), so each model is caught by its own fault. Together they
# add well under a minute to the gate, and no build.
riders=(
  "ring_take_load:claim_store:ticket_ring::t2_ring_take_once"
  "ring_insert_store:identical_rc:ticket_ring::t2_ring_inserts_racing_a_take"
  "ring_no_recheck:relaxed_publish:ticket_ring::t2_ring_insert_racing_retire"
  "replace_retired:identical_rc:ticket_ring::t2_client_entry_write_is_never_lost"
)
caught=0
total=$(( ${#mutants[@]} + ${#riders[@]} ))
# check <label> <build name> <flags> <test>: the test must fail in a model.
check() {
  local label=$1 name=$2 flags=$3 test=$4
  if one "$name" "$flags" "$test"; then
    echo "  mutant $label: SURVIVED $test"
    status=1
  # Caught = the model fails: an assertion or loom's causality check panics, or the fault
  # frees memory twice and glibc aborts the process (double free / heap corruption detected).
  elif ! grep -qE 'panicked at loom-tests|Causality violation|panicked at .*loom|double free|corrupted|malloc|SIGABRT' "target/loom-$name.log"; then
    tail -30 "target/loom-$name.log"
    echo "  mutant $label: $test did not fail in a model"
    status=1
  else
    echo "  mutant $label: caught by $test ($(grep -m1 -oE 'panicked at [^ ]+|Causality violation|double free[^(]*|corrupted[^(]*|malloc[^(]*' "target/loom-$name.log"))"
    caught=$((caught + 1))
  fi
  : >"target/loom-$name.log"
}
if [ "${LOOM_MUTANTS:-1}" = 1 ]; then
for entry in "${mutants[@]}"; do
  m=${entry%%:*}
  test=${entry#*:}
  flags="$base --cfg session_cache_graveyard --cfg session_cache_mutant=\"$m\""
  if [ "$m" = eager_release ]; then flags="$base --cfg session_cache_mutant=\"$m\""; fi
  mine=()
  for r in "${riders[@]}"; do
    IFS=: read -r rider host _ <<<"$r"
    if [ "$host" = "$m" ]; then flags="$flags --cfg session_cache_mutant=\"$rider\""; mine+=("$r"); fi
  done
  if ! build "mutant-$m" "$flags"; then
    tail -30 "target/loom-mutant-$m.build.log"
    echo "GATE loom: FAILED (mutant $m does not build) in $(( $(date +%s) - start ))s"
    exit 1
  fi
  : >"target/loom-mutant-$m.log"
  check "$m" "mutant-$m" "$flags" "models::$test"
  for r in "${mine[@]}"; do
    rider=${r%%:*}
    check "$rider" "mutant-$m" "$flags" "${r#*:*:}"
  done
done
fi
summary+=("$caught/$total mutants caught")
if [ "$status" -ne 0 ]; then
  echo "GATE loom: FAILED ($(IFS=';'; echo "${summary[*]}"); LOOM_MAX_PREEMPTIONS=$pb) in $(( $(date +%s) - start ))s"
  exit 1
fi
echo "GATE loom: ok ($(IFS=';'; echo "${summary[*]}"); LOOM_MAX_PREEMPTIONS=$pb) in $(( $(date +%s) - start ))s"
