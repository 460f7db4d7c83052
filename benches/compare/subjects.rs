//! The subjects measured by `compare`: session-cache and its peers, all behind one small trait
//! so every workload drives them identically. Workloads are generic over the subject
//! ([`with_subject`] hands each one a concrete type), so no subject pays a virtual call.
//!
//! Rules that keep the comparison fair:
//! - every `get` hands back an owned session (an `Arc` clone, or rustls's byte copy), which is
//!   what a TLS server needs to resume; OpenSSL's probe is the one exception (see its module);
//! - every subject is asked to hold `CAP` sessions, and those that can be held to exactly that
//!   are: the unbounded maps (papaya, dashmap, scc's HashMap) and scc's HashCache (whose table
//!   rounds 20 480 up to 32 768 slots) are bounded the way a user would have to, with a FIFO of
//!   keys ([`Fifo`]). quick_cache (sharded) and moka (admission) decide for themselves; the
//!   `holds` check in `compare check` measures what each subject really keeps;
//! - every map that takes a hasher runs ahash with a random seed, as session-cache does;
//! - sessions are `Arc<Sess>` with a 32-byte random id, created by the workload.

// Atomics: the FIFO's and the session counters are counts that publish no other data (the
// queue and the maps synchronize themselves), so all use Relaxed.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_queue::SegQueue;
use rustls::server::StoresServerSessions;

#[path = "ceiling.rs"]
mod ceiling;
#[path = "openssl.rs"]
mod openssl;

pub use ceiling::{Parts, CEILINGS};

/// Number of sessions every subject holds (OpenSSL's default cache size).
pub const CAP: usize = 20_480;
/// Session lifetime given to the subjects that have one.
pub const TTL: Duration = Duration::from_secs(300);

pub type Id = [u8; 32];
pub type Hasher = ahash::RandomState;

/// Live `Sess` objects, counted only while [`crate::COUNTING`] is set (memory mode, single
/// thread), so the other modes never write a shared counter per session.
pub static LIVE_SESSIONS: AtomicIsize = AtomicIsize::new(0);

/// A stand-in TLS session: 32-byte id plus a 48-byte master secret (81 bytes, 104 with the
/// `Arc` header).
pub struct Sess {
    pub id: Id,
    pub secret: [u8; 48],
    pub not_resumable: AtomicBool,
}

impl Sess {
    pub fn new(id: Id) -> Arc<Self> {
        if crate::COUNTING.load(Relaxed) {
            LIVE_SESSIONS.fetch_add(1, Relaxed);
        }
        Arc::new(Sess {
            id,
            secret: [7; 48],
            not_resumable: AtomicBool::new(false),
        })
    }
    /// Heap bytes of one `Arc<Sess>` allocation (the `Arc` header plus the session).
    pub fn heap_bytes() -> usize {
        std::alloc::Layout::new::<[usize; 2]>()
            .extend(std::alloc::Layout::new::<Sess>())
            .unwrap()
            .0
            .pad_to_align()
            .size()
    }
    /// The byte encoding handed to rustls's byte store (id + secret, 80 bytes).
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(80);
        v.extend_from_slice(&self.id);
        v.extend_from_slice(&self.secret);
        v
    }
}

impl Drop for Sess {
    fn drop(&mut self) {
        if crate::COUNTING.load(Relaxed) {
            LIVE_SESSIONS.fetch_sub(1, Relaxed);
        }
    }
}

impl session_cache::Session for Sess {
    fn id(&self) -> &[u8] {
        &self.id
    }
    fn set_not_resumable(&self) {
        self.not_resumable.store(true, Relaxed);
    }
}

