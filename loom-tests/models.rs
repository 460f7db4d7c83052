//! One or more models per hazard (docs/design.md, "Hazards"). A `// mutant:` line above a model
//! names the fault (`--cfg session_cache_mutant="..."`) it must catch.

use crate::{model, TestSession, World};
use loom::sync::atomic::AtomicBool;
use loom::thread;
use session_cache::{Added, RemovalCause, SessionCache};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

fn is(c: &[RemovalCause], want: &[RemovalCause]) -> bool {
    c.len() == want.len()
        && c.iter()
            .zip(want)
            .all(|(a, b)| std::mem::discriminant(a) == std::mem::discriminant(b))
}

fn unwrap<T>(a: Arc<T>) -> T {
    Arc::try_unwrap(a).ok().expect("threads joined")
}

// ---- 1. same-id adds of different objects ---------------------------------------------------

fn same_id_adds(n: usize) {
    let mut w = World::default();
    let cache = Arc::new(w.cache(4));
    // Another id first, so the adds race to claim a slot of an existing block.
    let other = w.sess(9, None);
    assert!(cache.add(other));
    let objs: Vec<_> = (0..n).map(|_| w.sess(1, None)).collect();
    let hs: Vec<_> = objs[1..]
        .iter()
        .map(|o| {
            let (c, o) = (cache.clone(), o.clone());
            thread::spawn(move || c.try_add(o).unwrap())
        })
        .collect();
    let mut rs = vec![cache.try_add(objs[0].clone()).unwrap()];
    rs.extend(hs.into_iter().map(|h| h.join().unwrap()));
    assert_eq!(
        rs.iter().filter(|r| **r == Added::Inserted).count(),
        1,
        "{rs:?}"
    );
    assert_eq!(
        rs.iter().filter(|r| **r == Added::Replaced).count(),
        n - 1,
        "{rs:?}"
    );
    assert_eq!(cache.len(), 2, "the id is cached once");
    let fin = cache.get_with(&[1], |s| s.serial).expect("cached");
    for o in &objs {
        let c = w.causes(o.serial);
        if o.serial == fin {
            assert!(c.is_empty(), "the cached object left: {c:?}");
        } else {
            assert!(is(&c, &[RemovalCause::Replaced]), "#{} {c:?}", o.serial);
        }
    }
    drop(objs);
    w.finish(unwrap(cache));
}

// mutant: claim_store: claiming an empty slot is a load + CAS on whatever was loaded, i.e. a
//   store that can overwrite another thread's claim
#[test]
fn t2_same_id_adds_of_different_objects() {
    model("t2_same_id_adds_of_different_objects", || same_id_adds(2));
}

#[test]
fn t3_same_id_adds_of_different_objects() {
    model("t3_same_id_adds_of_different_objects", || same_id_adds(3));
}

// ---- 2. identical re-add racing a replace ---------------------------------------------------

fn identical_readd_vs_replace(reader: bool) {
    let mut w = World::default();
    let cache = Arc::new(w.cache(4));
    let a = w.sess(1, None);
    let b = w.sess(1, None);
    assert!(cache.add(a.clone()));
    let t2 = {
        let (c, b) = (cache.clone(), b.clone());
        thread::spawn(move || c.try_add(b).unwrap())
    };
    let t3 = reader.then(|| {
        let c = cache.clone();
        thread::spawn(move || {
            let s = c.get(&[1]).expect("always cached");
            assert!(!s.dead.load(SeqCst), "read a released session");
            s.serial
        })
    });
    let r1 = cache.try_add(a.clone()).unwrap();
    let r2 = t2.join().unwrap();
    if let Some(t3) = t3 {
        let seen = t3.join().unwrap();
        assert!(seen == a.serial || seen == b.serial);
    }
    let fin = cache.get_with(&[1], |s| s.serial).unwrap();
    match (r1, r2) {
        // The re-add first: a no-op; then b replaces a.
        (Added::AlreadyCached, Added::Replaced) => {
            assert_eq!(fin, b.serial);
            assert!(is(&w.causes(a.serial), &[RemovalCause::Replaced]));
            assert!(w.causes(b.serial).is_empty());
        }
        // b first; then a (no longer cached) replaces b.
        (Added::Replaced, Added::Replaced) => {
            assert_eq!(fin, a.serial);
            assert!(is(&w.causes(a.serial), &[RemovalCause::Replaced]));
            assert!(is(&w.causes(b.serial), &[RemovalCause::Replaced]));
        }
        other => panic!("impossible outcome {other:?}"),
    }
    assert_eq!(cache.len(), 1);
    drop((a, b));
    w.finish(unwrap(cache));
}

