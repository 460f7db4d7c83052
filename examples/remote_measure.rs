//! Measurements of the fleet tier, printed for docs/remote.md:
//!
//!     cargo run --release --example remote_measure --features redis            # latencies, faults
//!     valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*profile_loop*' \
//!         target/release/examples/remote_measure callgrind tier|none            # instructions per local hit
//!
//! The first starts its own redis-server (127.0.0.1, no persistence). Timings depend on the
//! machine and its load: they are for orders of magnitude, not for comparison.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_cache::remote::{RedisTier, RemoteSession};
use session_cache::{Session, SessionCache};

struct Sess {
    id: Vec<u8>,
    secret: [u8; 48],
}

impl Session for Sess {
    fn id(&self) -> &[u8] {
        &self.id
    }
}

impl RemoteSession for Sess {
    fn encode(&self) -> Vec<u8> {
        self.secret.to_vec()
    }
    fn decode(id: &[u8], bytes: &[u8]) -> Option<Self> {
        Some(Sess {
            id: id.to_vec(),
            secret: bytes.try_into().ok()?,
        })
    }
}

fn sess(i: usize) -> Arc<Sess> {
    let mut id = vec![0u8; 32];
    id[..8].copy_from_slice(&(i as u64).to_be_bytes());
    Arc::new(Sess {
        id,
        secret: [7; 48],
    })
}

fn node(url: &str, budget: Duration) -> SessionCache<Sess> {
    let tier = RedisTier::builder(url)
        .namespace("measure")
        .encryption_key([1; 32])
        .read_budget(budget)
        .build()
        .expect("tier");
    let c = SessionCache::builder()
        .capacity(100_000)
        .remote(tier)
        .build();
    let start = Instant::now();
    while !c.sync_remote() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    c
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn report(label: &str, mut v: Vec<Duration>) {
    let (p50, p99) = (pct(&mut v, 0.5), pct(&mut v, 0.99));
    println!(
        "{label}: n={} p50={:.1} us p99={:.1} us max={:.1} us",
        v.len(),
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        v.last().unwrap().as_secs_f64() * 1e6
    );
}

#[inline(never)]
fn profile_loop(cache: &SessionCache<Sess>, ids: &[Vec<u8>], rounds: usize) -> usize {
    let mut hits = 0;
    for _ in 0..rounds {
        for id in ids {
            hits += cache.get(id).is_some() as usize;
        }
    }
    hits
}

/// The handshake mix of BENCHMARKS.md on `threads` threads for `time`: 70 % get of a recent
/// id, 10 % get of an absent id (with a tier: a Redis round trip), 18 % add, 2 % remove.
/// Returns operations per second.
fn mix(cache: &Arc<SessionCache<Sess>>, threads: usize, time: Duration, base: usize) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let cache = Arc::clone(cache);
            std::thread::spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1);
                let mut next = base + t * 10_000_000;
                let mut recent: Vec<Arc<Sess>> = Vec::new();
                let mut ops = 0u64;
                while start.elapsed() < time {
                    for _ in 0..64 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let r = x % 100;
                        if r < 70 && !recent.is_empty() {
                            let s = &recent[(x >> 8) as usize % recent.len()];
                            std::hint::black_box(cache.get(&s.id));
                        } else if r < 80 {
                            std::hint::black_box(
                                cache.get(&sess(usize::MAX - (x >> 8) as usize).id),
                            );
                        } else if r < 98 || recent.is_empty() {
                            let s = sess(next);
                            next += 1;
                            cache.add(s.clone());
                            if recent.len() < 1024 {
                                recent.push(s);
                            } else {
                                let i = (x >> 8) as usize % recent.len();
                                recent[i] = s;
                            }
                        } else {
                            let s = recent.swap_remove((x >> 8) as usize % recent.len());
                            cache.remove(&s);
                        }
                        ops += 1;
                    }
                }
                ops
            })
        })
        .collect();
    let ops: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    ops as f64 / start.elapsed().as_secs_f64()
}

