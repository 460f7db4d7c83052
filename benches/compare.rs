//! Side-by-side measurements of session-cache against its peers.
//!
//! `cargo run --release -p session-cache-bench --bin compare -- MODE [options]`, modes:
//! - `check`: a functional check of every subject (add/get/remove/take answer sensibly), then
//!   how many sessions each one really holds when asked for 20 480 (one JSON line each).
//! - `throughput [--rounds N] [--secs S] [--threads 1,2,4] [--mixes resume,handshake,churn]
//!   [--subjects a,b] [--quick] [--out FILE]` (defaults: 9 rounds, 0.8 s cells, all subjects,
//!   stdout): every workload at each thread count for every
//!   subject, in interleaved rounds: each round runs every subject once per cell, in an order
//!   that rotates from round to round, so drift favours no one. One JSON line per measurement,
//!   plus a header (command, commit, load average) and a trailer (load average). `--quick`:
//!   2 rounds of 0.05 s cells, a smoke test whose numbers mean nothing. `--subjects` also takes
//!   the ceilings of `compare/ceiling.rs` (`ceiling`, `ceiling-no-clock`, `ceiling-no-pin`,
//!   `ceiling-bare`): ideal flat tables, not caches, that bound what any layout reaches under
//!   the contract; only with `--mixes resume` (any threads) or `churn` (one thread). The shared
//!   ceilings of `compare/ceiling_shared.rs` (`ceiling-shared`, `ceiling-shared-no-clock`),
//!   set-associative and sound with many writers, bound the write mixes at any thread count.
//! - `memory --subject NAME [--ops N]`: bytes the subject holds beyond the sessions themselves,
//!   per entry, at capacity and after N add/remove operations of fresh ids (default 10 million;
//!   50 000 for the subjects whose `remove` scans a queue of every key), counted by the global
//!   allocator below. Run each subject in its own process.
//! - `tail [--secs S] [--threads T] [--subjects a,b] [--out FILE]` (defaults: 5 s, 2 threads,
//!   session-cache): under T-thread churn (add a fresh id, remove it), p50/p99/p99.9 of `add`,
//!   counting only the calls during which the thread was not preempted
//!   (`getrusage(RUSAGE_THREAD)` involuntary switches before and after each call).
//! - `profile --subject NAME [--n N]`: single-thread operations on a full cache, each kind in
//!   its own `measure_*` function, for `valgrind --tool=callgrind --collect-atstart=no
//!   --toggle-collect='*measure_*' --dump-after=compare::measure_get_hit ...` (one dump per
//!   function: scripts/callgrind.sh). `--subject hashbrown`: the floor, a plain `hashbrown` map
//!   with ahash (get + `Arc` clone).
//! - `primitives`: nanoseconds per call of the primitives every lookup and insert of a
//!   lock-free cache is built from (an epoch pin, a 16-byte load and CAS, an `Arc` clone and
//!   drop, the coarse clock, ahash of 32 bytes, a locked add), single thread, one JSON line each:
//!   the floor arithmetic of docs/benchmarks.md.

// Atomics: every one here is a counter or a stop flag that publishes no other data (results
// come back through `join`), so all use Relaxed; no load pairs with a store for ordering.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[path = "compare/subjects.rs"]
mod subjects;

use subjects::{
    with_subject, Id, Parts, Sess, Subject, Visit, CAP, CEILINGS, DESCRIPTIONS, LIVE_SESSIONS,
    NAMES,
};

// ---- counting allocator ------------------------------------------------------------------------

/// Counts live heap bytes while `COUNTING` is set (only in `memory` mode, which is
/// single-threaded), so the other modes pay one read of a never-written flag per allocation.
struct Counting;
pub static COUNTING: AtomicBool = AtomicBool::new(false);
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

