//! A release that comes due on another thread runs on the thread that unlinked the session
//! (docs/design.md, "Reclamation and prompt release").
//!
//! The epoch collector runs whatever is due on whichever thread collects. A batch of releases
//! found due on a thread other than the one that gathered it is queued back to its own thread,
//! which runs it a few releases per operation: no call of the other thread pays for it, and the
//! session still goes within a bounded number of the unlinking thread's operations. Here one
//! thread removes sessions and then only reads, while another adds and removes without pause
//! (its flushes collect the first thread's batches); every removed session must be dropped on
//! the first thread. How many reads that took is printed (`ROUNDS_VERBOSE=1`: per round), not
//! bounded: the other thread is pinned most of the time, and when it is preempted while pinned
//! it holds the epoch back (a few milliseconds on a virtual machine, far longer on a loaded
//! one), as it must. The test gives up only after a million reads here and a million
//! operations of the other thread within one round ([`GIVE_UP`]).
//!
//! One `#[test]` in this binary: no other test thread is pinned meanwhile.
#![allow(missing_docs)]

use session_cache::{flush_deferred, Session, SessionCache};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

std::thread_local! {
    /// The thread's id, read without `thread::current()`, which is gone while a thread's
    /// thread-locals are destroyed (an exiting thread runs its last releases then). Each thread
    /// of the test reads it first.
    static ME: ThreadId = std::thread::current().id();
}

/// A session that records the thread its last reference was dropped on (`None`: a thread
/// that was exiting).
struct Tracked {
    id: [u8; 8],
    dropped_on: Arc<Mutex<Vec<Option<ThreadId>>>>,
}

impl Session for Tracked {
    fn id(&self) -> &[u8] {
        &self.id
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let on = ME.try_with(|id| *id).ok();
        self.dropped_on.lock().unwrap().push(on);
    }
}

fn session(n: u64, dropped_on: &Arc<Mutex<Vec<Option<ThreadId>>>>) -> Arc<Tracked> {
    Arc::new(Tracked {
        id: n.to_le_bytes(),
        dropped_on: dropped_on.clone(),
    })
}

/// Removed sessions of the unlinking thread, per round.
const REMOVED: u64 = 200;
const ROUNDS: usize = 20;
/// Give up (and fail) once the unlinking thread made this many reads *and* the other thread
/// this many operations since the round began. Each operation of the other thread unpins and
/// pins again, so the epoch cannot be held back that long; counting the other thread's progress,
/// not time, keeps the test meaningful on a loaded machine, where a preempted thread that is
/// pinned stalls every release for as long as it waits for a core.
const GIVE_UP: u64 = 1_000_000;

#[test]
fn releases_found_due_elsewhere_run_on_their_own_thread() {
    let cache: Arc<SessionCache<Tracked>> =
        Arc::new(SessionCache::builder().capacity(4096).build());
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let others = Arc::new(Mutex::new(Vec::new()));
    // The other thread: adds and removes fresh ids without pause, so it retires, hands off and
    // flushes all the time, and collects whatever is due, the first thread's batches included.
    let churn = {
        let (cache, stop, others) = (cache.clone(), stop.clone(), others.clone());
        let progress = progress.clone();
        std::thread::spawn(move || {
            ME.with(|_| ());
            let mut n = 1u64 << 40;
            while !stop.load(SeqCst) {
                let s = session(n, &others);
                cache.add(s.clone());
                cache.remove(&*s);
                n += 1;
                progress.fetch_add(1, SeqCst);
            }
            flush_deferred();
            n - (1u64 << 40)
        })
    };
    // Each round runs while the other thread churns: wait for it to get going again.
    let churning = |since: u64| {
        while progress.load(SeqCst) < since + 1000 {
            std::thread::yield_now();
        }
    };
    let me = ME.with(|id| Some(*id));
    let mut worst = 0;
    for round in 0..ROUNDS {
        churning(progress.load(SeqCst));
        let dropped_on = Arc::new(Mutex::new(Vec::new()));
        let base = round as u64 * REMOVED;
        for n in base..base + REMOVED {
            assert!(cache.add(session(n, &dropped_on)));
        }
        for n in base..base + REMOVED {
            assert!(cache.remove_id(&n.to_le_bytes()));
        }
        // Only reads from here: the releases must still come, on this thread.
        let mut reads = 0u64;
        let other_at_start = progress.load(SeqCst);
        loop {
            let dropped = dropped_on.lock().unwrap().len();
            if dropped == REMOVED as usize {
                break;
            }
            let other = progress.load(SeqCst) - other_at_start;
            assert!(
                reads < GIVE_UP || other < GIVE_UP,
                "round {round}: {dropped} of {REMOVED} removed sessions dropped after {reads} \
                 reads here and {other} operations of the other thread"
            );
            let _ = cache.get(&u64::MAX.to_le_bytes());
            reads += 1;
        }
        worst = worst.max(reads);
        if std::env::var_os("ROUNDS_VERBOSE").is_some() {
            eprintln!("round {round}: {reads} reads");
        }
        let elsewhere = dropped_on
            .lock()
            .unwrap()
            .iter()
            .filter(|t| **t != me)
            .count();
        assert_eq!(
            elsewhere, 0,
            "round {round}: {elsewhere} of {REMOVED} sessions this thread removed were dropped \
             on another thread"
        );
    }
    stop.store(true, SeqCst);
    let churned = churn.join().unwrap();
    eprintln!(
        "worst: {worst} reads until every removed session of a round was dropped; {churned} adds \
         and removes on the other thread, {} of its sessions dropped",
        others.lock().unwrap().len()
    );
    assert!(
        !others.lock().unwrap().is_empty(),
        "the other thread's sessions are dropped too"
    );
}
