//! Stable replay of the fuzz targets' checking code (`tests/model/`):
//! - every file in `fuzz/regressions/<target>/` (crash inputs found by `cargo fuzz`);
//! - hand-made seeds: the OpenSSL conformance cases of `tests/openssl_conformance.rs` that apply;
//! - a few hundred pseudo-random inputs from a fixed seed (a cheap stable smoke fuzz).
#![allow(missing_docs)]

use session_cache::CacheMode;
use std::path::PathBuf;
use std::time::Duration;
use testkit::model::{self, Config, Op, TIMEOUTS};

fn replay_dir(target: &str, run: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => return 0,
    };
    files.sort();
    for f in &files {
        if f.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let data = std::fs::read(f).unwrap();
        if let Err(e) = std::panic::catch_unwind(|| run(&data)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("regression input {} failed:\n{msg}", f.display());
        }
    }
    files.len()
}

#[test]
fn model_regressions() {
    let n = replay_dir("model", model::run_model);
    eprintln!("replayed {n} model inputs");
}

/// Each concurrent input is replayed many times: its interleaving is up to the scheduler.
const CONCURRENT_REPEATS: usize = 300;

#[test]
fn concurrent_regressions() {
    let n = replay_dir("concurrent", |data| {
        for _ in 0..CONCURRENT_REPEATS {
            model::concurrent::run_concurrent(data)
        }
    });
    eprintln!("replayed {n} concurrent inputs");
}

/// Deterministic pseudo-random inputs.
fn random_inputs(seed: u64, count: usize, max_len: usize) -> Vec<Vec<u8>> {
    testkit::Rng::new(seed).inputs(count, max_len)
}

#[test]
fn model_random_smoke() {
    for (i, data) in random_inputs(0x5e55_10c4, 400, 300).iter().enumerate() {
        if let Err(e) = std::panic::catch_unwind(|| model::run_model(data)) {
            let path = std::env::temp_dir().join(format!("model-smoke-{i}"));
            std::fs::write(&path, data).unwrap();
            std::panic::resume_unwind(Box::new(format!(
                "random input {i} failed (saved to {}): {:?}",
                path.display(),
                e.downcast_ref::<String>()
            )));
        }
    }
}

#[test]
fn concurrent_random_smoke() {
    for (i, data) in random_inputs(0xc0c0_7e57, 150, 120).iter().enumerate() {
        if let Err(e) = std::panic::catch_unwind(|| model::concurrent::run_concurrent(data)) {
            let path = std::env::temp_dir().join(format!("concurrent-smoke-{i}"));
            std::fs::write(&path, data).unwrap();
            std::panic::resume_unwind(Box::new(format!(
                "random input {i} failed (saved to {}): {:?}",
                path.display(),
                e.downcast_ref::<String>()
            )));
        }
    }
}

fn cfg(capacity: usize, timeout: usize, mode: CacheMode, on_miss: bool) -> Config {
    Config {
        capacity,
        timeout: TIMEOUTS[timeout],
        mode,
        on_miss,
        hash_seed: 0,
    }
}

const T300: usize = 4;

/// Seeds also go through the byte encoding so they double as fuzz corpus entries.
fn seed(c: &Config, ops: &[Op]) {
    model::run_ops(c, ops);
    let modes = model::modes();
    if let (Some(ti), Some(mi)) = (
        TIMEOUTS.iter().position(|t| *t == c.timeout),
        modes.iter().position(|m| *m == c.mode),
    ) {
        let mut bytes = model::encode_config(c.capacity, ti, mi, c.on_miss);
        bytes.extend(model::encode_ops(ops));
        model::run_model(&bytes);
    }
}

