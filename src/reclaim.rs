//! Deferred reclamation: the one place that decides when unlinked memory may be freed.
//!
//! Two builds:
//! - normally, crossbeam-epoch's global collector. [`Reclaimer::retire`] defers a release until
//!   every thread pinned before the unlink has unpinned. To bound how long a removed session
//!   (which holds key material) lives on, each thread flushes its deferred bag to the global
//!   queue every [`FLUSH_EVERY`] retirements instead of waiting for crossbeam's bag of 64.
//!   Small batches also keep the tail short: each collection frees at most a few batches, and
//!   measured single-threaded at capacity 20 480, flushing every 4 instead of 16 retirements
//!   took an evicting add's p99 from about 7 to 4 us on the loaded 2-core machine. The price:
//!   each flush copies crossbeam's whole 64-slot bag (2 KiB) into a new queue node, so an
//!   add + remove pair costs 2071 instructions against 1783 at 16 and 1729 never flushing
//!   (callgrind, single thread). Prompt release of secrets and the tail win over that.
//! - under `--cfg session_cache_graveyard`, a collector that never pins and frees everything
//!   retired only when the table is dropped. Loom models with three threads use it: the real
//!   collector's own atomics make those models intractable (tooling.md section 1), while the
//!   table's protocol (all its slot and bucket words) is still fully visible to loom.

use core::ops::Deref;

pub(crate) use crossbeam_epoch::{Atomic, Guard, Owned, Pointer, Shared};

/// How many retirements a thread makes before it pushes its deferred bag to the global queue.
#[cfg(not(session_cache_graveyard))]
const FLUSH_EVERY: usize = 4;

/// A pinned guard. Pointers loaded through it stay valid until it is dropped.
pub(crate) struct Pinned {
    #[cfg(not(session_cache_graveyard))]
    guard: Guard,
}

impl Deref for Pinned {
    type Target = Guard;

    #[inline]
    fn deref(&self) -> &Guard {
        #[cfg(not(session_cache_graveyard))]
        {
            &self.guard
        }
        #[cfg(session_cache_graveyard)]
        // SAFETY: in the graveyard build nothing retired is freed before the table is dropped,
        // and dropping needs `&mut`, so no shared pointer can dangle while a `&Table` exists.
        unsafe {
            crossbeam_epoch::unprotected()
        }
    }
}

/// A retired release, kept until the table is dropped (graveyard build only).
#[cfg(session_cache_graveyard)]
struct Deferred(Box<dyn FnOnce()>);

// SAFETY: the closures only free entries and blocks whose values are `Send + Sync`
// (`Session: Send + Sync`), and each runs exactly once, on whichever thread drops the table.
#[cfg(session_cache_graveyard)]
unsafe impl Send for Deferred {}

/// Owns the policy for freeing unlinked memory; one per table.
pub(crate) struct Reclaimer {
    #[cfg(session_cache_graveyard)]
    graveyard: crate::loom::sync::Mutex<Vec<Deferred>>,
}

impl core::fmt::Debug for Reclaimer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reclaimer").finish_non_exhaustive()
    }
}

impl Reclaimer {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(session_cache_graveyard)]
            graveyard: crate::loom::sync::Mutex::new(Vec::new()),
        }
    }

    /// Pins the current thread.
    #[inline]
    pub(crate) fn pin(&self) -> Pinned {
        Pinned {
            #[cfg(not(session_cache_graveyard))]
            guard: crossbeam_epoch::pin(),
        }
    }

    /// Runs `release` once no thread that may have loaded the retired pointer (that is, any
    /// thread pinned before the pointer was unlinked) is still pinned.
    ///
    /// # Safety
    /// The pointer(s) `release` frees must already be unreachable from the table for new
    /// readers, and `release` must be retired at most once per allocation.
    #[inline]
    pub(crate) unsafe fn retire(&self, guard: &Guard, release: impl FnOnce() + 'static) {
        #[cfg(not(session_cache_graveyard))]
        {
            // SAFETY: the caller guarantees the memory is unlinked; the epoch collector runs
            // `release` only after every guard that could still see it is gone. The closure
            // is not `Send`, but it only frees memory of `Send + Sync` values.
            unsafe { guard.defer_unchecked(release) };
            RETIRED.with(|n| {
                let count = n.get() + 1;
                n.set(count);
                if count % FLUSH_EVERY == 0 {
                    guard.flush();
                }
            });
        }
        #[cfg(session_cache_graveyard)]
        {
            let _ = guard;
            self.graveyard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Deferred(Box::new(release)));
        }
    }
}

#[cfg(session_cache_graveyard)]
impl Drop for Reclaimer {
    fn drop(&mut self) {
        let graves =
            core::mem::take(&mut *self.graveyard.lock().unwrap_or_else(|e| e.into_inner()));
        for Deferred(release) in graves {
            release();
        }
    }
}

#[cfg(not(session_cache_graveyard))]
crate::loom::thread_local! {
    // Not `const { .. }`: loom's `thread_local!` has no const form.
    #[allow(clippy::missing_const_for_thread_local)]
    static RETIRED: core::cell::Cell<usize> = core::cell::Cell::new(0);
}

/// Pushes this thread's deferred releases to the global queue and lets the epoch advance, so
/// that sessions unlinked from any cache are dropped now rather than later.
///
/// Removed, replaced, evicted and expired sessions are released through deferred reclamation
/// (never while another thread may still be reading them). Normally that happens within a few
/// dozen operations; call this to release them promptly, for example before counting drops in a
/// test or after [`SessionCache::clear`](crate::SessionCache::clear) when the sessions' key
/// material should go. It cannot free what a thread that is pinned right now may still read.
pub fn flush_deferred() {
    #[cfg(not(session_cache_graveyard))]
    for _ in 0..32 {
        crossbeam_epoch::pin().flush();
    }
}
