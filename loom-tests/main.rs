//! Loom models of the cache's races.
//!
//! Run (see loom-tests/README.md):
//! `RUSTFLAGS="--cfg session_cache_loom --cfg crossbeam_loom --cfg session_cache_graveyard"
//! cargo test --release --test loom` (three-thread models), and without
//! `session_cache_graveyard` for the real epoch collector (two-thread models). Without
//! `--cfg crossbeam_loom` the slot words are plain atomics and the models check nothing.
#![cfg(session_cache_loom)]

mod support;

mod growth;
mod same_id;
