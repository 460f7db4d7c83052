//! Every clause of the contract (docs/design.md, "The contract"), single-threaded, with sessions that
//! count their drops: each `Arc` the cache took must be released exactly once.

use std::sync::Arc;
use std::time::Duration;

use session_cache::{AddError, Added, CacheMode, ManualClock, RemovalCause, SessionCache};
use testkit::{assert_refs, id, RemovalLog, Tracker};

type Cache = SessionCache<testkit::TestSession>;

/// `n` normally; under Miri (about a million times slower) a smaller count that still crosses
/// the thresholds the test is about.
fn scaled(n: u64, under_miri: u64) -> u64 {
    if cfg!(miri) {
        under_miri
    } else {
        n
    }
}

fn manual(capacity: usize) -> (Cache, ManualClock, RemovalLog) {
    let clock = ManualClock::new();
    let log = RemovalLog::default();
    let cache = Cache::builder()
        .capacity(capacity)
        .timeout(Duration::from_secs(100))
        .clock(clock.clone())
        .on_remove(log.callback())
        .build();
    (cache, clock, log)
}

#[test]
fn add_new_then_get() {
    let t = Tracker::new();
    let (cache, _, _) = manual(10);
    let s = t.session(&id(1));
    assert_eq!(cache.try_add(s.clone()), Ok(Added::Inserted));
    assert_eq!(cache.len(), 1);
    assert_refs(&s, 2);
    let hit = cache.get(&id(1)).expect("cached");
    assert!(Arc::ptr_eq(&hit, &s));
    drop(hit);
    assert_eq!(cache.stats().hits, 1);
    assert_eq!(cache.stats().inserts, 1);
    drop(cache);
    assert_refs(&s, 1);
    drop(s);
    t.assert_all_released();
}

#[test]
fn identical_readd_is_a_noop_without_refcount_change() {
    let t = Tracker::new();
    let (cache, _, log) = manual(10);
    let s = t.session(&id(1));
    assert!(cache.add(s.clone()));
    assert_refs(&s, 2);
    for _ in 0..100 {
        assert!(!cache.add(s.clone()));
        // The clone passed in is dropped at once, not deferred.
        assert_eq!(Arc::strong_count(&s), 2);
    }
    assert_eq!(cache.try_add(s.clone()), Ok(Added::AlreadyCached));
    assert_eq!(cache.len(), 1);
    assert!(log.take().is_empty());
    assert!(s.is_resumable());
    let st = cache.stats();
    assert_eq!((st.inserts, st.replacements, st.cache_full), (1, 0, 0));
    drop(cache);
    assert_refs(&s, 1);
}

#[test]
fn different_object_same_id_replaces() {
    let t = Tracker::new();
    let (cache, _, log) = manual(10);
    let old = t.session(&id(1));
    let new = t.session(&id(1));
    assert!(cache.add(old.clone()));
    assert_eq!(cache.try_add(new.clone()), Ok(Added::Replaced));
    assert_eq!(cache.len(), 1);
    assert!(Arc::ptr_eq(&cache.get(&id(1)).unwrap(), &new));
    // The old one is released once, not marked, not counted as cache_full.
    assert_refs(&old, 1);
    assert!(old.is_resumable());
    assert_eq!(log.take(), vec![(old.serial, RemovalCause::Replaced)]);
    let st = cache.stats();
    assert_eq!((st.replacements, st.cache_full, st.entries), (1, 0, 1));
    drop(cache);
    drop((old, new));
    t.assert_all_released();
}

#[test]
fn remove_is_by_id_and_marks_the_argument() {
    let t = Tracker::new();
    let (cache, _, log) = manual(10);
    let cached = t.session(&id(1));
    let probe = t.session(&id(1));
    cache.add(cached.clone());
    assert!(cache.remove(&probe));
    assert!(!probe.is_resumable(), "the argument is marked");
    assert!(cached.is_resumable(), "the cached object is not marked");
    assert_eq!(log.take(), vec![(cached.serial, RemovalCause::Removed)]);
    assert!(cache.get(&id(1)).is_none());
    assert_eq!(cache.len(), 0);
    assert_refs(&cached, 1);
    // A remove that finds nothing: false, still marks, no callback.
    let other = t.session(&id(2));
    assert!(!cache.remove(&other));
    assert!(!other.is_resumable());
    assert!(log.take().is_empty());
    assert_eq!(cache.stats().removals, 1);
}

