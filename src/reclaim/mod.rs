//! Deferred reclamation: the one place that decides when unlinked memory may be freed.
//!
//! Two builds:
//! - normally, crossbeam-epoch's global collector. A release runs once every thread pinned
//!   before the unlink has unpinned. Sessions hold key material, so how long a removed one lives
//!   on is bounded here, on every kind of operation (gets included):
//!   - each thread gathers what it retires in a local [`Batch`] of up to [`BATCH`] releases,
//!     handed to the collector as *one* deferred function (instead of one per release, and a
//!     2 KiB bag copied to the global queue every few), when it is full or when
//!     [`HAND_OFF_AFTER`] further operations of the thread have passed since its first release;
//!   - after a hand-off the thread flushes (lets the epoch advance and runs what is due) on
//!     each of its next [`FLUSHES_AFTER_HAND_OFF`] operations, or until its batch has come
//!     back due, if sooner: the epoch must advance twice past the hand-off before the batch
//!     may run, and a flush after that would only push the collector's own garbage (a 2 KiB
//!     bag each time);
//!   - one batch is out at a time: while one is, the thread gathers on and hands the next off
//!     when it comes back. While no other thread is pinned that is within the flushes above,
//!     so it delays nothing; while the epoch is held back, it keeps a stalled epoch from
//!     costing a 2 KiB bag per batch, written and later copied out again.
//!
//!   - a batch found due is not run at once but [`RELEASES_PER_OPERATION`] releases at a
//!     time, oldest first, at the start of the next operations of the thread that gathered
//!     it, before it pins (see [`batch::pin_for_operation`]), so no single call pays for a
//!     whole batch and none runs while pinned. Found due on another thread, it is queued in
//!     the gathering thread's inbox, which that thread polls on each operation while a batch
//!     of its own is out. It runs where it was found only if the gathering thread has exited,
//!     or under [`flush_deferred`].
//!
//!   So while no other thread is pinned, a release runs within `HAND_OFF_AFTER +
//!   FLUSHES_AFTER_HAND_OFF + 1 + BATCH / RELEASES_PER_OPERATION` (48 + 3 + 1 + 8) further
//!   operations of the thread that unlinked it, whatever those operations are
//!   (`tests/release_delay.rs` checks it). The 1: a batch found due by an operation's flush
//!   starts running at the next operation. The last term is paid only behind releases
//!   gathered before it in greater number than it ran operations since (one `clear`
//!   unlinking many): for operations that release no more than [`RELEASES_PER_OPERATION`]
//!   each, oldest first makes it about `HAND_OFF_AFTER + 3`. A thread that is pinned (or
//!   preempted while pinned) elsewhere holds the epoch back, as it must. [`flush_deferred`]
//!   forces the hand-off.
//! - under `--cfg session_cache_graveyard`, a collector that never pins and frees everything
//!   retired only when the table is dropped. Loom models with three threads use it: the real
//!   collector's own atomics make those models intractable (docs/design.md, "Proof"), while the
//!   table's protocol (all its slot and bucket words) is still fully visible to loom. Loom
//!   builds on the real collector defer each release on its own (no batch), so that the models
//!   stay small.

use core::ops::Deref;

#[cfg(any(session_cache_loom, not(session_cache_graveyard)))]
pub(crate) mod inbox;

pub(crate) use crossbeam_epoch::{Atomic, Guard, Owned, Pointable, Pointer, Shared};

/// One deferred release: `release(data)` frees what `data` addresses.
#[derive(Clone, Copy)]
pub(crate) struct Retired {
    data: usize,
    release: unsafe fn(usize),
}

impl Retired {
    /// # Safety
    /// `release(data)` must be sound to call once, on any thread, after every reader that may
    /// hold what `data` addresses is gone.
    pub(crate) unsafe fn new(data: usize, release: unsafe fn(usize)) -> Self {
        Retired { data, release }
    }

