//! The cache policy on top of the raw table: capacity and eviction, expiry and sweeping,
//! statistics, run-time settings and the removal callback.
//!
//! It knows nothing of TLS or of OpenSSL's modes beyond the bits that change its own behaviour.
//!
//! - **Time.** Expiry instants are nanoseconds of the [`Clock`], stored in each entry as its
//!   rank (`added + timeout`, saturating). An entry is expired iff `now > rank`. "Now" never
//!   goes back: a clock that does is treated as standing still until it passes its maximum.
//! - **Capacity.** After an insert of a new id pushes the live count over the capacity, the
//!   inserting thread evicts its own excess (see `make_room`): expired entries met while it
//!   gathers candidates pay first; then a live candidate is evicted, never one under the id
//!   just added. In tables of at most [`EXACT_BUCKETS`] buckets (a cache built with capacity up
//!   to 80, until it grows; the build-time capacity sizes the table) the candidates are the
//!   whole table and the victim is the one that expires soonest (ties: the earlier added within
//!   a thread; between threads in one clock tick, either), exactly as OpenSSL's sorted list
//!   would have it. Beyond that, of the bucket the insert wrote and one chosen independently of
//!   it, the one with more claimed slots (as its tag words tell) is read, in slot order and up
//!   to its [`SAMPLE_ENTRIES`]th live entry (its oldest: slots are claimed in order, and a
//!   rebuild keeps the order), then its successors while fewer than [`SAMPLE_ENTRIES`] live
//!   entries were seen (the whole table if it holds fewer); the candidates are the live entries
//!   read, and the victim is the soonest to expire of the fullest bucket read: O(1) at
//!   capacity, and it keeps the buckets' loads even.
//! - **Sweeping.** Every [`SWEEP_EVERY`]th insert that does not evict also removes the expired
//!   entries of one bucket at the hand, so expired sessions do not linger in a cache that is not
//!   full (amortised O(1)); `flush_expired` removes them all.
//! - **Callbacks** run after the operation has taken effect and its guard is dropped.

mod counters;
mod evict;
mod invariants;
#[cfg(all(test, not(session_cache_loom)))]
mod tests;

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

#[cfg(session_cache_loom)]
pub(crate) use self::counters::loom_use_stripe;
use self::counters::{excess_over, Counters, Stripe};
use crate::clock::{duration_to_nanos, TimeSource};
use crate::loom::sync::atomic::{
    AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};
use crate::raw::{Found, Insert, OnExisting, Order, RawTable};
use crate::reclaim::{Guard, Pinned};
use crate::{AddError, Added, CacheMode, RemovalCause, Session, Stats};

/// Tables with at most this many buckets are scanned whole to choose an eviction victim.
const EXACT_BUCKETS: usize = 16;
/// Live candidates a sampled eviction compares before it evicts (more buckets are read while
/// fewer were seen, up to the whole table).
const SAMPLE_ENTRIES: usize = 5;
/// One insert in this many sweeps a bucket for expired entries.
const SWEEP_EVERY: u64 = 4;
/// Buckets of an unbounded cache (capacity 0) to start with; the array doubles as it fills.
#[cfg(not(session_cache_loom))]
const UNBOUNDED_BUCKETS: usize = 256;
#[cfg(session_cache_loom)]
const UNBOUNDED_BUCKETS: usize = 1;
/// Expected live entries per bucket at capacity: five in a group of eight slots leaves room for
/// a few claims between rebuilds, at about 40 bytes of table per entry.
const ENTRIES_PER_BUCKET: usize = 5;
/// The most buckets a cache starts with (512 KiB of bucket words): a larger capacity is reached
/// by growing as entries arrive, so a huge capacity costs nothing up front.
const MAX_INITIAL_BUCKETS: usize = 1 << 16;

/// The settings that may change at run time, as one value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) capacity: usize,
    pub(crate) timeout: Duration,
    pub(crate) mode: CacheMode,
}