#[test]
fn remove_id_and_contains() {
    let t = Tracker::new();
    let (cache, _, _) = manual(10);
    let s = t.session(&id(1));
    cache.add(s.clone());
    assert!(cache.contains(&id(1)));
    assert!(cache.remove_id(&id(1)));
    assert!(!cache.remove_id(&id(1)));
    assert!(!cache.contains(&id(1)));
    assert!(s.is_resumable());
    assert_refs(&s, 1);
    // contains counts nothing
    assert_eq!((cache.stats().hits, cache.stats().misses), (0, 0));
}

#[test]
fn take_is_single_use() {
    let t = Tracker::new();
    let (cache, _, log) = manual(10);
    let s = t.session(&id(1));
    cache.add(s.clone());
    let got = cache.take(&id(1)).expect("first take wins");
    assert!(Arc::ptr_eq(&got, &s));
    assert!(cache.take(&id(1)).is_none());
    assert!(cache.get(&id(1)).is_none());
    assert!(
        s.is_resumable(),
        "take hands the session out for use: not marked"
    );
    assert_eq!(log.take(), vec![(s.serial, RemovalCause::Removed)]);
    let st = cache.stats();
    assert_eq!((st.hits, st.misses, st.removals, st.entries), (1, 2, 1, 0));
    drop(got);
    assert_refs(&s, 1);
}

#[test]
fn get_with_reads_in_place() {
    let t = Tracker::new();
    let (cache, _, _) = manual(10);
    let s = t.session(&id(7));
    cache.add(s.clone());
    let serial = cache.get_with(&id(7), |sess| {
        assert_eq!(Arc::strong_count(&s), 2, "no reference taken");
        sess.serial
    });
    assert_eq!(serial, Some(s.serial));
    assert_eq!(cache.get_with(&id(8), |sess| sess.serial), None);
    assert_eq!((cache.stats().hits, cache.stats().misses), (1, 1));
}

#[test]
fn expiry_is_strict_and_counted_as_timeout() {
    let t = Tracker::new();
    let (cache, clock, log) = manual(10);
    let s = t.session(&id(1));
    cache.add(s.clone());
    clock.advance(Duration::from_secs(100)); // now == added + timeout: still live
    assert!(cache.get(&id(1)).is_some());
    clock.advance(Duration::from_nanos(1)); // now > added + timeout
    assert!(cache.get(&id(1)).is_none());
    let st = cache.stats();
    assert_eq!(
        (st.hits, st.timeouts, st.misses, st.expired, st.entries),
        (1, 1, 0, 1, 0)
    );
    assert!(!s.is_resumable());
    assert_eq!(log.take(), vec![(s.serial, RemovalCause::Expired)]);
    assert!(cache.get(&id(1)).is_none());
    assert_eq!(cache.stats().misses, 1);
    assert_refs(&s, 1);
}

#[test]
fn session_timeout_overrides_cache_timeout() {
    let t = Tracker::new();
    let (cache, clock, _) = manual(10);
    cache.add(t.session_with(&id(1), Some(Duration::from_secs(5))));
    cache.add(t.session_with(&id(2), Some(Duration::MAX)));
    cache.add(t.session(&id(3)));
    clock.advance(Duration::from_secs(6));
    assert!(!cache.contains(&id(1)));
    assert!(cache.contains(&id(3)));
    clock.advance(Duration::from_secs(1_000_000_000));
    assert!(cache.contains(&id(2)), "Duration::MAX never expires");
    assert!(!cache.contains(&id(3)));
}

