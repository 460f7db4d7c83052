//! Concurrent fuzzing: an op list split over 2-3 threads, invariants checked at rest.
//! The decoding and checking code lives in `testkit/src/model/concurrent.rs` (replayed on
//! stable by `tests/fuzz_regressions.rs`).
#![no_main]

use testkit::model;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    model::concurrent::run_concurrent(data);
});
