//! The hand-written concurrent parts of the rustls client store, kept apart from rustls so that
//! the loom models (`loom-tests/ticket_ring.rs`) check them: the ring of take-once ticket slots,
//! its retirement, and the rule that finds the cache entry a write goes to.
//!
//! # The ticket ring
//!
//! A fixed ring of slots, each an `AtomicPtr` owning at most one boxed value. Each value is owned
//! by exactly one slot at a time and moves in and out only by `swap`, so it comes out at most
//! once, however inserts, takes and retirement race:
//!
//! * `insert` puts the value in slot `n % len` (`n` = inserts so far) and gives back whatever
//!   that slot held (the oldest value once the ring is full), which the caller drops at once;
//! * `take` scans from the newest slot backwards and empties the first full one;
//! * `retire` marks the ring retired and empties every slot: the values (secrets) are dropped
//!   before it returns, and no value stays behind in a retired ring.
//!
//! The last point needs a second look by the insert, because an insert may race retirement:
//! the insert checks the flag, `retire` sets it and empties the slots, and then the insert
//! stores its value into an emptied slot, where it would live on until the last reference to
//! the ring goes. So after storing, an insert checks the flag again and empties the ring itself
//! if it is set. This is enough because both sides touch the slot by RMW (`swap`), after
//! `retire` set the flag (Release) and before the insert reads it (Acquire). In the slot's
//! modification order, either:
//! * the insert's swap comes first: `retire`'s swap of that slot comes after it, takes the value
//!   and drops it; or
//! * `retire`'s swap comes first: the insert's swap reads from it (or from a later RMW of its
//!   release sequence), so it synchronizes with `retire`, and the flag set before that swap is
//!   visible to the insert's second look.
//!
//! Without the second look a value stays behind (the `ring_no_recheck` mutant shows loom finding
//! that). Writers of other state that retirement must not leave behind (the client store's
//! TLS 1.2 slot, an `ArcSwapOption` whose `store` is a swap of one word) follow the same rule:
//! write by swap, then look at [`TicketRing::is_retired`] and undo the write if it is set, while
//! the retiring side empties that state by swap after [`TicketRing::retire`].
//!
//! # The entry a write goes to
//!
//! [`live_entry`]: the live cache entry for a key, or a fresh one, but never one that replaces
//! a live entry. The cache marks an entry retired (`set_not_resumable`) after unlinking it
//! (eviction, expiry, clear), or `remove` marks it just before unlinking it. A writer that found
//! a retired entry asks `get_or_add` again with a fresh entry: it returns the live entry another
//! thread has made meanwhile, or caches the fresh one; `add` would replace a live entry that
//! another thread has made and written to since (losing that write).

use std::marker::PhantomData;
use std::ptr;
use std::sync::{Arc, Mutex};

use crate::loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use crate::{Session, SessionCache};

/// A fixed ring of take-once slots (see the module docs).
pub struct TicketRing<T> {
    slots: Box<[TicketSlot<T>]>,
    /// Values inserted so far (wrapping).
    next: AtomicUsize,
    /// Set once by `retire` (see the module docs for how inserts read it).
    retired: AtomicBool,
}

impl<T> core::fmt::Debug for TicketRing<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TicketRing")
            .field("slots", &self.slots.len())
            .field("retired", &self.is_retired())
            .finish_non_exhaustive()
    }
}

impl<T> TicketRing<T> {
    /// A ring of `len` empty slots (0: it keeps nothing).
    pub fn new(len: usize) -> Self {
        Self {
            slots: (0..len).map(|_| TicketSlot::empty()).collect(),
            next: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
        }
    }

    /// The number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the ring has no slots (it keeps nothing).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Stores `value`; returns the value it displaced (the oldest one when the ring is full), or
    /// `value` itself when the ring keeps nothing (no slots, or retired). A value stored while
    /// the ring is being retired is dropped by the retirement or by this call.
    pub fn insert(&self, value: T) -> Option<T> {
        if self.is_empty() || self.is_retired() {
            return Some(value);
        }
        // Relaxed: the counter only spreads inserts over slots; the slot swap publishes the value.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = &self.slots[n % self.slots.len()];
        #[cfg(not(session_cache_mutant = "ring_insert_store"))]
        let displaced = slot.swap(Some(Box::new(value)));
        // Mutant: the displaced value is overwritten instead of handed back (it leaks).
        #[cfg(session_cache_mutant = "ring_insert_store")]
        let displaced = slot.store_forgetting(Box::new(value));
        // The second look (module docs). Mutant: without it, a value stored into a ring that was
        // being retired stays behind.
        if !cfg!(session_cache_mutant = "ring_no_recheck") && self.is_retired() {
            self.clear();
        }
        displaced.map(|b| *b)
    }