#[test]
fn set_timeout_affects_later_adds_only() {
    let t = Tracker::new();
    let (cache, clock, _) = manual(10);
    cache.add(t.session(&id(1)));
    assert_eq!(
        cache.set_timeout(Duration::from_secs(10)),
        Duration::from_secs(100)
    );
    cache.add(t.session(&id(2)));
    clock.advance(Duration::from_secs(11));
    assert!(cache.contains(&id(1)));
    assert!(!cache.contains(&id(2)));
}

#[test]
fn update_time_refreshes_on_identical_readd() {
    for update_time in [false, true] {
        let t = Tracker::new();
        let (cache, clock, _) = manual(10);
        if update_time {
            cache.set_mode(CacheMode::SERVER | CacheMode::UPDATE_TIME);
        }
        let s = t.session(&id(1));
        cache.add(s.clone());
        clock.advance(Duration::from_secs(80));
        assert!(!cache.add(s.clone()));
        clock.advance(Duration::from_secs(30)); // 110 s after the first add
        assert_eq!(
            cache.contains(&id(1)),
            update_time,
            "UPDATE_TIME={update_time}"
        );
    }
}

#[test]
fn capacity_holds_exactly_n_and_evicts_soonest_expiring() {
    let t = Tracker::new();
    let (cache, _, log) = manual(3);
    let sessions: Vec<_> = (0..10).map(|i| t.session(&id(i))).collect();
    for (i, s) in sessions.iter().enumerate() {
        assert!(cache.add(s.clone()));
        assert_eq!(cache.len(), (i + 1).min(3));
    }
    // Equal expiries: the least recently added go first.
    for s in &sessions[..7] {
        assert!(!s.is_resumable(), "evicted sessions are marked");
        assert_refs(s, 1);
    }
    for s in &sessions[7..] {
        assert!(cache.contains(&s.id));
        assert!(s.is_resumable());
    }
    let evicted: Vec<_> = log.take();
    assert_eq!(
        evicted,
        (0..7)
            .map(|i| (sessions[i].serial, RemovalCause::Evicted))
            .collect::<Vec<_>>()
    );
    assert_eq!(cache.stats().cache_full, 7);
}

#[test]
fn capacity_one_and_zero() {
    let t = Tracker::new();
    let (one, _, _) = manual(1);
    for i in 0..5 {
        one.add(t.session(&id(i)));
        assert_eq!(one.len(), 1);
        assert!(one.contains(&id(i)));
    }
    let (unbounded, _, _) = manual(0);
    let n = scaled(5000, 300);
    for i in 0..n {
        unbounded.add(t.session(&id(i)));
    }
    assert_eq!(unbounded.len() as u64, n);
    assert_eq!(unbounded.stats().cache_full, 0);
    for i in 0..n {
        assert!(unbounded.contains(&id(i)));
    }
    drop((one, unbounded));
    t.assert_all_released();
}

#[test]
fn shrinking_takes_effect_at_the_next_insert() {
    let t = Tracker::new();
    let (cache, _, _) = manual(10);
    for i in 0..10 {
        cache.add(t.session(&id(i)));
    }
    assert_eq!(cache.set_capacity(3), 10);
    assert_eq!(cache.len(), 10, "no effect until the next insert");
    cache.add(t.session(&id(100)));
    assert_eq!(cache.len(), 3);
    assert!(cache.contains(&id(100)));
    assert_eq!(cache.stats().cache_full, 8);
}

#[test]
fn flush_expired_and_clear() {
    let t = Tracker::new();
    let (cache, clock, log) = manual(100);
    let short: Vec<_> = (0..5)
        .map(|i| t.session_with(&id(i), Some(Duration::from_secs(10))))
        .collect();
    let long: Vec<_> = (5..9).map(|i| t.session(&id(i))).collect();
    for s in short.iter().chain(&long) {
        cache.add(s.clone());
    }
    clock.advance(Duration::from_secs(10));
    assert_eq!(cache.flush_expired(), 0, "strict: now == expiry is live");
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.flush_expired(), 5);
    assert_eq!(cache.len(), 4);
    assert!(short.iter().all(|s| !s.is_resumable()));
    assert_eq!(log.take().len(), 5);
    cache.clear();
    assert_eq!(cache.len(), 0);
    assert!(long.iter().all(|s| !s.is_resumable()));
    let cleared = log.take();
    assert_eq!(cleared.len(), 4);
    assert!(cleared.iter().all(|(_, c)| *c == RemovalCause::Cleared));
    let st = cache.stats();
    assert_eq!(
        (st.expired, st.timeouts),
        (5, 0),
        "flush is not a lookup timeout"
    );
    for s in short.iter().chain(&long) {
        assert_refs(s, 1);
    }
}

