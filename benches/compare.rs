//! Comparison harness for issue 4: session-cache against its peers.
//!
//! `cargo bench --bench compare -- MODE [options]`, modes:
//! - `check`: a quick functional check of every subject (add/get/remove/take answer sensibly).
//! - `throughput [--rounds N] [--secs S] [--threads 1,2,4] [--mixes resume,handshake,churn]
//!   [--subjects a,b] [--out FILE]`: the three mixes at each thread count for every subject,
//!   subjects interleaved round by round (their order rotates each round) so drift favours no
//!   one. One JSON line per measurement.
//! - `memory --subject NAME`: bytes per cached entry at full capacity, with a counting global
//!   allocator (Rust heap) and glibc's `mallinfo2` (everything, including OpenSSL's C heap).
//!   Run each subject in its own process.
//! - `profile --subject NAME --op get|miss|add|remove|churn [--n N]`: N single-thread ops on a
//!   full cache inside `profile_loop` (`--subject hashbrown --op get`: the floor, in
//!   `profile_loop_hashbrown`), for `valgrind --tool=callgrind
//!   --collect-atstart=no --toggle-collect='*profile_loop*'` (scripts/callgrind.sh).
//! - `latency [--secs S] [--threads T] [--subjects a,b] [--out FILE]`: p50/p99/p99.9/max of
//!   `add` (fresh id, evicting) and `get` (recent id) on a full cache, via hdrhistogram.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[path = "compare/subjects.rs"]
mod subjects;

use subjects::{make, Id, Sess, Subject, CAP, NAMES};

// ---- counting allocator ------------------------------------------------------------------------

