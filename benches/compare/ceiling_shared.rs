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
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::Arc;

use portable_atomic::AtomicU128;

use super::super::{Hasher, Id, Sess, Subject, CAP, TTL};
use super::{coarse_nanos, expiry, pointer, Batch, Parts, Released, BATCH, LANES, TAKEN};

/// Groups: one per [`BOUND`] entries of the capacity.
const GROUPS: usize = 4096;
/// Entries a group keeps: an add into a group holding this many evicts its oldest first.
const BOUND: u32 = 5;
const _: () = assert!(GROUPS * BOUND as usize == CAP);

#[repr(C, align(64))]
struct Group {
    /// One byte per lane: 0 for empty, else 0x80 | seven bits of the hash.
    tags: AtomicU64,
    _pad: u64,
    /// Each: the session's `Arc` pointer (low half, 0 for empty) and its expiry (high half).
    slots: [AtomicU128; LANES],
}

impl Group {
    fn new() -> Self {
        Group {
            tags: AtomicU64::new(0),
            _pad: 0,
            slots: std::array::from_fn(|_| AtomicU128::new(0)),
        }
    }
}

/// This thread's releases gathered for the next batch. Unlike the flat ceiling's, it hands
/// its rest to the collector when the thread exits: other threads may still read.
struct Gathering(Vec<Released>);

impl Gathering {
    /// Hands `items` to the collector as one deferred release.
    fn hand_off(guard: &crossbeam_epoch::Guard, items: Vec<Released>) {
        let batch = Batch(items);
        // SAFETY: every session in the batch was unlinked by the compare-exchange that emptied
        // its slot; the collector runs the closure only after every guard pinned before this
        // defer has ended, so no reader that loaded one of them can still hold it.
        unsafe {
            guard.defer_unchecked(move || {
                let batch = batch;
                for r in batch.0 {
                    // SAFETY: past the grace period (above).
                    r.release();
                }
            })
        };
        guard.flush();
    }
}

impl Drop for Gathering {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            Self::hand_off(&crossbeam_epoch::pin(), std::mem::take(&mut self.0));
        }
    }
}

thread_local! {
    static GATHERING: RefCell<Gathering> = const { RefCell::new(Gathering(Vec::new())) };
    static COUNTS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// See the module docs.
pub struct SharedCeiling {
    groups: Box<[Group]>,
    hasher: Hasher,
    parts: Parts,
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
            hasher: Hasher::new(),
            parts,
        }
    }

    #[inline(always)]
    fn hash(&self, key: &[u8]) -> u64 {
        use std::hash::{BuildHasher, Hasher as _};
        let mut h = self.hasher.build_hasher();
        h.write(key);
        h.finish()
    }

    #[inline(always)]
    fn tag(hash: u64) -> u64 {
        (hash >> 57) | 0x80
    }

    #[inline(always)]
    fn home(&self, hash: u64) -> &Group {
        &self.groups[hash as usize & (GROUPS - 1)]
    }

    #[inline(always)]
    fn now(&self) -> u64 {
        if self.parts.has(Parts::CLOCK) {
            coarse_nanos()
        } else {
            0
        }
    }

    #[inline(always)]
    fn count(&self, hit: bool) {
        if self.parts.has(Parts::STATS) {
            COUNTS.with(|c| {
                let (h, m) = c.get();
                c.set((h + hit as u64, m + !hit as u64));
            });
        }
    }

    /// The lane of `group` holding `id`, if any (its home group is the only place it can be).
    #[inline(always)]
    fn locate<'a>(&self, group: &'a Group, id: &Id, tag: u64) -> Option<Place<'a>> {
        let tags = group.tags.load(Acquire);
        let x = tags ^ tag.wrapping_mul(0x0101_0101_0101_0101);
        let mut lanes = x.wrapping_sub(0x0101_0101_0101_0101) & !x & TAKEN;
        while lanes != 0 {
            let lane = (lanes.trailing_zeros() / 8) as usize;
            lanes &= lanes - 1;
            let pair = group.slots[lane].load(Acquire);
            let p = pointer(pair);
            // SAFETY: the caller is pinned, and a slot's session is released only after the
            // slot was emptied and every guard pinned before that has ended.
            if !p.is_null() && unsafe { &*p }.id == *id {
                return Some(Place { group, lane, pair });
            }
        }
        None
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
        GATHERING.with(|g| {
            let mut g = g.borrow_mut();
            g.0.push(Released(pointer(place.pair)));
            if g.0.len() >= BATCH {
                let full = std::mem::replace(&mut g.0, Vec::with_capacity(BATCH));
                Gathering::hand_off(guard, full);
            }
        });
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
        let hash = self.hash(&s.id);
        let tag = Self::tag(hash);
        let expires = self.now().saturating_add(TTL.as_nanos() as u64);
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
        let hash = self.hash(id);
        let guard = crossbeam_epoch::pin();
        let hit = match self.locate(self.home(hash), id, Self::tag(hash)) {
            Some(place) if expiry(place.pair) > self.now() => {
                let p = pointer(place.pair);
                // SAFETY: live under the guard (see `locate`); the clone is the caller's
                // reference, as a cache's `get` hands out.
                let session = unsafe {
                    Arc::increment_strong_count(p);
                    Arc::from_raw(p)
                };
                drop(guard);
                drop(session);
                true
            }
            _ => false,
        };
        self.count(hit);
        hit
    }

    fn remove(&self, id: &Id) -> bool {
        let hash = self.hash(id);
        let guard = crossbeam_epoch::pin();
        match self.locate(self.home(hash), id, Self::tag(hash)) {
            Some(place) => self.kill(&place, &guard),
            None => false,
        }
    }

    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }

    fn settle(&self) {
        let guard = crossbeam_epoch::pin();
        let rest = GATHERING.with(|g| std::mem::take(&mut g.borrow_mut().0));
        if !rest.is_empty() {
            Gathering::hand_off(&guard, rest);
        }
        guard.flush();
    }
}

impl Drop for SharedCeiling {
    fn drop(&mut self) {
        for group in self.groups.iter() {
            for slot in group.slots.iter() {
                let p = pointer(slot.load(Relaxed));
                if !p.is_null() {
                    // SAFETY: the table is gone, so is every reader; each live slot holds one
                    // reference of its own.
                    unsafe { Released(p).release() };
                }
            }
        }
    }
}