// C1, C2, C3, C6, C7, C8: add, identical re-add, same-id replacement, remove semantics.
#[test]
fn seed_add_readd_replace_remove() {
    use Op::*;
    seed(
        &cfg(0, T300, CacheMode::SERVER, false),
        &[
            Add {
                id: 0,
                timeout: None,
            },
            ReAdd { id: 0 },
            TryReAdd { id: 0, back: 0 },
            Add {
                id: 0,
                timeout: None,
            }, // replaces
            TryReAdd { id: 0, back: 1 }, // the old object again: replaces back
            Remove { id: 0, fresh: true }, // a different object with the cached id
            Remove {
                id: 0,
                fresh: false,
            }, // miss, still marks the argument
            Add {
                id: 1,
                timeout: None,
            },
            Add {
                id: 2,
                timeout: None,
            }, // same bytes as id 1 reversed: distinct
            RemoveId { id: 1 },
            RemoveId { id: 1 },
            Take { id: 2 },
            Take { id: 2 },
        ],
    );
}

// C11, C12: capacity holds exactly N; earliest expiry evicted first, ties to the least recently
// (re-)added (probe4: A, B, C, re-add A, add D evicts B).
#[test]
fn seed_eviction_order() {
    use Op::*;
    seed(
        &cfg(3, T300, CacheMode::SERVER, false),
        &[
            Add {
                id: 0,
                timeout: None,
            },
            Add {
                id: 1,
                timeout: None,
            },
            Add {
                id: 2,
                timeout: None,
            },
            ReAdd { id: 0 },
            Add {
                id: 3,
                timeout: None,
            }, // evicts id 1
            Add {
                id: 4,
                timeout: Some(1),
            }, // evicts id 2
            Add {
                id: 1,
                timeout: Some(5),
            }, // evicts id 4 (1 s), never itself
            Add {
                id: 2,
                timeout: None,
            },
        ],
    );
    // T10: A(+1000s~300), B(+1s), C(+5s), D(+0s): D inserted as the soonest, next add evicts D.
    seed(
        &cfg(4, T300, CacheMode::SERVER, false),
        &[
            Add {
                id: 0,
                timeout: None,
            },
            Add {
                id: 1,
                timeout: Some(1),
            },
            Add {
                id: 2,
                timeout: Some(3),
            },
            Add {
                id: 3,
                timeout: Some(0),
            },
            Add {
                id: 4,
                timeout: None,
            }, // evicts id 3 (expires soonest)
            Add {
                id: 3,
                timeout: None,
            }, // evicts id 1
        ],
    );
}

// C13: shrinking takes effect at the next insert of a new id, in one go; replacement never evicts.
#[test]
fn seed_shrink() {
    use Op::*;
    seed(
        &cfg(4, T300, CacheMode::SERVER, false),
        &[
            Add {
                id: 0,
                timeout: None,
            },
            Add {
                id: 1,
                timeout: None,
            },
            Add {
                id: 2,
                timeout: None,
            },
            Add {
                id: 3,
                timeout: None,
            },
            SetCapacity { n: 1 },
            Add {
                id: 0,
                timeout: None,
            }, // replacement: no eviction
            ReAdd { id: 1 }, // identical re-add: no eviction
            Add {
                id: 4,
                timeout: None,
            }, // evicts down to 1
            SetCapacity { n: 0 },
            Add {
                id: 0,
                timeout: None,
            },
            Add {
                id: 1,
                timeout: None,
            },
        ],
    );
}

// C16, C17: expiry is strict (now > added + timeout); Duration::MAX never expires; get/take of an
// expired entry count a timeout, not a miss; flush_expired.
#[test]
fn seed_expiry() {
    use Op::*;
    seed(
        &cfg(0, 1, CacheMode::SERVER, false), // cache timeout 1 s
        &[
            Add {
                id: 0,
                timeout: None,
            },
            Add {
                id: 1,
                timeout: Some(5),
            }, // never expires
            Add {
                id: 2,
                timeout: Some(3),
            }, // 5 s
            Add {
                id: 3,
                timeout: None,
            },
            Advance { by: 1 }, // 0.5 s
            Advance { by: 1 }, // 1 s: exactly at the boundary, still valid
            Get { id: 0 },
            Advance { by: 0 }, // +1 ns: expired
            Get { id: 0 },
            Take { id: 3 },
            Get { id: 0 },
            Advance { by: 5 }, // +400 s
            Contains { id: 2 },
            FlushExpired,
            Get { id: 1 },
            Take { id: 1 },
        ],
    );
}

