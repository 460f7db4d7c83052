//! Concurrent operations: racing add / remove / take / get on a small id set with a tiny
//! capacity, then invariants checked at rest. Drop-counting sessions prove that every `Arc` the
//! cache took is released exactly once.
//!
//! The default runs take a few seconds; `cargo test --release --test concurrent_ops -- --ignored`
//! runs the long versions.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use session_cache::{SessionCache, Stats};
use testkit::{id, Tracker};

type Cache = SessionCache<testkit::TestSession>;

fn hammer(threads: usize, ids: u64, capacity: usize, run_for: Duration) {
    let tracker = Tracker::new();
    // usize::MAX stands for "unbounded" (capacity 0) in these runs.
    let bounded = capacity != usize::MAX;
    let cache = Arc::new(
        Cache::builder()
            .capacity(if bounded { capacity } else { 0 })
            .build(),
    );
    let ops = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let cache = &cache;
            let tracker = &tracker;
            let ops = &ops;
            scope.spawn(move || {
                let mut rng = testkit::Rng::new(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                let mut n = 0;
                while start.elapsed() < run_for {
                    for _ in 0..256 {
                        let key = id(rng.next_u64() % ids);
                        match rng.next_u64() % 8 {
                            0..=2 => {
                                cache.add(tracker.session(&key));
                            }
                            3 => {
                                // identical re-add of whatever is cached
                                if let Some(s) = cache.get(&key) {
                                    cache.add(s);
                                }
                            }
                            4 => {
                                cache.remove(&tracker.session(&key));
                            }
                            5 => {
                                if let Some(s) = cache.take(&key) {
                                    assert_eq!(s.id, key);
                                }
                            }
                            _ => {
                                if let Some(s) = cache.get(&key) {
                                    assert_eq!(s.id, key, "a lookup returned another id");
                                }
                            }
                        }
                        n += 1;
                    }
                }
                ops.fetch_add(n, SeqCst);
            });
        }
    });
    // At rest.
    let len = cache.len();
    let found = (0..ids).filter(|&i| cache.contains(&id(i))).count();
    assert_eq!(len, found, "len() must equal what lookups find");
    assert!(len <= capacity, "len {len} > capacity {capacity}");
    if !bounded {
        assert!(cache.bucket_count() > 256, "the table should have grown");
    }
    let st: Stats = cache.stats();
    assert_eq!(
        st.inserts - st.removals - st.cache_full - st.expired - st.cleared,
        len as u64,
        "every entry that came in either left with a cause or is still here: {st:?}"
    );
    drop(cache);
    tracker.assert_all_released();
    eprintln!(
        "{threads} threads, {ids} ids, capacity {capacity}: {} ops in {:?}, {} sessions",
        ops.load(SeqCst),
        start.elapsed(),
        tracker.created()
    );
}

#[test]
fn four_threads_tiny_capacity() {
    hammer(4, 16, 4, Duration::from_secs(2));
}

#[test]
fn four_threads_one_slot() {
    hammer(4, 4, 1, Duration::from_secs(1));
}

#[test]
fn three_threads_many_ids() {
    hammer(3, 4096, 512, Duration::from_secs(1));
}

#[test]
fn four_threads_growth_racing_writers() {
    // Unbounded: the bucket array doubles several times while all threads write.
    hammer(4, 200_000, usize::MAX, Duration::from_secs(2));
}

#[test]
#[ignore = "long: run with --ignored"]
fn long_four_threads_tiny_capacity() {
    hammer(4, 16, 4, Duration::from_secs(30));
}

#[test]
#[ignore = "long: run with --ignored"]
fn long_eight_threads_mid_capacity() {
    hammer(8, 1024, 100, Duration::from_secs(30));
}

/// Of racing removes and takes of one entry, exactly one wins; thousands of rounds.
fn exactly_once(rounds: usize) {
    const RACERS: usize = 4;
    let tracker = Tracker::new();
    let cache = Cache::builder().capacity(16).build();
    let barrier = Barrier::new(RACERS);
    let wins = AtomicUsize::new(0);
    let taken = AtomicUsize::new(0);
    let round_wins: Vec<AtomicUsize> = (0..rounds).map(|_| AtomicUsize::new(0)).collect();
    std::thread::scope(|scope| {
        for r in 0..RACERS {
            let (cache, barrier, tracker, wins, taken, round_wins) =
                (&cache, &barrier, &tracker, &wins, &taken, &round_wins);
            scope.spawn(move || {
                for (round, round_won) in round_wins.iter().enumerate() {
                    let key = id(round as u64);
                    if r == 0 {
                        assert!(cache.add(tracker.session(&key)));
                    }
                    barrier.wait();
                    let won = if r % 2 == 0 {
                        cache.take(&key).is_some()
                    } else {
                        cache.remove(&tracker.session(&key))
                    };
                    if won {
                        wins.fetch_add(1, SeqCst);
                        round_won.fetch_add(1, SeqCst);
                        if r % 2 == 0 {
                            taken.fetch_add(1, SeqCst);
                        }
                    }
                    barrier.wait();
                }
            });
        }
    });
    for (round, w) in round_wins.iter().enumerate() {
        assert_eq!(w.load(SeqCst), 1, "round {round}: winners");
    }
    assert_eq!(wins.load(SeqCst), rounds);
    assert_eq!(cache.len(), 0);
    let st = cache.stats();
    assert_eq!(st.removals as usize, rounds);
    assert_eq!(st.hits as usize, taken.load(SeqCst));
    drop(cache);
    tracker.assert_all_released();
}