/// The settings as the cache holds them: one atomic each.
///
/// They are independent values (no invariant spans two of them, and each setter changes one),
/// so a consistent snapshot of all three buys nothing, while loading an `ArcSwap` snapshot on
/// every operation costs more than a plain atomic load of the one setting it needs.
/// `Release` stores and `Acquire` loads: a change is seen by every operation that starts after
/// it (happens-after the store).
struct LiveSettings {
    capacity: AtomicUsize,
    /// Nanoseconds, saturating: `u64::MAX` (about 584 years) means never.
    timeout: AtomicU64,
    mode: AtomicU32,
}

/// The removal callback.
pub(crate) type RemoveCallback<S> = Box<dyn Fn(&Arc<S>, RemovalCause) + Send + Sync>;

/// Entries that left the cache during one operation, delivered after it.
///
/// Without a removal callback nothing needs the sessions after the operation: they are marked
/// not resumable as they are unlinked (under the guard, so without a reference of their own)
/// and only a panic of that mark is carried here, to be resumed once the operation is complete.
struct Removed<S> {
    list: smallvec::SmallVec<[(Arc<S>, RemovalCause); 2]>,
    panic: Option<Box<dyn std::any::Any + Send>>,
}

impl<S: Session> Removed<S> {
    #[inline]
    fn new() -> Self {
        Removed {
            list: smallvec::SmallVec::new(),
            panic: None,
        }
    }

    #[inline]
    fn push(&mut self, entry: (Arc<S>, RemovalCause)) {
        self.list.push(entry);
    }

    /// Marks `session`, unlinked for `cause`, not resumable now.
    #[inline]
    fn mark(&mut self, session: &S, cause: RemovalCause) {
        if cause.marks_not_resumable() {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| session.set_not_resumable()));
            if let Err(payload) = outcome {
                self.panic.get_or_insert(payload);
            }
        }
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.list.is_empty() && self.panic.is_none()
    }
}

/// The result of a lookup.
pub(crate) enum Lookup<R> {
    /// A live entry, read with the caller's function.
    Hit(R),
    /// The entry had expired and was removed.
    Expired,
    /// Nothing cached under the id.
    Miss,
}

pub(crate) struct Policy<S: Session> {
    table: RawTable<S>,
    counters: Counters,
    settings: LiveSettings,
    clock: TimeSource,
    /// The latest time the clock reported, in nanoseconds.
    latest: AtomicU64,
    on_remove: Option<RemoveCallback<S>>,
    max_id_len: usize,
}

impl<S: Session> Policy<S> {
    pub(crate) fn new(
        settings: Settings,
        clock: TimeSource,
        on_remove: Option<RemoveCallback<S>>,
        max_id_len: usize,
        hash_seed: Option<u64>,
    ) -> Self {
        let buckets = match settings.capacity {
            0 => UNBOUNDED_BUCKETS,
            n => n.div_ceil(ENTRIES_PER_BUCKET).min(MAX_INITIAL_BUCKETS),
        };
        Policy {
            table: RawTable::new(buckets, hash_seed),
            counters: Counters::new(),
            settings: LiveSettings {
                capacity: AtomicUsize::new(settings.capacity),
                timeout: AtomicU64::new(duration_to_nanos(settings.timeout)),
                mode: AtomicU32::new(settings.mode.bits()),
            },
            clock,
            latest: AtomicU64::new(0),
            on_remove,
            max_id_len,
        }
    }

    /// Now, in clock nanoseconds, never earlier than a time already seen.
    #[inline(always)]
    fn now(&self) -> u64 {
        let t = self.clock.now_nanos();
        // Relaxed: a high-water mark of a clock; nothing is published through it.
        let latest = self.latest.load(Relaxed);
        if t > latest {
            self.latest.fetch_max(t, Relaxed);
            t
        } else {
            latest
        }
    }

    #[inline(always)]
    fn check_id(&self, id: &[u8]) -> Result<(), AddError> {
        if id.is_empty() {
            Err(AddError::EmptyId)
        } else if id.len() > self.max_id_len {
            Err(AddError::IdTooLong {
                len: id.len(),
                max: self.max_id_len,
            })
        } else {
            Ok(())
        }
    }

