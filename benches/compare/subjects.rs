//! The subjects measured by `benches/compare.rs`: session-cache and its peers, all behind one
//! small trait so every workload drives them identically.
//!
//! Rules that keep the comparison fair:
//! - every `get` hands back an owned session (an `Arc` clone, or rustls's byte copy), which is
//!   what a TLS server needs to resume; OpenSSL's probe is the one exception (see its module);
//! - every subject holds at most `CAP` sessions: the unbounded maps (papaya, dashmap,
//!   scc::HashMap) are bounded the way a user would have to, with a FIFO of keys ([`Fifo`]);
//! - sessions are `Arc<Sess>` with a 32-byte random id, created by the workload.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_queue::SegQueue;
use rustls::server::StoresServerSessions;

#[path = "openssl.rs"]
mod openssl;

/// Number of sessions every subject holds (OpenSSL's default cache size).
pub const CAP: usize = 20_480;
/// Session lifetime given to the subjects that have one.
pub const TTL: Duration = Duration::from_secs(300);

pub type Id = [u8; 32];

/// A stand-in TLS session: 32-byte id plus a 48-byte master secret (88 bytes, 104 with the
/// `Arc` header).
pub struct Sess {
    pub id: Id,
    pub secret: [u8; 48],
    pub not_resumable: AtomicBool,
}

impl Sess {
    pub fn new(id: Id) -> Arc<Self> {
        Arc::new(Sess {
            id,
            secret: [7; 48],
            not_resumable: AtomicBool::new(false),
        })
    }
    /// The byte encoding handed to rustls's byte store (id + secret, 80 bytes).
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(80);
        v.extend_from_slice(&self.id);
        v.extend_from_slice(&self.secret);
        v
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
    fn get(&self, id: &Id) -> bool;
    fn add(&self, s: Arc<Sess>);
    fn remove(&self, id: &Id) -> bool;
    fn take(&self, id: &Id) -> bool;
    /// Let the subject finish background bookkeeping after the prefill (moka).
    fn settle(&self) {}
}

/// Every subject, in a fixed order; `ours` first.
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

pub fn make(name: &str) -> Box<dyn Subject> {
    match name {
        "session-cache" => Box::new(Ours(
            session_cache::SessionCache::builder()
                .capacity(CAP)
                .timeout(TTL)
                .build(),
        )),
        "papaya" => Box::new(Papaya {
            map: papaya::HashMap::with_capacity(CAP),
            fifo: Fifo::default(),
        }),
        "dashmap" => Box::new(Dash {
            map: dashmap::DashMap::with_capacity(CAP),
            fifo: Fifo::default(),
        }),
        "scc-HashMap" => Box::new(SccMap {
            map: scc::HashMap::with_capacity(CAP),
            fifo: Fifo::default(),
        }),
        "scc-HashCache" => Box::new(SccCache(scc::HashCache::with_capacity(CAP, CAP))),
        "moka" => Box::new(Moka(
            moka::sync::Cache::builder()
                .max_capacity(CAP as u64)
                .time_to_live(TTL)
                .build(),
        )),
        "quick_cache" => Box::new(Quick(quick_cache::sync::Cache::new(CAP))),
        "mutex-fifo" => Box::new(MutexFifo(Mutex::new(LimitedCache::new(CAP)))),
        "rustls" => Box::new(Rustls(rustls::server::ServerSessionMemoryCache::new(CAP))),
        "openssl" => Box::new(openssl::OpensslCache::new(CAP)),
        other => panic!("unknown subject {other:?}; known: {NAMES:?}"),
    }
}

// ---- session-cache ---------------------------------------------------------------------------

struct Ours(session_cache::SessionCache<Sess>);

impl Subject for Ours {
    fn get(&self, id: &Id) -> bool {
        self.0.get(id).is_some()
    }
    fn add(&self, s: Arc<Sess>) {
        self.0.add(s);
    }
    fn remove(&self, id: &Id) -> bool {
        self.0.remove_id(id)
    }
    fn take(&self, id: &Id) -> bool {
        self.0.take(id).is_some()
    }
}

// ---- bounding an unbounded map ---------------------------------------------------------------

/// The FIFO of keys a user would put beside an unbounded concurrent map to hold it at `CAP`:
/// a lock-free queue of inserted keys plus a live counter. Keys removed explicitly stay in
/// the queue as stale entries; the queue is trimmed to `2 * CAP` so churn cannot grow it.
#[derive(Default)]
struct Fifo {
    queue: SegQueue<Id>,
    queued: AtomicUsize,
    live: AtomicUsize,
}