// mutant: identical_rc: an identical re-add keeps the caller's strong count (a leak)
#[test]
fn t2_identical_readd_vs_replace() {
    model("t2_identical_readd_vs_replace", || {
        identical_readd_vs_replace(false)
    });
}

#[test]
fn t3_identical_readd_vs_replace_vs_get() {
    model("t3_identical_readd_vs_replace_vs_get", || {
        identical_readd_vs_replace(true)
    });
}

// ---- 3. add vs remove -----------------------------------------------------------------------

fn add_vs_remove(prefill: bool) {
    let mut w = World::default();
    let cache = Arc::new(w.cache(4));
    let old = w.sess(1, None);
    if prefill {
        assert!(cache.add(old.clone()));
    }
    let t2 = {
        let c = cache.clone();
        thread::spawn(move || c.remove_id(&[1]))
    };
    // Made after the spawn: the remover can only see it through the add's publishing CAS.
    let a = w.sess(1, None);
    let added = cache.try_add(a.clone()).unwrap();
    let removed = t2.join().unwrap();
    let fin = cache.get_with(&[1], |s| s.serial);
    match (prefill, added, removed) {
        // remove first (found nothing), then a inserted.
        (false, Added::Inserted, false) => assert_eq!(fin, Some(a.serial)),
        // a inserted, then removed.
        (false, Added::Inserted, true) => {
            assert_eq!(fin, None);
            assert!(is(&w.causes(a.serial), &[RemovalCause::Removed]));
        }
        // old removed, then a inserted.
        (true, Added::Inserted, true) => {
            assert_eq!(fin, Some(a.serial));
            assert!(is(&w.causes(old.serial), &[RemovalCause::Removed]));
        }
        // a replaced old, then a removed.
        (true, Added::Replaced, true) => {
            assert_eq!(fin, None);
            assert!(is(&w.causes(old.serial), &[RemovalCause::Replaced]));
            assert!(is(&w.causes(a.serial), &[RemovalCause::Removed]));
        }
        other => panic!("impossible outcome {other:?}"),
    }
    assert_eq!(cache.len(), fin.is_some() as usize);
    drop((a, old));
    w.finish(unwrap(cache));
}

#[test]
fn t2_add_vs_remove() {
    model("t2_add_vs_remove", || add_vs_remove(false));
}

// mutant: relaxed_publish: the CAS that installs a replacing session is `Relaxed`, so a remover
//   reads the session (its id) without happens-before (loom: causality violation)
#[test]
fn t2_replace_vs_remove() {
    model("t2_replace_vs_remove", || add_vs_remove(true));
}

// ---- 4. get vs replace, the reader holding the old Arc --------------------------------------

// mutant: eager_release (epoch): a replaced value's count is released at once instead of
//   deferred, freeing it under a reader
#[test]
fn t2_get_vs_replace_reader_holds_old_arc() {
    model("t2_get_vs_replace_reader_holds_old_arc", || {
        let mut w = World::default();
        let cache = Arc::new(w.cache(4));
        // `a` is not in the World: the cache holds its only reference.
        let a = {
            let mut tmp = World::default();
            tmp.sess(1, None)
        };
        let a_drops = a.drops.clone();
        let b = w.sess(1, None);
        assert!(cache.add(a));
        let reader = {
            let c = cache.clone();
            thread::spawn(move || {
                let got = c.get(&[1]).expect("always cached");
                // If the cache released `a` while we were taking our reference, it is dead.
                assert!(
                    !got.dead.load(SeqCst),
                    "use after release: got a dropped session"
                );
                let serial = got.serial;
                let id = got.id.clone();
                assert_eq!(id, vec![1]);
                (serial, got)
            })
        };
        assert_eq!(cache.try_add(b.clone()).unwrap(), Added::Replaced);
        let (serial, held) = reader.join().unwrap();
        // Still alive while the reader holds it, whichever it got.
        assert!(!held.dead.load(SeqCst));
        assert_eq!(
            a_drops.load(SeqCst),
            0,
            "a dropped while a reader could hold it"
        );
        let held_a = serial != b.serial;
        drop(held);
        assert_eq!(cache.get_with(&[1], |s| s.serial), Some(b.serial));
        drop(b);
        w.finish(unwrap(cache));
        if cfg!(session_cache_graveyard) || held_a {
            // Released exactly once: by the cache (graveyard: at its drop) or by our `held`.
            assert!(a_drops.load(SeqCst) <= 1);
        }
        if cfg!(session_cache_graveyard) {
            assert_eq!(a_drops.load(SeqCst), 1, "a not released exactly once");
        }
    });
}