    // ----- settings -------------------------------------------------------------------------

    pub(crate) fn capacity(&self) -> usize {
        self.settings.capacity.load(Acquire)
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_nanos(self.settings.timeout.load(Acquire))
    }

    pub(crate) fn mode(&self) -> CacheMode {
        CacheMode::from_bits_retain(self.settings.mode.load(Acquire))
    }

    /// Sets the capacity; returns the previous one.
    pub(crate) fn set_capacity(&self, n: usize) -> usize {
        self.settings.capacity.swap(n, Release)
    }

    /// Sets the timeout; returns the previous one.
    pub(crate) fn set_timeout(&self, t: Duration) -> Duration {
        Duration::from_nanos(self.settings.timeout.swap(duration_to_nanos(t), Release))
    }

    /// Sets the mode; returns the previous one.
    pub(crate) fn set_mode(&self, mode: CacheMode) -> CacheMode {
        CacheMode::from_bits_retain(self.settings.mode.swap(mode.bits(), Release))
    }

    /// Loom builds: see `Counters::count_in_place`.
    #[cfg(session_cache_loom)]
    pub(crate) fn count_in_place(&self) {
        self.counters.count_in_place();
    }

    /// Loom builds: see `RawTable::freeze_as_shipped`.
    #[cfg(session_cache_loom)]
    pub(crate) fn freeze_as_shipped(&self) {
        self.table.freeze_as_shipped();
    }

    pub(crate) fn max_id_len(&self) -> usize {
        self.max_id_len
    }

    // ----- operations -----------------------------------------------------------------------

    /// `SSL_CTX_add_session`. `refresh` restarts an identical session's lifetime.
    pub(crate) fn insert(&self, session: Arc<S>, refresh: bool) -> Result<Added, AddError> {
        let on_existing = OnExisting::Replace {
            refresh_rank: refresh,
        };
        self.insert_with(session, on_existing, None)
            .map(|(added, _)| added)
    }

    /// Like [`insert`](Self::insert) (replacing), but the entry lives `lifetime` from now
    /// whatever the session's own timeout: a session fetched from a second tier keeps only
    /// the lifetime it has left.
    #[cfg(feature = "redis")]
    pub(crate) fn insert_for(
        &self,
        session: Arc<S>,
        lifetime: Duration,
    ) -> Result<Added, AddError> {
        let on_existing = OnExisting::Replace {
            refresh_rank: false,
        };
        self.insert_with(session, on_existing, Some(duration_to_nanos(lifetime)))
            .map(|(added, _)| added)
    }

    /// Returns the live session cached under the id of `session`, or caches `session` (in
    /// place of an expired one) and returns it.
    pub(crate) fn get_or_insert(&self, session: Arc<S>) -> Result<Arc<S>, AddError> {
        let live_from = self.now();
        let keep = OnExisting::KeepLive { live_from };
        let candidate = Arc::clone(&session);
        self.insert_with(session, keep, None)
            .map(|(_, kept)| kept.unwrap_or(candidate))
    }