    fn run(self) {
        crate::work::freed(1);
        // SAFETY: `Retired::new`'s contract; each `Retired` is run once (it is moved in).
        unsafe { (self.release)(self.data) }
    }
}

/// Releases a thread gathers before it hands them to the collector as one.
#[cfg(not(any(session_cache_graveyard, session_cache_loom)))]
const BATCH: usize = 64;
/// Operations of a thread after its first gathered release by which the batch is handed off.
#[cfg(not(any(session_cache_graveyard, session_cache_loom)))]
const HAND_OFF_AFTER: u32 = 48;
/// Releases whose grace period has passed that a thread runs per operation: a batch becomes
/// due all at once, and running its (up to [`BATCH`]) session drops and `free`s inside one call
/// made that call's latency the tail of every other.
#[cfg(not(any(session_cache_graveyard, session_cache_loom)))]
const RELEASES_PER_OPERATION: usize = 8;
/// Flushes a thread makes on its next operations after a hand-off and its own flush (the
/// epoch must advance twice past the hand-off before the batch may run).
#[cfg(not(any(session_cache_graveyard, session_cache_loom)))]
const FLUSHES_AFTER_HAND_OFF: u32 = 3;

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

// SAFETY: a `Retired` is an address and a function that frees it; the tables retire only
// memory of `Send + Sync` values (`RawTable<T: Send + Sync>`), so it may run on any thread.
unsafe impl Send for Retired {}

/// Owns the policy for freeing unlinked memory; one per table.
pub(crate) struct Reclaimer {
    #[cfg(session_cache_graveyard)]
    graveyard: crate::loom::sync::Mutex<Vec<Retired>>,
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

    /// Pins the current thread for one operation, and takes this thread's release one step
    /// further (see the module docs).
    #[inline]
    pub(crate) fn pin(&self) -> Pinned {
        crate::work::begin();
        #[cfg(not(session_cache_graveyard))]
        {
            #[cfg(not(session_cache_loom))]
            let guard = batch::pin_for_operation();
            #[cfg(session_cache_loom)]
            let guard = crossbeam_epoch::pin();
            Pinned { guard }
        }
        #[cfg(session_cache_graveyard)]
        Pinned {}
    }

    /// Runs `retired` once no thread that may have loaded the retired pointer (that is, any
    /// thread pinned before the pointer was unlinked) is still pinned.
    ///
    /// # Safety
    /// The memory `retired` frees must already be unreachable from the table for new readers,
    /// and be retired at most once.
    #[inline]
    pub(crate) unsafe fn retire(&self, guard: &Guard, retired: Retired) {
        #[cfg(all(not(session_cache_graveyard), not(session_cache_loom)))]
        // SAFETY: forwarded from the caller.
        unsafe {
            batch::retire(guard, retired)
        };
        #[cfg(all(not(session_cache_graveyard), session_cache_loom))]
        // SAFETY: the caller guarantees the memory is unlinked; the epoch collector runs the
        // release only after every guard that could still see it is gone.
        unsafe {
            guard.defer_unchecked(move || retired.run())
        };
        #[cfg(session_cache_graveyard)]
        {
            let _ = guard;
            self.graveyard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(retired);
        }
    }
}

#[cfg(session_cache_graveyard)]
impl Drop for Reclaimer {
    fn drop(&mut self) {
        let graves =
            core::mem::take(&mut *self.graveyard.lock().unwrap_or_else(|e| e.into_inner()));
        for retired in graves {
            retired.run();
        }
    }
}

/// The per-thread batch of the real collector.
#[cfg(not(any(session_cache_graveyard, session_cache_loom)))]
mod batch {
    use core::cell::{Cell, OnceCell, RefCell};
    use std::sync::Arc;

    use super::inbox::Inbox;
    use super::{
        Guard, Retired, BATCH, FLUSHES_AFTER_HAND_OFF, HAND_OFF_AFTER, RELEASES_PER_OPERATION,
    };

