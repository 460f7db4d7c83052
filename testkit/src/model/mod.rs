//! A plain sequential model of the `SessionCache` contract (docs/design.md, "The contract") and
//! the checking harnesses shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`) and their stable
//! replay (`tests/fuzz_regressions.rs`).
//!
//! Inputs are plain bytes (no `arbitrary` dependency), so a crash file found by `cargo fuzz`
//! replays byte for byte on stable through [`run_model`] / [`run_concurrent`].
//!
//! The model harness drives one cache with a [`ManualClock`] and compares, after every
//! operation: the return value, `len()`, `is_empty()`, `stats()`, the settings getters, the exact
//! multiset of `on_remove` callbacks (object and cause), which objects were marked not resumable,
//! and at the end that every `Arc` the cache took was released exactly once.
pub mod concurrent;

pub use crate::TestSession;

use session_cache::{
    flush_deferred, AddError, Added, CacheMode, Clock, ManualClock, RemovalCause, SessionCache,
    Stats,
};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Our copy of [`RemovalCause`] (which is `#[non_exhaustive]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    Removed,
    Replaced,
    Evicted,
    Expired,
    Cleared,
    Other,
}

impl From<RemovalCause> for Cause {
    fn from(c: RemovalCause) -> Self {
        #[allow(unreachable_patterns)]
        match c {
            RemovalCause::Removed => Cause::Removed,
            RemovalCause::Replaced => Cause::Replaced,
            RemovalCause::Evicted => Cause::Evicted,
            RemovalCause::Expired => Cause::Expired,
            RemovalCause::Cleared => Cause::Cleared,
            _ => Cause::Other,
        }
    }
}

/// Shared log the `on_remove` callback appends to: (serial, cause).
pub type EventLog = Arc<Mutex<Vec<(u32, Cause)>>>;

/// Every object a harness created, kept alive until the end so over-release is observable.
#[derive(Default)]
pub struct Registry {
    pub objs: Vec<Arc<TestSession>>,
}

impl Registry {
    pub fn make(&mut self, id: &[u8], timeout: Option<Duration>) -> Arc<TestSession> {
        let s = TestSession::new(id, self.objs.len() as u32, timeout);
        self.objs.push(s.clone());
        s
    }

    /// After the cache is gone: flush deferred releases until only our handles remain, then check
    /// that every object was released by the cache exactly once (count back to 1, never dropped
    /// early) and drops exactly once when we let go.
    pub fn check_released_exactly_once(self, what: &str) {
        // Other threads (parallel tests) may keep the global epoch queue busy: be patient, by
        // a bounded number of rounds (not by time).
        for round in 0..4096 {
            flush_deferred();
            if self.objs.iter().all(|o| Arc::strong_count(o) == 1) {
                break;
            }
            if round < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        for o in &self.objs {
            assert_eq!(
                o.drops.load(Ordering::SeqCst),
                0,
                "{what}: {o:?} was dropped while the test still held it (over-release)"
            );
            assert_eq!(
                Arc::strong_count(o),
                1,
                "{what}: {o:?} still has {} strong refs after the cache was dropped and \
                 flush_deferred() was called 4096 times (leak)",
                Arc::strong_count(o)
            );
        }
        let counters: Vec<_> = self.objs.iter().map(|o| o.drops.clone()).collect();
        drop(self);
        for (i, c) in counters.iter().enumerate() {
            assert_eq!(
                c.load(Ordering::SeqCst),
                1,
                "{what}: #{i} dropped {c:?} times"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Input decoding.

/// The few ids every harness uses: different lengths, a shared prefix, and the longest allowed.
pub const IDS: [&[u8]; 5] = [
    &[0x01],
    &[0x01, 0x00],
    &[0x00, 0x01],
    &[7, 7, 7, 7, 7, 7, 7, 7],
    &[0xAB; 32],
];
pub const MAX_ID_LEN: usize = 32;
pub const MAX_OPS: usize = 200;

pub const TIMEOUTS: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(300),
    Duration::MAX,
];
pub const ADVANCES: [Duration; 6] = [
    Duration::from_nanos(1),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(3),
    Duration::from_secs(400),
];

pub fn modes() -> [CacheMode; 9] {
    [
        CacheMode::SERVER,
        CacheMode::OFF,
        CacheMode::BOTH,
        CacheMode::SERVER | CacheMode::NO_INTERNAL_LOOKUP,
        CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE,
        CacheMode::SERVER | CacheMode::NO_INTERNAL,
        CacheMode::SERVER | CacheMode::UPDATE_TIME,
        CacheMode::SERVER | CacheMode::NO_AUTO_CLEAR,
        CacheMode::CLIENT | CacheMode::UPDATE_TIME | CacheMode::NO_AUTO_CLEAR,
    ]
}

/// Reads bytes; past the end it yields zeros (so every input decodes).
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    pub fn pick(&mut self, n: usize) -> usize {
        self.byte() as usize % n
    }
    pub fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub capacity: usize,
    pub timeout: Duration,
    pub mode: CacheMode,
    pub on_miss: bool,
    /// The cache's hash seed: it decides which ids share a bucket, so a failing input replays
    /// exactly, and the fuzzer explores layouts as well as operations.
    pub hash_seed: u64,
}

impl Config {
    pub fn decode(b: &mut Bytes<'_>) -> Config {
        let capacity = b.pick(5);
        let timeout = TIMEOUTS[b.pick(TIMEOUTS.len())];
        let mode = modes()[b.pick(modes().len())];
        let flags = b.byte();
        let on_miss = flags & 1 == 1;
        let hash_seed = u64::from(flags >> 1);
        Config {
            capacity,
            timeout,
            mode,
            on_miss,
            hash_seed,
        }
    }
}

/// One operation. `id` fields index [`IDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `add` of a fresh object; `timeout` is an index into [`TIMEOUTS`] or `None`.
    Add {
        id: usize,
        timeout: Option<usize>,
    },
    /// `try_add` of a fresh object.
    TryAdd {
        id: usize,
        timeout: Option<usize>,
    },
    /// `add` of the most recent object made for `id` (an identical re-add when it is cached).
    ReAdd {
        id: usize,
    },
    /// `try_add` of the `back`-th most recent object made for `id`.
    TryReAdd {
        id: usize,
        back: usize,
    },
    /// `remove(&S)`: `fresh` passes a new object with the same id, else the latest object.
    Remove {
        id: usize,
        fresh: bool,
    },
    RemoveId {
        id: usize,
    },
    Take {
        id: usize,
    },
    Get {
        id: usize,
    },
    GetWith {
        id: usize,
    },
    Contains {
        id: usize,
    },
    Advance {
        by: usize,
    },
    FlushExpired,
    Clear,
    SetCapacity {
        n: usize,
    },
    SetTimeout {
        t: usize,
    },
    SetMode {
        m: usize,
    },
    /// `add`/`try_add` with an empty (`long == false`) or too long id.
    AddBadId {
        long: bool,
        try_: bool,
    },
}