    /// Inserts `session`; returns what happened and, when a live entry was kept, that entry.
    fn insert_with(
        &self,
        session: Arc<S>,
        on_existing: OnExisting,
        lifetime: Option<u64>,
    ) -> Result<(Added, Option<Arc<S>>), AddError> {
        self.check_id(session.id())?;
        let now = self.now();
        let lifetime = lifetime.unwrap_or_else(|| {
            session
                .timeout()
                .map_or_else(|| self.settings.timeout.load(Acquire), duration_to_nanos)
        });
        let rank = now.saturating_add(lifetime);
        let stripe = self.counters.local();
        // The eviction tie-break: order of adds within this stripe.
        let seq = stripe.next(&stripe.seq);
        let mut removed = Removed::new();
        let mut kept = None;
        let added = {
            let guard = self.table.pin();
            match self
                .table
                .insert(session, Order { rank, seq }, on_existing, &guard)
            {
                Insert::New(fresh) => {
                    stripe.bump(&stripe.inserts);
                    let auto_clear = !self.mode().contains(CacheMode::NO_AUTO_CLEAR);
                    let capacity = self.capacity();
                    // Into a full cache the new entry takes the place of the one it evicts
                    // (`in_place`: the shared count is not written at all).
                    let (before, counted) = self.counters.add_live_unless_full(stripe, capacity);
                    self.table
                        .grow_if_crowded(before.max(0) as usize + 1, &guard);
                    // This insert's own excess: 1 if it found the cache full, more only after a
                    // shrink. Racing inserts each evict their own excess and no more, so the
                    // last insert's entry survives as it would in some sequential order.
                    let owed = if counted {
                        excess_over(before + 1, capacity)
                    } else {
                        1
                    };
                    if capacity != 0 && owed > 0 {
                        self.make_room(
                            stripe,
                            capacity,
                            owed,
                            !counted,
                            &fresh,
                            now,
                            auto_clear,
                            &guard,
                            &mut removed,
                        );
                    } else if auto_clear && seq % SWEEP_EVERY == 0 {
                        self.sweep(now, &guard, &mut removed);
                    }
                    Added::Inserted
                }
                // Under `KeepLive` only an expired entry is replaced.
                Insert::Replaced(old) if matches!(on_existing, OnExisting::KeepLive { .. }) => {
                    self.count_expired_replacement();
                    removed.push((old, RemovalCause::Expired));
                    Added::Inserted
                }
                Insert::Replaced(old) => {
                    stripe.bump(&stripe.replacements);
                    removed.push((old, RemovalCause::Replaced));
                    Added::Replaced
                }
                // Under `KeepLive`: that very session was cached expired, and now has a fresh
                // lifetime: an expiry and an insert, with nothing to report (it never left).
                Insert::Identical if matches!(on_existing, OnExisting::KeepLive { .. }) => {
                    self.count_expired_replacement();
                    Added::Inserted
                }
                Insert::Identical => Added::AlreadyCached,
                Insert::Kept(existing) => {
                    kept = Some(existing);
                    Added::AlreadyCached
                }
            }
        };
        self.deliver(removed);
        Ok((added, kept))
    }

    /// Removes the expired entries of the next bucket at the hand.
    fn sweep(&self, now: u64, guard: &Guard, removed: &mut Removed<S>) {
        let stripe = self.counters.local();
        // Relaxed: see `make_room`.
        let hand = stripe.hand.fetch_add(1, Relaxed);
        self.table.for_each_in_bucket(hand, guard, |found| {
            if now > found.rank() {
                self.unlink(&found, RemovalCause::Expired, guard, removed);
            }
        });
    }

    /// Removes exactly `found` (if still there) for `cause`, and counts it.
    fn unlink(
        &self,
        found: &Found<'_, S>,
        cause: RemovalCause,
        guard: &Guard,
        removed: &mut Removed<S>,
    ) -> bool {
        if !self.take_out(found, cause, guard, removed) {
            return false;
        }
        self.count_removal(cause);
        true
    }

    /// Removes exactly `found` (if still there) for `cause`, without counting: its session
    /// goes to `removed` for the callback, or is marked here when there is none.
    #[inline]
    fn take_out(
        &self,
        found: &Found<'_, S>,
        cause: RemovalCause,
        guard: &Guard,
        removed: &mut Removed<S>,
    ) -> bool {
        if self.on_remove.is_some() {
            let Some(session) = self.table.remove_found(found, guard) else {
                return false;
            };
            removed.push((session, cause));
            return true;
        }
        self.table
            .remove_found_with(found, guard, |session| removed.mark(session, cause))
            .is_some()
    }

    /// An expired entry replaced in place by a new session: one more insert and one more
    /// expiry; the number of entries is unchanged.
    fn count_expired_replacement(&self) {
        let stripe = self.counters.local();
        stripe.bump(&stripe.inserts);
        stripe.bump(&stripe.expired);
    }

