//! Statistics and the live-entry count.
//!
//! Statistics are striped: one cache-padded stripe per thread slot, summed on read, so that no
//! single counter is written by every thread on the get path. A thread that holds one of the
//! process's first thread slots (see [`thread_slot`]) owns the stripe of that number outright and
//! counts with a plain load and store, no locked instruction; threads beyond the stripes share
//! one last stripe, counted with atomic read-modify-writes. The number of live entries is one
//! atomic: eviction must know exactly how far over capacity the cache is, or racing inserts each
//! evict for the other's entry too (a capacity-1 cache could end empty), so it reserves each
//! eviction on that count ([`Counters::reserve_eviction`]).

use crossbeam_utils::CachePadded;

use crate::loom::sync::atomic::{
    AtomicIsize, AtomicU64, AtomicUsize,
    Ordering::{AcqRel, Relaxed},
};
// The thread slots' orderings (loom builds have one shared stripe and no slots).
#[cfg(not(session_cache_loom))]
use crate::loom::sync::atomic::Ordering::{Acquire, Release};
use crate::Stats;

/// One thread slot's counters.
///
/// All `Relaxed`: each is an independent tally with no data published through it. Sums read
/// while other threads write may be momentarily off by the operations in flight.
pub(crate) struct Stripe {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) cache_full: AtomicU64,
    pub(crate) cb_hits: AtomicU64,
    pub(crate) inserts: AtomicU64,
    pub(crate) replacements: AtomicU64,
    pub(crate) removals: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) cleared: AtomicU64,
    /// Insertion order within this stripe: the eviction tie-break.
    pub(crate) seq: AtomicU64,
    /// Where this stripe's eviction and sweeping hand points next (a bucket index).
    pub(crate) hand: AtomicUsize,
    /// Whether several threads may write this stripe at once (the overflow stripe, or every
    /// stripe in loom models), so that counts need read-modify-writes.
    shared: bool,
}

impl Stripe {
    fn new(index: usize, shared: bool) -> Self {
        Stripe {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            cache_full: AtomicU64::new(0),
            cb_hits: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            replacements: AtomicU64::new(0),
            removals: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            cleared: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            // Spread the hands so threads sample different buckets.
            hand: AtomicUsize::new(index.wrapping_mul(0x9E37_79B9)),
            shared,
        }
    }

    /// Adds one to `counter`, a field of this stripe.
    #[inline]
    pub(crate) fn bump(&self, counter: &AtomicU64) {
        self.next(counter);
    }

    /// Adds one to `counter`, a field of this stripe; returns its value before.
    #[inline]
    pub(crate) fn next(&self, counter: &AtomicU64) -> u64 {
        if self.shared {
            counter.fetch_add(1, Relaxed)
        } else {
            // Relaxed load and store: this thread is the stripe's only writer (it holds the
            // stripe's thread slot; a previous holder's writes happen-before through the slot
            // bitmap, see `thread_slot`), so nothing can come between the two.
            let n = counter.load(Relaxed);
            counter.store(n.wrapping_add(1), Relaxed);
            n
        }
    }
}

pub(crate) struct Counters {
    stripes: Box<[CachePadded<Stripe>]>,
    /// Live entries, less the evictions reserved and not yet done. Briefly negative when a
    /// removal's decrement overtakes the insert's increment.
    live: CachePadded<AtomicIsize>,
    /// Loom builds: whether an insert into an exactly full cache stays uncounted (as in every
    /// other build) instead of counting in and reserving its eviction. Off by default (it
    /// doubles the scheduling points of every insert); the models of the in-place path turn
    /// it on. A std atomic: setting it is not part of any race a model explores.
    #[cfg(session_cache_loom)]
    in_place: std::sync::atomic::AtomicBool,
}