// UPDATE_TIME refreshes the expiry on an identical re-add; without it the expiry stays.
#[test]
fn seed_update_time() {
    use Op::*;
    seed(
        &cfg(0, 2, CacheMode::SERVER | CacheMode::UPDATE_TIME, false), // 2 s
        &[
            Add {
                id: 0,
                timeout: None,
            },
            Advance { by: 3 }, // 2 s
            ReAdd { id: 0 },   // refreshed to now + 2 s
            Advance { by: 2 }, // 3 s
            Get { id: 0 },     // still valid
            SetMode { m: 0 },  // SERVER
            ReAdd { id: 0 },   // no refresh
            Advance { by: 3 }, // 5 s > 4 s
            Get { id: 0 },     // expired
        ],
    );
}

// Second tier (on_miss): called on an absent entry, not on an expired one; NO_INTERNAL_LOOKUP
// always asks it; NO_INTERNAL_STORE does not store its answer.
#[test]
fn seed_on_miss_modes() {
    use Op::*;
    seed(
        &cfg(2, 1, CacheMode::SERVER, true),
        &[
            Get { id: 1 },     // cb hit, stored
            Get { id: 1 },     // internal hit
            Advance { by: 3 }, // 2 s: expired
            Get { id: 1 },     // timeout, on_miss not called
            Get { id: 1 },     // miss, cb hit, stored again
            Get { id: 0 },     // miss, tier does not know id 0
            SetMode { m: 3 },  // NO_INTERNAL_LOOKUP
            Get { id: 1 },     // cb hit, identical re-add
            Get { id: 3 },     // cb hit, stored
            SetMode { m: 4 },  // NO_INTERNAL_STORE
            RemoveId { id: 3 },
            Get { id: 3 },    // miss, cb hit, not stored
            SetMode { m: 1 }, // OFF still looks up
            Get { id: 1 },
            Add {
                id: 0,
                timeout: None,
            },
            Add {
                id: 2,
                timeout: None,
            },
        ],
    );
}

// C9/C10/C18 (deliberate difference): empty and too long ids are rejected; clear().
#[test]
fn seed_bad_ids_and_clear() {
    use Op::*;
    seed(
        &cfg(2, T300, CacheMode::SERVER, false),
        &[
            AddBadId {
                long: false,
                try_: false,
            },
            AddBadId {
                long: false,
                try_: true,
            },
            AddBadId {
                long: true,
                try_: false,
            },
            AddBadId {
                long: true,
                try_: true,
            },
            Add {
                id: 4,
                timeout: None,
            },
            Add {
                id: 3,
                timeout: None,
            },
            Clear,
            Add {
                id: 4,
                timeout: None,
            },
            Get { id: 4 },
        ],
    );
}

#[test]
fn seed_zero_timeout() {
    use Op::*;
    seed(
        &cfg(1, 0, CacheMode::SERVER, false),
        &[
            Add {
                id: 0,
                timeout: None,
            },
            Get { id: 0 }, // at the boundary: valid
            Add {
                id: 1,
                timeout: None,
            }, // evicts id 0
            Advance { by: 0 },
            Add {
                id: 2,
                timeout: None,
            }, // id 1 expired: swept or evicted
            Get { id: 2 },
        ],
    );
}

#[test]
fn timeouts_table_is_what_seeds_assume() {
    assert_eq!(TIMEOUTS[T300], Duration::from_secs(300));
    assert_eq!(TIMEOUTS[5], Duration::MAX);
}
