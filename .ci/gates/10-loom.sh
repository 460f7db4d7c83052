#!/usr/bin/env bash
# Loom models on both reclaimer builds. Both cfgs are needed: without crossbeam_loom the slot
# words are plain atomics and the models silently check nothing.
set -euo pipefail
t0=$(date +%s)
CARGO_TARGET_DIR=target-loom \
RUSTFLAGS="--cfg session_cache_loom --cfg crossbeam_loom --cfg session_cache_graveyard -C debug-assertions" \
LOOM_MAX_PREEMPTIONS=3 cargo test --release --test loom
CARGO_TARGET_DIR=target-loom-epoch \
RUSTFLAGS="--cfg session_cache_loom --cfg crossbeam_loom -C debug-assertions" \
LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom
echo "GATE loom: ok (graveyard PB=3 + real collector PB=2, $(( $(date +%s) - t0 )) s)"