impl Op {
    pub fn decode(b: &mut Bytes<'_>) -> Op {
        let nid = IDS.len();
        let opt_timeout = |b: &mut Bytes<'_>| {
            let t = b.byte() as usize;
            if t < 160 {
                None
            } else {
                Some(t % TIMEOUTS.len())
            }
        };
        match b.byte() % 20 {
            0..=2 => Op::Add {
                id: b.pick(nid),
                timeout: opt_timeout(b),
            },
            3 => Op::TryAdd {
                id: b.pick(nid),
                timeout: opt_timeout(b),
            },
            4 => Op::ReAdd { id: b.pick(nid) },
            5 => Op::TryReAdd {
                id: b.pick(nid),
                back: b.pick(3),
            },
            6 => Op::Remove {
                id: b.pick(nid),
                fresh: b.byte() & 1 == 1,
            },
            7 => Op::RemoveId { id: b.pick(nid) },
            8 | 9 => Op::Take { id: b.pick(nid) },
            10 | 11 => Op::Get { id: b.pick(nid) },
            12 => Op::GetWith { id: b.pick(nid) },
            13 => Op::Contains { id: b.pick(nid) },
            14 => Op::Advance {
                by: b.pick(ADVANCES.len()),
            },
            15 => Op::FlushExpired,
            16 => {
                // Clear is rare: it empties everything.
                if b.byte() < 64 {
                    Op::Clear
                } else {
                    Op::Get { id: b.pick(nid) }
                }
            }
            17 => Op::SetCapacity { n: b.pick(5) },
            18 => match b.byte() % 2 {
                0 => Op::SetTimeout {
                    t: b.pick(TIMEOUTS.len()),
                },
                _ => Op::SetMode {
                    m: b.pick(modes().len()),
                },
            },
            _ => Op::AddBadId {
                long: b.byte() & 1 == 1,
                try_: b.byte() & 1 == 1,
            },
        }
    }

    /// Encodes back to bytes (for hand-written seeds).
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Pick a byte >= 160 that decodes to timeout index i.
        let tb = |o: Option<usize>| -> u8 {
            match o {
                None => 0,
                Some(i) => (160..=255u8)
                    .find(|b| *b as usize % TIMEOUTS.len() == i)
                    .unwrap(),
            }
        };
        match *self {
            Op::Add { id, timeout } => out.extend([0, id as u8, tb(timeout)]),
            Op::TryAdd { id, timeout } => out.extend([3, id as u8, tb(timeout)]),
            Op::ReAdd { id } => out.extend([4, id as u8]),
            Op::TryReAdd { id, back } => out.extend([5, id as u8, back as u8]),
            Op::Remove { id, fresh } => out.extend([6, id as u8, fresh as u8]),
            Op::RemoveId { id } => out.extend([7, id as u8]),
            Op::Take { id } => out.extend([8, id as u8]),
            Op::Get { id } => out.extend([10, id as u8]),
            Op::GetWith { id } => out.extend([12, id as u8]),
            Op::Contains { id } => out.extend([13, id as u8]),
            Op::Advance { by } => out.extend([14, by as u8]),
            Op::FlushExpired => out.push(15),
            Op::Clear => out.extend([16, 0]),
            Op::SetCapacity { n } => out.extend([17, n as u8]),
            Op::SetTimeout { t } => out.extend([18, 0, t as u8]),
            Op::SetMode { m } => out.extend([18, 1, m as u8]),
            Op::AddBadId { long, try_ } => out.extend([19, long as u8, try_ as u8]),
        }
    }
}