/// What every workload calls. `get` and `take` report a hit; `remove` reports a removal.
pub trait Subject: Send + Sync {
    /// A session in the form this subject stores it (an `Arc`, rustls's bytes, an
    /// `SSL_SESSION`), made outside the measured loops of `profile` mode.
    type Prepared;
    fn prepare(&self, s: Arc<Sess>) -> Self::Prepared;
    fn add_prepared(&self, p: Self::Prepared);
    fn add(&self, s: Arc<Sess>) {
        self.add_prepared(self.prepare(s))
    }
    fn get(&self, id: &Id) -> bool;
    fn remove(&self, id: &Id) -> bool;
    fn take(&self, id: &Id) -> bool;
    /// Finish deferred work: session-cache's deferred releases, moka's pending maintenance.
    fn settle(&self) {}
}

/// Every subject, in a fixed order; ours first.
pub const NAMES: &[&str] = &[
    "session-cache",
    "papaya",
    "dashmap",
    "scc-HashMap",
    "scc-HashCache",
    "moka",
    "quick_cache",
    "mutex-fifo",
    "rustls",
    "openssl",
];

/// One line per subject for the report: what it is and how it is set up.
pub const DESCRIPTIONS: &[(&str, &str)] = &[
    ("session-cache", "this crate, capacity 20 480, timeout 300 s"),
    ("papaya", "papaya::HashMap + FIFO of keys, ahash"),
    ("dashmap", "dashmap::DashMap + FIFO of keys, ahash"),
    ("scc-HashMap", "scc::HashMap + FIFO of keys, ahash"),
    (
        "scc-HashCache",
        "scc::HashCache (32 768 slots, its LRU per bucket) + FIFO of keys holding it to 20 480, ahash",
    ),
    ("moka", "moka::sync::Cache, max_capacity 20 480, TTL 300 s, ahash"),
    ("quick_cache", "quick_cache::sync::Cache, 20 480 items, ahash"),
    (
        "mutex-fifo",
        "parking_lot::Mutex<HashMap + VecDeque> (rustls's LimitedCache), ahash",
    ),
    ("rustls", "rustls::server::ServerSessionMemoryCache (its own hasher)"),
    ("openssl", "OpenSSL's internal cache of an SSL_CTX, via openssl-sys"),
];

/// A workload that runs on one concrete subject type.
pub trait Visit {
    type Out;
    fn visit<S: Subject>(self, s: S) -> Self::Out;
}

/// Builds the subject called `name` and runs `v` on it; `None` for an unknown name.
pub fn with_subject<V: Visit>(name: &str, v: V) -> Option<V::Out> {
    Some(match name {
        "session-cache" => v.visit(Ours(
            session_cache::SessionCache::builder()
                .capacity(CAP)
                .timeout(TTL)
                .build(),
        )),
        "papaya" => v.visit(Papaya {
            map: papaya::HashMap::with_capacity_and_hasher(CAP, Hasher::new()),
            fifo: Fifo::default(),
        }),
        "dashmap" => v.visit(Dash {
            map: dashmap::DashMap::with_capacity_and_hasher(CAP, Hasher::new()),
            fifo: Fifo::default(),
        }),
        "scc-HashMap" => v.visit(SccMap {
            map: scc::HashMap::with_capacity_and_hasher(CAP, Hasher::new()),
            fifo: Fifo::default(),
        }),
        "scc-HashCache" => v.visit(SccCache {
            map: scc::HashCache::with_capacity_and_hasher(CAP, CAP, Hasher::new()),
            fifo: Fifo::default(),
        }),
        "moka" => v.visit(Moka(
            moka::sync::Cache::builder()
                .max_capacity(CAP as u64)
                .time_to_live(TTL)
                .build_with_hasher(Hasher::new()),
        )),
        "quick_cache" => v.visit(Quick(quick_cache::sync::Cache::with(
            CAP,
            CAP as u64,
            quick_cache::UnitWeighter,
            Hasher::new(),
            quick_cache::sync::DefaultLifecycle::default(),
        ))),
        "mutex-fifo" => v.visit(MutexFifo(parking_lot::Mutex::new(LimitedCache::new(CAP)))),
        "rustls" => v.visit(Rustls(rustls::server::ServerSessionMemoryCache::new(CAP))),
        "openssl" => v.visit(openssl::OpensslCache::new(CAP)),
        other => {
            let &(_, parts, _) = CEILINGS.iter().find(|(n, _, _)| *n == other)?;
            if parts.has(ceiling::Parts::ASSOC) {
                v.visit(ceiling::AssocCeiling::new(parts))
            } else if parts.has(ceiling::Parts::SHARED) {
                v.visit(ceiling::SharedCeiling::new(parts))
            } else {
                v.visit(ceiling::Ceiling::new(parts))
            }
        }
    })
}