    /// A thread's batches that came due on other threads, waiting for that thread's next
    /// operation. Running another thread's batch at once put up to a few hundred releases
    /// inside one call of whichever thread found it due: the tail of every operation. Queued
    /// here, the batch runs [`RELEASES_PER_OPERATION`] at a time on its own thread, within the
    /// same bound as a batch that came due there.
    type Releases = Inbox<Vec<Retired>>;

    fn run_all(mut items: Vec<Retired>) {
        for retired in items.drain(..) {
            retired.run();
        }
        keep_spare(items);
    }

    std::thread_local! {
        /// Set while `flush_deferred` runs on this thread: a batch of another thread found
        /// due then is run at once, as the caller asked.
        static FORCING: Cell<bool> = const { Cell::new(false) };
    }

    /// Runs `f` with this thread forcing every due batch it finds to run at once.
    pub(super) fn forcing(f: impl FnOnce()) {
        let before = FORCING
            .try_with(|forcing| forcing.replace(true))
            .unwrap_or(false);
        f();
        let _ = FORCING.try_with(|forcing| forcing.set(before));
    }

    /// What a thread has retired and not yet handed to the collector, and where its release
    /// stands.
    struct Batch {
        items: RefCell<Vec<Retired>>,
        /// Operations until the next release step; 0: nothing to do (the fast path).
        countdown: Cell<u32>,
        /// Flushes still owed after a hand-off.
        flushes: Cell<u32>,
        /// An empty vector with room for a batch, kept from a batch this thread ran: a
        /// hand-off then allocates nothing. (A batch's vector is about 1 KiB: with glibc, such
        /// a request also consolidates the small chunks the batch's releases just freed.)
        spare: Cell<Vec<Retired>>,
        /// Releases of this thread's batches whose grace period has passed, run a few per
        /// operation. `has_ready`, the fast path's test, is set while any wait here, and while
        /// a batch handed off has not come back (so that the inbox is polled).
        ready: RefCell<Due>,
        has_ready: Cell<bool>,
        /// Batches this thread handed off that have not come back due yet (each comes back,
        /// on this thread or through the inbox). While it is 0 the flushes still owed are
        /// skipped: each flush after a batch has come back would only push a bag holding the
        /// collector's own garbage, a 2 KiB allocation that, with glibc, also consolidates
        /// every small chunk freed since the last one.
        out: Cell<u32>,
        /// Where other threads queue this thread's batches that came due on them (made on the
        /// first hand-off).
        inbox: OnceCell<Arc<Releases>>,
    }

    impl Batch {
        fn inbox(&self) -> Arc<Releases> {
            Arc::clone(self.inbox.get_or_init(|| Arc::new(Inbox::new())))
        }

        /// Moves the batches queued by other threads to `ready`.
        #[cold]
        fn take_inbox(&self, inbox: &Releases) {
            let Ok(mut ready) = self.ready.try_borrow_mut() else {
                return;
            };
            for mut items in inbox.take_all() {
                ready.push_batch(&mut items);
                self.came_back();
                keep_spare(items);
            }
            self.has_ready.set(!ready.is_empty() || self.awaiting());
        }

        /// Whether a batch this thread handed off has not come back yet (it may be waiting
        /// in the inbox).
        fn awaiting(&self) -> bool {
            self.out.get() > 0
        }

        /// One of this thread's batches came back due. The last one out re-arms a hand-off
        /// that waited for it (see [`step`]).
        fn came_back(&self) {
            debug_assert!(
                self.out.get() > 0,
                "a batch came back that was never handed off"
            );
            self.out.set(self.out.get().saturating_sub(1));
            if self.out.get() == 0 && self.countdown.get() == 0 {
                self.countdown.set(1);
            }
        }
    }

    /// Due releases in the order they were gathered, run from the oldest: the release unlinked
    /// first has waited longest. (Run newest first, as a stack, the first release of a batch
    /// waited for the whole batch to run before it: `BATCH / RELEASES_PER_OPERATION`
    /// operations more.) A cursor over one vector, not a `VecDeque`: moving a batch in stays
    /// one copy, where the ring's `extend` cost 13 instructions more per evicting add.
    pub(crate) struct Due {
        items: Vec<Retired>,
        /// `items[..next]` have run.
        next: usize,
    }