impl Counters {
    pub(crate) fn new() -> Self {
        // Loom: one (shared) stripe keeps the models small.
        #[cfg(session_cache_loom)]
        let owned = 0;
        // Four stripes per core: the first threads of the process own one each.
        #[cfg(not(session_cache_loom))]
        let owned = std::thread::available_parallelism()
            .map_or(4, |p| p.get() * 4)
            .clamp(4, MAX_SLOTS);
        Counters {
            stripes: (0..=owned)
                .map(|i| CachePadded::new(Stripe::new(i, i == owned)))
                .collect(),
            live: CachePadded::new(AtomicIsize::new(0)),
            #[cfg(session_cache_loom)]
            in_place: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Loom builds: inserts into an exactly full cache stay uncounted from now on.
    #[cfg(session_cache_loom)]
    pub(crate) fn count_in_place(&self) {
        self.in_place
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The stripe of the calling thread: its own, or the shared last one.
    #[inline]
    pub(crate) fn local(&self) -> &Stripe {
        let last = self.stripes.len() - 1;
        &self.stripes[thread_slot().min(last)]
    }

    /// Live entries, never below zero.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        // Relaxed: a count; the entries themselves are published by the table's CASes.
        self.live.load(Relaxed).max(0) as usize
    }

    /// Counts an entry in (`1`) or out (`-1`); returns the count before.
    #[inline]
    pub(crate) fn add_live(&self, delta: isize) -> isize {
        // Relaxed: as in `len`; every update is an RMW, so none is lost, and each sees the
        // count just before it in one total order.
        self.live.fetch_add(delta, Relaxed)
    }

    /// Counts an insert in, unless the cache holds exactly `capacity` entries (`capacity` not
    /// 0): then the count stays, and the inserting thread must evict one entry, whose place in
    /// the count its own takes (or count itself in with [`count_in`](Self::count_in) if it
    /// cannot). Returns the count before, and whether the insert was counted. A full cache
    /// thus takes no write to the shared count on an evicting insert.
    #[inline]
    pub(crate) fn add_live_unless_full(&self, capacity: usize) -> (isize, bool) {
        // Loom builds count in (the insert then reserves its eviction as after a shrink)
        // unless a model asks for this path: the load before the CAS doubled the scheduling
        // points of every insert in the models, which check the counting rules through the
        // reserving path. The in-place models, the fuzz and the concurrent suites check this
        // path.
        #[cfg(session_cache_loom)]
        if !self.in_place.load(std::sync::atomic::Ordering::SeqCst) {
            return (self.count_in(), true);
        }
        let full = as_count(capacity);
        // AcqRel on success, as in `count_in`; Relaxed on failure: the load that finds the
        // cache full publishes nothing, and the eviction that follows reads the table itself.
        match self.live.fetch_update(AcqRel, Relaxed, |n| {
            (capacity == 0 || n != full).then_some(n + 1)
        }) {
            Ok(before) => (before, true),
            Err(full) => (full, false),
        }
    }

    /// Counts an inserted entry in; returns the count before. An insert that finds the count
    /// over its capacity evicts the excess, so it must then see the entries of the inserts it
    /// counted after.
    #[inline]
    pub(crate) fn count_in(&self) -> isize {
        // AcqRel: Release publishes this insert's entry (linked before it is counted) to the
        // insert that counts after it, and Acquire, pairing with that Release, makes the
        // entries counted before this one visible to the eviction that may follow.
        self.live.fetch_add(1, AcqRel)
    }

    /// Takes one entry off the count if the cache is over `capacity`: the caller must then evict
    /// one entry (without counting it out again) or give the reservation back with
    /// `add_live(1)`. False when the cache is within capacity (someone else made room).
    pub(crate) fn reserve_eviction(&self, capacity: usize) -> bool {
        // Relaxed: the CAS reads the latest count in its modification order, which is all the
        // reservation needs.
        let mut n = self.live.load(Relaxed);
        loop {
            if n <= capacity as isize {
                return false;
            }
            match self.live.compare_exchange_weak(n, n - 1, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(current) => n = current,
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let sum = |f: fn(&Stripe) -> &AtomicU64| -> u64 {
            self.stripes.iter().map(|s| f(s).load(Relaxed)).sum()
        };
        Stats {
            entries: self.len(),
            hits: sum(|s| &s.hits),
            misses: sum(|s| &s.misses),
            timeouts: sum(|s| &s.timeouts),
            cache_full: sum(|s| &s.cache_full),
            cb_hits: sum(|s| &s.cb_hits),
            inserts: sum(|s| &s.inserts),
            replacements: sum(|s| &s.replacements),
            removals: sum(|s| &s.removals),
            expired: sum(|s| &s.expired),
            cleared: sum(|s| &s.cleared),
        }
    }
}

/// Thread slots the process hands out (bits of [`SLOTS`]); threads beyond them share a stripe.
#[cfg(not(session_cache_loom))]
const MAX_SLOTS: usize = 256;

/// Which thread slots are held: bit `i` of word `i / 64`.
#[cfg(not(session_cache_loom))]
static SLOTS: [AtomicU64; MAX_SLOTS / 64] = [const { AtomicU64::new(0) }; MAX_SLOTS / 64];

/// A thread's slot, given back when the thread exits.
#[cfg(not(session_cache_loom))]
struct Slot(usize);

#[cfg(not(session_cache_loom))]
impl Slot {
    /// The lowest free slot, or `MAX_SLOTS` (the shared stripe) when all are held.
    fn take() -> Slot {
        for (w, word) in SLOTS.iter().enumerate() {
            // Acquire (the load and the CAS): the slot's previous holder released it with a
            // `Release` `fetch_and`, so its plain stores to the stripes happen-before ours.
            let mut bits = word.load(Acquire);
            while bits != u64::MAX {
                let bit = (!bits).trailing_zeros() as usize;
                match word.compare_exchange_weak(bits, bits | 1 << bit, Acquire, Acquire) {
                    Ok(_) => return Slot(w * 64 + bit),
                    Err(now) => bits = now,
                }
            }
        }
        Slot(MAX_SLOTS)
    }
}

#[cfg(not(session_cache_loom))]
impl Drop for Slot {
    fn drop(&mut self) {
        // Anything this thread still counts while it exits goes to the shared stripe.
        CACHED.with(|c| c.set(MAX_SLOTS));
        if self.0 < MAX_SLOTS {
            // Release: pairs with the `Acquire` in `take` of the next holder.
            SLOTS[self.0 / 64].fetch_and(!(1 << (self.0 % 64)), Release);
        }
    }
}

/// No slot asked for yet.
#[cfg(not(session_cache_loom))]
const UNSET: usize = usize::MAX;

// std's `thread_local!` directly: this is not built for loom. `CACHED` has a `const`
// initialiser and no destructor, so reading it is a plain thread-local load on every
// operation; `SLOT` owns the slot and gives it back when the thread exits.
#[cfg(not(session_cache_loom))]
std::thread_local! {
    static CACHED: core::cell::Cell<usize> = const { core::cell::Cell::new(UNSET) };
    static SLOT: Slot = Slot::take();
}

/// The calling thread's slot: the lowest free one when it first asks, held until it exits.
/// While it holds slot `i`, no other thread does, so stripe `i` of every cache has one writer.
#[cfg(not(session_cache_loom))]
#[inline(always)]
fn thread_slot() -> usize {
    let slot = CACHED.with(core::cell::Cell::get);
    if slot != UNSET {
        return slot;
    }
    first_slot()
}

#[cfg(not(session_cache_loom))]
#[cold]
fn first_slot() -> usize {
    // A thread that is exiting (its slot already given back) counts on the shared stripe.
    let slot = SLOT.try_with(|s| s.0).unwrap_or(MAX_SLOTS);
    CACHED.with(|c| c.set(slot));
    slot
}

#[cfg(session_cache_loom)]
fn thread_slot() -> usize {
    usize::MAX
}

/// `capacity` as a value of the live count (which no real cache reaches `isize::MAX` of).
#[inline]
fn as_count(capacity: usize) -> isize {
    capacity.min(isize::MAX as usize) as isize
}

/// How far a live count of `count` is over `capacity`: the entries the insert that made it so
/// has to evict.
#[inline]
pub(crate) fn excess_over(count: isize, capacity: usize) -> usize {
    count.saturating_sub(as_count(capacity)).max(0) as usize
}
