//! A block: the slots of one bucket, in one allocation. Each slot is the entry word and a
//! one-byte hash tag that lets a scan skip the slot without touching its entry; both sit in
//! the same cache line.

use core::mem::MaybeUninit;

use crate::loom::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use crate::reclaim::{Atomic, Owned};

use super::entry::Entry;

/// One slot: a word pointing to an entry (tagged `DEAD` / `FROZEN`), the tag of its key, and a
/// hint of its entry's rank; 16 bytes.
pub(crate) struct Slot<T> {
    pub(crate) word: Atomic<Entry<T>>,
    /// 0 until the claimer of the slot writes the tag of its key's hash. A slot's key never
    /// changes within a block, so any non-zero tag is correct forever; a zero tag only means
    /// "look at the entry".
    tag: AtomicU8,
    /// [`rank_hint`] of the entry last installed here, written just after the CAS that
    /// installed it: eviction scans compare these instead of dereferencing every entry. It may
    /// lag the word while another thread's write is in flight, so it only orders candidates and
    /// rules expiry *out*; whatever it rules in is confirmed on the entry. Never written in loom
    /// builds (always 0: every comparison falls through to the entries).
    hint: AtomicU32,
}

/// The rank hint of `rank`: its high bits (units of about 4.2 ms, the coarse clock's
/// resolution), saturating. Monotone: a smaller hint means a smaller rank.
#[inline]
pub(crate) fn rank_hint(rank: u64) -> u32 {
    u32::try_from(rank >> 22).unwrap_or(u32::MAX)
}

impl<T> Slot<T> {
    /// False only if the slot is claimed by a key whose hash has another tag.
    #[inline]
    pub(crate) fn may_hold(&self, tag: u8) -> bool {
        // Relaxed: a tag is a hint, confirmed against the full key whenever it does not rule
        // the slot out; a stale 0 only costs that comparison.
        let t = self.tag.load(Ordering::Relaxed);
        t == 0 || t == tag
    }

    /// The rank hint of the slot's entry (see the field).
    #[inline]
    pub(crate) fn hint(&self) -> u32 {
        // Relaxed: a hint; see the field.
        self.hint.load(Ordering::Relaxed)
    }

    /// Records the rank of the entry just installed in this slot.
    #[inline]
    pub(crate) fn set_hint(&self, rank: u64) {
        #[cfg(not(session_cache_loom))]
        // Relaxed: a hint; see the field.
        self.hint.store(rank_hint(rank), Ordering::Relaxed);
        #[cfg(session_cache_loom)]
        let _ = rank;
    }

    /// Overwrites the tag, breaking the tag rule on purpose (the checker's own tests).
    #[cfg(test)]
    pub(crate) fn force_tag(&self, tag: u8) {
        // Relaxed: single-threaded test.
        self.tag.store(tag, Ordering::Relaxed);
    }

    /// The tag written for this slot's key, or 0.
    #[inline]
    pub(crate) fn tag(&self) -> u8 {
        // Relaxed: see `may_hold`.
        self.tag.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn set_tag(&self, tag: u8) {
        // Tag rule: a slot's tag goes from 0 to its key's tag once and never changes after, as
        // its key never does (claim rule).
        // (Not in loom builds: the extra load would multiply the models' interleavings; the
        // models check the rule at rest with `check_invariants`.)
        debug_assert!(tag != 0, "tags are never 0");
        #[cfg(not(session_cache_loom))]
        debug_assert!(
            {
                let before = self.tag();
                before == 0 || before == tag
            },
            "a slot's tag changed: {} -> {tag}",
            self.tag()
        );
        // Relaxed: see `may_hold`; the value written is right for this slot forever.
        self.tag.store(tag, Ordering::Relaxed);
    }
}

/// The slots of one bucket: one allocation (crossbeam's array `Pointable`: length, then the
/// slots). Blocks are replaced whole, never resized in place.
pub(crate) type Block<T> = [MaybeUninit<Slot<T>>];

/// A block of `width` empty slots.
pub(crate) fn new_block<T>(width: usize) -> Owned<Block<T>> {
    let mut block = Owned::<Block<T>>::init(width);
    for slot in block.iter_mut() {
        slot.write(Slot {
            word: Atomic::null(),
            tag: AtomicU8::new(0),
            hint: AtomicU32::new(0),
        });
    }
    block
}

/// Access to the (always initialised) slots of a block.
pub(crate) trait Slots<T> {
    fn slot(&self, i: usize) -> &Slot<T>;
    fn slots<'a>(&'a self) -> impl Iterator<Item = &'a Slot<T>>
    where
        T: 'a;
}

impl<T> Slots<T> for Block<T> {
    #[inline]
    fn slot(&self, i: usize) -> &Slot<T> {
        // SAFETY: `new_block` initialises every slot before the block is shared, and blocks
        // are made nowhere else.
        unsafe { self[i].assume_init_ref() }
    }

    #[inline]
    fn slots<'a>(&'a self) -> impl Iterator<Item = &'a Slot<T>>
    where
        T: 'a,
    {
        // SAFETY: as in `slot`.
        self.iter().map(|s| unsafe { s.assume_init_ref() })
    }
}

/// The tag of a hash: its top bits, never 0. The bucket index uses the low bits.
#[inline]
pub(crate) fn tag_of(hash: u64) -> u8 {
    ((hash >> 56) as u8) | 1
}