    impl Due {
        pub(crate) const fn new() -> Self {
            Due {
                items: Vec::new(),
                next: 0,
            }
        }

        /// Queues a batch that came due after what waits here, emptying `batch`.
        pub(crate) fn push_batch(&mut self, batch: &mut Vec<Retired>) {
            if self.next == self.items.len() {
                self.items.clear();
                self.next = 0;
            } else if self.next > self.items.len() / 2 {
                // Batches keep coming while some still wait: drop what ran, so that the
                // vector holds only what waits.
                self.items.drain(..self.next);
                self.next = 0;
            }
            self.items.append(batch);
        }

        /// The oldest release waiting, taken out.
        pub(crate) fn pop(&mut self) -> Option<Retired> {
            let next = *self.items.get(self.next)?;
            self.next += 1;
            debug_assert!(self.next <= self.items.len());
            Some(next)
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.next == self.items.len()
        }

        /// Releases the vector holds, run or not (tests).
        #[cfg(test)]
        pub(crate) fn len_held(&self) -> usize {
            self.items.len()
        }
    }

    impl Drop for Batch {
        fn drop(&mut self) {
            // A thread that exits runs what is due and hands off what it gathered: nothing is
            // ever dropped unrun. Batches queued for it from now on run where they come due.
            if let Some(inbox) = self.inbox.get() {
                for items in inbox.close() {
                    run_all(items);
                }
            }
            while let Some(retired) = self.ready.get_mut().pop() {
                retired.run();
            }
            let items = core::mem::take(self.items.get_mut());
            if !items.is_empty() {
                let guard = crossbeam_epoch::pin();
                hand_off(&guard, items);
                guard.flush();
            }
        }
    }

    // std's `thread_local!` directly: this module is not built for loom, and the `const` form
    // spares every operation the lazy-initialisation check.
    std::thread_local! {
        static LOCAL: Batch = const {
            Batch {
                items: RefCell::new(Vec::new()),
                countdown: Cell::new(0),
                flushes: Cell::new(0),
                spare: Cell::new(Vec::new()),
                ready: RefCell::new(Due::new()),
                has_ready: Cell::new(false),
                out: Cell::new(0),
                inbox: OnceCell::new(),
            }
        };
    }

    /// Gives `items` to the collector as one deferred function. When it runs (the grace
    /// period over) on this same thread, it queues the releases on the thread's `ready` list;
    /// on another thread, in this thread's inbox, for this thread's next operation (or it runs
    /// them there, if this thread has exited or that thread is forcing releases).
    fn hand_off(guard: &Guard, mut items: Vec<Retired>) {
        let inbox = LOCAL
            .try_with(|local| {
                local.out.set(local.out.get() + 1);
                // The release step polls the inbox until the batch is back.
                local.has_ready.set(true);
                local.inbox()
            })
            .ok();
        // SAFETY: every item was retired under `Retired::new`'s contract: unlinked before it was
        // gathered, so the collector may run it once every guard pinned before now is gone;
        // each runs exactly once (drained from the vector, which is moved in, into `ready` or
        // run here).
        unsafe {
            guard.defer_unchecked(move || {
                let queued = LOCAL.try_with(|local| {
                    // This thread gathered the batch if it owns the inbox the batch holds. (Not
                    // the address of its thread-local: a thread that exits and a new one may
                    // have the same. The batch keeps its inbox alive, so no other can.)
                    let gathered_here = match (local.inbox.get(), &inbox) {
                        (Some(mine), Some(its)) => Arc::ptr_eq(mine, its),
                        _ => false,
                    };
                    if !gathered_here {
                        return false;
                    }
                    let Ok(mut ready) = local.ready.try_borrow_mut() else {
                        return false;
                    };
                    ready.push_batch(&mut items);
                    local.has_ready.set(true);
                    local.came_back();
                    true
                });
                if queued == Ok(true) {
                    keep_spare(items);
                    return;
                }
                let forcing = FORCING.try_with(Cell::get).unwrap_or(true);
                match inbox {
                    Some(inbox) if !forcing => {
                        if let Err(items) = inbox.push(items) {
                            // The owner has exited.
                            run_all(items);
                        }
                    }
                    Some(inbox) => {
                        run_all(items);
                        // Tell the owner it is back, or it polls for it forever.
                        let _ = inbox.push(Vec::new());
                    }
                    None => run_all(items),
                }
            })
        };
    }