    /// Removes and returns the newest value still present.
    pub fn take(&self) -> Option<T> {
        let len = self.slots.len();
        if len == 0 {
            return None;
        }
        // Relaxed: only the scan's starting point; the swaps synchronize.
        let newest = self.next.load(Ordering::Relaxed) % len;
        (0..len).find_map(|i| {
            let slot = &self.slots[(newest + 2 * len - 1 - i) % len];
            #[cfg(not(session_cache_mutant = "ring_take_load"))]
            let taken = slot.swap(None);
            // Mutant: a load, then a store of null: two takers can both get the value.
            #[cfg(session_cache_mutant = "ring_take_load")]
            let taken = slot.take_racy();
            taken.map(|b| *b)
        })
    }

    /// Retires the ring: every value it holds is dropped before this returns, and no value
    /// inserted concurrently or later stays in it.
    pub fn retire(&self) {
        // Release: pairs with the Acquire of `is_retired`; the slot swaps below come after it, so
        // an insert whose swap reads from one of them sees the flag (module docs).
        self.retired.store(true, Ordering::Release);
        self.clear();
    }

    /// Whether the ring was retired. Acquire: pairs with the Release store in `retire`, so
    /// whatever preceded the retirement (the cache's unlink of the entry) is visible after a
    /// `true`. Also the second look of a writer after its write (module docs).
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    fn clear(&self) {
        for slot in self.slots.iter() {
            drop(slot.swap(None));
        }
    }
}

/// A take-once slot owning at most one boxed value. Shares like a `Mutex<Option<T>>`: Send and
/// Sync exactly when `T: Send` (the marker field; `AtomicPtr` alone would claim both for any T).
struct TicketSlot<T> {
    ptr: AtomicPtr<T>,
    _owns: PhantomData<Mutex<Option<T>>>,
}

impl<T> TicketSlot<T> {
    fn empty() -> Self {
        Self {
            ptr: AtomicPtr::new(ptr::null_mut()),
            _owns: PhantomData,
        }
    }

    /// Stores `new` and returns what the slot held; ownership moves both ways atomically.
    fn swap(&self, new: Option<Box<T>>) -> Option<Box<T>> {
        let new = new.map_or(ptr::null_mut(), Box::into_raw);
        // AcqRel: Release publishes the new value's contents to whoever swaps it out; Acquire makes
        // the old value's contents (published by the swap that stored it) visible to us.
        let old = self.ptr.swap(new, Ordering::AcqRel);
        // SAFETY: every non-null pointer in a slot came from `Box::into_raw` and is owned by that
        // slot alone; the swap removed it from the slot, so this call is its only owner now.
        (!old.is_null()).then(|| unsafe { Box::from_raw(old) })
    }

    #[cfg(session_cache_mutant = "ring_insert_store")]
    fn store_forgetting(&self, new: Box<T>) -> Option<Box<T>> {
        self.ptr.store(Box::into_raw(new), Ordering::Release);
        None
    }

    #[cfg(session_cache_mutant = "ring_take_load")]
    fn take_racy(&self) -> Option<Box<T>> {
        let old = self.ptr.load(Ordering::Acquire);
        if old.is_null() {
            return None;
        }
        self.ptr.store(ptr::null_mut(), Ordering::Release);
        // SAFETY: none; this is the injected fault (two takers may both own `old`).
        Some(unsafe { Box::from_raw(old) })
    }
}

impl<T> Drop for TicketSlot<T> {
    fn drop(&mut self) {
        drop(self.swap(None));
    }
}