// ---- 5. remove vs remove vs take: exactly one wins ------------------------------------------

fn remove_race(three: bool) {
    let mut w = World::default();
    let cache = Arc::new(w.cache(4));
    let a = w.sess(1, None);
    let probe = w.sess(1, None);
    assert!(cache.add(a.clone()));
    let t2 = {
        let c = cache.clone();
        thread::spawn(move || c.take(&[1]).map(|s| s.serial))
    };
    let t3 = three.then(|| {
        let (c, p) = (cache.clone(), probe.clone());
        thread::spawn(move || c.remove(&p))
    });
    let r1 = cache.remove_id(&[1]);
    let taken = t2.join().unwrap();
    let r3 = t3.map(|t| t.join().unwrap()).unwrap_or(false);
    let wins = r1 as usize + taken.is_some() as usize + r3 as usize;
    assert_eq!(
        wins, 1,
        "exactly one wins: remove_id {r1}, take {taken:?}, remove {r3}"
    );
    if let Some(t) = taken {
        assert_eq!(t, a.serial);
    }
    assert!(
        is(&w.causes(a.serial), &[RemovalCause::Removed]),
        "{:?}",
        w.causes(a.serial)
    );
    assert!(cache.is_empty());
    assert!(!cache.contains(&[1]));
    drop((a, probe));
    w.finish(unwrap(cache));
}

#[test]
fn t2_remove_vs_take() {
    model("t2_remove_vs_take", || remove_race(false));
}

// mutant: kill_store: removal stores the `DEAD` tag instead of CASing it, so two removers both
//   win
#[test]
fn t3_remove_vs_remove_vs_take() {
    model("t3_remove_vs_remove_vs_take", || remove_race(true));
}

// ---- 6. eviction vs replace -----------------------------------------------------------------

#[test]
fn t2_eviction_vs_replace() {
    model("t2_eviction_vs_replace", || eviction_vs_replace(true));
}

/// The same race, checking only that the fresh replacement is never the victim (so that the
/// `evict_by_key` mutant is told apart from the capacity bug `t2_eviction_vs_replace` shows).
// mutant: evict_by_key: an eviction whose victim was replaced meanwhile removes whatever now
//   holds the key (the fresh, latest-expiring replacement)
#[test]
fn t2_eviction_never_takes_a_fresh_replacement() {
    model("t2_eviction_never_takes_a_fresh_replacement", || {
        eviction_vs_replace(false)
    });
}

fn eviction_vs_replace(check_len: bool) {
    {
        let mut w = World::default();
        let cache = Arc::new(w.cache(2));
        let a = w.sess(1, Some(1)); // expires first: the victim of the next insert
        let d = w.sess(3, Some(400));
        let c_ = w.sess(2, Some(300));
        let b = w.sess(1, Some(500)); // replaces a; expires last: must never be evicted
        assert!(cache.add(a.clone()));
        assert!(cache.add(d.clone()));
        let t2 = {
            let (c, b) = (cache.clone(), b.clone());
            thread::spawn(move || c.try_add(b).unwrap())
        };
        assert_eq!(cache.try_add(c_.clone()).unwrap(), Added::Inserted);
        let rb = t2.join().unwrap();
        assert!(cache.contains(&[1]), "b (latest expiry) was evicted");
        assert!(
            w.causes(b.serial).is_empty(),
            "b left: {:?}",
            w.causes(b.serial)
        );
        if !check_len {
            drop((a, b, c_, d));
            w.finish(unwrap(cache));
            return;
        }
        assert_eq!(cache.len(), 2, "capacity 2, at rest");
        assert_eq!(cache.get_with(&[1], |s| s.serial), Some(b.serial));
        assert!(
            w.causes(b.serial).is_empty(),
            "b left: {:?}",
            w.causes(b.serial)
        );
        match rb {
            // b replaced a (judged by the eviction scan, perhaps): a reported Replaced only.
            Added::Replaced => assert!(is(&w.causes(a.serial), &[RemovalCause::Replaced])),
            // a was evicted first.
            Added::Inserted => assert!(is(&w.causes(a.serial), &[RemovalCause::Evicted])),
            Added::AlreadyCached => panic!("b was never cached before"),
        }
        // Which of c and d goes is a policy choice under concurrency (the evicting thread
        // spares only its own new entry); each left at most once, as an eviction.
        let mut evicted = 0;
        for o in [&a, &c_, &d] {
            let c = w.causes(o.serial);
            assert!(c.len() <= 1, "#{} left twice: {c:?}", o.serial);
            evicted += c
                .iter()
                .filter(|c| matches!(c, RemovalCause::Evicted))
                .count() as u64;
        }
        assert_eq!(cache.stats().cache_full, evicted);
        assert_eq!(
            cache.contains(&[2]) as usize + cache.contains(&[3]) as usize,
            1
        );
        drop((a, b, c_, d));
        w.finish(unwrap(cache));
    }
}

