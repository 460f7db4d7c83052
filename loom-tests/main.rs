//! Loom models of the cache's races.
//!
//! Run (see loom-tests/README.md): RUSTFLAGS="--cfg session_cache_loom --cfg crossbeam_loom"
//! cargo test --release --test loom
#![cfg(session_cache_loom)]
