//! Stress binary for valgrind (`.ci/gates/valgrind.sh`): threads churn one small cache with
//! every operation, then the cache is dropped, deferred releases are flushed, and the program
//! checks that every session it made was dropped exactly once. Exits 1 if not.
//!
//! `THREADS` (default 4) and `OPS` (per thread, default 20000) size the run.

use session_cache::{flush_deferred, CacheMode, Session, SessionCache};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

static MADE: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Sess {
    id: [u8; 32],
    /// Stands in for key material: a heap allocation valgrind tracks.
    secret: Vec<u8>,
    timeout: Option<Duration>,
}

impl Sess {
    fn new(id: u64, timeout: Option<Duration>) -> Arc<Self> {
        MADE.fetch_add(1, SeqCst);
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&id.to_le_bytes());
        Arc::new(Sess {
            id: b,
            secret: vec![0x5a; 48],
            timeout,
        })
    }
}

impl Session for Sess {
    fn id(&self) -> &[u8] {
        &self.id
    }
    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

impl Drop for Sess {
    fn drop(&mut self) {
        assert_eq!(self.secret.len(), 48);
        DROPPED.fetch_add(1, SeqCst);
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let threads = env("THREADS", 4);
    let ops = env("OPS", 20_000);
    {
        let cache: SessionCache<Sess> = SessionCache::builder()
            .capacity(64)
            .timeout(Duration::from_millis(5))
            .on_remove(|s: &Arc<Sess>, _| assert_eq!(s.secret[0], 0x5a))
            .on_miss(|id: &[u8]| (id[0] % 7 == 0).then(|| Sess::new(u64::from(id[0]), None)))
            .build();
        std::thread::scope(|sc| {
            for t in 0..threads {
                let cache = &cache;
                sc.spawn(move || {
                    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                    let mut keep: Vec<Arc<Sess>> = Vec::new();
                    for i in 0..ops {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let id = x % 200;
                        let mut key = [0u8; 32];
                        key[..8].copy_from_slice(&id.to_le_bytes());
                        match (x >> 40) % 12 {
                            0..=3 => {
                                let t =
                                    ((x >> 20) % 3 == 0).then(|| Duration::from_micros(x % 3000));
                                let s = Sess::new(id, t);
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
                                cache.get_with(&key, |s| s.secret[0]);
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
        if DROPPED.load(SeqCst) == MADE.load(SeqCst) {
            break;
        }
    }
    let (made, dropped) = (MADE.load(SeqCst), DROPPED.load(SeqCst));
    println!("made {made} dropped {dropped}");
    if made != dropped {
        eprintln!("every session must be dropped exactly once: made {made}, dropped {dropped}");
        std::process::exit(1);
    }
}