/// Counts live heap bytes while `COUNTING` is set (only in `memory` mode, which is
/// single-threaded), so the other modes pay one read of a never-written flag per allocation.
struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counter is bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_add(l.size() as isize, Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_sub(l.size() as isize, Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_add(l.size() as isize, Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_add(new as isize - l.size() as isize, Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Involuntary context switches of this process so far (preemptions by other processes).
fn preemptions() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_nivcsw
    }
}

/// Bytes in use in glibc's heap (all arenas plus mmapped chunks).
fn malloc_in_use() -> isize {
    // SAFETY: mallinfo2 only reads allocator statistics.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as isize
}

// ---- ids and workloads -------------------------------------------------------------------------

/// wyrand: a tiny, fast PRNG, so id generation costs the same few ns for every subject.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.0 as u128) * ((self.0 ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) as u64) ^ (t as u64)
    }
    fn id(&mut self) -> Id {
        let mut id = [0u8; 32];
        for c in id.chunks_exact_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        id
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mix {
    /// 100 % get of cached ids.
    Resume,
    /// 70 % get of recent ids, 10 % get of absent ids, 18 % add of a fresh id, 2 % remove.
    Handshake,
    /// add a fresh id, then remove it (2 ops).
    Churn,
}

impl Mix {
    fn parse(s: &str) -> Mix {
        match s {
            "resume" => Mix::Resume,
            "handshake" => Mix::Handshake,
            "churn" => Mix::Churn,
            _ => panic!("unknown mix {s:?}"),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Mix::Resume => "resume",
            Mix::Handshake => "handshake",
            Mix::Churn => "churn",
        }
    }
}

/// Ids each thread considers "recent" (a ring of the last ones it added, seeded from the
/// prefill).
const RECENT: usize = 1024;

struct Outcome {
    ops: u64,
    gets: u64,
    hits: u64,
    end: Instant,
}

fn worker(s: &dyn Subject, mix: Mix, seed: u64, prefill: &[Id], stop: &AtomicBool) -> Outcome {
    let mut rng = Rng(seed);
    let mut recent: Vec<Id> = (0..RECENT)
        .map(|_| prefill[rng.below(prefill.len())])
        .collect();
    let mut next = 0usize;
    let (mut ops, mut gets, mut hits) = (0u64, 0u64, 0u64);
    while !stop.load(Relaxed) {
        for _ in 0..32 {
            match mix {
                Mix::Resume => {
                    gets += 1;
                    hits += s.get(&prefill[rng.below(prefill.len())]) as u64;
                    ops += 1;
                }
                Mix::Handshake => {
                    let r = rng.below(100);
                    if r < 70 {
                        gets += 1;
                        hits += s.get(&recent[rng.below(RECENT)]) as u64;
                    } else if r < 80 {
                        gets += 1;
                        hits += s.get(&rng.id()) as u64;
                    } else if r < 98 {
                        let id = rng.id();
                        s.add(Sess::new(id));
                        recent[next] = id;
                        next = (next + 1) % RECENT;
                    } else {
                        s.remove(&recent[rng.below(RECENT)]);
                    }
                    ops += 1;
                }
                Mix::Churn => {
                    let id = rng.id();
                    s.add(Sess::new(id));
                    s.remove(&id);
                    ops += 2;
                }
            }
        }
    }
    Outcome {
        ops,
        gets,
        hits,
        end: Instant::now(),
    }
}

fn prefilled(name: &str, prefill: &[Id]) -> Box<dyn Subject> {
    let s = make(name);
    for id in prefill {
        s.add(Sess::new(*id));
    }
    s.settle();
    s
}

/// One measurement: a fresh, prefilled subject; `threads` workers released together; ops/s.
fn run_cell(
    name: &str,
    mix: Mix,
    threads: usize,
    secs: f64,
    prefill: &[Id],
    seed: u64,
) -> (f64, f64) {
    let s = prefilled(name, prefill);
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(threads + 1);
    let (outs, start) = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (s, stop, barrier) = (&*s, &stop, &barrier);
                sc.spawn(move || {
                    barrier.wait();
                    worker(s, mix, seed ^ ((t as u64 + 1) << 32), prefill, stop)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Relaxed);
        let outs: Vec<Outcome> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        (outs, start)
    });
    let end = outs.iter().map(|o| o.end).max().unwrap();
    let ops: u64 = outs.iter().map(|o| o.ops).sum();
    let gets: u64 = outs.iter().map(|o| o.gets).sum();
    let hits: u64 = outs.iter().map(|o| o.hits).sum();
    let mops = ops as f64 / (end - start).as_secs_f64() / 1e6;
    let hit_rate = if gets == 0 {
        f64::NAN
    } else {
        hits as f64 / gets as f64
    };
    drop(s);
    session_cache::flush_deferred();
    (mops, hit_rate)
}

// ---- options ---------------------------------------------------------------------------------

struct Opts {
    mode: String,
    rounds: usize,
    secs: f64,
    threads: Vec<usize>,
    mixes: Vec<Mix>,
    subjects: Vec<String>,
    subject: Option<String>,
    out: Option<String>,
    op: String,
    n: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        mode: String::new(),
        rounds: 5,
        secs: 0.3,
        threads: vec![1, 2, 4],
        mixes: vec![Mix::Resume, Mix::Handshake, Mix::Churn],
        subjects: NAMES.iter().map(|s| s.to_string()).collect(),
        subject: None,
        out: None,
        op: "get".to_string(),
        n: 100_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--bench" => {} // passed by `cargo bench`
            "--rounds" => o.rounds = val().parse().expect("--rounds N"),
            "--secs" => o.secs = val().parse().expect("--secs S"),
            "--threads" => {
                o.threads = val()
                    .split(',')
                    .map(|t| t.parse().expect("--threads 1,2"))
                    .collect()
            }
            "--mixes" => o.mixes = val().split(',').map(Mix::parse).collect(),
            "--subjects" => o.subjects = val().split(',').map(str::to_string).collect(),
            "--subject" => o.subject = Some(val()),
            "--out" => o.out = Some(val()),
            "--op" => o.op = val(),
            "--n" => o.n = val().parse().expect("--n N"),
            m if !m.starts_with('-') && o.mode.is_empty() => o.mode = m.to_string(),
            other => panic!("unknown argument {other:?}"),
        }
    }
    o
}

fn output(o: &Opts) -> Box<dyn Write> {
    match &o.out {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("open --out"),
        ),
        None => Box::new(std::io::stdout()),
    }
}

fn main() {
    let o = opts();
    match o.mode.as_str() {
        "check" => check(&o),
        "throughput" => throughput(&o),
        "memory" => memory(&o),
        "latency" => latency(&o),
        "profile" => profile(&o),
        "" => eprintln!(
            "compare: give a mode: check | throughput | memory | latency (see benches/compare.rs)"
        ),
        m => panic!("unknown mode {m:?}"),
    }
}

// ---- modes -----------------------------------------------------------------------------------