// ---- 7. an add or remove racing a bucket rebuild --------------------------------------------

/// Block [k1, k2 DEAD]: the next new id finds no free slot and rebuilds the bucket.
/// `shipped`: the rebuild freezes as the non-loom builds do (dead slots skipped, each other
/// slot a CAS from the value loaded just before).
fn rebuild_race(third: bool, shipped: bool) {
    let mut w = World::default();
    let cache = Arc::new(w.cache(4));
    if shipped {
        cache.loom_freeze_as_shipped();
    }
    let k1 = w.sess(1, None);
    let k2 = w.sess(2, None);
    let k3 = w.sess(3, None);
    let k4 = w.sess(4, None);
    assert!(cache.add(k1.clone()));
    assert!(cache.add(k2.clone()));
    assert!(cache.remove_id(&[2]));
    let t2 = {
        let c = cache.clone();
        thread::spawn(move || c.remove_id(&[1]))
    };
    let t3 = third.then(|| {
        let (c, k4) = (cache.clone(), k4.clone());
        thread::spawn(move || c.try_add(k4).unwrap())
    });
    assert_eq!(cache.try_add(k3.clone()).unwrap(), Added::Inserted);
    assert!(t2.join().unwrap(), "k1 was cached until removed");
    if let Some(t3) = t3 {
        assert_eq!(t3.join().unwrap(), Added::Inserted);
        assert!(cache.contains(&[4]));
    }
    assert!(
        !cache.contains(&[1]),
        "a completed remove was undone by the rebuild"
    );
    assert!(cache.contains(&[3]), "an insert was lost in the rebuild");
    assert_eq!(cache.len(), 1 + third as usize);
    assert!(is(&w.causes(k1.serial), &[RemovalCause::Removed]));
    drop((k1, k2, k3, k4));
    w.finish(unwrap(cache));
}

// mutant: no_freeze: the rebuild reads the live set without freezing the slots, so a remove
//   completed in the old block is undone in the new one
#[test]
fn t2_add_and_remove_racing_a_rebuild() {
    model("t2_add_and_remove_racing_a_rebuild", || {
        rebuild_race(false, false)
    });
}

// mutant: freeze_trusts_stale_load: when the freezing CAS fails, the rebuild keeps the value it
//   loaded before it, so a remove that completed in between is undone in the new block
#[test]
fn t2_add_and_remove_racing_a_shipped_freeze() {
    model("t2_add_and_remove_racing_a_shipped_freeze", || {
        rebuild_race(false, true)
    });
}

#[test]
fn t3_two_adds_and_a_remove_racing_a_rebuild() {
    model("t3_two_adds_and_a_remove_racing_a_rebuild", || {
        rebuild_race(true, false)
    });
}

// ---- 8. a reader on a frozen block vs a remove completed in the new block -------------------

