//! Long runs of the fuzz harnesses on stable (`#[ignore]`d; `.ci/gates/long.sh` runs them with
//! `cargo test --release -- --ignored --test-threads=1`): many pseudo-random inputs through the
//! sequential model, and through the concurrent harness (2-3 threads, invariants at rest).
#![allow(missing_docs)]

use testkit::model;

/// The seed of the input stream: `LONG_SEED` if set (to replay a run), else random. Each
/// input fixes its own cache's hash seed, so one stream replays exactly.
fn stream_seed(name: &str) -> u64 {
    let seed = match std::env::var("LONG_SEED") {
        Ok(s) => s.parse().expect("LONG_SEED: a decimal u64"),
        Err(_) => testkit::Rng::random_seed(name),
    };
    eprintln!("{name}: LONG_SEED={seed}");
    seed
}

fn run_all(name: &str, count: usize, max_len: usize, run: fn(&[u8])) {
    let seed = stream_seed(name);
    for (i, data) in testkit::Rng::new(seed | 1)
        .inputs(count, max_len)
        .into_iter()
        .enumerate()
    {
        if let Err(e) = std::panic::catch_unwind(|| run(&data)) {
            let path = std::env::temp_dir().join(format!("{name}-long-{i}"));
            std::fs::write(&path, &data).unwrap();
            std::panic::resume_unwind(Box::new(format!(
                "{name} input {i} of LONG_SEED={seed} failed (saved to {}; copy it to fuzz/regressions/{name}/): {:?}",
                path.display(),
                e.downcast_ref::<String>()
            )));
        }
    }
}

#[test]
#[ignore = "long: run with --ignored"]
fn model_long_run() {
    run_all("model", 30_000, 400, model::run_model);
}

#[test]
#[ignore = "long: run with --ignored"]
fn concurrent_long_run() {
    run_all("concurrent", 20_000, 150, model::concurrent::run_concurrent);
}
