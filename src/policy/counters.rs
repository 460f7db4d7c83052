//! Striped statistics: one cache-padded stripe per thread slot, summed on read, so that no
//! single counter is written by every thread on the add or get path.

use crossbeam_utils::CachePadded;

use crate::loom::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering::Relaxed};
use crate::Stats;

/// One thread slot's counters.
///
/// All `Relaxed`: each is an independent tally with no data published through it. Sums read
/// while other threads write may be momentarily off by the operations in flight.
pub(crate) struct Stripe {
    /// Live entries added minus removed through this stripe (may be negative alone).
    pub(crate) entries: AtomicIsize,
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
            entries: AtomicIsize::new(0),
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

    #[inline]
    pub(crate) fn add_entries(&self, delta: isize) {
        self.entries.fetch_add(delta, Relaxed);
    }
}

pub(crate) struct Counters {
    stripes: Box<[CachePadded<Stripe>]>,
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
        }
    }

    /// The stripe of the calling thread.
    #[inline]
    pub(crate) fn local(&self) -> &Stripe {
        &self.stripes[thread_index() & (self.stripes.len() - 1)]
    }

    /// Live entries: the sum of the stripes, never below zero.
    pub(crate) fn len(&self) -> usize {
        let sum: isize = self
            .stripes
            .iter()
            .map(|s| s.entries.load(Relaxed))
            .fold(0isize, |a, b| a.wrapping_add(b));
        sum.max(0) as usize
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
