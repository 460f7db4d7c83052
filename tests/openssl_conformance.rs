//! OpenSSL 3.0's behaviour cases C1-C20 (docs/design.md, "OpenSSL 3.0: where we mirror it and
//! where we differ"), each probed on 3.0.19. Where session-cache differs on purpose, the test says so and checks
//! our behaviour instead.

use std::sync::Arc;
use std::time::Duration;

use session_cache::{AddError, CacheMode, ManualClock, RemovalCause, SessionCache};
use testkit::{assert_refs, id, RemovalLog, Tracker};

type Cache = SessionCache<testkit::TestSession>;

fn cache(capacity: usize) -> (Cache, ManualClock, RemovalLog) {
    let clock = ManualClock::new();
    let log = RemovalLog::default();
    let c = Cache::builder()
        .capacity(capacity)
        .timeout(Duration::from_secs(1000))
        .clock(clock.clone())
        .on_remove(log.callback())
        .build();
    (c, clock, log)
}

#[test]
fn c1_add_new() {
    let t = Tracker::new();
    let (c, _, _) = cache(10);
    assert!(c.add(t.session(&id(1))));
    assert_eq!(c.len(), 1);
}

#[test]
fn c2_add_same_object_again() {
    let t = Tracker::new();
    let (c, _, log) = cache(2);
    let a = t.session(&id(1));
    let b = t.session(&id(2));
    c.add(a.clone());
    c.add(b.clone());
    // 0; number unchanged; refcount unchanged...
    assert!(!c.add(a.clone()));
    assert_eq!(c.len(), 2);
    assert_eq!(Arc::strong_count(&a), 2);
    // ...but re-sorted to the head among equal expiries: B is now the least recently added.
    c.add(t.session(&id(3)));
    assert!(c.contains(&id(1)), "A was refreshed by its re-add");
    assert!(!c.contains(&id(2)), "B was the tail");
    assert_eq!(log.take(), vec![(b.serial, RemovalCause::Evicted)]);
}

#[test]
fn c3_add_different_object_same_id() {
    let t = Tracker::new();
    let (c, _, log) = cache(10);
    let old = t.session(&id(1));
    c.add(old.clone());
    assert!(c.add(t.session(&id(1))));
    assert_eq!(c.len(), 1);
    assert_refs(&old, 1); // dropped from the cache
    assert!(old.is_resumable(), "not marked not_resumable");
    assert_eq!(c.stats().cache_full, 0);
    // Differs: OpenSSL calls no remove_cb on replacement; on_remove reports it as Replaced.
    assert_eq!(log.take(), vec![(old.serial, RemovalCause::Replaced)]);
}

#[test]
fn c4_same_bytes_different_length_are_distinct() {
    // OpenSSL's key is (version, length, bytes); ours is the bytes, which include the length.
    // The protocol version is not part of our key (the cache holds any value).
    let t = Tracker::new();
    let (c, _, _) = cache(10);
    c.add(t.session(&[1, 2, 3]));
    c.add(t.session(&[1, 2, 3, 0]));
    assert_eq!(c.len(), 2);
}

#[test]
fn c5_the_key_is_the_id_only() {
    // OpenSSL: same (version, id) with another sid_ctx replaces (sid_ctx is not in the key).
    // Ours: whatever else the session holds, the same id replaces.
    let t = Tracker::new();
    let (c, _, _) = cache(10);
    c.add(t.session(&id(5)));
    let other_context = t.session(&id(5));
    assert!(c.add(other_context.clone()));
    assert_eq!(c.len(), 1);
    assert!(Arc::ptr_eq(&c.get(&id(5)).unwrap(), &other_context));
}

#[test]
fn c6_remove_cached_same_object() {
    let t = Tracker::new();
    let (c, _, log) = cache(10);
    let s = t.session(&id(1));
    c.add(s.clone());
    assert!(c.remove(&s));
    assert!(!s.is_resumable());
    assert_eq!(log.take(), vec![(s.serial, RemovalCause::Removed)]);
    assert_refs(&s, 1);
}

#[test]
fn c7_remove_a_different_object_with_the_cached_key() {
    let t = Tracker::new();
    let (c, _, log) = cache(10);
    let cached = t.session(&id(1));
    let arg = t.session(&id(1));
    c.add(cached.clone());
    assert!(c.remove(&arg));
    assert!(!c.contains(&id(1)));
    assert!(!arg.is_resumable(), "the argument is marked");
    assert!(cached.is_resumable(), "the cached object is not");
    // Differs: OpenSSL passes the argument to remove_cb; on_remove gets what left the cache.
    assert_eq!(log.take(), vec![(cached.serial, RemovalCause::Removed)]);
}