#[test]
fn on_miss_is_a_second_tier() {
    let t = Tracker::new();
    let backing = t.session(&id(42));
    let b2 = backing.clone();
    let cache = Cache::builder()
        .on_miss(move |key| (key == id(42).as_slice()).then(|| b2.clone()))
        .build();
    // A miss asks the second tier; its answer is stored.
    let got = cache.get(&id(42)).expect("from the second tier");
    assert!(Arc::ptr_eq(&got, &backing));
    assert!(cache.contains(&id(42)));
    let st = cache.stats();
    assert_eq!((st.misses, st.cb_hits, st.hits), (1, 1, 0));
    // Now an internal hit.
    cache.get(&id(42)).unwrap();
    assert_eq!(cache.stats().hits, 1);
    // Unknown to both.
    assert!(cache.get(&id(1)).is_none());
    assert_eq!(cache.stats().misses, 2);

    // NO_INTERNAL_STORE: returned, not stored.
    cache.clear();
    cache.set_mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE);
    assert!(cache.get(&id(42)).is_some());
    assert!(!cache.contains(&id(42)));

    // NO_INTERNAL_LOOKUP: the table is skipped even when it has the id; no misses counted.
    let local = t.session(&id(42));
    cache.add(local.clone());
    cache.set_mode(CacheMode::SERVER | CacheMode::NO_INTERNAL);
    let before = cache.stats();
    let got = cache.get(&id(42)).unwrap();
    assert!(Arc::ptr_eq(&got, &backing), "answered by the second tier");
    assert_eq!(cache.stats().misses, before.misses);
    assert_eq!(cache.stats().cb_hits, before.cb_hits + 1);
}

#[test]
fn expired_entry_does_not_consult_second_tier() {
    let t = Tracker::new();
    let clock = ManualClock::new();
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a2 = asked.clone();
    let cache = Cache::builder()
        .clock(clock.clone())
        .timeout(Duration::from_secs(1))
        .on_miss(move |_| {
            a2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            None
        })
        .build();
    cache.add(t.session(&id(1)));
    clock.advance(Duration::from_secs(2));
    assert!(cache.get(&id(1)).is_none());
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(cache.get(&id(1)).is_none());
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn mode_off_still_looks_up() {
    let t = Tracker::new();
    let cache = Cache::builder().mode(CacheMode::OFF).build();
    cache.add(t.session(&id(1)));
    assert!(cache.get(&id(1)).is_some());
}

#[test]
fn settings_return_previous_values() {
    let cache = Cache::new();
    assert_eq!(cache.set_capacity(5), 20_480);
    assert_eq!(cache.capacity(), 5);
    assert_eq!(cache.set_mode(CacheMode::BOTH), CacheMode::SERVER);
    assert_eq!(cache.mode(), CacheMode::BOTH);
    assert_eq!(
        cache.set_timeout(Duration::from_secs(1)),
        Duration::from_secs(300)
    );
}

#[test]
fn empty_and_over_long_ids_are_refused() {
    let t = Tracker::new();
    let cache = Cache::builder().max_id_len(300).build();
    let empty = t.session(b"");
    assert_eq!(cache.try_add(empty.clone()), Err(AddError::EmptyId));
    assert!(!cache.add(empty.clone()));
    assert_refs(&empty, 1);
    assert!(!cache.remove(&empty));
    assert!(
        empty.is_resumable(),
        "as OpenSSL: an empty id is not marked"
    );
    let long = t.session(&[7; 301]);
    assert_eq!(
        cache.try_add(long.clone()),
        Err(AddError::IdTooLong { len: 301, max: 300 })
    );
    assert!(cache.get(&[7; 301]).is_none());
    assert!(cache.take(&[7; 301]).is_none());
    assert!(cache.get(b"").is_none());
    assert_eq!(cache.len(), 0);
    let ok = t.session(&[9; 300]);
    assert!(cache.add(ok.clone()), "a 300-byte id is fine");
    assert!(Arc::ptr_eq(&cache.get(&[9; 300]).unwrap(), &ok));
    assert!(cache.remove(&ok));
    assert_eq!(AddError::EmptyId.to_string(), "session id is empty");
}

#[test]
fn keys_differing_only_in_length_are_distinct() {
    let t = Tracker::new();
    let cache = Cache::new();
    cache.add(t.session(b"ab"));
    cache.add(t.session(b"abc"));
    cache.add(t.session(b"ab\0"));
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.get(b"ab").unwrap().id, b"ab");
    assert_eq!(cache.get(b"ab\0").unwrap().id, b"ab\0");
}