impl Fifo {
    /// Record a newly inserted key, then evict the oldest keys while over capacity.
    fn inserted(&self, id: Id, remove: impl Fn(&Id) -> bool) {
        self.queue.push(id);
        self.queued.fetch_add(1, Relaxed);
        self.live.fetch_add(1, Relaxed);
        while self.live.load(Relaxed) > CAP || self.queued.load(Relaxed) > 2 * CAP {
            let Some(old) = self.queue.pop() else { break };
            self.queued.fetch_sub(1, Relaxed);
            if remove(&old) {
                self.live.fetch_sub(1, Relaxed);
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
    map: papaya::HashMap<Id, Arc<Sess>>,
    fifo: Fifo,
}

impl Subject for Papaya {
    fn get(&self, id: &Id) -> bool {
        self.map.pin().get(id).cloned().is_some()
    }
    fn add(&self, s: Arc<Sess>) {
        let id = s.id;
        let m = self.map.pin();
        if m.insert(id, s).is_none() {
            self.fifo.inserted(id, |k| m.remove(k).is_some());
        }
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
    map: dashmap::DashMap<Id, Arc<Sess>>,
    fifo: Fifo,
}

impl Subject for Dash {
    fn get(&self, id: &Id) -> bool {
        self.map.get(id).map(|r| r.value().clone()).is_some()
    }
    fn add(&self, s: Arc<Sess>) {
        let id = s.id;
        if self.map.insert(id, s).is_none() {
            self.fifo.inserted(id, |k| self.map.remove(k).is_some());
        }
    }
    fn remove(&self, id: &Id) -> bool {
        self.fifo.removed(self.map.remove(id).is_some())
    }
    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }
}

struct SccMap {
    map: scc::HashMap<Id, Arc<Sess>>,
    fifo: Fifo,
}

impl Subject for SccMap {
    fn get(&self, id: &Id) -> bool {
        self.map.read_sync(id, |_, v| v.clone()).is_some()
    }
    fn add(&self, s: Arc<Sess>) {
        let id = s.id;
        if self.map.upsert_sync(id, s).is_none() {
            self.fifo
                .inserted(id, |k| self.map.remove_sync(k).is_some());
        }
    }
    fn remove(&self, id: &Id) -> bool {
        self.fifo.removed(self.map.remove_sync(id).is_some())
    }
    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }
}

// ---- bounded peers ---------------------------------------------------------------------------

/// scc's 32-way set-associative LRU cache (it may evict before it is full, by design).
struct SccCache(scc::HashCache<Id, Arc<Sess>>);

impl Subject for SccCache {
    fn get(&self, id: &Id) -> bool {
        self.0.read_sync(id, |_, v| v.clone()).is_some()
    }
    fn add(&self, s: Arc<Sess>) {
        let id = s.id;
        if let Err((k, v)) = self.0.put_sync(id, s) {
            // Present already: replace the value, as an `add` of a new object would.
            if let Some(mut e) = self.0.get_sync(&k) {
                *e.get_mut() = v;
            }
        }
    }
    fn remove(&self, id: &Id) -> bool {
        self.0.remove_sync(id).is_some()
    }
    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }
}

/// moka's W-TinyLFU cache with a 300 s TTL (its admission policy may refuse fresh ids).
struct Moka(moka::sync::Cache<Id, Arc<Sess>>);

impl Subject for Moka {
    fn get(&self, id: &Id) -> bool {
        self.0.get(id).is_some()
    }
    fn add(&self, s: Arc<Sess>) {
        self.0.insert(s.id, s);
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

/// quick_cache's sharded CLOCK-Pro cache (no TTL).
struct Quick(quick_cache::sync::Cache<Id, Arc<Sess>>);

impl Subject for Quick {
    fn get(&self, id: &Id) -> bool {
        self.0.get(id).is_some()
    }
    fn add(&self, s: Arc<Sess>) {
        self.0.insert(s.id, s);
    }
    fn remove(&self, id: &Id) -> bool {
        self.0.remove(id).is_some()
    }
    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }
}

/// rustls's `LimitedCache` (a `HashMap` plus a `VecDeque` of keys in insertion order, O(n)
/// removal) under one `Mutex`, holding `Arc`'d sessions: what rustls ships, with our values.
struct LimitedCache<K, V> {
    map: HashMap<K, V>,
    oldest: VecDeque<K>,
    max: usize,
}

impl<K: Eq + Hash + Clone, V> LimitedCache<K, V> {
    fn new(max: usize) -> Self {
        LimitedCache {
            map: HashMap::with_capacity(max),
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

struct MutexFifo(Mutex<LimitedCache<Id, Arc<Sess>>>);

impl Subject for MutexFifo {
    fn get(&self, id: &Id) -> bool {
        self.0.lock().unwrap().map.get(id).cloned().is_some()
    }
    fn add(&self, s: Arc<Sess>) {
        self.0.lock().unwrap().insert(s.id, s);
    }
    fn remove(&self, id: &Id) -> bool {
        self.0.lock().unwrap().remove(id).is_some()
    }
    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }
}

/// rustls's own `ServerSessionMemoryCache`: byte keys and byte values (encoded session).
struct Rustls(Arc<rustls::server::ServerSessionMemoryCache>);

impl Subject for Rustls {
    fn get(&self, id: &Id) -> bool {
        self.0.get(id).is_some()
    }
    fn add(&self, s: Arc<Sess>) {
        self.0.put(s.id.to_vec(), s.encode());
    }
    fn remove(&self, id: &Id) -> bool {
        self.0.take(id).is_some()
    }
    fn take(&self, id: &Id) -> bool {
        self.0.take(id).is_some()
    }
}