/// Involuntary context switches of the calling thread so far.
fn thread_preemptions() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut u);
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
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
    fn ids(&mut self, n: usize) -> Vec<Id> {
        (0..n).map(|_| self.id()).collect()
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
    fn parse(s: &str) -> Result<Mix, String> {
        match s {
            "resume" => Ok(Mix::Resume),
            "handshake" => Ok(Mix::Handshake),
            "churn" => Ok(Mix::Churn),
            _ => Err(format!("unknown mix {s:?} (resume, handshake, churn)")),
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

fn worker<S: Subject>(s: &S, mix: Mix, seed: u64, prefill: &[Id], stop: &AtomicBool) -> Outcome {
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

fn fill<S: Subject>(s: &S, ids: &[Id]) {
    for id in ids {
        s.add(Sess::new(*id));
    }
    s.settle();
}

/// One throughput measurement: a fresh, prefilled subject; `threads` workers released together.
struct Cell<'a> {
    mix: Mix,
    threads: usize,
    secs: f64,
    prefill: &'a [Id],
    seed: u64,
}

struct CellResult {
    mops: f64,
    gets: u64,
    hits: u64,
    secs: f64,
}

impl Visit for Cell<'_> {
    type Out = CellResult;
    fn visit<S: Subject>(self, s: S) -> CellResult {
        fill(&s, self.prefill);
        let stop = AtomicBool::new(false);
        let barrier = Barrier::new(self.threads + 1);
        let (outs, start) = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..self.threads)
                .map(|t| {
                    let (s, stop, barrier, prefill) = (&s, &stop, &barrier, self.prefill);
                    let (mix, seed) = (self.mix, self.seed ^ ((t as u64 + 1) << 32));
                    sc.spawn(move || {
                        barrier.wait();
                        worker(s, mix, seed, prefill, stop)
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            std::thread::sleep(Duration::from_secs_f64(self.secs));
            stop.store(true, Relaxed);
            let outs: Vec<Outcome> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            (outs, start)
        });
        let end = outs.iter().map(|o| o.end).max().unwrap();
        let secs = (end - start).as_secs_f64();
        let ops: u64 = outs.iter().map(|o| o.ops).sum();
        drop(s);
        session_cache::flush_deferred();
        CellResult {
            mops: ops as f64 / secs / 1e6,
            gets: outs.iter().map(|o| o.gets).sum(),
            hits: outs.iter().map(|o| o.hits).sum(),
            secs,
        }
    }
}

// ---- options ---------------------------------------------------------------------------------

struct Opts {
    mode: String,
    rounds: usize,
    secs: Option<f64>,
    threads: Vec<usize>,
    threads_given: bool,
    mixes: Vec<Mix>,
    subjects: Vec<String>,
    subjects_given: bool,
    subject: Option<String>,
    out: Option<String>,
    ops: Option<u64>,
    n: usize,
}

const USAGE: &str = "usage: compare check | throughput [--rounds N] [--secs S] [--threads 1,2,4] \
[--mixes resume,handshake,churn] [--subjects a,b] [--quick] [--out FILE] | memory --subject NAME \
[--ops N] | tail [--secs S] [--threads T] [--subjects a,b] [--out FILE] | profile --subject NAME \
[--n N] | primitives   (see benches/compare.rs)";

fn opts() -> Result<Opts, String> {
    let mut o = Opts {
        mode: String::new(),
        rounds: 9,
        secs: None,
        threads: vec![1, 2, 4],
        threads_given: false,
        mixes: vec![Mix::Resume, Mix::Handshake, Mix::Churn],
        subjects: NAMES.iter().map(|s| s.to_string()).collect(),
        subjects_given: false,
        subject: None,
        out: None,
        ops: None,
        n: CAP,
    };
    let mut quick = false;
    let mut args = std::env::args().skip(1);
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{flag}: not a valid number: {v:?}"))
    }
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {} // passed by `cargo bench`
            "--quick" => quick = true,
            "--rounds" => o.rounds = num("--rounds", args.next())?,
            "--secs" => o.secs = Some(num("--secs", args.next())?),
            "--ops" => o.ops = Some(num("--ops", args.next())?),
            "--n" => o.n = num("--n", args.next())?,
            "--threads" => {
                let v = args.next().ok_or("--threads needs a value")?;
                o.threads = v
                    .split(',')
                    .map(|t| num("--threads", Some(t.to_string())))
                    .collect::<Result<_, _>>()?;
                o.threads_given = true;
            }
            "--mixes" => {
                let v = args.next().ok_or("--mixes needs a value")?;
                o.mixes = v.split(',').map(Mix::parse).collect::<Result<_, _>>()?;
            }
            "--subjects" => {
                let v = args.next().ok_or("--subjects needs a value")?;
                o.subjects = v.split(',').map(str::to_string).collect();
                o.subjects_given = true;
            }
            "--subject" => o.subject = Some(args.next().ok_or("--subject needs a value")?),
            "--out" => o.out = Some(args.next().ok_or("--out needs a value")?),
            m if !m.starts_with('-') && o.mode.is_empty() => o.mode = m.to_string(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if quick {
        o.rounds = 2;
        o.secs.get_or_insert(0.05);
    }
    for s in o.subjects.iter().chain(o.subject.iter()) {
        let floor = o.mode == "profile" && s == "hashbrown";
        let ceiling = CEILINGS.iter().find(|(name, _, _)| name == s);
        if ceiling.is_some_and(|(_, parts, _)| !parts.has(Parts::SHARED)) {
            // A flat ceiling is sound only with one writer and no reader beside it (its module
            // docs); the shared ceilings, with any.
            let one_writer = o.mixes.iter().all(|m| match m {
                Mix::Resume => true,
                Mix::Churn => o.threads.iter().all(|&t| t == 1),
                Mix::Handshake => false,
            });
            let sound = match o.mode.as_str() {
                // `profile` runs one thread.
                "check" | "profile" => true,
                "throughput" => one_writer,
                _ => false,
            };
            if !sound {
                return Err(format!(
                    "{s:?} is a ceiling, not a cache: check, profile, or throughput with --mixes \
                     resume (any --threads) or churn (--threads 1)"
                ));
            }
        } else if ceiling.is_none() && !floor && !NAMES.contains(&s.as_str()) {
            return Err(format!("unknown subject {s:?}; known: {NAMES:?}"));
        }
    }
    if o.threads.contains(&0) || o.rounds == 0 || o.n == 0 {
        return Err("--threads, --rounds and --n must be at least 1".into());
    }
    Ok(o)
}

fn output(o: &Opts) -> Box<dyn Write> {
    match &o.out {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap_or_else(|e| {
                    eprintln!("compare: cannot open {p}: {e}");
                    std::process::exit(2)
                }),
        ),
        None => Box::new(std::io::stdout()),
    }
}

/// The command line as a user would type it.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "cargo run --release -p session-cache-bench --bin compare -- {}",
        args.join(" ")
    )
}