#[test]
fn c8_remove_not_cached() {
    let t = Tracker::new();
    let (c, _, log) = cache(10);
    let s = t.session(&id(1));
    assert!(!c.remove(&s));
    assert!(!s.is_resumable(), "still marked");
    // Differs: OpenSSL calls remove_cb even on a miss; nothing left the cache, so we do not.
    assert!(log.take().is_empty());
}

#[test]
fn c9_remove_zero_length_id() {
    let t = Tracker::new();
    let (c, _, log) = cache(10);
    let s = t.session(b"");
    assert!(!c.remove(&s));
    assert!(s.is_resumable(), "no flag change");
    assert!(log.take().is_empty(), "no callback");
}

#[test]
fn c10_add_zero_length_id() {
    // Differs on purpose: OpenSSL accepts it (and then can never evict past it,
    // CVE-2024-2511); we refuse it.
    let t = Tracker::new();
    let (c, _, _) = cache(10);
    let s = t.session(b"");
    assert_eq!(c.try_add(s.clone()), Err(AddError::EmptyId));
    assert_eq!(c.len(), 0);
    assert_refs(&s, 1);
}

#[test]
fn c11_capacity_plateau() {
    // Differs on purpose: OpenSSL 3.0 plateaus at N-1 for N >= 2; we hold exactly N.
    for n in [1usize, 2, 3, 4, 20] {
        let t = Tracker::new();
        let (c, _, log) = cache(n);
        let all: Vec<_> = (0..(n as u64 + 10)).map(|i| t.session(&id(i))).collect();
        for s in &all {
            c.add(s.clone());
        }
        assert_eq!(c.len(), n, "capacity {n}");
        assert_eq!(c.stats().cache_full, 10);
        let evicted = log.take();
        assert_eq!(evicted.len(), 10);
        for (serial, cause) in evicted {
            assert_eq!(cause, RemovalCause::Evicted);
            assert!(
                !all[serial as usize].is_resumable(),
                "victims are marked not resumable"
            );
        }
    }
}

#[test]
fn c12_eviction_victim_is_the_earliest_expiry() {
    // Probe T10: A(+1000 s), B(+10 s), C(+500 s) cached; adding D(+1 s) evicts B; D is then
    // the earliest and the next add (E, +2000 s) evicts D, the newest.
    // OpenSSL needed size 4 to hold 3; we use capacity 3.
    let t = Tracker::new();
    let (c, _, log) = cache(3);
    let secs = |n| Some(Duration::from_secs(n));
    let a = t.session_with(&id(0xA), secs(1000));
    let b = t.session_with(&id(0xB), secs(10));
    let cc = t.session_with(&id(0xC), secs(500));
    let d = t.session_with(&id(0xD), secs(1));
    let e = t.session_with(&id(0xE), secs(2000));
    for s in [&a, &b, &cc] {
        c.add(s.clone());
    }
    c.add(d.clone());
    assert_eq!(log.take(), vec![(b.serial, RemovalCause::Evicted)]);
    c.add(e.clone());
    assert_eq!(log.take(), vec![(d.serial, RemovalCause::Evicted)]);
    assert!(c.contains(&id(0xA)) && c.contains(&id(0xC)) && c.contains(&id(0xE)));
}

#[test]
fn c12_the_new_entry_is_never_its_own_victim() {
    // sslapitest execute_test_session step 12: capacity 1, sess1 expires before sess2, yet
    // re-adding sess1 kicks out sess2.
    let t = Tracker::new();
    let (c, _, _) = cache(1);
    let s1 = t.session_with(&id(1), Some(Duration::from_secs(1000)));
    let s2 = t.session_with(&id(2), Some(Duration::from_secs(2000)));
    c.add(s1.clone());
    c.add(s2.clone());
    assert!(c.add(s1.clone()));
    assert!(c.contains(&id(1)));
    assert!(!c.contains(&id(2)));
}

#[test]
fn c13_shrink_capacity() {
    let t = Tracker::new();
    let (c, _, _) = cache(5);
    for i in 0..5 {
        c.add(t.session(&id(i)));
    }
    assert_eq!(c.set_capacity(2), 5);
    assert_eq!(c.len(), 5, "no effect until the next new add");
    assert!(
        !c.add(c.get(&id(4)).unwrap()),
        "an identical re-add is not a new add"
    );
    assert_eq!(c.len(), 5);
    c.add(t.session(&id(9)));
    // Differs: OpenSSL evicts down to N-1 (probe T17: number=1); we evict down to N.
    assert_eq!(c.len(), 2);
    assert_eq!(c.stats().cache_full, 4);
}