/// Encodes a config byte header (capacity, timeout index, mode index, on_miss).
pub fn encode_config(capacity: usize, timeout: usize, mode: usize, on_miss: bool) -> Vec<u8> {
    vec![capacity as u8, timeout as u8, mode as u8, on_miss as u8]
}

pub fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let mut v = Vec::new();
    for op in ops {
        op.encode(&mut v);
    }
    v
}

// ---------------------------------------------------------------------------------------------
// The sequential model.

#[derive(Debug, Clone)]
struct MEntry {
    serial: u32,
    /// `None` = never expires (added + timeout overflowed).
    exp: Option<Duration>,
    /// Recency among equal expiries: larger = more recently (re-)added.
    seq: u64,
}

/// Whether an object must, must not, or may be marked not resumable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Never,
    Must,
    Unknown,
}

/// The events of one operation, consumed as the model explains them.
struct Events(Vec<(u32, Cause)>);

impl Events {
    fn take(&mut self, serial: u32, cause: Cause) -> bool {
        if let Some(i) = self.0.iter().position(|e| *e == (serial, cause)) {
            self.0.remove(i);
            true
        } else {
            false
        }
    }
    fn take_cause(&mut self, cause: Cause) -> Vec<u32> {
        let (hit, rest): (Vec<_>, Vec<_>) = self.0.iter().partition(|e| e.1 == cause);
        self.0 = rest;
        hit.into_iter().map(|e| e.0).collect()
    }
}

/// Model of one cache plus its checking harness.
pub struct ModelRun {
    cache: Option<SessionCache<TestSession>>,
    clock: ManualClock,
    log: EventLog,
    reg: Registry,
    /// Objects made per id, oldest first (serials).
    made: Vec<Vec<u32>>,
    /// on_miss's second tier: id index -> serial.
    backing: HashMap<usize, u32>,
    on_miss: bool,
    /// The crate scans the whole table for a victim only in tables built with a capacity of
    /// 1..=64 (at most 16 buckets); larger or unbounded builds sample a window (lib.rs docs,
    /// "Where it differs from OpenSSL"). The bucket array keeps its build-time size.
    exact_eviction: bool,
    // Model state.
    entries: HashMap<Vec<u8>, MEntry>,
    seq: u64,
    cap: usize,
    timeout: Duration,
    mode: CacheMode,
    stats: Stats,
    marks: Vec<Mark>,
    /// For failure messages.
    ctx: String,
}