#[test]
fn a_clock_that_goes_back_neither_panics_nor_immortalises() {
    let t = Tracker::new();
    let (cache, clock, _) = manual(10);
    clock.set(Duration::from_secs(1000));
    cache.add(t.session(&id(1))); // expires at 1100
    clock.set(Duration::from_secs(0)); // jumps back
    cache.add(t.session(&id(2))); // treated as added at 1000 too
    assert!(cache.contains(&id(1)) && cache.contains(&id(2)));
    clock.set(Duration::from_secs(1101));
    assert!(!cache.contains(&id(1)));
    assert!(!cache.contains(&id(2)), "not immortal");
    assert_eq!(cache.flush_expired(), 2);
}

#[test]
fn panicking_callbacks_leave_the_cache_consistent() {
    let t = Tracker::new();
    let cache = Cache::builder()
        .capacity(2)
        .on_remove(|s, _| panic!("on_remove for {}", s.serial))
        .on_miss(|_| panic!("on_miss"))
        .build();
    let a = t.session(&id(1));
    let b = t.session(&id(2));
    let c = t.session(&id(3));
    cache.add(a.clone());
    cache.add(b.clone());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cache.add(c.clone())));
    assert!(
        r.is_err(),
        "the eviction callback's panic reaches the caller"
    );
    // ...after the add took effect:
    assert_eq!(cache.len(), 2);
    assert!(cache.contains(&id(3)));
    assert!(!a.is_resumable(), "the victim was still marked");
    assert_refs(&a, 1);
    // on_miss panics: nothing changed.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cache.get(&id(9))));
    assert!(r.is_err());
    assert_eq!(cache.len(), 2);
    // clear reports every entry even though each callback panics.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cache.clear()));
    assert!(r.is_err());
    assert_eq!(cache.len(), 0);
    assert!(!b.is_resumable() && !c.is_resumable());
    drop(cache);
    drop((a, b, c));
    t.assert_all_released();
}

#[test]
fn a_panicking_set_not_resumable_is_contained_too() {
    struct Grumpy(Vec<u8>);
    impl session_cache::Session for Grumpy {
        fn id(&self) -> &[u8] {
            &self.0
        }
        fn set_not_resumable(&self) {
            panic!("grumpy")
        }
    }
    let cache = SessionCache::builder().capacity(1).build();
    cache.add(Arc::new(Grumpy(b"a".to_vec())));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.add(Arc::new(Grumpy(b"b".to_vec())))
    }));
    assert!(r.is_err());
    assert_eq!(cache.len(), 1);
    assert!(cache.contains(b"b"));
}