    #[inline]
    fn count_removal(&self, cause: RemovalCause) {
        let stripe = self.counters.local();
        self.counters.count_out(stripe);
        match cause {
            // Not reached: `make_room` counts an eviction out when it reserves it.
            RemovalCause::Evicted => stripe.bump(&stripe.cache_full),
            RemovalCause::Expired => stripe.bump(&stripe.expired),
            RemovalCause::Removed => stripe.bump(&stripe.removals),
            RemovalCause::Cleared => stripe.bump(&stripe.cleared),
            RemovalCause::Replaced => {}
        }
    }

    /// Looks `id` up and returns a new reference to a live session.
    #[inline]
    pub(crate) fn get(&self, id: &[u8]) -> Lookup<Arc<S>> {
        self.lookup(id, |found| found.to_arc())
    }

    /// Looks `id` up and reads a live session in place with `read` (under the guard, so
    /// `read` must be short).
    #[inline]
    pub(crate) fn get_with<R>(&self, id: &[u8], read: impl FnOnce(&S) -> R) -> Lookup<R> {
        self.lookup(id, |found| read(found.value()))
    }

    /// What every lookup starts with: a pin and the hash; `None` (a miss, counted) for an id
    /// no entry can have. (The clock is read only once an entry is found: a miss needs no time.)
    #[inline(always)]
    fn begin_lookup(&self, id: &[u8], stripe: &Stripe) -> Option<(Pinned, u64)> {
        if self.check_id(id).is_err() {
            stripe.bump(&stripe.misses);
            return None;
        }
        // Hashed before the pin: the hash needs no guard, and every instruction left out of the
        // pinned part is one during which a preemption does not hold the epoch back.
        let hash = self.table.hash(id);
        Some((self.table.pin(), hash))
    }