// ---- session-cache ---------------------------------------------------------------------------

struct Ours(session_cache::SessionCache<Sess>);

impl Subject for Ours {
    type Prepared = Arc<Sess>;
    fn prepare(&self, s: Arc<Sess>) -> Arc<Sess> {
        s
    }
    fn add_prepared(&self, s: Arc<Sess>) {
        self.0.add(s);
    }
    fn get(&self, id: &Id) -> bool {
        self.0.get(id).is_some()
    }
    fn remove(&self, id: &Id) -> bool {
        self.0.remove_id(id)
    }
    fn take(&self, id: &Id) -> bool {
        self.0.take(id).is_some()
    }
    fn settle(&self) {
        session_cache::flush_deferred();
    }
}

// ---- bounding a map that does not bound itself to CAP ----------------------------------------

/// The FIFO of keys a user would put beside an unbounded concurrent map to hold it at `CAP`:
/// a lock-free queue of inserted keys plus a live counter. Keys removed explicitly stay in
/// the queue as stale entries; when stale entries make the queue longer than `2 * CAP`, the
/// oldest entries are dropped (a live key met there is queued again, not evicted), so churn
/// neither grows the queue nor evicts below `CAP`.
#[derive(Default)]
struct Fifo {
    queue: SegQueue<Id>,
    queued: AtomicUsize,
    live: AtomicUsize,
}

impl Fifo {
    /// Record a newly inserted key, then evict the oldest keys while over capacity.
    fn inserted(&self, id: Id, remove: impl Fn(&Id) -> bool, contains: impl Fn(&Id) -> bool) {
        self.queue.push(id);
        self.queued.fetch_add(1, Relaxed);
        self.live.fetch_add(1, Relaxed);
        loop {
            let over = self.live.load(Relaxed) > CAP;
            if !over && self.queued.load(Relaxed) <= 2 * CAP {
                break;
            }
            let Some(old) = self.queue.pop() else { break };
            if over {
                self.queued.fetch_sub(1, Relaxed);
                if remove(&old) {
                    self.live.fetch_sub(1, Relaxed);
                }
            } else if contains(&old) {
                // Live, and the queue is only long with stale keys: keep it, at the back.
                self.queue.push(old);
            } else {
                self.queued.fetch_sub(1, Relaxed);
            }
        }
    }
    fn removed(&self, hit: bool) -> bool {
        if hit {
            self.live.fetch_sub(1, Relaxed);
        }
        hit
    }
}

struct Papaya {
    map: papaya::HashMap<Id, Arc<Sess>, Hasher>,
    fifo: Fifo,
}

impl Subject for Papaya {
    type Prepared = Arc<Sess>;
    fn prepare(&self, s: Arc<Sess>) -> Arc<Sess> {
        s
    }
    fn add_prepared(&self, s: Arc<Sess>) {
        let id = s.id;
        let m = self.map.pin();
        if m.insert(id, s).is_none() {
            self.fifo
                .inserted(id, |k| m.remove(k).is_some(), |k| m.contains_key(k));
        }
    }
    fn get(&self, id: &Id) -> bool {
        self.map.pin().get(id).cloned().is_some()
    }
    fn remove(&self, id: &Id) -> bool {
        self.fifo.removed(self.map.pin().remove(id).is_some())
    }
    fn take(&self, id: &Id) -> bool {
        self.fifo
            .removed(self.map.pin().remove(id).cloned().is_some())
    }
}