/// The checked-out commit of the repository this binary was built from (`+dirty` if the work
/// tree differs from it).
fn commit() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Ok(o) if o.status.success() => {
            let mut c = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if let Ok(d) = git(&["diff", "--quiet", "HEAD"]) {
                if !d.status.success() {
                    c.push_str("+dirty");
                }
            }
            c
        }
        _ => "unknown".into(),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn main() {
    let o = match opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("compare: {e}\n{USAGE}");
            std::process::exit(2)
        }
    };
    match o.mode.as_str() {
        "check" => check(&o),
        "throughput" => throughput(&o),
        "memory" => memory(&o),
        "tail" => tail(&o),
        "profile" => profile(&o),
        "primitives" => primitives(),
        "" | "help" => eprintln!("{USAGE}"),
        m => {
            eprintln!("compare: unknown mode {m:?}\n{USAGE}");
            std::process::exit(2)
        }
    }
}

// ---- check -----------------------------------------------------------------------------------

struct Check;

impl Visit for Check {
    type Out = Result<(usize, usize), String>;
    fn visit<S: Subject>(self, s: S) -> Self::Out {
        let mut rng = Rng(42);
        let (a, b) = (rng.id(), rng.id());
        s.add(Sess::new(a));
        s.add(Sess::new(b));
        let checks = [
            (s.get(&a), "get after add"),
            (!s.get(&rng.id()), "get of an absent id misses"),
            (s.remove(&a), "remove of a cached id"),
            (!s.get(&a), "get after remove misses"),
            (!s.remove(&a), "second remove finds nothing"),
            (s.take(&b), "take"),
            (!s.take(&b), "second take finds nothing"),
        ];
        if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(what.to_string());
        }
        // What it holds when asked for CAP: after CAP adds, then after CAP more.
        let first = rng.ids(CAP);
        fill(&s, &first);
        let held = first.iter().filter(|id| s.get(id)).count();
        let second = rng.ids(CAP);
        fill(&s, &second);
        let held_after = first.iter().chain(&second).filter(|id| s.get(id)).count();
        Ok((held, held_after))
    }
}