// mutant: copy_unfrozen: the rebuild gathers the live set from loads made before it freezes the
//   block, so a remove that completed in between is undone in the new block
#[test]
fn t3_reader_on_frozen_block_vs_completed_remove() {
    model("t3_reader_on_frozen_block_vs_completed_remove", || {
        let mut w = World::default();
        let cache = Arc::new(w.cache(4));
        let k1 = w.sess(1, None);
        let k2 = w.sess(2, None);
        let k3 = w.sess(3, None);
        assert!(cache.add(k1.clone()));
        assert!(cache.add(k2.clone()));
        let done = Arc::new(AtomicBool::new(false));
        // Writer: remove k2 (block [k1, k2 DEAD]) and report it done.
        let t2 = {
            let (c, done) = (cache.clone(), done.clone());
            thread::spawn(move || {
                assert!(c.remove_id(&[2]));
                done.store(true, SeqCst);
            })
        };
        // Rebuilder: a new id that needs a fresh block once k2 is dead (or a wider one).
        let t3 = {
            let (c, k3) = (cache.clone(), k3.clone());
            thread::spawn(move || assert_eq!(c.try_add(k3).unwrap(), Added::Inserted))
        };
        // Reader: once the remove has returned, k2 must be gone, whichever block it reads.
        let was_done = done.load(SeqCst);
        let seen = cache.get_with(&[2], |s| s.serial);
        if was_done {
            assert_eq!(
                seen, None,
                "a reader saw an entry removed before it started"
            );
        }
        t2.join().unwrap();
        t3.join().unwrap();
        assert_eq!(cache.get_with(&[2], |s| s.serial), None);
        assert!(cache.contains(&[1]) && cache.contains(&[3]));
        assert_eq!(cache.len(), 2);
        drop((k1, k2, k3));
        w.finish(unwrap(cache));
    });
}

// ---- 9. growth racing writers ---------------------------------------------------------------

/// Block [k1, k2] all live: the next new id rebuilds it into a wider block.
fn growth_race(third: bool) {
    let mut w = World::default();
    let cache = Arc::new(w.cache(4));
    let k: Vec<_> = (1..=4).map(|i| w.sess(i, None)).collect();
    assert!(cache.add(k[0].clone()));
    assert!(cache.add(k[1].clone()));
    let t2 = {
        let (c, k4) = (cache.clone(), k[3].clone());
        thread::spawn(move || c.try_add(k4).unwrap())
    };
    let t3 = third.then(|| {
        let c = cache.clone();
        thread::spawn(move || c.remove_id(&[1]))
    });
    assert_eq!(cache.try_add(k[2].clone()).unwrap(), Added::Inserted);
    assert_eq!(t2.join().unwrap(), Added::Inserted);
    let removed = t3.map(|t| t.join().unwrap());
    if let Some(r) = removed {
        assert!(r, "k1 was cached until removed");
        assert!(
            !cache.contains(&[1]),
            "a completed remove was undone by the growth"
        );
    } else {
        assert!(cache.contains(&[1]));
    }
    for i in 2..=4u8 {
        assert!(cache.contains(&[i]), "k{i} lost in the growth");
    }
    assert_eq!(cache.len(), 4 - removed.is_some() as usize);
    drop(k);
    w.finish(unwrap(cache));
}

#[test]
fn t2_growth_racing_an_add() {
    model("t2_growth_racing_an_add", || growth_race(false));
}

#[test]
fn t3_growth_racing_an_add_and_a_remove() {
    model("t3_growth_racing_an_add_and_a_remove", || growth_race(true));
}

/// Capacity 1: an eviction whose victim is replaced between the scan and the unlink must look
/// again, not give up with the cache over capacity at rest (replacements never evict).
/// Reproduces `fuzz/regressions/concurrent/len-over-capacity-at-rest` deterministically.
#[test]
fn t2_eviction_loses_race_to_replace() {
    model("t2_eviction_loses_race_to_replace", || {
        let mut w = World::default();
        let cache = Arc::new(w.cache(1));
        let a = w.sess(1, None);
        let b = w.sess(1, None);
        let c_ = w.sess(2, None);
        assert!(cache.add(a.clone()));
        let t2 = {
            let (c, b) = (cache.clone(), b.clone());
            thread::spawn(move || c.try_add(b).unwrap())
        };
        assert_eq!(cache.try_add(c_.clone()).unwrap(), Added::Inserted);
        let rb = t2.join().unwrap();
        assert_eq!(cache.len(), 1, "capacity 1, at rest");
        match rb {
            // b replaced a; c's insert then evicted b.
            Added::Replaced => {
                assert!(cache.contains(&[2]));
                assert!(is(&w.causes(a.serial), &[RemovalCause::Replaced]));
                assert!(is(&w.causes(b.serial), &[RemovalCause::Evicted]));
            }
            // c's insert evicted a; b's insert then evicted c.
            Added::Inserted => {
                assert!(cache.contains(&[1]));
                assert!(is(&w.causes(a.serial), &[RemovalCause::Evicted]));
                assert!(is(&w.causes(c_.serial), &[RemovalCause::Evicted]));
            }
            Added::AlreadyCached => panic!("b was never cached before"),
        }
        drop((a, b, c_));
        w.finish(unwrap(cache));
    });
}

