//! The shared ceiling: an ideal table that stays sound with any number of writers and readers,
//! so that it bounds the write mixes (`handshake`, `churn`) at every thread count, where the
//! flat ceiling of the parent module may only run with one writer.
//!
//! It is **not a cache** either: it keeps at most [`BOUND`] entries in each group of seven
//! lanes and evicts within the group an add lands in (a set-associative table, 4 096 × 5 =
//! 20 480 entries at most), so it never probes past a key's home group, never displaces, keeps
//! no live count and never rebuilds anything. The contract forbids that bound (an add evicts
//! only when the whole cache is full), and every part of it only makes the table faster. What
//! it keeps is what any lock-free table on crossbeam-epoch pays with concurrent writers:
//! - every slot change is a compare-exchange (`cmpxchg16b`), since another writer may change
//!   the same group; the tag word beside the slots is written with a plain load and store, which
//!   a design that keeps the tag inside the slot would not pay for at all;
//! - the epoch pin around every operation, and removed or evicted sessions released through
//!   deferred batches of [`BATCH`](super::BATCH), flushed to the collector at once (looser
//!   than the shipped cache's bound on how long a release may wait: never slower for it);
//! - the coarse clock and the per-thread counts, switchable as in the parent module.
//!
//! Two writers of one group can race on its tag word and lose one's update. A lost tag leaves an
//! entry that lookups miss and claimers skip until an eviction, which reads the slots
//! themselves, takes it; a lost clear leaves an empty lane that looks taken, so the group keeps
//! fewer entries, until an add finds nothing there to evict and rewrites the tags. Both only
//! make the table cheaper, and both are memory-safe: a slot's session is released only by the
//! one thread whose compare-exchange emptied it, after the grace period.

use std::cell::RefCell;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::Arc;

use super::super::{Id, Sess, Subject, CAP, TTL};
use super::{
    expiry, pointer, release_all, tag, Batch, Group, Kept, Parts, Released, BATCH, GROUPS, TAKEN,
};

/// Entries a group keeps: an add into a group holding this many evicts its oldest first.
const BOUND: u32 = 5;
const _: () = assert!(GROUPS * BOUND as usize == CAP);

/// This thread's releases gathered for the next batch. Unlike the flat ceiling's, it hands
/// its rest to the collector when the thread exits: other threads may still read.
struct Gathering(Vec<Released>);

impl Drop for Gathering {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            // SAFETY: every gathered session was unlinked by `kill`.
            unsafe { Batch::hand_off(&crossbeam_epoch::pin(), std::mem::take(&mut self.0)) };
        }
    }
}

thread_local! {
    static GATHERING: RefCell<Gathering> = const { RefCell::new(Gathering(Vec::new())) };
}

/// Gathers the unlinked session `p` for this thread's next batch, and hands the batch off once
/// it holds [`BATCH`].
///
/// # Safety
/// `p` came from `Arc::into_raw`, and the caller's compare-exchange just emptied the one slot
/// that held it: no slot holds it, so only readers pinned before now can have loaded it.
pub(super) unsafe fn gather(p: *const Sess, guard: &crossbeam_epoch::Guard) {
    GATHERING.with(|g| {
        let mut g = g.borrow_mut();
        g.0.push(Released(p));
        if g.0.len() >= BATCH {
            let full = std::mem::replace(&mut g.0, Vec::with_capacity(BATCH));
            // SAFETY: every gathered session was unlinked (this function's contract).
            unsafe { Batch::hand_off(guard, full) };
        }
    });
}

/// Hands this thread's gathered releases off and flushes.
pub(super) fn settle_gathered() {
    let guard = crossbeam_epoch::pin();
    let rest = GATHERING.with(|g| std::mem::take(&mut g.borrow_mut().0));
    if !rest.is_empty() {
        // SAFETY: every gathered session was unlinked (`gather`'s contract).
        unsafe { Batch::hand_off(&guard, rest) };
    }
    guard.flush();
}

/// See the module docs.
pub struct SharedCeiling {
    groups: Box<[Group]>,
    kept: Kept,
}

/// Where a key stands: its lane in its home group and the slot's value.
struct Place<'a> {
    group: &'a Group,
    lane: usize,
    pair: u128,
}

impl SharedCeiling {
    pub fn new(parts: Parts) -> Self {
        SharedCeiling {
            groups: (0..GROUPS).map(|_| Group::new()).collect(),
            kept: Kept::new(parts),
        }
    }

    #[inline(always)]
    fn home(&self, hash: u64) -> &Group {
        &self.groups[hash as usize & (GROUPS - 1)]
    }