fn check(o: &Opts) {
    let mut failed = false;
    let mut out = output(o);
    for name in &o.subjects {
        match with_subject(name, Check).expect("known subject") {
            Ok((held, held_after)) => {
                eprintln!("check {name}: ok (holds {held}, then {held_after} of {CAP} asked)");
                writeln!(
                    out,
                    r#"{{"kind":"holds","subject":{},"asked":{CAP},"after_fill":{held},"after_overfill":{held_after}}}"#,
                    js(name)
                )
                .unwrap();
            }
            Err(what) => {
                eprintln!("check {name}: FAILED: {what}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}

// ---- throughput ------------------------------------------------------------------------------

fn throughput(o: &Opts) {
    let secs = o.secs.unwrap_or(0.8);
    let mut rng = Rng(0x5eed);
    let prefill = rng.ids(CAP);
    let mut out = output(o);
    writeln!(
        out,
        r#"{{"kind":"run","mode":"throughput","command":{},"commit":{},"loadavg_before":{},"rounds":{},"secs":{secs}}}"#,
        js(&command_line()),
        js(&commit()),
        js(&loadavg()),
        o.rounds
    )
    .unwrap();
    let ceilings = CEILINGS.iter().map(|&(name, _, what)| (name, what));
    for (name, what) in DESCRIPTIONS.iter().copied().chain(ceilings) {
        if o.subjects.iter().any(|s| s == name) {
            writeln!(
                out,
                r#"{{"kind":"subject","subject":{},"what":{}}}"#,
                js(name),
                js(what)
            )
            .unwrap();
        }
    }
    let n = o.subjects.len();
    let started = Instant::now();
    for round in 0..o.rounds {
        for &mix in &o.mixes {
            for &threads in &o.threads {
                for k in 0..n {
                    let name = &o.subjects[(k + round) % n];
                    let cell = Cell {
                        mix,
                        threads,
                        secs,
                        prefill: &prefill,
                        seed: rng.next(),
                    };
                    let r = with_subject(name, cell).expect("known subject");
                    let hit = if r.gets == 0 {
                        "null".to_string()
                    } else {
                        format!("{:.4}", r.hits as f64 / r.gets as f64)
                    };
                    writeln!(
                        out,
                        r#"{{"kind":"throughput","round":{round},"position":{k},"mix":"{}","threads":{threads},"subject":{},"mops":{:.4},"secs":{:.3},"gets":{},"hit_ratio":{hit}}}"#,
                        mix.name(),
                        js(name),
                        r.mops,
                        r.secs,
                        r.gets,
                    )
                    .unwrap();
                    out.flush().unwrap();
                }
            }
        }
        eprintln!(
            "throughput round {} of {} done ({:.0} s)",
            round + 1,
            o.rounds,
            started.elapsed().as_secs_f64()
        );
    }
    writeln!(
        out,
        r#"{{"kind":"run_end","mode":"throughput","loadavg_after":{},"wall_secs":{:.1}}}"#,
        js(&loadavg()),
        started.elapsed().as_secs_f64()
    )
    .unwrap();
}

// ---- memory ----------------------------------------------------------------------------------

/// Heap bytes held by the Rust allocator beyond the live sessions.
fn rust_bytes_beyond_sessions() -> isize {
    LIVE.load(Relaxed) - LIVE_SESSIONS.load(Relaxed) * Sess::heap_bytes() as isize
}

fn malloc_bytes_beyond_sessions() -> isize {
    malloc_in_use() - LIVE_SESSIONS.load(Relaxed) * Sess::heap_bytes() as isize
}

struct Memory {
    ops: u64,
    base_rust: isize,
    base_malloc: isize,
    ids: Vec<Id>,
    rng: Rng,
}

impl Visit for Memory {
    type Out = String;
    fn visit<S: Subject>(mut self, s: S) -> String {
        fill(&s, &self.ids);
        let entries = |copies: bool| {
            if copies {
                CAP as isize
            } else {
                LIVE_SESSIONS.load(Relaxed)
            }
        };
        // rustls and OpenSSL keep their own copy of the session, not our `Arc`.
        let copies = LIVE_SESSIONS.load(Relaxed) == 0;
        let full = (
            rust_bytes_beyond_sessions() - self.base_rust,
            malloc_bytes_beyond_sessions() - self.base_malloc,
            entries(copies),
        );
        // Churn: add a fresh id, then remove it; every eighth add is kept, so the cache also
        // evicts.
        let mut done = 0u64;
        let mut i = 0u64;
        while done < self.ops {
            let id = self.rng.id();
            s.add(Sess::new(id));
            done += 1;
            if i % 8 != 7 {
                s.remove(&id);
                done += 1;
            }
            i += 1;
        }
        s.settle();
        let churned = (
            rust_bytes_beyond_sessions() - self.base_rust,
            malloc_bytes_beyond_sessions() - self.base_malloc,
            entries(copies),
        );
        let per = |(b, _, e): (isize, isize, isize)| b as f64 / e.max(1) as f64;
        let per_m = |(_, m, e): (isize, isize, isize)| m as f64 / e.max(1) as f64;
        let line = format!(
            r#""entries_full":{},"rust_per_entry_full":{:.1},"malloc_per_entry_full":{:.1},"entries_after":{},"rust_per_entry_after":{:.1},"malloc_per_entry_after":{:.1},"ops":{}"#,
            full.2,
            per(full),
            per_m(full),
            churned.2,
            per(churned),
            per_m(churned),
            self.ops
        );
        drop(s);
        line
    }
}

fn memory(o: &Opts) {
    let Some(name) = o.subject.clone() else {
        eprintln!("compare: memory needs --subject NAME\n{USAGE}");
        std::process::exit(2)
    };
    // Subjects whose `remove` scans a queue of every key: their structure is the same after
    // fewer operations, and 10 million would take many minutes.
    let slow = matches!(name.as_str(), "mutex-fifo" | "rustls");
    let ops = o.ops.unwrap_or(if slow { 50_000 } else { 10_000_000 });
    // Counting starts before any session exists, so every session's allocation and release
    // is seen; what the harness itself needs (ids, the PRNG) is allocated before the baseline.
    COUNTING.store(true, Relaxed);
    let mut rng = Rng(7);
    let ids = rng.ids(CAP);
    let base_rust = rust_bytes_beyond_sessions();
    let base_malloc = malloc_bytes_beyond_sessions();
    let m = Memory {
        ops,
        base_rust,
        base_malloc,
        ids,
        rng,
    };
    // The empty subject's own allocations count too: they exist to hold CAP sessions.
    let line = with_subject(&name, m).expect("known subject");
    // rustls copies the session's bytes into the cache: its 32-byte key and 80-byte value are
    // the session, reported so that the overhead can be compared.
    let payload = if name == "rustls" { 112 } else { 0 };
    println!(
        r#"{{"kind":"memory","subject":{},{line},"payload_copied_per_entry":{payload},"session_bytes":{}}}"#,
        js(&name),
        Sess::heap_bytes()
    );
    COUNTING.store(false, Relaxed);
}

// ---- tail latency ----------------------------------------------------------------------------

struct Tail {
    threads: usize,
    secs: f64,
    prefill: Vec<Id>,
    seed: u64,
}

struct TailOut {
    add: hdrhistogram::Histogram<u64>,
    discarded: u64,
    /// Per quarter of the run, the worst single operation's work over all threads (slots
    /// scanned, blocks built, releases run): session-cache built with `work-stats` only.
    worst: Vec<[u64; 3]>,
}

/// The calling thread's worst operation since the last call (zeros without `work-stats`).
fn take_worst_work() -> [u64; 3] {
    #[cfg(feature = "work-stats")]
    {
        let w = session_cache::work::take_worst();
        [w.slots_scanned, w.blocks_built, w.items_freed]
    }
    #[cfg(not(feature = "work-stats"))]
    [0; 3]
}

impl Visit for Tail {
    type Out = TailOut;
    fn visit<S: Subject>(self, s: S) -> TailOut {
        use hdrhistogram::Histogram;
        fill(&s, &self.prefill);
        let stop = AtomicBool::new(false);
        let barrier = Barrier::new(self.threads + 1);
        let quarter = Duration::from_secs_f64(self.secs / 4.0);
        type ThreadOut = (Histogram<u64>, u64, Vec<[u64; 3]>);
        let outs: Vec<ThreadOut> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..self.threads)
                .map(|t| {
                    let (s, stop, barrier) = (&s, &stop, &barrier);
                    let seed = self.seed ^ ((t as u64 + 1) << 40);
                    sc.spawn(move || {
                        let mut rng = Rng(seed);
                        let mut add =
                            Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
                        let mut discarded = 0u64;
                        let mut worst = Vec::new();
                        barrier.wait();
                        let start = Instant::now();
                        let mut mark = quarter;
                        take_worst_work();
                        while !stop.load(Relaxed) {
                            let id = rng.id();
                            let sess = Sess::new(id);
                            let before = thread_preemptions();
                            let t0 = Instant::now();
                            s.add(sess);
                            let t1 = Instant::now();
                            if thread_preemptions() == before {
                                add.saturating_record((t1 - t0).as_nanos() as u64);
                            } else {
                                discarded += 1;
                            }
                            s.remove(&id);
                            if worst.len() < 3 && start.elapsed() >= mark {
                                worst.push(take_worst_work());
                                mark += quarter;
                            }
                        }
                        worst.push(take_worst_work());
                        (add, discarded, worst)
                    })
                })
                .collect();
            barrier.wait();
            std::thread::sleep(Duration::from_secs_f64(self.secs));
            stop.store(true, Relaxed);
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        drop(s);
        session_cache::flush_deferred();
        let mut add = outs[0].0.clone();
        for (h, _, _) in &outs[1..] {
            add.add(h).unwrap();
        }
        let mut worst: Vec<[u64; 3]> = Vec::new();
        for (_, _, w) in &outs {
            for (q, w) in w.iter().enumerate() {
                if worst.len() <= q {
                    worst.push([0; 3]);
                }
                for k in 0..3 {
                    worst[q][k] = worst[q][k].max(w[k]);
                }
            }
        }
        TailOut {
            add,
            discarded: outs.iter().map(|(_, d, _)| d).sum(),
            worst,
        }
    }
}

fn tail(o: &Opts) {
    let threads = if o.threads_given { o.threads[0] } else { 2 };
    let secs = o.secs.unwrap_or(5.0);
    let mut rng = Rng(0x1a7);
    let subjects: Vec<String> = if o.subjects_given {
        o.subjects.clone()
    } else {
        vec!["session-cache".into()]
    };
    let mut out = output(o);
    for name in &subjects {
        let t = Tail {
            threads,
            secs,
            prefill: rng.ids(CAP),
            seed: rng.next(),
        };
        let load = loadavg();
        let r = with_subject(name, t).expect("known subject");
        let h = &r.add;
        writeln!(
            out,
            r#"{{"kind":"tail","subject":{},"op":"add","workload":"churn","threads":{threads},"secs":{secs},"count":{},"discarded_preempted":{},"p50":{},"p99":{},"p999":{},"max":{},"worst_work":{},"loadavg_before":{},"loadavg_after":{}}}"#,
            js(name),
            h.len(),
            r.discarded,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            if cfg!(feature = "work-stats") && name == "session-cache" {
                format!("{:?}", r.worst)
            } else {
                "null".to_string()
            },
            js(&load),
            js(&loadavg()),
        )
        .unwrap();
        out.flush().unwrap();
    }
}

// ---- profile (callgrind) ---------------------------------------------------------------------

// Each measured function has a body of its own: identical ones would be merged by the
// compiler into one symbol, and callgrind could not tell them apart.

/// Measured region: a `get` of each cached id; returns the hits (callgrind collects only
/// inside `measure_*`).
#[inline(never)]
fn measure_get_hit<S: Subject>(s: &S, ids: &[Id]) -> u64 {
    ids.iter().filter(|id| s.get(black_box(id))).count() as u64
}

/// A `get` of each absent id; returns the misses.
#[inline(never)]
fn measure_get_miss<S: Subject>(s: &S, ids: &[Id]) -> u64 {
    ids.iter().filter(|id| !s.get(black_box(id))).count() as u64
}

/// Adds prepared sessions to a full cache (each evicts), then lets the subject finish its
/// deferred work, so the release of the evicted sessions is counted.
#[inline(never)]
fn measure_add<S: Subject>(s: &S, sessions: Vec<S::Prepared>) -> u64 {
    let n = sessions.len() as u64;
    for p in sessions {
        s.add_prepared(black_box(p));
    }
    s.settle();
    n
}

/// Removes each cached id, then lets the subject finish its deferred releases; returns the
/// removals.
#[inline(never)]
fn measure_remove<S: Subject>(s: &S, ids: &[Id]) -> u64 {
    let n = ids.iter().map(|id| s.remove(black_box(id)) as u64).sum();
    s.settle();
    n
}

/// Churn at capacity, as in the memory workload: add each prepared session (a fresh id), then
/// remove it, except every eighth, which stays (so the cache also evicts); returns the adds.
#[inline(never)]
fn measure_churn<S: Subject>(s: &S, sessions: Vec<(Id, S::Prepared)>) -> u64 {
    let n = sessions.len() as u64;
    for (i, (id, p)) in sessions.into_iter().enumerate() {
        s.add_prepared(black_box(p));
        if i % 8 != 7 {
            s.remove(black_box(&id));
        }
    }
    s.settle();
    n
}

/// The unmeasured churn before `measure_churn` (not a `measure_*` function: callgrind skips it).
#[inline(never)]
fn warm_churn<S: Subject>(s: &S, sessions: Vec<(Id, S::Prepared)>) -> u64 {
    let n = sessions.len() as u64;
    for (i, (id, p)) in sessions.into_iter().enumerate() {
        s.add_prepared(p);
        if i % 8 != 7 {
            s.remove(&id);
        }
    }
    n
}

type Floor = hashbrown::HashMap<Id, Arc<Sess>, ahash::RandomState>;

#[inline(never)]
fn measure_floor_get_hit(m: &Floor, ids: &[Id]) -> u64 {
    ids.iter()
        .filter(|id| m.get(black_box(*id)).cloned().is_some())
        .count() as u64
}

#[inline(never)]
fn measure_floor_get_miss(m: &Floor, ids: &[Id]) -> u64 {
    ids.iter()
        .filter(|id| m.get(black_box(*id)).cloned().is_none())
        .count() as u64
}

/// The phases, in the order they run (scripts/callgrind.sh reads one dump per phase).
const PHASES: [&str; 5] = ["get_hit", "get_miss", "add", "remove", "churn"];

struct Profile {
    n: usize,
    /// Whether to run the churn phase (not for a subject whose `remove` scans every key: the
    /// warm-up alone would take many minutes under callgrind).
    churn: bool,
}

impl Visit for Profile {
    type Out = Vec<(usize, u64)>;
    fn visit<S: Subject>(self, s: S) -> Self::Out {
        let mut rng = Rng(99);
        let prefill = rng.ids(CAP);
        fill(&s, &prefill);
        let mut order = prefill.clone();
        rng.shuffle(&mut order);
        let hits: Vec<Id> = (0..self.n).map(|i| order[i % CAP]).collect();
        let absent = rng.ids(self.n);
        let fresh = rng.ids(self.n);
        let prepared: Vec<S::Prepared> = fresh.iter().map(|id| s.prepare(Sess::new(*id))).collect();
        let mut res = Vec::new();
        res.push((hits.len(), measure_get_hit(&s, &hits)));
        res.push((absent.len(), measure_get_miss(&s, &absent)));
        res.push((fresh.len(), measure_add(&s, prepared)));
        // Remove a fifth of a cache's worth of cached ids, spread over the whole cache.
        let mut present: Vec<Id> = prefill
            .iter()
            .chain(&fresh)
            .filter(|id| s.get(id))
            .copied()
            .collect();
        rng.shuffle(&mut present);
        present.truncate((self.n / 5).max(1));
        res.push((present.len(), measure_remove(&s, &present)));
        if !self.churn {
            return res;
        }
        // Churn long enough first that every bucket has been rebuilt many times over, so the
        // measured part sees the table as a long-running server has it.
        let churn = |n: usize, rng: &mut Rng| -> Vec<(Id, S::Prepared)> {
            rng.ids(n)
                .into_iter()
                .map(|id| (id, s.prepare(Sess::new(id))))
                .collect()
        };
        let warm = churn(CAP * 4, &mut rng);
        black_box(warm_churn(&s, warm));
        let measured = churn(self.n, &mut rng);
        res.push((measured.len(), measure_churn(&s, measured)));
        res
    }
}

fn profile(o: &Opts) {
    let name = o
        .subject
        .clone()
        .unwrap_or_else(|| "session-cache".to_string());
    // (operations, how many answered as expected: hits, misses, adds, removals)
    let res: Vec<(usize, u64)> = if name == "hashbrown" {
        let mut rng = Rng(99);
        let prefill = rng.ids(CAP);
        let m: Floor = prefill.iter().map(|id| (*id, Sess::new(*id))).collect();
        let mut order = prefill.clone();
        rng.shuffle(&mut order);
        let hits: Vec<Id> = (0..o.n).map(|i| order[i % CAP]).collect();
        let absent = rng.ids(o.n);
        vec![
            (hits.len(), measure_floor_get_hit(&m, &hits)),
            (absent.len(), measure_floor_get_miss(&m, &absent)),
        ]
    } else {
        with_subject(
            &name,
            Profile {
                n: o.n,
                churn: name != "rustls",
            },
        )
        .expect("known subject")
    };
    let phases: Vec<String> = res
        .iter()
        .zip(PHASES)
        .map(|((n, done), p)| format!(r#"{{"phase":"{p}","ops":{n},"as_expected":{done}}}"#))
        .collect();
    println!(
        r#"{{"kind":"profile","subject":{},"phases":[{}]}}"#,
        js(&name),
        phases.join(",")
    );
}

// ---- primitives ------------------------------------------------------------------------------

/// Nanoseconds per call of `f`, over `n` calls after a tenth as many to warm up.
fn per_call(n: u64, mut f: impl FnMut(u64) -> u64) -> f64 {
    let mut acc = 0;
    for i in 0..n / 10 {
        acc ^= f(i);
    }
    let start = Instant::now();
    for i in 0..n {
        acc ^= f(i);
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    black_box(acc);
    ns
}

fn primitives() {
    use portable_atomic::AtomicU128;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::AtomicU64;
    use std::sync::atomic::Ordering::{AcqRel, Acquire};
    let n = 20_000_000;
    let wide = AtomicU128::new(5);
    let word = AtomicU64::new(5);
    let hasher = ahash::RandomState::with_seeds(1, 2, 3, 4);
    let key = [7u8; 32];
    let arc = Arc::new(5u64);
    let rows: [(&str, f64); 9] = [
        (
            "crossbeam-epoch pin + unpin",
            per_call(n, |i| {
                drop(black_box(crossbeam_epoch::pin()));
                i
            }),
        ),
        (
            "AtomicU128 load (Acquire)",
            per_call(n, |_| black_box(&wide).load(Acquire) as u64),
        ),
        (
            "AtomicU64 load (Acquire)",
            per_call(n, |_| black_box(&word).load(Acquire)),
        ),
        (
            "AtomicU128 compare_exchange",
            per_call(n, |i| {
                let c = black_box(&wide).load(Acquire);
                let _ = wide.compare_exchange(c, c + 1, AcqRel, Acquire);
                i
            }),
        ),
        (
            "AtomicU64 compare_exchange",
            per_call(n, |i| {
                let c = black_box(&word).load(Acquire);
                let _ = word.compare_exchange(c, c + 1, AcqRel, Acquire);
                i
            }),
        ),
        (
            "AtomicU64 fetch_add (locked add)",
            per_call(n, |i| word.fetch_add(1, Relaxed) ^ i),
        ),
        (
            "Arc clone + drop",
            per_call(n, |i| {
                drop(black_box(Arc::clone(black_box(&arc))));
                i
            }),
        ),
        (
            "clock_gettime(CLOCK_MONOTONIC_COARSE)",
            per_call(n, |_| {
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: a valid clock id and a valid out-pointer.
                unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
                ts.tv_nsec as u64
            }),
        ),
        (
            "ahash of 32 bytes",
            per_call(n, |i| {
                let mut h = hasher.build_hasher();
                h.write(black_box(&key));
                h.finish() ^ i
            }),
        ),
    ];
    for (name, ns) in rows {
        println!("{{\"kind\":\"primitive\",\"what\":\"{name}\",\"ns\":{ns:.2}}}");
    }
}