#[test]
fn c14_capacity_zero_is_unlimited() {
    let t = Tracker::new();
    let (c, _, _) = cache(0);
    for i in 0..2000 {
        c.add(t.session(&id(i)));
    }
    assert_eq!(c.len(), 2000);
    assert_eq!(c.stats().cache_full, 0);
}

#[test]
fn c15_timeouts_are_fixed_when_added() {
    // Differs: OpenSSL re-sorts a cached session when SSL_SESSION_set_time/set_timeout change
    // it. Our entries are immutable once published; the lifetime is taken when added, and a
    // changed cache timeout applies to later adds only.
    let t = Tracker::new();
    let (c, clock, _) = cache(10);
    c.add(t.session(&id(1)));
    c.set_timeout(Duration::from_secs(1));
    clock.advance(Duration::from_secs(2));
    assert!(c.contains(&id(1)));
}

#[test]
fn c16_flush() {
    // sslapitest test_session_timeout: early/middle/late, flush at boundaries, then flush(0).
    let t = Tracker::new();
    let (c, clock, log) = cache(10);
    let ten = Some(Duration::from_secs(10));
    let early = t.session_with(&id(1), ten);
    c.add(early.clone());
    clock.advance(Duration::from_secs(10));
    let middle = t.session_with(&id(2), ten);
    c.add(middle.clone());
    clock.advance(Duration::from_secs(10));
    let late = t.session_with(&id(3), ten);
    c.add(late.clone());
    // now = 20; early expires after 10, middle after 20, late after 30 (strictly).
    assert_eq!(c.flush_expired(), 1);
    assert!(!early.is_resumable());
    clock.advance(Duration::from_secs(1));
    assert_eq!(c.flush_expired(), 1);
    assert!(!middle.is_resumable());
    clock.advance(Duration::from_secs(11));
    assert_eq!(c.flush_expired(), 1);
    assert_eq!(c.len(), 0);
    assert_eq!(
        log.take().iter().map(|e| e.1).collect::<Vec<_>>(),
        vec![RemovalCause::Expired; 3]
    );
    for s in [&early, &middle, &late] {
        c.add(s.clone());
    }
    c.clear(); // flush(0): all
    assert_eq!(c.len(), 0);
    assert_eq!(log.take().len(), 3);
}

#[test]
fn c17_huge_timeout_never_expires_and_sorts_last() {
    let t = Tracker::new();
    let (c, clock, _) = cache(2);
    c.add(t.session_with(&id(1), Some(Duration::MAX)));
    c.add(t.session(&id(2)));
    clock.advance(Duration::from_secs(u32::MAX as u64));
    assert!(c.contains(&id(1)));
    c.add(t.session(&id(3)));
    assert!(c.contains(&id(1)), "the never-expiring one is evicted last");
}

#[test]
fn c18_eviction_never_stalls() {
    // OpenSSL: an empty-id tail stalls eviction and the cache grows without bound. We refuse
    // empty ids, and nothing else can stall the hand.
    let t = Tracker::new();
    let (c, _, _) = cache(3);
    assert!(!c.add(t.session(b"")));
    for i in 0..100 {
        c.add(t.session(&id(i)));
        assert!(c.len() <= 3);
    }
}

#[test]
fn c19_set_capacity_returns_the_previous_size() {
    // OpenSSL rejects a negative size; ours is a usize, so it cannot be negative.
    let c = Cache::new();
    assert_eq!(c.set_capacity(5), 20_480);
    assert_eq!(c.set_capacity(0), 5);
    assert_eq!(c.capacity(), 0);
}

#[test]
fn c20_defaults() {
    let c = Cache::new();
    assert_eq!(c.mode(), CacheMode::SERVER);
    assert_eq!(c.capacity(), 20_480);
    // Differs on purpose: OpenSSL 3.0's ctx timeout is 7200 s (its manual says 300 s).
    assert_eq!(c.timeout(), Duration::from_secs(300));
    assert_eq!(CacheMode::NO_INTERNAL.bits(), 0x300);
    assert_eq!(CacheMode::UPDATE_TIME.bits(), 0x400);
    assert_eq!(CacheMode::NO_AUTO_CLEAR.bits(), 0x80);
}