fn callgrind(with_tier: bool) {
    // The tier points at a port nothing listens on: a local hit must not care.
    let cache: SessionCache<Sess> = if with_tier {
        node("redis://127.0.0.1:1/", Duration::from_millis(1))
    } else {
        SessionCache::builder().capacity(100_000).build()
    };
    let ids: Vec<Vec<u8>> = (0..1000).map(|i| sess(i).id.clone()).collect();
    for i in 0..1000 {
        cache.add(sess(i));
    }
    let hits = profile_loop(&cache, &ids, 20);
    println!(
        "{} local hits ({})",
        hits,
        if with_tier { "tier" } else { "none" }
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("callgrind") {
        callgrind(args.get(1).map(String::as_str) == Some("tier"));
        return;
    }
    const N: usize = 2000;
    let mut server = redis_server::RedisServer::start();
    let url = server.url();
    let budget = Duration::from_millis(50);
    let (a, b) = (node(&url, budget), node(&url, budget));
    println!("loopback, redis-server 7.0, read budget {budget:?}, {N} sessions");

    for i in 0..N {
        a.add(sess(i));
    }
    assert!(a.sync_remote());
    let v: Vec<Duration> = (0..N)
        .map(|i| {
            let t = Instant::now();
            assert!(b.get(&sess(i).id).is_some());
            t.elapsed()
        })
        .collect();
    report("get, local miss + remote hit (B reads A's sessions)", v);
    let v: Vec<Duration> = (0..N)
        .map(|i| {
            let t = Instant::now();
            assert!(b.get(&sess(i).id).is_some());
            t.elapsed()
        })
        .collect();
    report("get, local hit after the remote hit", v);
    let v: Vec<Duration> = (N..2 * N)
        .map(|i| {
            let t = Instant::now();
            assert!(b.get(&sess(i).id).is_none());
            t.elapsed()
        })
        .collect();
    report("get, miss everywhere (local + Redis)", v);
    let v: Vec<Duration> = (0..N)
        .map(|i| {
            let t = Instant::now();
            assert!(b.take(&sess(i).id).is_some());
            t.elapsed()
        })
        .collect();
    report("take on B of a session added on A (GETDEL round trip)", v);
    let v: Vec<Duration> = (0..N)
        .map(|i| {
            let s = sess(10 * N + i);
            let t = Instant::now();
            a.add(s.clone());
            t.elapsed()
        })
        .collect();
    report("add (local insert + seal + queue)", v);
    assert!(a.sync_remote());

    let mut v = Vec::new();
    for i in 0..200 {
        let s = sess(20 * N + i);
        a.add(s.clone());
        assert!(a.sync_remote());
        assert!(b.get(&s.id).is_some());
        let t = Instant::now();
        a.remove_id(&s.id);
        while b.contains(&s.id) {
            std::hint::spin_loop();
        }
        v.push(t.elapsed());
    }
    report("remove on A until B's pulled copy is gone", v);

    // Throughput of the handshake mix, with and without a tier.
    {
        let with_tier = Arc::new(node(&url, budget));
        let without: Arc<SessionCache<Sess>> =
            Arc::new(SessionCache::builder().capacity(100_000).build());
        for threads in [1, 2, 4] {
            let t = Duration::from_millis(500);
            let a = mix(&with_tier, threads, t, 100 * N * threads);
            let b = mix(&without, threads, t, 100 * N * threads);
            println!(
                "handshake mix, {threads} thread(s): with tier {:.0} kops/s, without {:.0} kops/s",
                a / 1e3,
                b / 1e3
            );
        }
        let s = with_tier.remote_stats().unwrap();
        println!(
            "  tier during the mix: writes={} dropped_writes={} misses={} timeouts={} rejected={}",
            s.writes, s.dropped_writes, s.misses, s.timeouts, s.rejected
        );
    }

    // Faults: the longest a lookup took while the server was frozen, slow, or gone.
    let probe = |label: &str, a: &SessionCache<Sess>, b: &SessionCache<Sess>| {
        let mut worst = Duration::ZERO;
        for i in 0..50 {
            let id = sess(30 * N + i).id.clone();
            for f in [
                &(|| {
                    b.get(&id);
                }) as &dyn Fn(),
                &|| {
                    b.take(&id);
                },
                &|| {
                    a.add(sess(40 * N + i));
                },
            ] {
                let t = Instant::now();
                f();
                worst = worst.max(t.elapsed());
            }
        }
        let s = b.remote_stats().unwrap();
        println!(
            "{label}: slowest call {:.1} ms (budget {} ms); B: timeouts={} errors={} rejected={} breaker_open={}",
            worst.as_secs_f64() * 1e3,
            budget.as_millis(),
            s.timeouts,
            s.errors,
            s.rejected,
            s.breaker_open
        );
    };
    server.freeze();
    probe("frozen (SIGSTOP)", &a, &b);
    server.thaw();
    std::thread::sleep(Duration::from_millis(1500));
    {
        let mut conn = server.connection();
        let t = std::thread::spawn(move || {
            let _: redis::RedisResult<()> =
                redis::cmd("DEBUG").arg("SLEEP").arg("1").query(&mut conn);
        });
        std::thread::sleep(Duration::from_millis(20));
        probe("slow (DEBUG SLEEP 1)", &a, &b);
        t.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    probe("down (killed)", &a, &b);
    server.restart();
    let t = Instant::now();
    loop {
        let s = sess(50 * N);
        a.add(s.clone());
        if a.sync_remote() && b.get(&s.id).is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "restarted: cross-node hits again after {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
}