    /// Looks `id` up; a live entry is read with `read`, an expired one removed. (The hot path
    /// of the crate: everything it calls is inlined into it, and the expired case is kept out
    /// of line.)
    #[inline(always)]
    fn lookup<R>(&self, id: &[u8], read: impl FnOnce(&Found<'_, S>) -> R) -> Lookup<R> {
        let stripe = self.counters.local();
        let Some((guard, hash)) = self.begin_lookup(id, stripe) else {
            return Lookup::Miss;
        };
        match self.table.find(id, hash, &guard) {
            None => {
                stripe.bump(&stripe.misses);
                Lookup::Miss
            }
            Some(found) if self.now() <= found.rank() => {
                stripe.bump(&stripe.hits);
                Lookup::Hit(read(&found))
            }
            Some(found) => {
                let removed = self.lookup_expired(&found, &guard, stripe);
                drop(guard);
                self.deliver(removed);
                Lookup::Expired
            }
        }
    }

    /// A lookup met `found` expired: remove it, count the timeout.
    #[cold]
    #[inline(never)]
    fn lookup_expired(&self, found: &Found<'_, S>, guard: &Guard, stripe: &Stripe) -> Removed<S> {
        let mut removed = Removed::new();
        self.unlink(found, RemovalCause::Expired, guard, &mut removed);
        stripe.bump(&stripe.timeouts);
        removed
    }

    /// Removes and returns the live entry for `id` (single use).
    pub(crate) fn take(&self, id: &[u8]) -> Lookup<Arc<S>> {
        let stripe = self.counters.local();
        let Some((guard, hash)) = self.begin_lookup(id, stripe) else {
            return Lookup::Miss;
        };
        let now = self.now();
        let mut removed = Removed::new();
        let result = loop {
            let Some(found) = self.table.find(id, hash, &guard) else {
                stripe.bump(&stripe.misses);
                break Lookup::Miss;
            };
            if now > found.rank() {
                self.unlink(&found, RemovalCause::Expired, &guard, &mut removed);
                stripe.bump(&stripe.timeouts);
                break Lookup::Expired;
            }
            if let Some(session) = self.table.remove_found(&found, &guard) {
                self.count_removal(RemovalCause::Removed);
                stripe.bump(&stripe.hits);
                removed.push((Arc::clone(&session), RemovalCause::Removed));
                break Lookup::Hit(session);
            }
            // Another thread removed or replaced it between our find and our CAS: look again.
        };
        drop(guard);
        self.deliver(removed);
        result
    }

    /// Removes the entry for `id`, live or expired; true if there was one.
    pub(crate) fn remove(&self, id: &[u8]) -> bool {
        if self.check_id(id).is_err() {
            return false;
        }
        // Hashed before the pin, as in `begin_lookup`.
        let hash = self.table.hash(id);
        let guard = self.table.pin();
        let mut removed = Removed::new();
        let cause = RemovalCause::Removed;
        let found = if self.on_remove.is_some() {
            self.table
                .remove(id, hash, &guard)
                .map(|session| removed.push((session, cause)))
        } else {
            self.table
                .remove_with(id, hash, &guard, |session| removed.mark(session, cause))
        };
        drop(guard);
        if found.is_none() {
            return false;
        }
        self.count_removal(cause);
        self.deliver(removed);
        true
    }

    /// Whether a live entry is cached under `id` (no statistics, no side effects).
    pub(crate) fn contains(&self, id: &[u8]) -> bool {
        if self.check_id(id).is_err() {
            return false;
        }
        let now = self.now();
        let hash = self.table.hash(id);
        let guard = self.table.pin();
        self.table
            .find(id, hash, &guard)
            .is_some_and(|found| now <= found.rank())
    }

    /// Removes every entry for which `doomed(rank, now)` holds, for `cause`; returns how many.
    fn remove_all(&self, cause: RemovalCause, doomed: impl Fn(u64, u64) -> bool) -> usize {
        let now = self.now();
        let mut removed = Removed::new();
        let mut n = 0;
        // Re-pin every few buckets so that a long scan does not hold back reclamation. The
        // bucket count is read again each time: if the table doubled meanwhile, the buckets
        // from here on include the children of those not yet walked.
        let mut next = 0;
        loop {
            let guard = self.table.pin();
            let buckets = self.table.bucket_count(&guard);
            if next >= buckets {
                break;
            }
            for b in next..(next + 64).min(buckets) {
                self.table.for_each_in_bucket(b, &guard, |found| {
                    if doomed(found.rank(), now) && self.unlink(&found, cause, &guard, &mut removed)
                    {
                        n += 1;
                    }
                });
            }
            next += 64;
        }
        self.deliver(removed);
        n
    }

    /// `SSL_CTX_flush_sessions(ctx, now)`.
    pub(crate) fn flush_expired(&self) -> usize {
        self.remove_all(RemovalCause::Expired, |rank, now| now > rank)
    }

    /// `SSL_CTX_flush_sessions(ctx, 0)`.
    pub(crate) fn clear(&self) {
        self.remove_all(RemovalCause::Cleared, |_, _| true);
    }

    pub(crate) fn count_cb_hit(&self) {
        {
            let stripe = self.counters.local();
            stripe.bump(&stripe.cb_hits)
        };
    }

    pub(crate) fn len(&self) -> usize {
        self.counters.len()
    }

    pub(crate) fn bucket_count(&self) -> usize {
        self.table.bucket_count(&self.table.pin())
    }

    pub(crate) fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Marks and reports the sessions that left the cache. Runs user code: never under a guard.
    /// A panic is held until every session was handled, then resumed.
    #[inline]
    fn deliver(&self, removed: Removed<S>) {
        if !removed.is_empty() {
            self.deliver_all(removed);
        } else if !removed.list.spilled() {
            // Nothing to drop: no session, no panic, no heap buffer. (Its drop glue is not
            // free on the hot path: every add and remove ends here.)
            core::mem::forget(removed);
        }
    }

    #[inline(never)]
    fn deliver_all(&self, removed: Removed<S>) {
        let mut first_panic = removed.panic;
        for (session, cause) in removed.list {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                if cause.marks_not_resumable() {
                    session.set_not_resumable();
                }
                if let Some(on_remove) = &self.on_remove {
                    on_remove(&session, cause);
                }
            }));
            if let Err(payload) = outcome {
                first_panic.get_or_insert(payload);
            }
        }
        if let Some(payload) = first_panic {
            panic::resume_unwind(payload);
        }
    }
}
