//! A block: the slots of one bucket, plus one-byte hash tags that let a scan skip most slots
//! without touching their entries.

use crate::loom::sync::atomic::{AtomicU8, Ordering};
use crate::reclaim::Atomic;

use super::entry::Entry;

/// The slots of one bucket. Blocks are replaced whole, never resized in place.
pub(crate) struct Block<T> {
    /// `tags[i]` is 0 until the claimer of slot `i` writes the tag of its key's hash. A slot's
    /// key never changes within a block, so any non-zero tag is correct forever; a zero tag only
    /// means "look at the entry".
    tags: Box<[AtomicU8]>,
    pub(crate) slots: Box<[Atomic<Entry<T>>]>,
}

/// The tag of a hash: its top bits, never 0. The bucket index uses the low bits.
#[inline]
pub(crate) fn tag_of(hash: u64) -> u8 {
    ((hash >> 56) as u8) | 1
}

impl<T> Block<T> {
    pub(crate) fn new(width: usize) -> Self {
        Block {
            tags: (0..width).map(|_| AtomicU8::new(0)).collect(),
            slots: (0..width).map(|_| Atomic::null()).collect(),
        }
    }

    #[inline]
    pub(crate) fn width(&self) -> usize {
        self.slots.len()
    }

    /// False only if slot `i` is claimed by a key whose hash has another tag.
    #[inline]
    pub(crate) fn may_hold(&self, i: usize, tag: u8) -> bool {
        // Relaxed: a tag is a hint, confirmed against the full key whenever it does not rule
        // the slot out; a stale 0 only costs that comparison.
        let t = self.tags[i].load(Ordering::Relaxed);
        t == 0 || t == tag
    }

    #[inline]
    pub(crate) fn set_tag(&self, i: usize, tag: u8) {
        // Relaxed: see `may_hold`; the value written is right for this slot forever.
        self.tags[i].store(tag, Ordering::Relaxed);
    }
}