struct Dash {
    map: dashmap::DashMap<Id, Arc<Sess>, Hasher>,
    fifo: Fifo,
}

impl Subject for Dash {
    type Prepared = Arc<Sess>;
    fn prepare(&self, s: Arc<Sess>) -> Arc<Sess> {
        s
    }
    fn add_prepared(&self, s: Arc<Sess>) {
        let id = s.id;
        if self.map.insert(id, s).is_none() {
            self.fifo.inserted(
                id,
                |k| self.map.remove(k).is_some(),
                |k| self.map.contains_key(k),
            );
        }
    }
    fn get(&self, id: &Id) -> bool {
        self.map.get(id).map(|r| r.value().clone()).is_some()
    }
    fn remove(&self, id: &Id) -> bool {
        self.fifo.removed(self.map.remove(id).is_some())
    }
    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }
}

struct SccMap {
    map: scc::HashMap<Id, Arc<Sess>, Hasher>,
    fifo: Fifo,
}

impl Subject for SccMap {
    type Prepared = Arc<Sess>;
    fn prepare(&self, s: Arc<Sess>) -> Arc<Sess> {
        s
    }
    fn add_prepared(&self, s: Arc<Sess>) {
        let id = s.id;
        if self.map.upsert_sync(id, s).is_none() {
            self.fifo.inserted(
                id,
                |k| self.map.remove_sync(k).is_some(),
                |k| self.map.contains_sync(k),
            );
        }
    }
    fn get(&self, id: &Id) -> bool {
        self.map.read_sync(id, |_, v| v.clone()).is_some()
    }
    fn remove(&self, id: &Id) -> bool {
        self.fifo.removed(self.map.remove_sync(id).is_some())
    }
    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }
}

/// scc's 32-way set-associative LRU cache. Its table has a power-of-two number of slots
/// (32 768 for 20 480), so on its own it would hold up to 60 % more sessions than asked and
/// barely evict; the FIFO holds it to `CAP`. Its own evictions (a full bucket) are counted.
struct SccCache {
    map: scc::HashCache<Id, Arc<Sess>, Hasher>,
    fifo: Fifo,
}

impl Subject for SccCache {
    type Prepared = Arc<Sess>;
    fn prepare(&self, s: Arc<Sess>) -> Arc<Sess> {
        s
    }
    fn add_prepared(&self, s: Arc<Sess>) {
        let id = s.id;
        match self.map.put_sync(id, s) {
            Ok(evicted) => {
                if evicted.is_some() {
                    // The bucket was full: scc evicted one itself, so the count is unchanged.
                    self.fifo.live.fetch_sub(1, Relaxed);
                }
                self.fifo.inserted(
                    id,
                    |k| self.map.remove_sync(k).is_some(),
                    |k| self.map.contains_sync(k),
                );
            }
            Err((k, v)) => {
                // Present already: replace the value, as an `add` of a new object would.
                if let Some(mut e) = self.map.get_sync(&k) {
                    *e.get_mut() = v;
                }
            }
        }
    }
    fn get(&self, id: &Id) -> bool {
        self.map.read_sync(id, |_, v| v.clone()).is_some()
    }
    fn remove(&self, id: &Id) -> bool {
        self.fifo.removed(self.map.remove_sync(id).is_some())
    }
    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }
}

// ---- caches that bound themselves ------------------------------------------------------------

/// moka's W-TinyLFU cache with a 300 s TTL (its admission policy may refuse fresh ids).
struct Moka(moka::sync::Cache<Id, Arc<Sess>, Hasher>);

impl Subject for Moka {
    type Prepared = Arc<Sess>;
    fn prepare(&self, s: Arc<Sess>) -> Arc<Sess> {
        s
    }
    fn add_prepared(&self, s: Arc<Sess>) {
        self.0.insert(s.id, s);
    }
    fn get(&self, id: &Id) -> bool {
        self.0.get(id).is_some()
    }
    fn remove(&self, id: &Id) -> bool {
        self.0.remove(id).is_some()
    }
    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }
    fn settle(&self) {
        self.0.run_pending_tasks();
    }
}

