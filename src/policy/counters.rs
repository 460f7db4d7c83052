//! Statistics and the live-entry count.
//!
//! Statistics are striped: one cache-padded stripe per thread slot, summed on read, so that no
//! single counter is written by every thread on the get path. The number of live entries is one
//! atomic: eviction must know exactly how far over capacity the cache is, or racing inserts each
//! evict for the other's entry too (a capacity-1 cache could end empty), so it reserves each
//! eviction on that count ([`Counters::reserve_eviction`]).

use crossbeam_utils::CachePadded;

use crate::loom::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering::Relaxed};
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
}

impl Stripe {
    fn new(index: usize) -> Self {
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
        }
    }

    #[inline]
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}

pub(crate) struct Counters {
    stripes: Box<[CachePadded<Stripe>]>,
    /// Live entries, less the evictions reserved and not yet done. Briefly negative when a
    /// removal's decrement overtakes the insert's increment.
    live: CachePadded<AtomicIsize>,
}

impl Counters {
    pub(crate) fn new() -> Self {
        // Loom: one stripe keeps the models small.
        #[cfg(session_cache_loom)]
        let n = 1;
        // Four stripes per core: threads that share a stripe still only contend on it when
        // they run at the same moment.
        #[cfg(not(session_cache_loom))]
        let n = std::thread::available_parallelism()
            .map_or(4, |p| p.get() * 4)
            .clamp(4, 256)
            .next_power_of_two();
        Counters {
            stripes: (0..n).map(|i| CachePadded::new(Stripe::new(i))).collect(),
            live: CachePadded::new(AtomicIsize::new(0)),
        }
    }

    /// The stripe of the calling thread.
    #[inline]
    pub(crate) fn local(&self) -> &Stripe {
        &self.stripes[thread_index() & (self.stripes.len() - 1)]
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

/// A small number unique to the calling thread, handed out in order of first use.
#[cfg(not(session_cache_loom))]
fn thread_index() -> usize {
    // Relaxed: only uniqueness matters, and `fetch_add` gives that.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    crate::loom::thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed);
    }
    INDEX.with(|i| *i)
}

#[cfg(session_cache_loom)]
fn thread_index() -> usize {
    0
}
