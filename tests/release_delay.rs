//! How long a session lives on after the cache unlinks it (docs/design.md, "Reclamation and
//! prompt release").
//!
//! Sessions hold key material, and the cache releases its reference through deferred
//! reclamation. This test unlinks one session in each way the cache can (remove, remove_id,
//! take, replace, evict, expire on lookup, flush_expired, clear) and then counts the cache
//! operations this thread makes, and the wall time, until the session's `Drop` runs.
//!
//! What is asserted is an operation-count bound ([`BOUND_OPS`]) under two workloads after the
//! unlink: a write workload (each operation an add of a fresh id into a full cache, so each one
//! retires something) and a read-only one (lookups of cached ids: a TLS server thread that only
//! resumes sessions). Wall time is only reported. `flush_deferred()` releases at once.
//!
//! All scenarios run inside one `#[test]` so that no other test thread of this binary is pinned
//! meanwhile (the epoch collector is process-wide).
#![allow(missing_docs)]

use session_cache::{flush_deferred, ManualClock, SessionCache};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::TestSession;

/// The promise: an unlinked session is dropped within this many further operations of the
/// unlinking thread, of any kind, while no other thread is pinned. The crate hands a thread's
/// gathered releases to the collector 48 operations after the first (at once when 64 are
/// gathered) and flushes on the next three, so the epoch advances twice past them; a batch found
/// due runs eight releases per operation of that thread, oldest first.
const BOUND_OPS: usize = 64;
/// Give up (and fail) after this many operations.
const GIVE_UP: usize = 100_000;

fn plain(n: u64) -> Arc<TestSession> {
    TestSession::new(&n.to_le_bytes(), 0, None)
}

/// A tracked session: the test keeps only its drop counter (the "flag"), never a reference.
fn tracked(n: u64, timeout: Option<Duration>) -> (Arc<TestSession>, Arc<AtomicUsize>) {
    let s = TestSession::new(&n.to_le_bytes(), 1, timeout);
    let drops = s.drops.clone();
    (s, drops)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unlink {
    Remove,
    RemoveId,
    Take,
    Replace,
    Evict,
    ExpireOnGet,
    FlushExpired,
    Clear,
}

const CAP: usize = 64;
const TRACKED_ID: u64 = 1_000_000;

/// A full cache (capacity 64, exact eviction), with a tracked session, unlinked as `how`.
/// Returns the cache, the clock, the drop flag, and the next fresh id.
fn setup(
    how: Unlink,
) -> (
    SessionCache<TestSession>,
    ManualClock,
    Arc<AtomicUsize>,
    u64,
) {
    let clock = ManualClock::new();
    let cache = SessionCache::builder()
        .capacity(CAP)
        .timeout(Duration::from_secs(300))
        .clock(clock.clone())
        .build();
    // The tracked session expires first, so it is the eviction victim.
    let (s, flag) = tracked(TRACKED_ID, Some(Duration::from_secs(1)));
    assert!(cache.add(s));
    for n in 0..(CAP as u64 - 1) {
        assert!(cache.add(plain(n)));
    }
    assert_eq!(cache.len(), CAP);
    let key = TRACKED_ID.to_le_bytes();
    let mut next = 10_000;
    match how {
        Unlink::Remove => assert!(cache.remove(&*plain(TRACKED_ID))),
        Unlink::RemoveId => assert!(cache.remove_id(&key)),
        Unlink::Take => drop(cache.take(&key).expect("cached")),
        Unlink::Replace => assert!(cache.add(plain(TRACKED_ID))),
        Unlink::Evict => {
            assert!(cache.add(plain(next)));
            next += 1;
            assert!(
                !cache.contains(&key),
                "the soonest-expiring entry is evicted"
            );
        }
        Unlink::ExpireOnGet => {
            clock.advance(Duration::from_secs(2));
            assert!(cache.get(&key).is_none());
        }
        Unlink::FlushExpired => {
            clock.advance(Duration::from_secs(2));
            assert_eq!(cache.flush_expired(), 1);
        }
        Unlink::Clear => cache.clear(),
    }
    (cache, clock, flag, next)
}

/// Write workload: every operation adds a fresh id to the full cache (evicting one).
fn ops_until_dropped_under_writes(how: Unlink) -> (usize, Duration) {
    let (cache, _clock, flag, mut next) = setup(how);
    let t0 = Instant::now();
    let mut ops = 0;
    while flag.load(SeqCst) == 0 {
        assert!(
            ops < GIVE_UP,
            "{how:?}: not dropped after {GIVE_UP} operations"
        );
        cache.add(plain(next));
        next += 1;
        ops += 1;
    }
    (ops, t0.elapsed())
}

/// Read-only workload: only lookups of cached ids after the unlink.
fn ops_until_dropped_under_reads(how: Unlink) -> (usize, Duration) {
    let (cache, _clock, flag, _) = setup(how);
    let t0 = Instant::now();
    let mut ops = 0;
    while flag.load(SeqCst) == 0 {
        assert!(
            ops < GIVE_UP,
            "{how:?}: not dropped after {GIVE_UP} lookups"
        );
        let n = (ops % (CAP - 2)) as u64;
        let _ = cache.get(&n.to_le_bytes());
        ops += 1;
    }
    (ops, t0.elapsed())
}

/// `flush_deferred()` releases at once, whatever the thread does afterwards.
fn flush_releases_at_once(how: Unlink) {
    let (_cache, _clock, flag, _) = setup(how);
    flush_deferred();
    assert!(
        flag.load(SeqCst) > 0,
        "{how:?}: alive after flush_deferred()"
    );
}

#[test]
fn release_delay_is_bounded() {
    let kinds = [
        Unlink::Remove,
        Unlink::RemoveId,
        Unlink::Take,
        Unlink::Replace,
        Unlink::Evict,
        Unlink::ExpireOnGet,
        Unlink::FlushExpired,
        Unlink::Clear,
    ];
    // Warm up the collector (first pins register the thread).
    let _ = ops_until_dropped_under_writes(Unlink::Remove);
    flush_deferred();
    let mut worst = 0;
    eprintln!(
        "{:<14} {:>10} {:>12} {:>10} {:>12}",
        "unlink", "write ops", "write time", "read ops", "read time"
    );
    for how in kinds {
        let (mut max_w, mut max_wt) = (0, Duration::ZERO);
        let (mut max_r, mut max_rt) = (0, Duration::ZERO);
        for _ in 0..20 {
            flush_deferred();
            let (ops, t) = ops_until_dropped_under_writes(how);
            max_w = max_w.max(ops);
            max_wt = max_wt.max(t);
            flush_deferred();
            let (ops, t) = ops_until_dropped_under_reads(how);
            max_r = max_r.max(ops);
            max_rt = max_rt.max(t);
        }
        flush_deferred();
        flush_releases_at_once(how);
        eprintln!(
            "{:<14} {:>10} {:>12?} {:>10} {:>12?}",
            format!("{how:?}"),
            max_w,
            max_wt,
            max_r,
            max_rt
        );
        worst = worst.max(max_w).max(max_r);
        assert!(
            max_w <= BOUND_OPS,
            "{how:?}: the session lived on for {max_w} write operations (bound {BOUND_OPS})"
        );
        assert!(
            max_r <= BOUND_OPS,
            "{how:?}: the session lived on for {max_r} lookups (bound {BOUND_OPS})"
        );
    }
    eprintln!("worst case: {worst} operations (bound {BOUND_OPS})");
}