#[test]
fn racing_remove_and_take_exactly_one_wins() {
    exactly_once(3000);
}

#[test]
#[ignore = "long: run with --ignored"]
fn long_racing_remove_and_take_exactly_one_wins() {
    exactly_once(100_000);
}

/// Same-id adds of different objects from every thread: one entry survives, all others are
/// released; the survivor is one of the objects added.
#[test]
fn racing_same_id_adds_keep_one_entry() {
    let tracker = Tracker::new();
    let cache = Cache::builder().capacity(8).build();
    let barrier = Barrier::new(4);
    for round in 0..2000u64 {
        let key = id(round);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let (cache, barrier, tracker, key) = (&cache, &barrier, &tracker, &key);
                scope.spawn(move || {
                    let s = tracker.session(key);
                    barrier.wait();
                    assert!(
                        cache.add(s),
                        "a different object always inserts or replaces"
                    );
                });
            }
        });
        assert!(cache.contains(&key));
        assert!(cache.len() <= 8);
    }
    let st = cache.stats();
    assert_eq!(st.inserts + st.replacements, 8000);
    assert_eq!(st.inserts, 2000, "exactly one insert per id");
    drop(cache);
    tracker.assert_all_released();
}

/// Racing `get_or_add`s of one id all get the same session, whichever thread inserted it.
#[test]
fn racing_get_or_add_agree() {
    let tracker = Tracker::new();
    let cache = Cache::builder().capacity(64).build();
    let barrier = Barrier::new(4);
    for round in 0..2000u64 {
        let key = id(round);
        let serials: Vec<u32> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let (cache, barrier, tracker, key) = (&cache, &barrier, &tracker, &key);
                    scope.spawn(move || {
                        let s = tracker.session(key);
                        barrier.wait();
                        cache.get_or_add(s).unwrap().serial
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(
            serials.iter().all(|&s| s == serials[0]),
            "round {round}: {serials:?}"
        );
        assert_eq!(cache.get(&key).unwrap().serial, serials[0]);
    }
    assert_eq!(cache.stats().inserts, 2000);
    assert_eq!(cache.stats().replacements, 0);
    drop(cache);
    tracker.assert_all_released();
}

/// An add into a full cache racing a remove of the entry it would evict and another add:
/// whichever way they interleave, the cache rests within its capacity. (An add that found the
/// cache full and then nothing to evict counted itself in without looking again, while the
/// racing add, which had found room, evicted nothing: two entries in a cache of one.)
fn full_add_races_remove_and_add(rounds: u64) {
    let tracker = Tracker::new();
    let cache = Cache::builder().capacity(1).build();
    let barrier = Barrier::new(2);
    // The first round found over capacity (both threads stop there, neither left waiting).
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for t in 0..2u64 {
            let (cache, barrier, tracker, failed) = (&cache, &barrier, &tracker, &failed);
            scope.spawn(move || {
                for round in 0..rounds {
                    let victim = tracker.session(&id(3 * round));
                    if t == 0 {
                        cache.add(Arc::clone(&victim));
                    }
                    barrier.wait();
                    if t == 0 {
                        cache.add(tracker.session(&id(3 * round + 1)));
                    } else {
                        // Stagger the racing pair against the full add.
                        for _ in 0..round % 97 {
                            std::hint::spin_loop();
                        }
                        cache.remove(&victim);
                        cache.add(tracker.session(&id(3 * round + 2)));
                    }
                    barrier.wait();
                    if t == 0 {
                        let held = (1..3)
                            .filter(|k| cache.contains(&id(3 * round + k)))
                            .count();
                        if cache.len() > 1 || held > 1 {
                            *failed.lock().unwrap() = Some((round, cache.len(), held));
                        }
                        cache.clear();
                    }
                    barrier.wait();
                    if failed.lock().unwrap().is_some() {
                        break;
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap();
    assert!(
        failed.is_none(),
        "(round, len, racing adds cached) over a capacity of 1: {failed:?}"
    );
    drop(cache);
    tracker.assert_all_released();
}

#[test]
fn full_add_racing_remove_and_add_stays_within_capacity() {
    full_add_races_remove_and_add(100_000);
}

#[test]
#[ignore = "long: run with --ignored"]
fn long_full_add_racing_remove_and_add_stays_within_capacity() {
    full_add_races_remove_and_add(1_000_000);
}
