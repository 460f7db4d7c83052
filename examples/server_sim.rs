//! A simulated TLS server workload: worker threads play handshakes against one shared cache.
//!
//! Each simulated client either resumes (presents the id of a session it got earlier) or does
//! a full handshake (gets a fresh random 32-byte id, which the server caches). Some clients
//! present ids the cache never saw (attackers, other servers' ids), some sessions are killed by
//! a fatal alert (`remove`), and TLS 1.3-style single-use tickets are looked up with `take`.
//! Prints progress while it runs, then throughput, the resumption ratio and the cache's stats.
//!
//! ```text
//! cargo run --release --example server_sim -- [--threads N] [--seconds S] [--capacity C]
//!                                             [--clients K] [--timeout-secs T]
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_cache::{Session, SessionCache};

/// A server-side TLS session: an id and a master secret.
struct TlsSession {
    id: [u8; 32],
    master_secret: [u8; 48],
    resumable: AtomicBool,
}

impl Session for TlsSession {
    fn id(&self) -> &[u8] {
        &self.id
    }
    fn set_not_resumable(&self) {
        self.resumable.store(false, Relaxed);
    }
}

struct Options {
    threads: usize,
    seconds: u64,
    capacity: usize,
    clients: usize,
    timeout_secs: u64,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        threads: 4,
        seconds: 5,
        capacity: 20_480,
        clients: 30_000,
        timeout_secs: 300,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || -> Result<u64, String> {
            args.next()
                .ok_or(format!("{flag} needs a value"))?
                .parse()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--threads" => o.threads = value()?.max(1) as usize,
            "--seconds" => o.seconds = value()?.max(1),
            "--capacity" => o.capacity = value()? as usize,
            "--clients" => o.clients = value()?.max(1) as usize,
            "--timeout-secs" => o.timeout_secs = value()?,
            "-h" | "--help" => {
                return Err(
                    "usage: server_sim [--threads N] [--seconds S] [--capacity C] \
                            [--clients K] [--timeout-secs T]"
                        .into(),
                )
            }
            other => return Err(format!("unknown flag {other} (try --help)")),
        }
    }
    Ok(o)
}

/// xorshift64*: fast, good enough for picking clients and actions.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn id(&mut self) -> [u8; 32] {
        let mut id = [0; 32];
        for chunk in id.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        id
    }
}

#[derive(Default)]
struct Tally {
    handshakes: AtomicU64,
    resumed: AtomicU64,
    full: AtomicU64,
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let cache: Arc<SessionCache<TlsSession>> = Arc::new(
        SessionCache::builder()
            .capacity(o.capacity)
            .timeout(Duration::from_secs(o.timeout_secs))
            .build(),
    );
    println!(
        "server_sim: {} threads, {} s, capacity {}, {} clients, timeout {} s",
        o.threads, o.seconds, o.capacity, o.clients, o.timeout_secs
    );
    // The id each client last got from the server (0 = none yet), shared by all workers as
    // plain atomics: a client may connect to any worker thread.
    let tickets: Arc<Vec<[AtomicU64; 4]>> = Arc::new(
        (0..o.clients)
            .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
            .collect(),
    );
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..o.threads)
        .map(|t| {
            let (cache, tickets, tally, stop) =
                (cache.clone(), tickets.clone(), tally.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) << 32));
                while !stop.load(Relaxed) {
                    for _ in 0..1024 {
                        handshake(&cache, &tickets, &tally, &mut rng);
                    }
                }
            })
        })
        .collect();
    let mut last = 0;
    for second in 1..=o.seconds {
        std::thread::sleep(Duration::from_secs(1));
        let n = tally.handshakes.load(Relaxed);
        let st = cache.stats();
        eprint!(
            "\r[{second:>3}/{}] {:>10} handshakes/s  cached {:>6}  hits {:>10}  misses {:>9}   ",
            o.seconds,
            n - last,
            st.entries,
            st.hits,
            st.misses
        );
        last = n;
    }
    stop.store(true, Relaxed);
    for w in workers {
        w.join().expect("worker panicked");
    }
    eprintln!();
    let elapsed = start.elapsed().as_secs_f64();
    let n = tally.handshakes.load(Relaxed);
    let resumed = tally.resumed.load(Relaxed);
    let st = cache.stats();
    println!("handshakes      {n} ({:.0}/s)", n as f64 / elapsed);
    println!(
        "resumed         {resumed} ({:.1} %), full {}",
        100.0 * resumed as f64 / n.max(1) as f64,
        tally.full.load(Relaxed)
    );
    println!(
        "cache           entries {} / capacity {}",
        st.entries,
        cache.capacity()
    );
    println!(
        "lookups         hits {}  misses {}  timeouts {}  hit ratio {:.1} %",
        st.hits,
        st.misses,
        st.timeouts,
        100.0 * st.hits as f64 / (st.hits + st.misses + st.timeouts).max(1) as f64
    );
    println!(
        "changes         inserts {}  replacements {}  removals {}  evicted (cache_full) {}  expired {}",
        st.inserts, st.replacements, st.removals, st.cache_full, st.expired
    );
}

/// One connection: resume if the client holds an id and the server still has it, else a full
/// handshake that caches a fresh session.
fn handshake(
    cache: &SessionCache<TlsSession>,
    tickets: &[[AtomicU64; 4]],
    tally: &Tally,
    rng: &mut Rng,
) {
    tally.handshakes.fetch_add(1, Relaxed);
    let client = &tickets[(rng.next() % tickets.len() as u64) as usize];
    let held: [u8; 32] = {
        let words: [u64; 4] = std::array::from_fn(|i| client[i].load(Relaxed));
        let mut id = [0; 32];
        for (chunk, w) in id.chunks_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        id
    };
    let roll = rng.next() % 100;
    let presented = if roll < 10 {
        Some(rng.id()) // an id this server never issued
    } else if held != [0; 32] {
        Some(held)
    } else {
        None
    };
    if let Some(id) = presented {
        // Every tenth resumption is a TLS 1.3 single-use ticket.
        let found = if roll % 10 == 0 {
            cache.take(&id)
        } else {
            cache.get(&id)
        };
        if let Some(session) = found.filter(|s| s.resumable.load(Relaxed)) {
            std::hint::black_box(&session.master_secret);
            tally.resumed.fetch_add(1, Relaxed);
            if roll >= 98 {
                cache.remove(&session); // a fatal alert kills the session
            }
            return;
        }
    }
    // Full handshake: a new session with a fresh random id.
    tally.full.fetch_add(1, Relaxed);
    let id = rng.id();
    cache.add(Arc::new(TlsSession {
        id,
        master_secret: [0x5A; 48],
        resumable: AtomicBool::new(true),
    }));
    for (i, chunk) in id.chunks(8).enumerate() {
        client[i].store(u64::from_le_bytes(chunk.try_into().unwrap()), Relaxed);
    }
}
