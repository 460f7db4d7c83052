//! Leak-check driver, run under valgrind by `.ci/gates/valgrind.sh`: threads churn one small
//! cache with every operation, then the cache is dropped, deferred releases are flushed, and the
//! program checks that every session it made was dropped exactly once. Exits 1 if not.
//!
//! `THREADS` (default 4) and `OPS` (per thread, default 20000) size the run.

use session_cache::{flush_deferred, CacheMode, SessionCache};
use std::sync::Arc;
use std::time::Duration;
use testkit::{Rng, TestSession, Tracker};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let threads = env("THREADS", 4);
    let ops = env("OPS", 20_000);
    let tracker = Tracker::new();
    let sess = |id: u64, t: Option<Duration>| tracker.session_with(&testkit::id(id), t);
    {
        let cache: SessionCache<TestSession> = SessionCache::builder()
            .capacity(64)
            .timeout(Duration::from_millis(5))
            .on_remove(|s: &Arc<TestSession>, _| assert!(s.secret_intact()))
            .on_miss({
                let tracker = tracker.clone();
                move |id: &[u8]| {
                    (id[0] % 7 == 0).then(|| tracker.session(&testkit::id(u64::from(id[0]))))
                }
            })
            .build();
        std::thread::scope(|sc| {
            for t in 0..threads {
                let (cache, sess) = (&cache, &sess);
                sc.spawn(move || {
                    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1));
                    let mut keep: Vec<Arc<TestSession>> = Vec::new();
                    for i in 0..ops {
                        let x = rng.next_u64();
                        let id = x % 200;
                        let key = testkit::id(id);
                        match (x >> 40) % 12 {
                            0..=3 => {
                                let t =
                                    ((x >> 20) % 3 == 0).then(|| Duration::from_micros(x % 3000));
                                let s = sess(id, t);
                                cache.add(s.clone());
                                if keep.len() < 8 {
                                    keep.push(s);
                                }
                            }
                            4 => {
                                if let Some(s) = keep.pop() {
                                    cache.add(s.clone()); // identical re-add or re-insert
                                    cache.remove(&s);
                                }
                            }
                            5 => {
                                cache.remove_id(&key);
                            }
                            6 => {
                                cache.take(&key);
                            }
                            7 | 8 => {
                                cache.get(&key);
                            }
                            9 => {
                                cache.get_with(&key, |s| s.secret_intact());
                            }
                            10 => {
                                if i % 512 == 0 {
                                    cache.flush_expired();
                                    cache.set_mode(if i % 1024 == 0 {
                                        CacheMode::SERVER | CacheMode::NO_AUTO_CLEAR
                                    } else {
                                        CacheMode::SERVER
                                    });
                                } else {
                                    cache.contains(&key);
                                }
                            }
                            _ => {
                                if i % 4096 == 0 {
                                    cache.set_capacity(16 + (x as usize % 64));
                                }
                                cache.len();
                            }
                        }
                    }
                    drop(keep);
                    flush_deferred();
                });
            }
        });
        println!("len at rest {} stats {:?}", cache.len(), cache.stats());
        if cache.len() > cache.capacity() {
            eprintln!(
                "len {} > capacity {} at rest",
                cache.len(),
                cache.capacity()
            );
            std::process::exit(1);
        }
    }
    for _ in 0..64 {
        flush_deferred();
        if tracker.dropped() == tracker.created() {
            break;
        }
    }
    let (made, dropped) = (tracker.created(), tracker.dropped());
    println!("made {made} dropped {dropped}");
    if made != dropped {
        eprintln!("every session must be dropped exactly once: made {made}, dropped {dropped}");
        std::process::exit(1);
    }
}