macro_rules! check {
    ($self:ident, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            panic!("{}: {}\n  model: {}", $self.ctx, format!($($fmt)+), $self.dump());
        }
    };
}

impl ModelRun {
    pub fn new(cfg: &Config) -> Self {
        let clock = ManualClock::new();
        let log: EventLog = Arc::default();
        let mut reg = Registry::default();
        let mut backing = HashMap::new();
        let mut builder = SessionCache::<TestSession>::builder()
            .capacity(cfg.capacity)
            .timeout(cfg.timeout)
            .clock(clock.clone())
            .mode(cfg.mode)
            .max_id_len(MAX_ID_LEN)
            .hash_seed(cfg.hash_seed);
        let l = log.clone();
        builder = builder.on_remove(move |s: &Arc<TestSession>, c: RemovalCause| {
            l.lock().unwrap().push((s.serial, c.into()))
        });
        if cfg.on_miss {
            // The second tier knows ids 1 and 3 (one fixed object each).
            let mut tier: HashMap<Vec<u8>, Arc<TestSession>> = HashMap::new();
            for i in [1usize, 3] {
                let s = reg.make(IDS[i], None);
                backing.insert(i, s.serial);
                tier.insert(IDS[i].to_vec(), s);
            }
            builder = builder.on_miss(move |id: &[u8]| tier.get(id).cloned());
        }
        let cache = builder.build();
        let marks = vec![Mark::Never; reg.objs.len()];
        let mut made = vec![Vec::new(); IDS.len()];
        for (i, s) in &backing {
            made[*i].push(*s);
        }
        ModelRun {
            cache: Some(cache),
            clock,
            log,
            reg,
            made,
            backing,
            on_miss: cfg.on_miss,
            exact_eviction: (1..=64).contains(&cfg.capacity),
            entries: HashMap::new(),
            seq: 0,
            cap: cfg.capacity,
            timeout: saturated(cfg.timeout),
            mode: cfg.mode,
            stats: Stats::default(),
            marks,
            ctx: String::from("setup"),
        }
    }

    fn cache(&self) -> &SessionCache<TestSession> {
        self.cache.as_ref().unwrap()
    }

    fn dump(&self) -> String {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .map(|(k, e)| {
                format!(
                    "{:02x?}=#{} exp={:?} seq={}",
                    &k[..k.len().min(4)],
                    e.serial,
                    e.exp,
                    e.seq
                )
            })
            .collect();
        v.sort();
        format!(
            "now={:?} cap={} timeout={:?} mode={:?} entries=[{}] stats={:?}",
            self.clock.now(),
            self.cap,
            self.timeout,
            self.mode,
            v.join(", "),
            self.stats
        )
    }

    fn now(&self) -> Duration {
        self.clock.now()
    }

    fn expired(&self, e: &MEntry) -> bool {
        matches!(e.exp, Some(x) if self.now() > x)
    }

    /// `now + timeout`, or `None` (never expires) past the clock's range: the crate keeps
    /// instants as u64 nanoseconds and saturates, so every expiry beyond ~584 years is the same
    /// "never", and ties among those go to the least recently added.
    fn expiry(&self, timeout: Duration) -> Option<Duration> {
        let t = self.now().as_nanos() + timeout.as_nanos();
        (t < u64::MAX as u128).then(|| Duration::from_nanos(t as u64))
    }

    fn obj(&self, serial: u32) -> Arc<TestSession> {
        self.reg.objs[serial as usize].clone()
    }

    fn new_obj(&mut self, id: usize, timeout: Option<usize>) -> Arc<TestSession> {
        let s = self.reg.make(IDS[id], timeout.map(|t| TIMEOUTS[t]));
        self.marks.push(Mark::Never);
        self.made[id].push(s.serial);
        s
    }

    fn mark_must(&mut self, serial: u32) {
        self.marks[serial as usize] = Mark::Must;
    }

    fn mark_unknown(&mut self, serial: u32) {
        if self.marks[serial as usize] == Mark::Never {
            self.marks[serial as usize] = Mark::Unknown;
        }
    }

