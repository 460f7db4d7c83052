//! Long runs of the fuzz harnesses on stable (`#[ignore]`d; `.ci/gates/stress.sh` runs them with
//! `cargo test --release -- --ignored --test-threads=1`): many pseudo-random inputs through the
//! sequential model, and through the concurrent harness (2-3 threads, invariants at rest).
#![allow(missing_docs)]

mod model;

fn inputs(seed: u64, count: usize, max_len: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..count).map(move |_| {
        let len = (next() as usize) % max_len;
        (0..len).map(|_| next() as u8).collect()
    })
}

/// The seed of the input stream: `STRESS_SEED` if set (to replay a run), else random. Each
/// input fixes its own cache's hash seed, so one stream replays exactly.
fn stream_seed(name: &str) -> u64 {
    let seed = match std::env::var("STRESS_SEED") {
        Ok(s) => s.parse().expect("STRESS_SEED: a decimal u64"),
        Err(_) => {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(name)
        }
    };
    eprintln!("{name}: STRESS_SEED={seed}");
    seed
}

fn run_all(name: &str, count: usize, max_len: usize, run: fn(&[u8])) {
    let seed = stream_seed(name);
    for (i, data) in inputs(seed, count, max_len).enumerate() {
        if let Err(e) = std::panic::catch_unwind(|| run(&data)) {
            let path = std::env::temp_dir().join(format!("{name}-stress-{i}"));
            std::fs::write(&path, &data).unwrap();
            std::panic::resume_unwind(Box::new(format!(
                "{name} input {i} of STRESS_SEED={seed} failed (saved to {}; copy it to fuzz/regressions/{name}/): {:?}",
                path.display(),
                e.downcast_ref::<String>()
            )));
        }
    }
}

#[test]
#[ignore = "long: run with --ignored"]
fn differential_model_stress() {
    run_all("differential", 30_000, 400, model::run_differential);
}

#[test]
#[ignore = "long: run with --ignored"]
fn concurrent_invariants_stress() {
    run_all("concurrent", 20_000, 150, model::concurrent::run_concurrent);
}