type QuickCache = quick_cache::sync::Cache<
    Id,
    Arc<Sess>,
    quick_cache::UnitWeighter,
    Hasher,
    quick_cache::sync::DefaultLifecycle<Id, Arc<Sess>>,
>;

/// quick_cache's sharded CLOCK-Pro cache (no TTL). Each shard holds its share of `CAP`, so
/// the whole may hold slightly fewer.
struct Quick(QuickCache);

impl Subject for Quick {
    type Prepared = Arc<Sess>;
    fn prepare(&self, s: Arc<Sess>) -> Arc<Sess> {
        s
    }
    fn add_prepared(&self, s: Arc<Sess>) {
        self.0.insert(s.id, s);
    }
    fn get(&self, id: &Id) -> bool {
        self.0.get(id).is_some()
    }
    fn remove(&self, id: &Id) -> bool {
        self.0.remove(id).is_some()
    }
    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }
}

/// rustls's `LimitedCache` (a `HashMap` plus a `VecDeque` of keys in insertion order, O(n)
/// removal), here under a `parking_lot::Mutex` with ahash and `Arc`'d sessions.
struct LimitedCache<K, V> {
    map: HashMap<K, V, Hasher>,
    oldest: VecDeque<K>,
    max: usize,
}

impl<K: Eq + Hash + Clone, V> LimitedCache<K, V> {
    fn new(max: usize) -> Self {
        LimitedCache {
            map: HashMap::with_capacity_and_hasher(max, Hasher::new()),
            oldest: VecDeque::with_capacity(max),
            max,
        }
    }
    fn insert(&mut self, k: K, v: V) {
        use std::collections::hash_map::Entry;
        let inserted_new_item = match self.map.entry(k) {
            Entry::Occupied(mut old) => {
                old.insert(v);
                false
            }
            entry @ Entry::Vacant(_) => {
                self.oldest.push_back(entry.key().clone());
                entry.or_insert(v);
                true
            }
        };
        if inserted_new_item && self.oldest.len() > self.max {
            if let Some(oldest_key) = self.oldest.pop_front() {
                self.map.remove(&oldest_key);
            }
        }
    }
    fn remove(&mut self, k: &K) -> Option<V> {
        let value = self.map.remove(k)?;
        if let Some(index) = self.oldest.iter().position(|item| item == k) {
            self.oldest.remove(index);
        }
        Some(value)
    }
}

struct MutexFifo(parking_lot::Mutex<LimitedCache<Id, Arc<Sess>>>);

impl Subject for MutexFifo {
    type Prepared = Arc<Sess>;
    fn prepare(&self, s: Arc<Sess>) -> Arc<Sess> {
        s
    }
    fn add_prepared(&self, s: Arc<Sess>) {
        self.0.lock().insert(s.id, s);
    }
    fn get(&self, id: &Id) -> bool {
        self.0.lock().map.get(id).cloned().is_some()
    }
    fn remove(&self, id: &Id) -> bool {
        self.0.lock().remove(id).is_some()
    }
    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }
}

/// rustls's own `ServerSessionMemoryCache`: byte keys and byte values (encoded session).
struct Rustls(Arc<rustls::server::ServerSessionMemoryCache>);

impl Subject for Rustls {
    type Prepared = (Vec<u8>, Vec<u8>);
    fn prepare(&self, s: Arc<Sess>) -> (Vec<u8>, Vec<u8>) {
        (s.id.to_vec(), s.encode())
    }
    fn add_prepared(&self, (k, v): (Vec<u8>, Vec<u8>)) {
        self.0.put(k, v);
    }
    fn get(&self, id: &Id) -> bool {
        self.0.get(id).is_some()
    }
    fn remove(&self, id: &Id) -> bool {
        self.0.take(id).is_some()
    }
    fn take(&self, id: &Id) -> bool {
        self.0.take(id).is_some()
    }
}