#[test]
fn every_path_releases_each_arc_exactly_once() {
    let t = Tracker::new();
    {
        let (cache, clock, _) = manual(8);
        let mut keep = Vec::new();
        for round in 0..50u64 {
            for i in 0..12 {
                let s = t.session(&id(i));
                keep.push(s.clone());
                cache.add(s); // inserts, replaces, evicts
            }
            let probe = t.session(&id(round % 12));
            cache.remove(&probe);
            let _ = cache.take(&id((round + 3) % 12));
            let _ = cache.get(&id((round + 5) % 12));
            clock.advance(Duration::from_secs(30)); // some expire
            if round % 7 == 0 {
                cache.flush_expired();
            }
            if round % 11 == 0 {
                cache.clear();
            }
            assert!(cache.len() <= 8);
        }
        let st = cache.stats();
        assert_eq!(
            st.inserts - st.removals - st.cache_full - st.expired - st.cleared,
            cache.len() as u64,
            "every entry left through exactly one counted exit: {st:?}"
        );
        // Whatever the cache still holds, it holds once.
        for s in &keep {
            let cached = cache
                .get_with(&s.id, |c| c.serial == s.serial)
                .unwrap_or(false);
            let expected = if cached { 2 } else { 1 };
            assert_refs(s, expected);
        }
    }
    t.assert_all_released();
}

#[test]
fn churn_of_fresh_ids_keeps_memory_bounded() {
    // Every connection brings a fresh id, then it is removed: dead slots must be recycled.
    let t = Tracker::new();
    let cache = Cache::builder().capacity(64).build();
    for i in 0..scaled(200_000, 500) {
        let s = t.session(&id(i));
        assert!(cache.add(s.clone()));
        assert!(cache.remove(&s));
    }
    assert_eq!(cache.len(), 0);
    drop(cache);
    t.assert_all_released();
}

#[test]
fn cache_is_send_sync_default_debug() {
    fn assert_send_sync<T: Send + Sync + Default + std::fmt::Debug>() {}
    assert_send_sync::<Cache>();
    let cache = Cache::new();
    let shown = format!("{cache:?}");
    assert!(shown.contains("capacity: 20480"), "{shown}");
}

#[test]
fn an_unbounded_cache_grows_its_bucket_array() {
    let t = Tracker::new();
    let cache = Cache::builder().capacity(0).build();
    let before = cache.bucket_count();
    // Past 8 entries per starting bucket the array doubles (under Miri: once or twice).
    let n = scaled(100_000, 3_000);
    for i in 0..n {
        assert!(cache.add(t.session(&id(i))));
    }
    assert_eq!(cache.len() as u64, n);
    assert!(
        cache.bucket_count() > before,
        "the bucket array did not grow"
    );
    assert!(
        cache.bucket_count() as u64 >= n / 16,
        "the bucket array grew from {before} to only {}",
        cache.bucket_count()
    );
    for i in 0..n {
        assert!(cache.contains(&id(i)), "id {i} lost in growth");
    }
    for i in (0..n).step_by(2) {
        assert!(cache.remove_id(&id(i)));
    }
    assert_eq!(cache.len() as u64, n / 2);
    assert_eq!(cache.flush_expired(), 0);
    cache.clear();
    assert_eq!(cache.len(), 0);
    assert!((0..n).all(|i| !cache.contains(&id(i))));
    drop(cache);
    t.assert_all_released();
}

#[test]
fn raising_the_capacity_lets_the_table_grow() {
    let t = Tracker::new();
    let cache = Cache::builder().capacity(64).build();
    let small = cache.bucket_count();
    let n = scaled(50_000, 2_000);
    cache.set_capacity(n as usize);
    for i in 0..n {
        cache.add(t.session(&id(i)));
    }
    assert_eq!(cache.len() as u64, n);
    assert!(cache.bucket_count() > small * 8);
    assert!((0..n).all(|i| cache.contains(&id(i))));
}