fn check(o: &Opts) {
    let mut rng = Rng(42);
    for name in &o.subjects {
        let s = make(name);
        let a = rng.id();
        let b = rng.id();
        s.add(Sess::new(a));
        s.add(Sess::new(b));
        assert!(s.get(&a), "{name}: get after add");
        assert!(!s.get(&rng.id()), "{name}: get of an absent id");
        assert!(s.remove(&a), "{name}: remove of a cached id");
        assert!(!s.get(&a), "{name}: get after remove");
        assert!(!s.remove(&a), "{name}: second remove");
        assert!(s.take(&b), "{name}: take");
        assert!(!s.take(&b), "{name}: second take");
        println!("check {name}: ok");
    }
}

fn throughput(o: &Opts) {
    let mut rng = Rng(0x5eed);
    let prefill: Vec<Id> = (0..CAP).map(|_| rng.id()).collect();
    let mut out = output(o);
    let n = o.subjects.len();
    for round in 0..o.rounds {
        for &mix in &o.mixes {
            for &threads in &o.threads {
                for k in 0..n {
                    let name = &o.subjects[(k + round) % n];
                    let (mops, hit) = run_cell(name, mix, threads, o.secs, &prefill, rng.next());
                    let hit = if hit.is_nan() {
                        "null".to_string()
                    } else {
                        format!("{hit:.4}")
                    };
                    writeln!(
                        out,
                        r#"{{"kind":"throughput","round":{round},"mix":"{}","threads":{threads},"subject":"{name}","mops":{mops:.4},"hit_rate":{hit}}}"#,
                        mix.name()
                    )
                    .unwrap();
                    out.flush().unwrap();
                }
            }
        }
        eprintln!("throughput round {} of {} done", round + 1, o.rounds);
    }
}

fn memory(o: &Opts) {
    let name = o.subject.clone().expect("memory needs --subject NAME");
    let mut rng = Rng(7);
    // Sessions (and their ids) exist before the baseline: the cache's own cost is measured.
    let first: Vec<Arc<Sess>> = (0..CAP).map(|_| Sess::new(rng.id())).collect();
    let churn: Vec<Arc<Sess>> = (0..2 * CAP).map(|_| Sess::new(rng.id())).collect();
    COUNTING.store(true, Relaxed);
    let (rust0, malloc0) = (LIVE.load(Relaxed), malloc_in_use());
    // The empty subject's own allocations count too: they exist to hold CAP sessions.
    let s = make(&name);
    for x in &first {
        s.add(x.clone());
    }
    s.settle();
    session_cache::flush_deferred();
    let (rust1, malloc1) = (LIVE.load(Relaxed), malloc_in_use());
    // Then churn: 2*CAP fresh adds (each evicting) and one remove of a recent id per 8 adds.
    for (i, x) in churn.iter().enumerate() {
        s.add(x.clone());
        if i % 8 == 7 {
            s.remove(&churn[i - 3].id);
        }
    }
    s.settle();
    session_cache::flush_deferred();
    let (rust2, malloc2) = (LIVE.load(Relaxed), malloc_in_use());
    // rustls stores the encoded session itself (80 bytes) by value: reported separately so
    // that "overhead" is comparable across subjects.
    let payload = if name == "rustls" { 80 } else { 0 };
    let per = |b: isize, b0: isize| (b - b0) as f64 / CAP as f64;
    println!(
        r#"{{"kind":"memory","subject":"{name}","entries":{CAP},"rust_bytes_per_entry_full":{:.1},"malloc_bytes_per_entry_full":{:.1},"rust_bytes_per_entry_after_churn":{:.1},"malloc_bytes_per_entry_after_churn":{:.1},"payload_copied_per_entry":{payload}}}"#,
        per(rust1, rust0),
        per(malloc1, malloc0),
        per(rust2, rust0),
        per(malloc2, malloc0),
    );
    COUNTING.store(false, Relaxed);
    drop(s);
}