    /// Runs up to `max` of this thread's due releases. (Each is taken out before it runs: a
    /// release may run user code that re-enters the cache.)
    #[cold]
    fn run_ready(local: &Batch, max: usize) {
        if local.awaiting() {
            if let Some(inbox) = local.inbox.get() {
                if !inbox.is_empty() {
                    local.take_inbox(inbox);
                }
            }
        }
        for _ in 0..max {
            let next = match local.ready.try_borrow_mut() {
                Ok(mut ready) => ready.pop(),
                Err(_) => return,
            };
            match next {
                Some(retired) => retired.run(),
                None => break,
            }
        }
        // Still set while releases wait here or a batch is still out (`has_ready` is the
        // fast path's one test for both).
        let idle = local.ready.try_borrow().is_ok_and(|ready| ready.is_empty());
        local.has_ready.set(!idle || local.awaiting());
    }

    /// An empty vector for the next batch: the spare if this thread has one.
    fn fresh_items(local: &Batch) -> Vec<Retired> {
        let spare = local.spare.take();
        if spare.capacity() >= BATCH {
            spare
        } else {
            Vec::with_capacity(BATCH)
        }
    }

    /// Keeps an emptied batch vector as this thread's spare, if it has none.
    fn keep_spare(items: Vec<Retired>) {
        debug_assert!(items.is_empty());
        if items.capacity() < BATCH {
            return;
        }
        let _ = LOCAL.try_with(|local| {
            let current = local.spare.take();
            local.spare.set(if current.capacity() >= BATCH {
                current
            } else {
                items
            });
        });
    }

    /// # Safety
    /// As [`super::Reclaimer::retire`].
    #[inline]
    pub(super) unsafe fn retire(guard: &Guard, retired: Retired) {
        let gathered = LOCAL.try_with(|local| {
            let Ok(mut items) = local.items.try_borrow_mut() else {
                // Re-entered from a release that runs user code (a session's `Drop` calling
                // into a cache while a hand-off runs): defer this one on its own.
                return false;
            };
            // The common case, kept apart from the rest (out of line) so that it saves few
            // registers: room in the batch for this release without filling it.
            if items.len() + 1 < items.capacity().min(BATCH) {
                items.push(retired);
                if local.countdown.get() == 0 {
                    local.countdown.set(HAND_OFF_AFTER);
                }
                return true;
            }
            drop(items);
            gather_filling(local, guard, retired)
        });
        if gathered != Ok(true) {
            // The thread is exiting (its batch is gone) or re-entered: defer directly.
            // SAFETY: as `hand_off`.
            unsafe { guard.defer_unchecked(move || retired.run()) };
            guard.flush();
        }
    }

    /// [`retire`] of a release that needs the batch's first allocation or fills it (then
    /// handed off); false if the batch is borrowed (re-entered).
    #[cold]
    #[inline(never)]
    fn gather_filling(local: &Batch, guard: &Guard, retired: Retired) -> bool {
        let Ok(mut items) = local.items.try_borrow_mut() else {
            return false;
        };
        if items.capacity() == 0 {
            items.reserve_exact(BATCH);
        }
        items.push(retired);
        // A full batch waits while another is out (see `step`).
        if items.len() >= BATCH && !local.awaiting() {
            let full = core::mem::replace(&mut *items, fresh_items(local));
            drop(items);
            send(local, guard, full);
        } else if local.countdown.get() == 0 {
            local.countdown.set(HAND_OFF_AFTER);
        }
        true
    }

