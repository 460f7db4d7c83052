//! Test support shared by session-cache's integration tests, loom models, fuzz targets and
//! leak-check driver:
//!
//! - [`TestSession`], a session that counts its drops (on itself and on a [`Tracker`]), records
//!   being marked not resumable, and carries a heap-allocated stand-in for key material that its
//!   `Drop` checks is intact;
//! - [`Rng`], one small seeded generator, so every run replays from its seed;
//! - [`model`], the sequential model of the cache's contract and the checking harnesses that
//!   the fuzz targets and their stable replay run.
//!
//! Its counters are `std` atomics even in loom builds: a release can run when loom tears an
//! execution down, outside the model, where loom's atomics may not be touched. They only
//! record; the cache never reads them.
#![allow(missing_docs, clippy::new_without_default)]

pub mod model;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_cache::{flush_deferred, RemovalCause, Session};

/// What [`TestSession`] carries in place of key material: its `Drop` checks these bytes, so a
/// session freed early or overwritten shows up there (and under valgrind or ASan).
const SECRET: [u8; 4] = [0x5a, 0xa5, 0x5a, 0xa5];

/// Counts the sessions made through it and those dropped. A tracker made with
/// [`Tracker::child`] also counts into its parent.
#[derive(Default)]
pub struct Tracker {
    created: AtomicUsize,
    dropped: AtomicUsize,
    parent: Option<Arc<Tracker>>,
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tracker({}/{})", self.dropped(), self.created())
    }
}

impl Tracker {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A tracker whose counts also go to `self`.
    pub fn child(self: &Arc<Self>) -> Arc<Self> {
        Arc::new(Tracker {
            parent: Some(Arc::clone(self)),
            ..Tracker::default()
        })
    }

    /// A session with this id, the cache's default timeout and the next serial of this tracker.
    pub fn session(self: &Arc<Self>, id: &[u8]) -> Arc<TestSession> {
        self.session_with(id, None)
    }

    /// As [`Tracker::session`], with its own timeout.
    pub fn session_with(
        self: &Arc<Self>,
        id: &[u8],
        timeout: Option<Duration>,
    ) -> Arc<TestSession> {
        let serial = self.created() as u32;
        self.session_serial(id, serial, timeout)
    }

    /// A session with a serial chosen by the caller.
    pub fn session_serial(
        self: &Arc<Self>,
        id: &[u8],
        serial: u32,
        timeout: Option<Duration>,
    ) -> Arc<TestSession> {
        let mut t = Some(self);
        while let Some(tr) = t {
            tr.created.fetch_add(1, SeqCst);
            t = tr.parent.as_ref();
        }
        TestSession::make(id, serial, timeout, Some(Arc::clone(self)))
    }

    pub fn created(&self) -> usize {
        self.created.load(SeqCst)
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(SeqCst)
    }

    /// Waits (flushing deferred releases) until every session made was dropped, then checks
    /// it. Fails if any is still alive after the collector had every chance.
    pub fn assert_all_released(&self) {
        settle(|| self.dropped() == self.created());
        assert_eq!(
            self.dropped(),
            self.created(),
            "sessions created vs dropped: a reference leaked"
        );
    }
}

/// A session that knows its serial number, counts its drops and records `set_not_resumable`.
pub struct TestSession {
    pub id: Vec<u8>,
    pub serial: u32,
    pub timeout: Option<Duration>,
    pub not_resumable: AtomicBool,
    /// Set by `Drop`: a holder that sees it set was handed a released session.
    pub dead: AtomicBool,
    /// How often this session was dropped; readable after the drop.
    pub drops: Arc<AtomicUsize>,
    secret: Vec<u8>,
    tracker: Option<Arc<Tracker>>,
    /// Loom builds: a cell written when the session is made and read by every `id()`, so a
    /// cache that hands a session to another thread without happens-before (a publishing CAS
    /// that is not `Release`) is loom's causality violation, as reading the session's own
    /// fields would be a data race on a weakly ordered machine.
    #[cfg(session_cache_loom)]
    made: loom::cell::UnsafeCell<u8>,
}

// SAFETY: `made` is only ever read (`with`), never written after construction, so sharing it
// between threads is sound; every other field is `Sync`.
#[cfg(session_cache_loom)]
unsafe impl Sync for TestSession {}