/// Capacity 1, full of `v`: an add of a new id (uncounted while it evicts in `v`'s place)
/// races a remove of `v` and an add of a third id. The full add can find nothing to evict
/// (`v` gone, the third id not yet linked) while the third add, counted after the remove, finds
/// room and evicts nothing: the full add then counts itself in over capacity, and must look
/// again and evict, not leave two entries in a cache of one.
// mutant: count_in_blind: a full add that found no victim counts itself in without looking
//   again at what that count says
#[test]
fn tc_full_add_that_finds_no_victim_looks_again() {
    model("tc_full_add_that_finds_no_victim_looks_again", || {
        full_add_races_remove_and_add(false)
    });
}

/// The same race with each thread on a stripe of its own (`loom-tests/rooms.rs`): the remove
/// leaves its place as room in the second thread's stripe, and the third add takes it, never
/// counting in on the live count. The full add that finds nothing to evict must still see that
/// add's entry when it looks again.
// mutant: no_victim_keeps_room: an add that found nothing to evict counts in and looks again
//   without draining the stripes' room, so it need not see an entry whose add took room
#[test]
fn tc_full_add_sees_an_add_that_took_room() {
    model("tc_full_add_sees_an_add_that_took_room", || {
        full_add_races_remove_and_add(true)
    });
}

fn full_add_races_remove_and_add(stripes: bool) {
    let mut w = World::default();
    let cache = Arc::new(w.cache(1));
    cache.loom_count_in_place();
    let v = w.sess(1, None);
    let a = w.sess(2, None);
    let b = w.sess(3, None);
    if stripes {
        SessionCache::<TestSession>::loom_use_stripe(0);
    }
    assert!(cache.add(v.clone()));
    let t2 = {
        let (c, v, b) = (cache.clone(), v.clone(), b.clone());
        thread::spawn(move || {
            if stripes {
                SessionCache::<TestSession>::loom_use_stripe(1);
            }
            c.remove(&v);
            c.try_add(b).unwrap()
        })
    };
    assert_eq!(cache.try_add(a.clone()).unwrap(), Added::Inserted);
    assert_eq!(t2.join().unwrap(), Added::Inserted);
    assert_eq!(cache.len(), 1, "capacity 1, at rest");
    assert!(!cache.contains(&[1]));
    assert!(
        cache.contains(&[2]) != cache.contains(&[3]),
        "exactly one of the racing adds stays"
    );
    drop((v, a, b));
    w.finish(unwrap(cache));
}

// ---- an add never evicts its own id ---------------------------------------------------------

/// Two adds of one new id into a full cache: whichever inserts evicts, and it must spare the
/// id it added even when the other add replaced its entry in between (the replacement expires
/// sooner than the only other entry, so a scan that spared just its own entry would take it).
// mutant: evict_own_id: the eviction scan spares only the entry the add installed, not its id, so
//   a racing replacement of that id can be evicted
#[test]
fn t2_add_never_evicts_its_own_id() {
    model("t2_add_never_evicts_its_own_id", || {
        let mut w = World::default();
        let cache = Arc::new(w.cache(1));
        let y = w.sess(9, Some(400));
        let x1 = w.sess(1, Some(1));
        let x2 = w.sess(1, Some(1));
        assert!(cache.add(y.clone()));
        let t = {
            let (c, x2) = (cache.clone(), x2.clone());
            thread::spawn(move || c.add(x2))
        };
        assert!(cache.add(x1.clone()));
        assert!(t.join().unwrap());
        assert!(cache.contains(&[1]), "an add evicted its own id");
        assert_eq!(cache.len(), 1);
        let st = cache.stats();
        assert_eq!((st.inserts, st.replacements, st.cache_full), (2, 1, 1));
        assert!(is(&w.causes(y.serial), &[RemovalCause::Evicted]));
        drop((y, x1, x2));
        w.finish(unwrap(cache));
    });
}