    /// The lane of `group` holding `id`, if any (its home group is the only place it can be).
    #[inline(always)]
    fn locate<'a>(&self, group: &'a Group, id: &Id, tag: u64) -> Option<Place<'a>> {
        // SAFETY: the caller is pinned, and a slot's session is released only after the slot
        // was emptied and every guard pinned before that has ended.
        let (lane, pair) = unsafe { group.find(group.tags.load(Acquire), tag, id) }?;
        Some(Place { group, lane, pair })
    }

    /// Empties the slot at `place` if it still holds the same session, and retires it.
    fn kill(&self, place: &Place<'_>, guard: &crossbeam_epoch::Guard) -> bool {
        if place.group.slots[place.lane]
            .compare_exchange(place.pair, 0, AcqRel, Acquire)
            .is_err()
        {
            return false;
        }
        // A plain store, no read-modify-write (module docs). Relaxed: a tag only steers lookups,
        // which confirm every candidate by its slot's Acquire load.
        let tags = place.group.tags.load(Relaxed);
        place
            .group
            .tags
            .store(tags & !(0xff << (place.lane * 8)), Relaxed);
        // SAFETY: our compare-exchange emptied the slot: the session is unlinked.
        unsafe { gather(pointer(place.pair), guard) };
        true
    }

    /// Evicts the oldest session of `group`. If every slot is empty (each lane's tag was left
    /// set by a lost clear, module docs), clears the tags instead, so that the add can claim.
    fn evict(&self, group: &Group, guard: &crossbeam_epoch::Guard) {
        let mut oldest: Option<(usize, u128)> = None;
        for (lane, slot) in group.slots.iter().enumerate() {
            let pair = slot.load(Acquire);
            if pair != 0 && oldest.map_or(true, |(_, o)| expiry(pair) < expiry(o)) {
                oldest = Some((lane, pair));
            }
        }
        match oldest {
            Some((lane, pair)) => {
                self.kill(&Place { group, lane, pair }, guard);
            }
            // Relaxed: as in `kill`.
            None => group.tags.store(0, Relaxed),
        }
    }
}

impl Subject for SharedCeiling {
    type Prepared = Arc<Sess>;
    fn prepare(&self, s: Arc<Sess>) -> Arc<Sess> {
        s
    }

    fn add_prepared(&self, s: Arc<Sess>) {
        let hash = self.kept.hash(&s.id);
        let tag = tag(hash);
        let expires = self.kept.now().saturating_add(TTL.as_nanos() as u64);
        let guard = crossbeam_epoch::pin();
        let group = self.home(hash);
        if self.locate(group, &s.id, tag).is_some() {
            return;
        }
        let pair = (Arc::into_raw(s) as u64 as u128) | ((expires as u128) << 64);
        loop {
            let tags = group.tags.load(Acquire);
            if (tags & TAKEN).count_ones() < BOUND {
                let mut free = !tags & TAKEN;
                while free != 0 {
                    let lane = (free.trailing_zeros() / 8) as usize;
                    free &= free - 1;
                    if group.slots[lane]
                        .compare_exchange(0, pair, AcqRel, Acquire)
                        .is_ok()
                    {
                        // As in `kill`; the slot's own compare-exchange published the session.
                        let tags = group.tags.load(Relaxed);
                        group.tags.store(tags | tag << (lane * 8), Relaxed);
                        return;
                    }
                }
            }
            // Full, or every lane free by its tag was claimed meanwhile (or holds an entry
            // whose tag was lost, module docs): the oldest goes, whatever its tag.
            self.evict(group, &guard);
        }
    }

    #[inline]
    fn get(&self, id: &Id) -> bool {
        let hash = self.kept.hash(id);
        let guard = crossbeam_epoch::pin();
        let found = self
            .locate(self.home(hash), id, tag(hash))
            .map(|place| place.pair);
        // SAFETY: `locate` loaded the slot under `guard`.
        unsafe { self.kept.answer(found, guard) }
    }

    fn remove(&self, id: &Id) -> bool {
        let hash = self.kept.hash(id);
        let guard = crossbeam_epoch::pin();
        match self.locate(self.home(hash), id, tag(hash)) {
            Some(place) => self.kill(&place, &guard),
            None => false,
        }
    }

    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }

    fn settle(&self) {
        settle_gathered();
    }
}

impl Drop for SharedCeiling {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: the table is being dropped, and no reader is left.
        unsafe { release_all(&self.groups) };
    }
}