    /// Hands `items` off and starts the flushes owed after a hand-off, from the next operation.
    fn send(local: &Batch, guard: &Guard, items: Vec<Retired>) {
        hand_off(guard, items);
        guard.flush();
        local.flushes.set(FLUSHES_AFTER_HAND_OFF);
        local.countdown.set(1);
    }

    /// Pins this thread for one operation, and takes its release one step further: the
    /// releases that are due run first, unpinned, then the pin, then the countdown.
    ///
    /// Due releases need no guard (their grace period is over), and running them before the
    /// pin keeps them out of the pinned part of the operation. That part is what holds the
    /// epoch back for every thread whenever this one is preempted inside it: with more threads
    /// than cores, a thread is switched out while pinned about as often as it is pinned, and
    /// the epoch advances only at a switch that finds every switched-out thread unpinned, so
    /// the garbage in flight grows steeply with the pinned share of the time.
    #[inline]
    pub(super) fn pin_for_operation() -> Guard {
        LOCAL
            .try_with(|local| {
                if local.has_ready.get() {
                    run_ready(local, RELEASES_PER_OPERATION);
                }
                let guard = crossbeam_epoch::pin();
                let n = local.countdown.get();
                if n > 1 {
                    local.countdown.set(n - 1);
                } else if n == 1 {
                    step(local, &guard);
                }
                guard
            })
            .unwrap_or_else(|_| pin_exiting())
    }

    /// The pin of a thread that is exiting: its batch is gone, nothing of it to step. (Out of
    /// line, so that the one pin of the hot path stays inlined.)
    #[cold]
    #[inline(never)]
    fn pin_exiting() -> Guard {
        crossbeam_epoch::pin()
    }

    /// The countdown ran out: make one flush owed after a hand-off, or hand off the batch.
    #[cold]
    fn step(local: &Batch, guard: &Guard) {
        let mut owed = local.flushes.get();
        if owed > 0 && !local.awaiting() {
            // Every batch handed off has come back: nothing more to wait for.
            owed = 1;
        } else if owed > 0 {
            // A flush of an empty local bag only lets the epoch advance and runs what is due.
            guard.flush();
        }
        if owed > 0 {
            local.flushes.set(owed - 1);
            if owed > 1 {
                local.countdown.set(1);
            } else {
                // Releases gathered meanwhile start their own countdown; a batch that filled
                // while the last one was out goes next.
                let pending = local.items.try_borrow().map_or(0, |items| items.len());
                local.countdown.set(match pending {
                    0 => 0,
                    n if n >= BATCH => 1,
                    _ => HAND_OFF_AFTER,
                });
            }
            return;
        }
        if local.awaiting() {
            // One batch out at a time: this one is handed off when that one comes back
            // (`came_back` re-arms the countdown). While no other thread is pinned, a batch comes
            // back within the flushes after its hand-off, long before the next countdown runs
            // out, so this changes nothing. While one is pinned (or preempted while pinned), the
            // epoch cannot advance: gathering on, in one vector, instead of handing off a batch
            // every few dozen operations spares the collector a 2 KiB bag per batch, written
            // into a fresh queue node and copied out again when it comes due: at two threads
            // on two cores with a third one pinned nine tenths of the time, that copying was
            // a third of the misses to memory.
            local.countdown.set(0);
            return;
        }
        let gathered = match local.items.try_borrow_mut() {
            Ok(mut items) if !items.is_empty() => {
                Some(core::mem::replace(&mut *items, fresh_items(local)))
            }
            Ok(_) => {
                local.countdown.set(0);
                return;
            }
            // Re-entered while the batch is borrowed: try again on the next operation.
            Err(_) => None,
        };
        match gathered {
            Some(items) => send(local, guard, items),
            None => local.countdown.set(1),
        }
    }