fn latency(o: &Opts) {
    use hdrhistogram::Histogram;
    let threads = *o.threads.first().unwrap_or(&2);
    let mut rng = Rng(0x1a7);
    let prefill: Vec<Id> = (0..CAP).map(|_| rng.id()).collect();
    let mut out = output(o);
    for name in &o.subjects {
        let s = prefilled(name, &prefill);
        let stop = AtomicBool::new(false);
        let preempted_before = preemptions();
        let hs: Vec<(Histogram<u64>, Histogram<u64>)> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    let (s, stop, prefill) = (&*s, &stop, &prefill);
                    let seed = rng.next() ^ t as u64;
                    sc.spawn(move || {
                        let mut rng = Rng(seed);
                        let mut add =
                            Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
                        let mut get = add.clone();
                        let mut recent: Vec<Id> =
                            (0..RECENT).map(|_| prefill[rng.below(CAP)]).collect();
                        let mut next = 0;
                        while !stop.load(Relaxed) {
                            let id = rng.id();
                            let sess = Sess::new(id);
                            let t0 = Instant::now();
                            s.add(sess);
                            let t1 = Instant::now();
                            add.saturating_record((t1 - t0).as_nanos() as u64);
                            recent[next] = id;
                            next = (next + 1) % RECENT;
                            let probe = recent[rng.below(RECENT)];
                            let t0 = Instant::now();
                            std::hint::black_box(s.get(&probe));
                            let t1 = Instant::now();
                            get.saturating_record((t1 - t0).as_nanos() as u64);
                        }
                        (add, get)
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_secs_f64(o.secs));
            stop.store(true, Relaxed);
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let preempted = preemptions() - preempted_before;
        let (mut add, mut get) = hs[0].clone();
        for (a, g) in &hs[1..] {
            add.add(a).unwrap();
            get.add(g).unwrap();
        }
        for (op, h) in [("add", &add), ("get", &get)] {
            writeln!(
                out,
                r#"{{"kind":"latency","subject":"{name}","op":"{op}","threads":{threads},"count":{},"preemptions":{preempted},"p50":{},"p99":{},"p999":{},"max":{}}}"#,
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            )
            .unwrap();
        }
        out.flush().unwrap();
        drop(s);
        session_cache::flush_deferred();
    }
}

/// The measured region of `profile` mode (callgrind toggles collection on this symbol).
#[inline(never)]
fn profile_loop(s: &dyn Subject, op: &str, ids: &[Id], fresh: &[Id]) -> u64 {
    let mut n = 0u64;
    match op {
        "get" => ids.iter().for_each(|id| n += s.get(id) as u64),
        "miss" => fresh.iter().for_each(|id| n += s.get(id) as u64),
        "add" => fresh.iter().for_each(|id| s.add(Sess::new(*id))),
        "remove" => ids.iter().for_each(|id| n += s.remove(id) as u64),
        "churn" => fresh.iter().for_each(|id| {
            s.add(Sess::new(*id));
            n += s.remove(id) as u64;
        }),
        other => panic!("unknown --op {other:?}"),
    }
    n
}

/// The floor for `profile --subject hashbrown --op get`: a plain single-threaded lookup that
/// clones the `Arc`, as `get` does.
#[inline(never)]
fn profile_loop_hashbrown(m: &hashbrown::HashMap<Id, Arc<Sess>>, ids: &[Id]) -> u64 {
    ids.iter()
        .map(|id| m.get(id).cloned().is_some() as u64)
        .sum()
}

fn profile(o: &Opts) {
    let name = o
        .subject
        .clone()
        .unwrap_or_else(|| "session-cache".to_string());
    let mut rng = Rng(99);
    let prefill: Vec<Id> = (0..CAP).map(|_| rng.id()).collect();
    if name == "hashbrown" {
        let m: hashbrown::HashMap<Id, Arc<Sess>> =
            prefill.iter().map(|id| (*id, Sess::new(*id))).collect();
        let ids: Vec<Id> = (0..o.n.min(CAP))
            .map(|i| prefill[(i * 7919) % CAP])
            .collect();
        let n = profile_loop_hashbrown(&m, &ids);
        println!("profile hashbrown get x{}: {n} hits", ids.len());
        return;
    }
    let s = prefilled(&name, &prefill);
    let ids: Vec<Id> = (0..o.n.min(CAP))
        .map(|i| prefill[(i * 7919) % CAP])
        .collect();
    let fresh: Vec<Id> = (0..o.n).map(|_| rng.id()).collect();
    let t = Instant::now();
    let n = profile_loop(&*s, &o.op, &ids, &fresh);
    let ns = t.elapsed().as_nanos() as f64 / o.n as f64;
    println!(
        "profile {name} {} x{}: {n} hits/removals, {ns:.0} ns/op (wall, untrustworthy under load)",
        o.op, o.n
    );
}
