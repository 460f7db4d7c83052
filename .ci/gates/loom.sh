#!/usr/bin/env bash
# GATE loom: the loom models of loom-tests/ (see loom-tests/README.md).
#  1. every model (three-thread ones included) on the drop-at-end collector
#     (--cfg session_cache_graveyard), LOOM_MAX_PREEMPTIONS=3;
#  2. the two-thread models (t2_*) on crossbeam-epoch's real collector, LOOM_MAX_PREEMPTIONS=3;
#  3. one build per mutant (--cfg session_cache_mutant="..."): its model must FAIL.
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

run() { # name rustflags filter -> runs the loom target, output in target/loom-<name>.log
  local name=$1 flags=$2 filter=$3
  CARGO_TARGET_DIR="target/loom-$name" RUSTFLAGS="$flags" LOOM_MAX_PREEMPTIONS=$pb \
    nice -n 15 cargo test --release --test loom -- --test-threads=1 --nocapture $filter \
    >"target/loom-$name.log" 2>&1
}
build() {
  local name=$1 flags=$2
  CARGO_TARGET_DIR="target/loom-$name" RUSTFLAGS="$flags" \
    nice -n 15 cargo test --release --test loom --no-run >"target/loom-$name.build.log" 2>&1
}
count() { grep -oE 'test result: ok\. [0-9]+ passed' "$1" | grep -oE '[0-9]+' | head -1; }

t=$(date +%s)
if run graveyard "$base --cfg session_cache_graveyard" ""; then
  summary+=("graveyard: $(count target/loom-graveyard.log) models ok ($(( $(date +%s) - t ))s)")
else
  tail -40 target/loom-graveyard.log
  echo "GATE loom: FAILED (graveyard build, see target/loom-graveyard.log) in $(( $(date +%s) - start ))s"
  exit 1
fi
t=$(date +%s)
if run epoch "$base" "t2_"; then
  summary+=("epoch: $(count target/loom-epoch.log) two-thread models ok ($(( $(date +%s) - t ))s)")
else
  tail -40 target/loom-epoch.log
  echo "GATE loom: FAILED (real collector, see target/loom-epoch.log) in $(( $(date +%s) - start ))s"
  exit 1
fi

# mutant = the model that must catch it (loom-tests/README.md).
mutants=(
  "claim_store:t2_same_id_adds_of_different_objects"
  "identical_rc:t2_identical_readd_vs_replace"
  "relaxed_publish:t2_replace_vs_remove"
  "eager_release:t2_get_vs_replace_reader_holds_old_arc"
  "kill_store:t3_remove_vs_remove_vs_take"
  "evict_by_key:t2_eviction_vs_replace"
  "no_freeze:t2_add_and_remove_racing_a_rebuild"
  "copy_dead:t3_reader_on_frozen_block_vs_completed_remove"
)
caught=0
for entry in "${mutants[@]}"; do
  m=${entry%%:*}
  test=${entry#*:}
  flags="$base --cfg session_cache_graveyard --cfg session_cache_mutant=\"$m\""
  if [ "$m" = eager_release ]; then flags="$base --cfg session_cache_mutant=\"$m\""; fi
  if ! build "mutant-$m" "$flags"; then
    tail -30 "target/loom-mutant-$m.build.log"
    echo "GATE loom: FAILED (mutant $m does not build) in $(( $(date +%s) - start ))s"
    exit 1
  fi
  if run "mutant-$m" "$flags" "$test --exact"; then
    echo "GATE loom: FAILED (mutant $m survived $test) in $(( $(date +%s) - start ))s"
    exit 1
  fi
  if ! grep -q "test $test ... FAILED" "target/loom-mutant-$m.log"; then
    tail -30 "target/loom-mutant-$m.log"
    echo "GATE loom: FAILED (mutant $m: $test did not run) in $(( $(date +%s) - start ))s"
    exit 1
  fi
  caught=$((caught + 1))
done
summary+=("$caught/${#mutants[@]} mutants caught")
echo "GATE loom: ok ($(IFS=';'; echo "${summary[*]}"); LOOM_MAX_PREEMPTIONS=$pb) in $(( $(date +%s) - start ))s"