#[test]
fn get_or_add_never_replaces_a_live_entry() {
    let t = Tracker::new();
    let (cache, clock, log) = manual(10);
    let first = t.session(&id(1));
    let got = cache.get_or_add(first.clone()).unwrap();
    assert!(Arc::ptr_eq(&got, &first), "absent: inserted and returned");
    drop(got);
    let second = t.session(&id(1));
    let got = cache.get_or_add(second.clone()).unwrap();
    assert!(
        Arc::ptr_eq(&got, &first),
        "live: the cached one is returned"
    );
    drop(got);
    assert_refs(&second, 1); // dropped, never cached
    assert_refs(&first, 2);
    assert_eq!(cache.stats().inserts, 1);
    // The very same object: returned, no change.
    assert!(Arc::ptr_eq(
        &cache.get_or_add(first.clone()).unwrap(),
        &first
    ));
    assert_refs(&first, 2);
    // Expired: replaced, and the old one reported as expired.
    clock.advance(Duration::from_secs(101));
    let third = t.session(&id(1));
    let got = cache.get_or_add(third.clone()).unwrap();
    assert!(Arc::ptr_eq(&got, &third));
    assert_eq!(log.take(), vec![(first.serial, RemovalCause::Expired)]);
    assert!(!first.is_resumable());
    let st = cache.stats();
    assert_eq!(
        (st.inserts, st.expired, st.replacements, st.entries),
        (2, 1, 0, 1)
    );
    // That very object, expired: cached again with a fresh lifetime, not left expired.
    clock.advance(Duration::from_secs(101));
    let again = cache.get_or_add(third.clone()).unwrap();
    assert!(Arc::ptr_eq(&again, &third));
    assert!(
        cache.contains(&id(1)),
        "an expired identical entry stayed expired"
    );
    assert!(log.take().is_empty(), "it never left the cache");
    assert!(third.is_resumable());
    let st = cache.stats();
    assert_eq!(
        (st.inserts, st.expired, st.replacements, st.entries),
        (3, 2, 0, 1)
    );
    drop(again);
    assert_eq!(
        cache.get_or_add(t.session(b"")).err(),
        Some(AddError::EmptyId)
    );
    drop((got, cache));
    drop((first, second, third));
    t.assert_all_released();
}

#[test]
fn extreme_settings_are_accepted_without_panicking() {
    let t = Tracker::new();
    let huge = Cache::builder()
        .capacity(usize::MAX)
        .timeout(Duration::MAX)
        .max_id_len(usize::MAX)
        .build();
    assert!(huge.max_id_len() <= u32::MAX as usize);
    assert!(huge.add(t.session(&id(1))));
    assert!(huge.contains(&id(1)));
    assert_eq!(huge.set_capacity(0), usize::MAX);
    let tiny = Cache::builder().max_id_len(0).build();
    assert_eq!(tiny.max_id_len(), 1);
    assert!(tiny.add(t.session(b"x")));
    assert!(!tiny.add(t.session(b"xy")));
}

/// A session whose id changes at every call: the cache keys it by the one reading an add made,
/// and nothing panics or leaks.
#[test]
fn an_id_that_changes_while_cached_is_safe() {
    use session_cache::Session;
    use std::sync::atomic::{AtomicU8, Ordering::SeqCst};
    struct Shifty {
        calls: AtomicU8,
        ids: [[u8; 4]; 256],
    }
    impl Session for Shifty {
        fn id(&self) -> &[u8] {
            &self.ids[usize::from(self.calls.fetch_add(1, SeqCst))]
        }
    }
    let mut ids = [[0u8; 4]; 256];
    for (i, id) in ids.iter_mut().enumerate() {
        *id = [i as u8, 1, 2, 3];
    }
    let cache: SessionCache<Shifty> = SessionCache::builder().capacity(4).build();
    let mut made = Vec::new();
    for _ in 0..16 {
        let s = Arc::new(Shifty {
            calls: AtomicU8::new(0),
            ids,
        });
        let _ = cache.add(s.clone());
        let _ = cache.get(s.id());
        let _ = cache.take(s.id());
        let _ = cache.remove(&s);
        made.push(s);
    }
    assert!(cache.len() <= 4);
    cache.clear();
    drop(cache);
    // Other test threads may be pinned for a moment: flush until they are not.
    testkit::settle(|| made.iter().all(|s| Arc::strong_count(s) == 1));
    for s in &made {
        assert_eq!(Arc::strong_count(s), 1, "the cache leaked a reference");
    }
}
