//! Model fuzzing: an arbitrary op sequence against the sequential model of the contract.
//! The decoding and checking code lives in `testkit/src/model/` so that every input found here
//! replays on stable through `tests/fuzz_regressions.rs`.
#![no_main]

use testkit::model;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    model::run_model(data);
});
