//! Shared test support: a session type that counts its drops and records being marked not
//! resumable, so tests can prove every `Arc` the cache took is released exactly once.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_cache::{flush_deferred, RemovalCause, Session};

/// Counts the sessions made through it and those dropped.
#[derive(Default)]
pub struct Tracker {
    created: AtomicUsize,
    dropped: AtomicUsize,
}

impl Tracker {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A session with this id and the cache's default timeout.
    pub fn session(self: &Arc<Self>, id: &[u8]) -> Arc<TestSession> {
        self.session_with(id, None)
    }

    pub fn session_with(
        self: &Arc<Self>,
        id: &[u8],
        timeout: Option<Duration>,
    ) -> Arc<TestSession> {
        let serial = self.created.fetch_add(1, SeqCst);
        Arc::new(TestSession {
            id: id.to_vec(),
            serial,
            timeout,
            not_resumable: AtomicBool::new(false),
            tracker: Arc::clone(self),
        })
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

pub struct TestSession {
    pub id: Vec<u8>,
    pub serial: usize,
    pub timeout: Option<Duration>,
    pub not_resumable: AtomicBool,
    tracker: Arc<Tracker>,
}

impl TestSession {
    pub fn is_resumable(&self) -> bool {
        !self.not_resumable.load(SeqCst)
    }
}

impl Session for TestSession {
    fn id(&self) -> &[u8] {
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
        self.tracker.dropped.fetch_add(1, SeqCst);
    }
}

/// Records every `on_remove` call as (serial, cause).
#[derive(Default, Clone)]
pub struct RemovalLog(Arc<Mutex<Vec<(usize, RemovalCause)>>>);

impl RemovalLog {
    pub fn callback(&self) -> impl Fn(&Arc<TestSession>, RemovalCause) + Send + Sync + 'static {
        let log = self.clone();
        move |s, cause| log.0.lock().unwrap().push((s.serial, cause))
    }

    pub fn take(&self) -> Vec<(usize, RemovalCause)> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// An id of `n` as 32 bytes, like a TLS session id.
pub fn id(n: u64) -> Vec<u8> {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_le_bytes());
    id[31] = 0xA5;
    id.to_vec()
}
