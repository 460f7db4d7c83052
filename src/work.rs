//! What one operation did, for benchmarks (feature `work-stats`, not part of the API).
//!
//! Each thread counts, per operation of any cache (one pin), the slots it scanned, the blocks
//! it built (a bucket rebuilt, or one child of a split) and the releases it ran (its own or,
//! through the collector, other threads'), and keeps the worst operation seen. A benchmark
//! reads the worst per stretch of a run to show that the work of one call stays bounded as the
//! run grows. Without the feature every counting call is an empty inline function.

use core::cell::Cell;

/// The work of one operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Slot words read by probes and eviction scans.
    pub slots_scanned: u64,
    /// Blocks built: bucket rebuilds, and children of bucket splits.
    pub blocks_built: u64,
    /// Deferred releases run (entries, values, blocks).
    pub items_freed: u64,
}

impl Work {
    fn total(&self) -> u64 {
        self.slots_scanned + self.blocks_built + self.items_freed
    }
}

std::thread_local! {
    static CURRENT: Cell<Work> = const { Cell::new(Work { slots_scanned: 0, blocks_built: 0, items_freed: 0 }) };
    static WORST: Cell<Work> = const { Cell::new(Work { slots_scanned: 0, blocks_built: 0, items_freed: 0 }) };
}

/// An operation begins: the previous one's work is final.
#[inline]
pub(crate) fn begin() {
    let _ = CURRENT.try_with(|current| {
        let done = current.take();
        let _ = WORST.try_with(|worst| {
            if done.total() > worst.get().total() {
                worst.set(done);
            }
        });
    });
}

#[inline]
fn add(f: impl FnOnce(&mut Work)) {
    let _ = CURRENT.try_with(|current| {
        let mut w = current.get();
        f(&mut w);
        current.set(w);
    });
}

#[inline]
pub(crate) fn slots(n: usize) {
    add(|w| w.slots_scanned += n as u64);
}

#[inline]
pub(crate) fn block_built() {
    add(|w| w.blocks_built += 1);
}

#[inline]
pub(crate) fn freed(n: usize) {
    add(|w| w.items_freed += n as u64);
}

/// The calling thread's worst operation since the last call, which starts a new stretch.
pub fn take_worst() -> Work {
    begin();
    WORST.try_with(Cell::take).unwrap_or_default()
}
