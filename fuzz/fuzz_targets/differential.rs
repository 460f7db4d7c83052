//! Differential fuzzing: an arbitrary op sequence against the sequential model of the contract.
//! The decoding and checking code lives in `tests/model/mod.rs` so that every input found here
//! replays on stable through `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../../tests/model/mod.rs"]
mod model;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    model::run_differential(data);
});