    /// Hands off this thread's batch now (for [`super::flush_deferred`]).
    pub(super) fn hand_off_now(guard: &Guard) {
        let _ = LOCAL.try_with(|local| {
            if let Ok(mut items) = local.items.try_borrow_mut() {
                if !items.is_empty() {
                    let all = core::mem::take(&mut *items);
                    drop(items);
                    hand_off(guard, all);
                }
            }
            local.countdown.set(0);
            local.flushes.set(0);
        });
    }

    /// Runs every due release of this thread now (for [`super::flush_deferred`]).
    pub(super) fn run_all_ready() {
        let _ = LOCAL.try_with(|local| {
            if let Some(inbox) = local.inbox.get() {
                local.take_inbox(inbox);
            }
            run_ready(local, usize::MAX);
        });
    }
}

/// Hands this thread's deferred releases to the collector and lets the epoch advance, so that
/// sessions unlinked from any cache are dropped now rather than a few operations later.
///
/// Removed, replaced, evicted and expired sessions are released through deferred reclamation
/// (never while another thread may still be reading them): within a few dozen further
/// operations of the thread that unlinked them, whatever those operations are. Call this to
/// release them at once, for example before counting drops in a test, or after
/// [`SessionCache::clear`](crate::SessionCache::clear) when the sessions' key material should go
/// now. It cannot free what a thread that is pinned right now may still read, and releases
/// that another running thread gathered wait for that thread's next operation (or its own call
/// of this function, or its exit).
///
/// ```
/// use session_cache::{flush_deferred, Session, SessionCache};
/// use std::sync::Arc;
///
/// struct S([u8; 4]);
/// impl Session for S {
///     fn id(&self) -> &[u8] { &self.0 }
/// }
///
/// let cache = SessionCache::new();
/// let s = Arc::new(S(*b"abcd"));
/// cache.add(s.clone());
/// cache.remove(&s);
/// flush_deferred();
/// assert_eq!(Arc::strong_count(&s), 1, "the cache's reference is gone");
/// ```
pub fn flush_deferred() {
    #[cfg(not(session_cache_graveyard))]
    {
        #[cfg(not(session_cache_loom))]
        batch::forcing(|| {
            batch::hand_off_now(&crossbeam_epoch::pin());
            for _ in 0..32 {
                crossbeam_epoch::pin().flush();
            }
            batch::run_all_ready();
        });
        #[cfg(session_cache_loom)]
        for _ in 0..32 {
            crossbeam_epoch::pin().flush();
        }
    }
}

#[cfg(all(test, not(any(session_cache_graveyard, session_cache_loom))))]
mod tests {
    use super::batch::Due;
    use super::Retired;

    unsafe fn nothing(_: usize) {}

    fn batch(range: core::ops::Range<usize>) -> Vec<Retired> {
        // SAFETY: `nothing` frees nothing.
        range.map(|i| unsafe { Retired::new(i, nothing) }).collect()
    }

    #[test]
    fn due_releases_run_oldest_first_across_batches() {
        let mut due = Due::new();
        assert!(due.is_empty() && due.pop().is_none());
        let mut first = batch(0..10);
        due.push_batch(&mut first);
        assert!(first.is_empty(), "the batch is moved in");
        let ran: Vec<usize> = (0..3).map(|_| due.pop().unwrap().data).collect();
        assert_eq!(ran, [0, 1, 2]);
        // A batch that comes due while the last one still runs goes after it; the run part is
        // dropped once it is most of the vector.
        for next in [10..20, 20..30, 30..40] {
            due.push_batch(&mut batch(next));
            for _ in 0..8 {
                due.pop().unwrap();
            }
        }
        let mut rest = Vec::new();
        while let Some(r) = due.pop() {
            rest.push(r.data);
        }
        assert_eq!(rest, (27..40).collect::<Vec<_>>());
        assert!(due.is_empty());
        // 40 were pushed in all: without the compaction the vector would hold every one.
        assert!(
            due.len_held() < 40,
            "what ran is dropped as batches keep coming"
        );
    }
}