    fn drain(&self) -> Events {
        Events(std::mem::take(&mut *self.log.lock().unwrap()))
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Removes from the model the entry `serial` is cached as, if any.
    fn remove_serial(&mut self, serial: u32) -> bool {
        let id = self.reg.objs[serial as usize].id.clone();
        match self.entries.get(&id) {
            Some(e) if e.serial == serial => {
                self.entries.remove(&id);
                true
            }
            _ => false,
        }
    }

    /// `Expired` events not explained by the operation itself: an implementation may sweep
    /// expired entries incrementally on the add path (docs/design.md, "Policy"). Each must be an entry that
    /// is cached and expired; it counts in `expired`.
    fn apply_sweeps(&mut self, ev: &mut Events) {
        for s in ev.take_cause(Cause::Expired) {
            let id = self.reg.objs[s as usize].id.clone();
            let ok = matches!(self.entries.get(&id), Some(e) if e.serial == s && self.expired(e));
            check!(
                self,
                ok,
                "on_remove(Expired) for #{s}, which is not an expired cached entry"
            );
            self.entries.remove(&id);
            self.stats.expired += 1;
            self.mark_must(s);
        }
    }

    /// The model of `add`/`try_add` (also used by `get`'s second-tier store).
    fn model_add(&mut self, serial: u32, ev: &mut Events) -> Added {
        self.apply_sweeps(ev);
        let obj = self.obj(serial);
        let exp = self.expiry(obj.timeout.unwrap_or(self.timeout));
        let seq = self.next_seq();
        let update_time = self.mode.contains(CacheMode::UPDATE_TIME);
        match self.entries.get(&obj.id).cloned() {
            Some(e) if e.serial == serial => {
                let e = self.entries.get_mut(&obj.id).unwrap();
                e.seq = seq;
                if update_time {
                    e.exp = exp;
                }
                Added::AlreadyCached
            }
            Some(e) => {
                check!(
                    self,
                    ev.take(e.serial, Cause::Replaced),
                    "replacing #{} by #{serial}: expected on_remove(#{}, Replaced)",
                    e.serial,
                    e.serial
                );
                self.entries
                    .insert(obj.id.clone(), MEntry { serial, exp, seq });
                self.stats.replacements += 1;
                Added::Replaced
            }
            None => {
                self.entries
                    .insert(obj.id.clone(), MEntry { serial, exp, seq });
                self.stats.inserts += 1;
                let need = if self.cap > 0 {
                    self.entries.len().saturating_sub(self.cap)
                } else {
                    0
                };
                let mut victims = ev.take_cause(Cause::Evicted);
                victims.sort_unstable();
                // The `need` entries that expire soonest (ties: least recently added), never the
                // one just added.
                let mut cands: Vec<_> = self
                    .entries
                    .values()
                    .filter(|e| e.serial != serial)
                    .map(|e| (e.exp.is_none(), e.exp, e.seq, e.serial))
                    .collect();
                cands.sort_unstable();
                let mut expect: Vec<u32> = cands.iter().take(need).map(|c| c.3).collect();
                expect.sort_unstable();
                if !self.exact_eviction {
                    // A sampled victim: any cached entry but the new one, as many as needed.
                    let ok = victims.len() == need
                        && victims.iter().all(|v| cands.iter().any(|c| c.3 == *v));
                    check!(
                        self,
                        ok,
                        "insert of #{serial}: evicted {victims:?}, need {need} of {cands:?}"
                    );
                    expect = victims.clone();
                }
                check!(
                    self,
                    victims == expect,
                    "insert of #{serial}: evicted {victims:?}, expected {expect:?} (the {need} \
                     soonest-expiring, ties to the least recently added)"
                );
                for v in victims {
                    self.remove_serial(v);
                    self.stats.cache_full += 1;
                    self.mark_must(v);
                }
                Added::Inserted
            }
        }
    }

    /// `get`'s expected result (serial) and model effects. `get_with` (`with`) is the internal
    /// lookup only: it never asks the second tier, and under `NO_INTERNAL_LOOKUP` it returns
    /// `None` and counts nothing.
    fn model_get(&mut self, id: usize, with: bool, ev: &mut Events) -> Option<u32> {
        let key = IDS[id].to_vec();
        if with && self.mode.contains(CacheMode::NO_INTERNAL_LOOKUP) {
            return None;
        }
        if !self.mode.contains(CacheMode::NO_INTERNAL_LOOKUP) {
            match self.entries.get(&key).cloned() {
                Some(e) if self.expired(&e) => {
                    check!(
                        self,
                        ev.take(e.serial, Cause::Expired),
                        "get of expired #{}: expected on_remove(Expired)",
                        e.serial
                    );
                    self.entries.remove(&key);
                    self.stats.timeouts += 1;
                    // `expired` counts every removal for expiry, lookups' included.
                    self.stats.expired += 1;
                    self.mark_must(e.serial);
                    return None;
                }
                Some(e) => {
                    self.stats.hits += 1;
                    return Some(e.serial);
                }
                None => self.stats.misses += 1,
            }
        }
        if self.on_miss && !with {
            if let Some(&s) = self.backing.get(&id) {
                self.stats.cb_hits += 1;
                if !self.mode.contains(CacheMode::NO_INTERNAL_STORE) {
                    self.model_add(s, ev);
                }
                return Some(s);
            }
        }
        None
    }

    /// Runs one operation on the cache and the model and compares everything observable.
    pub fn step(&mut self, i: usize, op: Op) {
        self.ctx = format!("op #{i} {op:?}");
        match op {
            Op::Add { id, timeout } | Op::TryAdd { id, timeout } => {
                let s = self.new_obj(id, timeout);
                self.do_add(s, matches!(op, Op::TryAdd { .. }));
            }
            Op::ReAdd { id } => {
                let s = match self.made[id].last() {
                    Some(&s) => self.obj(s),
                    None => self.new_obj(id, None),
                };
                self.do_add(s, false);
            }
            Op::TryReAdd { id, back } => {
                let n = self.made[id].len();
                let s = if n > back {
                    self.obj(self.made[id][n - 1 - back])
                } else {
                    self.new_obj(id, None)
                };
                self.do_add(s, true);
            }
            Op::Remove { id, fresh } => {
                let arg = match (fresh, self.made[id].last()) {
                    (false, Some(&s)) => self.obj(s),
                    _ => self.new_obj(id, None),
                };
                let got = self.cache().remove(&arg);
                let mut ev = self.drain();
                let expect = self.model_remove(id, &mut ev);
                check!(
                    self,
                    got == expect.is_some(),
                    "remove returned {got}, expected {}",
                    expect.is_some()
                );
                self.mark_must(arg.serial);
                self.finish_op(ev);
            }
            Op::RemoveId { id } => {
                let got = self.cache().remove_id(IDS[id]);
                let mut ev = self.drain();
                let expect = self.model_remove(id, &mut ev);
                check!(
                    self,
                    got == expect.is_some(),
                    "remove_id returned {got}, expected {}",
                    expect.is_some()
                );
                self.finish_op(ev);
            }
            Op::Take { id } => {
                let got = self.cache().take(IDS[id]).map(|s| s.serial);
                let mut ev = self.drain();
                let key = IDS[id].to_vec();
                let expect = match self.entries.get(&key).cloned() {
                    Some(e) if self.expired(&e) => {
                        check!(
                            self,
                            ev.take(e.serial, Cause::Expired),
                            "take of expired #{}: expected on_remove(Expired)",
                            e.serial
                        );
                        self.entries.remove(&key);
                        self.stats.timeouts += 1;
                        self.stats.expired += 1;
                        self.mark_must(e.serial);
                        None
                    }
                    Some(e) => {
                        check!(
                            self,
                            ev.take(e.serial, Cause::Removed),
                            "take of #{}: expected on_remove(Removed)",
                            e.serial
                        );
                        self.entries.remove(&key);
                        self.stats.hits += 1;
                        self.stats.removals += 1;
                        self.mark_unknown(e.serial);
                        Some(e.serial)
                    }
                    None => {
                        self.stats.misses += 1;
                        None
                    }
                };
                check!(
                    self,
                    got == expect,
                    "take returned {got:?}, expected {expect:?}"
                );
                self.finish_op(ev);
            }
            Op::Get { id } | Op::GetWith { id } => {
                let with = matches!(op, Op::GetWith { .. });
                let got = if with {
                    self.cache().get_with(IDS[id], |s| s.serial)
                } else {
                    self.cache().get(IDS[id]).map(|s| s.serial)
                };
                let mut ev = self.drain();
                let expect = self.model_get(id, with, &mut ev);
                check!(
                    self,
                    got == expect,
                    "get returned {got:?}, expected {expect:?}"
                );
                self.finish_op(ev);
            }
            Op::Contains { id } => {
                let got = self.cache().contains(IDS[id]);
                let ev = self.drain();
                match self.entries.get(IDS[id]) {
                    // Whether an expired, not yet removed entry is "contained" is not specified.
                    Some(e) if self.expired(e) => {}
                    e => check!(self, got == e.is_some(), "contains returned {got}"),
                }
                self.finish_op(ev);
            }
            Op::Advance { by } => {
                self.clock.advance(ADVANCES[by]);
                let ev = self.drain();
                self.finish_op(ev);
            }
            Op::FlushExpired => {
                let got = self.cache().flush_expired();
                let mut ev = self.drain();
                let dead: Vec<_> = self
                    .entries
                    .iter()
                    .filter(|(_, e)| self.expired(e))
                    .map(|(k, e)| (k.clone(), e.serial))
                    .collect();
                for (k, s) in &dead {
                    check!(
                        self,
                        ev.take(*s, Cause::Expired),
                        "flush_expired: no on_remove(#{s}, Expired)"
                    );
                    self.entries.remove(k);
                    self.stats.expired += 1;
                    self.mark_must(*s);
                }
                check!(
                    self,
                    got == dead.len(),
                    "flush_expired returned {got}, expected {}",
                    dead.len()
                );
                self.finish_op(ev);
            }
            Op::Clear => {
                self.cache().clear();
                let mut ev = self.drain();
                let all: Vec<_> = self.entries.values().map(|e| e.serial).collect();
                for s in all {
                    check!(
                        self,
                        ev.take(s, Cause::Cleared),
                        "clear: no on_remove(#{s}, Cleared)"
                    );
                    self.mark_must(s);
                }
                self.stats.cleared += self.entries.len() as u64;
                self.entries.clear();
                self.finish_op(ev);
            }
            Op::SetCapacity { n } => {
                let prev = self.cache().set_capacity(n);
                check!(
                    self,
                    prev == self.cap,
                    "set_capacity returned {prev}, expected {}",
                    self.cap
                );
                self.cap = n;
                let ev = self.drain();
                self.finish_op(ev);
            }
            Op::SetTimeout { t } => {
                let prev = self.cache().set_timeout(TIMEOUTS[t]);
                check!(self, prev == self.timeout, "set_timeout returned {prev:?}");
                self.timeout = saturated(TIMEOUTS[t]);
                let ev = self.drain();
                self.finish_op(ev);
            }
            Op::SetMode { m } => {
                let prev = self.cache().set_mode(modes()[m]);
                check!(self, prev == self.mode, "set_mode returned {prev:?}");
                self.mode = modes()[m];
                let ev = self.drain();
                self.finish_op(ev);
            }
            Op::AddBadId { long, try_ } => {
                let id = if long {
                    vec![9u8; MAX_ID_LEN + 1]
                } else {
                    Vec::new()
                };
                let s = self.reg.make(&id, None);
                self.marks.push(Mark::Never);
                if try_ {
                    let got = self.cache().try_add(s);
                    let expect = if long {
                        AddError::IdTooLong {
                            len: MAX_ID_LEN + 1,
                            max: MAX_ID_LEN,
                        }
                    } else {
                        AddError::EmptyId
                    };
                    check!(
                        self,
                        matches!(&got, Err(e) if *e == expect),
                        "try_add returned {got:?}, expected Err({expect:?})"
                    );
                } else {
                    let got = self.cache().add(s);
                    check!(self, !got, "add of a bad id returned true");
                }
                let ev = self.drain();
                self.finish_op(ev);
            }
        }
    }

    fn do_add(&mut self, s: Arc<TestSession>, try_: bool) {
        let serial = s.serial;
        let got = if try_ {
            match self.cache().try_add(s) {
                Ok(a) => a,
                Err(e) => panic!("{}: try_add failed: {e:?}", self.ctx),
            }
        } else if self.cache().add(s) {
            Added::Inserted // refined below
        } else {
            Added::AlreadyCached
        };
        let mut ev = self.drain();
        let expect = self.model_add(serial, &mut ev);
        if try_ {
            check!(
                self,
                got == expect,
                "try_add returned {got:?}, expected {expect:?}"
            );
        } else {
            let want = expect != Added::AlreadyCached;
            let got = got != Added::AlreadyCached;
            check!(
                self,
                got == want,
                "add returned {got}, expected {want} ({expect:?})"
            );
        }
        self.finish_op(ev);
    }

    /// `remove`/`remove_id`: by id, whatever object is cached, expired or not.
    fn model_remove(&mut self, id: usize, ev: &mut Events) -> Option<u32> {
        let key = IDS[id].to_vec();
        let e = self.entries.remove(&key)?;
        check!(
            self,
            ev.take(e.serial, Cause::Removed),
            "remove of #{}: expected on_remove(Removed)",
            e.serial
        );
        self.stats.removals += 1;
        self.mark_unknown(e.serial);
        Some(e.serial)
    }

    /// Checks that follow every operation.
    fn finish_op(&mut self, ev: Events) {
        check!(
            self,
            ev.0.is_empty(),
            "unexpected on_remove calls {:?}",
            ev.0
        );
        let c = self.cache();
        let len = c.len();
        check!(
            self,
            len == self.entries.len(),
            "len() = {len}, model has {}",
            self.entries.len()
        );
        check!(
            self,
            c.is_empty() == (len == 0),
            "is_empty() disagrees with len()"
        );
        if self.cap > 0 {
            // Holds after every op that can insert; shrinking only bites at the next insert,
            // which the model mirrors, so this is the model's count too.
        }
        let stats = c.stats();
        let mut want = self.stats;
        want.entries = self.entries.len();
        check!(
            self,
            stats == want,
            "stats() = {stats:?}\n  expected {want:?}"
        );
        check!(
            self,
            c.capacity() == self.cap,
            "capacity() = {}",
            c.capacity()
        );
        check!(
            self,
            c.timeout() == self.timeout,
            "timeout() = {:?}",
            c.timeout()
        );
        check!(self, c.mode() == self.mode, "mode() = {:?}", c.mode());
        for (i, m) in self.marks.iter().enumerate() {
            let marked = self.reg.objs[i].marked();
            match m {
                Mark::Must => check!(self, marked, "#{i} should be marked not resumable"),
                Mark::Never => check!(
                    self,
                    !marked,
                    "#{i} was marked not resumable but should not be"
                ),
                Mark::Unknown => {}
            }
        }
        // Every cached object is cached under its own id, and `contains` agrees (no side effects).
        for (k, e) in &self.entries {
            if !self.expired(e) {
                check!(
                    self,
                    c.contains(k),
                    "contains({k:02x?}) is false, model caches #{}",
                    e.serial
                );
            }
        }
    }

    /// `SessionCache::check_invariants`, its panic reported with the model's context. Called at
    /// the end of a run, not after every operation: a walk of a 256-bucket table per operation
    /// cut the fuzzer's speed by an order of magnitude.
    fn check_invariants(&self) {
        let c = self.cache();
        let broken =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.check_invariants()))
                .err()
                .map(|e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                });
        check!(
            self,
            broken.is_none(),
            "check_invariants: {}",
            broken.unwrap()
        );
    }

    /// Checks the invariants, drops the cache and checks every `Arc` was released exactly once.
    pub fn finish(mut self) {
        self.ctx = "finish".into();
        self.check_invariants();
        drop(self.cache.take());
        let reg = std::mem::take(&mut self.reg);
        reg.check_released_exactly_once("model");
    }
}

/// Decodes `data` and runs it through [`ModelRun`]. Panics on any disagreement.
pub fn run_model(data: &[u8]) {
    let mut b = Bytes::new(data);
    let cfg = Config::decode(&mut b);
    let mut d = ModelRun::new(&cfg);
    let trace = std::env::var_os("MODEL_TRACE").is_some();
    if trace {
        eprintln!("{cfg:?}");
    }
    let mut i = 0;
    while !b.done() && i < MAX_OPS {
        let op = Op::decode(&mut b);
        if trace {
            eprintln!("#{i} {op:?}");
        }
        d.step(i, op);
        i += 1;
    }
    d.finish();
}

/// Like [`run_model`] from a config and an op list (hand-written seeds).
pub fn run_ops(cfg: &Config, ops: &[Op]) {
    let mut d = ModelRun::new(cfg);
    for (i, op) in ops.iter().enumerate() {
        d.step(i, *op);
    }
    d.finish();
}

/// A timeout as the cache keeps it: nanoseconds, saturating at `u64::MAX` (about 584 years,
/// "never"), so `timeout()` returns `Duration::MAX` as 18446744073.709551615 s.
fn saturated(t: Duration) -> Duration {
    Duration::from_nanos(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
}
