//! Unit tests of the policy against its invariants (`check_invariants`): capacity, eviction
//! order, expiry, the live count and the statistics, single-threaded, with a manual clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Lookup, Policy, RemoveCallback, Settings};
use crate::{Added, CacheMode, ManualClock, RemovalCause, Session};

#[derive(Debug)]
struct Sess {
    id: Vec<u8>,
    timeout: Option<Duration>,
}

impl Session for Sess {
    fn id(&self) -> &[u8] {
        &self.id
    }
    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

fn sess(n: u32, timeout_secs: Option<u64>) -> Arc<Sess> {
    Arc::new(Sess {
        id: n.to_le_bytes().to_vec(),
        timeout: timeout_secs.map(Duration::from_secs),
    })
}

type Log = Arc<Mutex<Vec<(Vec<u8>, RemovalCause)>>>;

fn policy(capacity: usize, clock: &ManualClock) -> (Policy<Sess>, Log) {
    let log = Log::default();
    let l = log.clone();
    let on_remove: RemoveCallback<Sess> =
        Box::new(move |s: &Arc<Sess>, c| l.lock().unwrap().push((s.id.clone(), c)));
    let settings = Settings {
        capacity,
        timeout: Duration::from_secs(300),
        mode: CacheMode::SERVER,
    };
    let p = Policy::new(
        settings,
        crate::clock::TimeSource::of(clock.clone()),
        Some(on_remove),
        32,
        Some(9),
    );
    (p, log)
}

#[test]
fn capacity_holds_and_the_soonest_expiry_is_evicted() {
    let clock = ManualClock::new();
    let (p, log) = policy(4, &clock);
    // Expiries 10, 20, 30, 40 s: the first goes first.
    for n in 1..=4u32 {
        assert_eq!(
            p.insert(sess(n, Some(10 * u64::from(n))), false),
            Ok(Added::Inserted)
        );
        p.check_invariants();
    }
    assert_eq!(p.insert(sess(5, Some(50)), false), Ok(Added::Inserted));
    p.check_invariants();
    assert_eq!(p.len(), 4);
    assert_eq!(
        log.lock().unwrap().as_slice(),
        &[(1u32.to_le_bytes().to_vec(), RemovalCause::Evicted)]
    );
    assert_eq!(p.stats().cache_full, 1);
}

#[test]
fn expired_entries_pay_before_live_ones() {
    let clock = ManualClock::new();
    let (p, log) = policy(2, &clock);
    p.insert(sess(1, Some(1)), false).unwrap();
    p.insert(sess(2, Some(100)), false).unwrap();
    clock.advance(Duration::from_secs(2));
    p.insert(sess(3, Some(100)), false).unwrap();
    p.check_invariants();
    assert!(p.contains(&2u32.to_le_bytes()), "a live entry was evicted");
    assert!(!p.contains(&1u32.to_le_bytes()));
    let causes: Vec<_> = log.lock().unwrap().iter().map(|e| e.1).collect();
    assert!(
        causes == [RemovalCause::Expired] || causes == [RemovalCause::Evicted],
        "{causes:?}"
    );
}

#[test]
fn lookups_remove_expired_entries_and_count_them() {
    let clock = ManualClock::new();
    let (p, _log) = policy(0, &clock);
    p.insert(sess(1, Some(1)), false).unwrap();
    assert!(matches!(p.get(&1u32.to_le_bytes()), Lookup::Hit(_)));
    clock.advance(Duration::from_secs(2));
    assert!(matches!(p.get(&1u32.to_le_bytes()), Lookup::Expired));
    assert!(matches!(p.get(&1u32.to_le_bytes()), Lookup::Miss));
    p.check_invariants();
    let st = p.stats();
    assert_eq!((st.entries, st.hits, st.timeouts, st.expired), (0, 1, 1, 1));
}

#[test]
fn the_live_count_follows_every_way_out() {
    let clock = ManualClock::new();
    let (p, _log) = policy(8, &clock);
    for n in 0..8u32 {
        p.insert(sess(n, Some(u64::from(n) + 1)), false).unwrap();
    }
    p.check_invariants();
    assert!(p.remove(&0u32.to_le_bytes()));
    assert!(matches!(p.take(&1u32.to_le_bytes()), Lookup::Hit(_)));
    p.insert(sess(2, None), false).unwrap(); // a replacement: the count does not move
    p.check_invariants();
    assert_eq!(p.len(), 6);
    // Id 3 (timeout 4 s) expires; id 4 (5 s) does not: expiry is strictly after the timeout.
    clock.advance(Duration::from_secs(5));
    assert_eq!(p.flush_expired(), 1);
    p.check_invariants();
    assert_eq!(p.len(), 5);
    p.set_capacity(2);
    p.insert(sess(100, None), false).unwrap(); // shrinks down to the new capacity
    p.check_invariants();
    assert_eq!(p.len(), 2);
    p.clear();
    p.check_invariants();
    assert_eq!(p.len(), 0);
}

#[test]
fn an_unbounded_policy_grows_and_keeps_every_entry() {
    let clock = ManualClock::new();
    let (p, _log) = policy(0, &clock);
    let before = p.bucket_count();
    let n = (before * 16) as u32;
    for i in 0..n {
        p.insert(sess(i, None), false).unwrap();
    }
    p.check_invariants();
    assert!(p.bucket_count() > before, "the table never grew");
    assert_eq!(p.len(), n as usize);
    for i in 0..n {
        assert!(p.contains(&i.to_le_bytes()), "{i} lost");
    }
}

/// The interleaving of two adds of one new id into a full cache, replayed exactly on one thread:
/// the first add inserts its entry, the second replaces it, then the first add makes room. The
/// eviction must spare the replacement, the id just added (it expires sooner than the only other
/// entry, so sparing only the first add's own entry would evict it).
#[test]
fn an_add_never_evicts_a_racing_replacement_of_its_id() {
    use crate::raw::{Insert, OnExisting, Order};
    let clock = ManualClock::new();
    let (p, log) = policy(1, &clock);
    assert_eq!(p.insert(sess(9, Some(400)), false), Ok(Added::Inserted));
    let guard = p.table.pin();
    let replace = OnExisting::Replace {
        refresh_rank: false,
    };
    let order = Order { rank: 1, seq: 10 };
    // The first add's insert, then (before it makes room) the second add's replacement.
    let Insert::New(fresh) = p.table.insert(sess(1, Some(1)), order, replace, &guard) else {
        panic!("a new id inserts");
    };
    p.counters.count_in(p.counters.local());
    let order = Order { rank: 1, seq: 11 };
    let Insert::Replaced(first) = p.table.insert(sess(1, Some(1)), order, replace, &guard) else {
        panic!("a different object replaces");
    };
    drop(first);
    // The first add makes room for its one excess.
    let mut removed = super::Removed::new();
    p.make_room(
        p.counters.local(),
        1,
        1,
        false,
        &fresh,
        0,
        true,
        &guard,
        &mut removed,
    );
    let evicted: Vec<Vec<u8>> = removed.list.iter().map(|(s, _)| s.id.clone()).collect();
    assert_eq!(
        evicted,
        vec![9u32.to_le_bytes().to_vec()],
        "the add evicted its own id"
    );
    drop(removed);
    drop(guard);
    assert!(p.contains(&1u32.to_le_bytes()));
    assert_eq!(p.len(), 1);
    drop(log);
}

/// Sustained eviction under churn (fresh ids added, seven in eight removed again) keeps the
/// buckets' loads near the mean and the blocks tight. Victims drawn whatever their bucket's
/// load let the loads wander: this run then ends with buckets of 30 and more entries (and
/// a table a third larger) where the fuller of two buckets keeps every one below 20.
#[test]
fn sustained_eviction_keeps_buckets_even_and_tight() {
    let clock = ManualClock::new();
    let settings = Settings {
        capacity: 5120,
        timeout: Duration::from_secs(300),
        mode: CacheMode::SERVER,
    };
    let p: Policy<Sess> = Policy::new(
        settings,
        crate::clock::TimeSource::of(clock.clone()),
        None,
        32,
        Some(9),
    );
    for n in 0..1_600_000u32 {
        p.insert(sess(n, None), false).unwrap();
        if n % 8 != 7 {
            assert!(p.remove(&n.to_le_bytes()));
        }
    }
    p.check_invariants();
    let guard = p.table.pin();
    let shapes = p.table.bucket_shapes(&guard);
    let live: usize = shapes.iter().map(|s| s.0).sum();
    let slots: usize = shapes.iter().map(|s| s.1).sum();
    let fullest = shapes.iter().map(|s| s.0).max().unwrap();
    let empty = shapes.iter().filter(|s| s.0 == 0).count();
    assert_eq!(live, 5120, "the last add was kept, into a full cache");
    assert!(
        fullest < 20,
        "a bucket of {fullest} entries ({} buckets)",
        shapes.len()
    );
    assert!(
        empty * 50 < shapes.len(),
        "{empty} of {} buckets empty",
        shapes.len()
    );
    // A freshly filled table holds about 1.7 slots per entry; churned, at most 10 % more.
    assert!(
        (slots as f64) < 1.9 * live as f64,
        "{slots} slots for {live} entries"
    );
}

/// A thread's removals leave room for its next adds (no write to the shared count); a thread
/// that exits holding room leaves it for an add into a full cache to steal, so the cache still
/// fills to exactly its capacity; and `len()` never counts room as entries.
#[test]
fn room_left_by_removals_is_taken_and_stolen() {
    let clock = ManualClock::new();
    let (p, log) = policy(4, &clock);
    let p = Arc::new(p);
    for n in 1..=4u32 {
        assert_eq!(p.insert(sess(n, None), false), Ok(Added::Inserted));
    }
    // Another thread removes two entries and exits: its stripe holds their places.
    let q = Arc::clone(&p);
    std::thread::spawn(move || {
        assert!(q.remove(&1u32.to_le_bytes()));
        assert!(q.remove(&2u32.to_le_bytes()));
        q.check_invariants();
    })
    .join()
    .unwrap();
    assert_eq!(p.len(), 2, "room is not an entry");
    // This thread has no room of its own and finds the count full: it steals, and evicts
    // nothing until the cache holds four again.
    for n in 5..=6u32 {
        assert_eq!(p.insert(sess(n, None), false), Ok(Added::Inserted));
        p.check_invariants();
    }
    assert_eq!(p.len(), 4);
    assert_eq!(p.stats().cache_full, 0, "an eviction while room was held");
    assert_eq!(p.insert(sess(7, None), false), Ok(Added::Inserted));
    assert_eq!((p.len(), p.stats().cache_full), (4, 1));
    // (Seven evicted three, the oldest.) Removals on this thread, then adds: the room comes
    // back to the same thread.
    for n in [4u32, 5, 6] {
        assert!(p.remove(&n.to_le_bytes()));
    }
    for n in 8..=10u32 {
        assert_eq!(p.insert(sess(n, None), false), Ok(Added::Inserted));
    }
    assert_eq!((p.len(), p.stats().cache_full), (4, 1));
    p.check_invariants();
    drop(log);
}

/// A stripe keeps at most `ROOM_MAX` places; a clear of a large cache gives the rest back, and
/// a shrink counts entries, not places, when it decides how many to evict.
#[test]
fn room_is_bounded_and_a_shrink_counts_entries() {
    use super::counters::ROOM_MAX;
    let clock = ManualClock::new();
    let (p, _log) = policy(200, &clock);
    for n in 0..200u32 {
        assert_eq!(p.insert(sess(n, None), false), Ok(Added::Inserted));
    }
    p.clear();
    p.check_invariants();
    assert_eq!(p.len(), 0);
    assert!(
        p.counters.taken() as isize <= ROOM_MAX,
        "room above the bound kept"
    );
    for n in 0..10u32 {
        assert_eq!(p.insert(sess(n, None), false), Ok(Added::Inserted));
    }
    for n in 0..5u32 {
        assert!(p.remove(&n.to_le_bytes()));
    }
    // Five entries and five places of room: shrinking to three evicts two entries, not seven.
    assert_eq!(p.set_capacity(3), 200);
    assert_eq!(p.insert(sess(100, None), false), Ok(Added::Inserted));
    assert_eq!((p.len(), p.stats().cache_full), (3, 3));
    p.check_invariants();
}