/// The cache entry a write for `key` goes to: the live entry cached under `key`, or else a fresh
/// one from `make`, cached with [`SessionCache::get_or_add`], which never replaces a live entry
/// (racing writers of one new key all get the same entry). An entry for which `retired` holds
/// is never written to (see the module docs). `None` when the key cannot be cached (too long),
/// or when the entry found stays retired, which only happens while an explicit `remove` of it is
/// under way (or after its owner marked it not resumable by hand): the write is then dropped
/// with it, as if it had come just before the removal.
pub fn live_entry<S: Session>(
    cache: &SessionCache<S>,
    key: &[u8],
    make: impl Fn() -> Arc<S>,
    retired: impl Fn(&S) -> bool,
) -> Option<Arc<S>> {
    if let Some(state) = cache.get(key) {
        if !retired(&state) {
            return Some(state);
        }
    }
    // Absent, expired or retired. A retired entry has normally left the cache already (the cache
    // marks evicted, expired and cleared entries after unlinking them, and `retired` reads the
    // mark with Acquire, so the unlink is visible to the next lookup); a second try covers an
    // entry that a racing eviction retires between our `get_or_add` and our check.
    for _ in 0..2 {
        // Err: the key is longer than the cache's max_id_len; nothing is stored.
        let state = cache.get_or_add(make()).ok()?;
        if !retired(&state) {
            return Some(state);
        }
        // Mutant: replace the retired entry with `add`, which replaces whatever is cached now,
        // possibly a live entry that another thread made and wrote to since.
        #[cfg(session_cache_mutant = "replace_retired")]
        {
            let fresh = make();
            return cache.add(fresh.clone()).then_some(fresh);
        }
    }
    None
}

#[cfg(all(test, not(session_cache_loom)))]
mod tests {
    use super::TicketRing;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn ring_hands_out_newest_first_each_once() {
        let ring = TicketRing::new(3);
        assert_eq!(ring.len(), 3);
        for v in 1..=3 {
            assert_eq!(ring.insert(v), None);
        }
        assert_eq!(ring.take(), Some(3));
        assert_eq!(ring.take(), Some(2));
        assert_eq!(ring.take(), Some(1));
        assert_eq!(ring.take(), None);
    }

    #[test]
    fn ring_overwrites_oldest_when_full() {
        let ring = TicketRing::new(2);
        assert_eq!(ring.insert(1), None);
        assert_eq!(ring.insert(2), None);
        assert_eq!(ring.insert(3), Some(1));
        assert_eq!(ring.insert(4), Some(2));
        assert_eq!(ring.take(), Some(4));
        // Round-robin: the fifth insert lands on the slot holding 3, the oldest left.
        assert_eq!(ring.insert(5), Some(3));
        assert_eq!(ring.take(), Some(5));
        assert_eq!(ring.take(), None);
    }

    #[test]
    fn zero_sized_ring_keeps_nothing() {
        let ring = TicketRing::new(0);
        assert_eq!(ring.insert(7), Some(7));
        assert_eq!(ring.take(), None);
    }

    #[test]
    fn ring_drops_what_it_holds() {
        let v = Arc::new(());
        {
            let ring = TicketRing::new(4);
            for _ in 0..6 {
                drop(ring.insert(v.clone()));
            }
            assert_eq!(Arc::strong_count(&v), 5);
        }
        assert_eq!(Arc::strong_count(&v), 1);
    }

    #[test]
    fn a_retired_ring_drops_everything_and_keeps_nothing() {
        let v = Arc::new(());
        let ring = TicketRing::new(2);
        drop(ring.insert(v.clone()));
        assert!(!ring.is_retired());
        ring.retire();
        assert!(ring.is_retired());
        assert_eq!(
            Arc::strong_count(&v),
            1,
            "retire dropped what the ring held"
        );
        assert!(
            ring.insert(v.clone()).is_some(),
            "a retired ring hands the value back"
        );
        assert_eq!(ring.take(), None);
        assert_eq!(Arc::strong_count(&v), 1);
    }

    #[test]
    fn racing_takes_and_inserts_hand_out_each_value_at_most_once() {
        const PER_THREAD: u64 = 20_000;
        let ring = Arc::new(TicketRing::new(8));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut displaced = Vec::new();
                    for i in 0..PER_THREAD {
                        if t % 2 == 0 {
                            displaced.extend(ring.insert(t * PER_THREAD + i));
                        }
                        got.extend(ring.take());
                    }
                    (got, displaced)
                })
            })
            .collect();
        let mut seen = HashSet::new();
        let mut total = 0;
        for th in threads {
            let (got, displaced) = th.join().unwrap();
            for v in got.into_iter().chain(displaced) {
                total += 1;
                assert!(seen.insert(v), "value {v} came out twice");
            }
        }
        while let Some(v) = ring.take() {
            total += 1;
            assert!(seen.insert(v), "value {v} came out twice");
        }
        // Everything inserted came out exactly once: taken, displaced or left over.
        assert_eq!(total, 2 * PER_THREAD);
    }
}