impl TestSession {
    /// A session counted only on itself (see [`TestSession::drops`]).
    pub fn new(id: &[u8], serial: u32, timeout: Option<Duration>) -> Arc<Self> {
        Self::make(id, serial, timeout, None)
    }

    fn make(
        id: &[u8],
        serial: u32,
        timeout: Option<Duration>,
        tracker: Option<Arc<Tracker>>,
    ) -> Arc<Self> {
        Arc::new(TestSession {
            id: id.to_vec(),
            serial,
            timeout,
            not_resumable: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            drops: Arc::new(AtomicUsize::new(0)),
            secret: SECRET.to_vec(),
            tracker,
            #[cfg(session_cache_loom)]
            made: loom::cell::UnsafeCell::new(0),
        })
    }

    pub fn is_resumable(&self) -> bool {
        !self.not_resumable.load(SeqCst)
    }

    /// Marked not resumable (by `remove`, or by a lookup that found it expired).
    pub fn marked(&self) -> bool {
        self.not_resumable.load(SeqCst)
    }

    /// Whether the stand-in key material is intact (it is, unless the session was freed).
    pub fn secret_intact(&self) -> bool {
        self.secret == SECRET
    }
}

impl Session for TestSession {
    fn id(&self) -> &[u8] {
        #[cfg(session_cache_loom)]
        self.made.with(|_| ());
        &self.id
    }
    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    fn set_not_resumable(&self) {
        self.not_resumable.store(true, SeqCst);
    }
}

impl Drop for TestSession {
    fn drop(&mut self) {
        assert!(
            self.secret_intact(),
            "#{}: key material overwritten",
            self.serial
        );
        self.dead.store(true, SeqCst);
        self.drops.fetch_add(1, SeqCst);
        let mut t = self.tracker.as_ref();
        while let Some(tr) = t {
            tr.dropped.fetch_add(1, SeqCst);
            t = tr.parent.as_ref();
        }
    }
}

impl fmt::Debug for TestSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{}({:02x?})",
            self.serial,
            &self.id[..self.id.len().min(4)]
        )
    }
}

/// Flushes deferred releases until `done` holds (other test threads may be pinned for a
/// moment), for at most about two seconds.
pub fn settle(mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        flush_deferred();
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until the strong count of `s` is `expected`, then checks it. A count above is a
/// reference the cache kept; below is a reference released twice.
pub fn assert_refs(s: &Arc<TestSession>, expected: usize) {
    settle(|| Arc::strong_count(s) == expected);
    assert_eq!(
        Arc::strong_count(s),
        expected,
        "strong count of session {}",
        s.serial
    );
}

/// Records every `on_remove` call as (serial, cause).
#[derive(Default, Clone, Debug)]
pub struct RemovalLog(Arc<Mutex<Vec<(u32, RemovalCause)>>>);

impl RemovalLog {
    pub fn callback(&self) -> impl Fn(&Arc<TestSession>, RemovalCause) + Send + Sync + 'static {
        let log = self.clone();
        move |s, cause| log.0.lock().unwrap().push((s.serial, cause))
    }

    pub fn take(&self) -> Vec<(u32, RemovalCause)> {
        std::mem::take(&mut self.0.lock().unwrap())
    }

    /// The causes reported so far for `serial`, oldest first.
    pub fn causes(&self, serial: u32) -> Vec<RemovalCause> {
        let log = self.0.lock().unwrap();
        log.iter().filter(|e| e.0 == serial).map(|e| e.1).collect()
    }
}

/// An id of `n` as 32 bytes, like a TLS session id.
pub fn id(n: u64) -> Vec<u8> {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_le_bytes());
    id[31] = 0xA5;
    id.to_vec()
}

/// xorshift64*: small, fast, and good enough to pick operations and ids. A run replays
/// exactly from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0, which would stay 0, is replaced by a fixed constant).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// A seed that differs from run to run (from the std hasher's random keys).
    pub fn random_seed(salt: &str) -> u64 {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(salt)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `0..n` (`n > 0`), from the high bits.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() >> 33) as usize % n
    }

    /// `count` byte strings of lengths below `max_len`.
    pub fn inputs(&mut self, count: usize, max_len: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|_| {
                let len = (self.next_u64() as usize) % max_len;
                (0..len).map(|_| self.next_u64() as u8).collect()
            })
            .collect()
    }
}
