//! Single-thread operation costs of session-cache, with the practical floor: a plain
//! single-threaded `hashbrown` lookup (ahash, as session-cache hashes) of the same keys.
//!
//! `cargo bench -p session-cache-bench --bench single` (criterion options after `--`, e.g.
//! `-- get`).
//! Every cache is at full capacity (20 480 sessions, 32-byte random ids). `hot` benches look up
//! one key over and over (everything in L1); `spread` benches walk all cached keys in a random
//! order (what a server sees).

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use session_cache::SessionCache;

const CAP: usize = 20_480;
type Id = [u8; 32];

struct Sess {
    id: Id,
    _secret: [u8; 48],
}

impl session_cache::Session for Sess {
    fn id(&self) -> &[u8] {
        &self.id
    }
}

fn sess(id: Id) -> Arc<Sess> {
    Arc::new(Sess {
        id,
        _secret: [7; 48],
    })
}

/// splitmix64, enough to make random-looking ids deterministically.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn id(&mut self) -> Id {
        let mut id = [0u8; 32];
        for c in id.chunks_exact_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        id
    }
}

/// A full cache, the ids it holds (shuffled order), and ids it does not hold.
fn full() -> (SessionCache<Sess>, Vec<Id>, Vec<Id>, Rng) {
    let mut rng = Rng(0xc0ffee);
    let cache = SessionCache::builder().capacity(CAP).build();
    let ids: Vec<Id> = (0..CAP).map(|_| rng.id()).collect();
    for id in &ids {
        cache.add(sess(*id));
    }
    let mut order = ids.clone();
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let absent: Vec<Id> = (0..4096).map(|_| rng.id()).collect();
    (cache, order, absent, rng)
}

fn bench(c: &mut Criterion) {
    let (cache, ids, absent, mut rng) = full();
    let floor: hashbrown::HashMap<Id, Arc<Sess>, ahash::RandomState> =
        ids.iter().map(|id| (*id, sess(*id))).collect();
    let mut g = c.benchmark_group("single");

    // ---- lookups, and the hashbrown floor over the same keys ----
    let hot = ids[0];
    g.bench_function("get_hit_hot", |b| b.iter(|| cache.get(black_box(&hot))));
    g.bench_function("get_with_hit_hot", |b| {
        b.iter(|| cache.get_with(black_box(&hot), |s| s.id[0]))
    });
    g.bench_function("hashbrown_get_hot", |b| {
        b.iter(|| floor.get(black_box(&hot)).map(|s| s.id[0]))
    });
    g.bench_function("hashbrown_get_clone_hot", |b| {
        b.iter(|| floor.get(black_box(&hot)).cloned())
    });
    let mut i = 0;
    let mut next = || {
        i = (i + 1) % CAP;
        &ids[i]
    };
    g.bench_function("get_hit_spread", |b| {
        b.iter(|| cache.get(black_box(next())))
    });
    g.bench_function("get_with_hit_spread", |b| {
        b.iter(|| cache.get_with(black_box(next()), |s| s.id[0]))
    });
    g.bench_function("hashbrown_get_spread", |b| {
        b.iter(|| floor.get(black_box(next())).map(|s| s.id[0]))
    });
    g.bench_function("hashbrown_get_clone_spread", |b| {
        b.iter(|| floor.get(black_box(next())).cloned())
    });
    let mut j = 0;
    g.bench_function("get_miss", |b| {
        b.iter(|| {
            j = (j + 1) % absent.len();
            cache.get(black_box(&absent[j]))
        })
    });

    // ---- writes on a full cache ----
    g.bench_function("add_new_evicting", |b| b.iter(|| cache.add(sess(rng.id()))));
    let cached = sess(rng.id());
    cache.add(cached.clone());
    g.bench_function("add_identical", |b| {
        b.iter(|| cache.add(black_box(cached.clone())))
    });
    let pair = [sess(cached.id), sess(cached.id)];
    let mut k = 0;
    g.bench_function("add_replace", |b| {
        b.iter(|| {
            k ^= 1;
            cache.add(pair[k].clone())
        })
    });
    // remove / take: insert a batch of fresh ids untimed, then time removing them.
    let batch = |iters: u64, op: &dyn Fn(&Id) -> bool, rng: &mut Rng| {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(1024) as usize;
            let fresh: Vec<Id> = (0..n).map(|_| rng.id()).collect();
            for id in &fresh {
                cache.add(sess(*id));
            }
            let t = Instant::now();
            for id in &fresh {
                black_box(op(id));
            }
            total += t.elapsed();
            left -= n as u64;
        }
        total
    };
    g.bench_function("remove", |b| {
        b.iter_custom(|n| batch(n, &|id| cache.remove_id(id), &mut rng))
    });
    g.bench_function("take", |b| {
        b.iter_custom(|n| batch(n, &|id| cache.take(id).is_some(), &mut rng))
    });
    g.bench_function("session_alloc_only", |b| {
        b.iter_batched(|| rng.id(), sess, BatchSize::SmallInput)
    });
    g.finish();
    drop(cache);
    session_cache::flush_deferred();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30)
        .without_plots()
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
