//! One cached value with its key: immutable once published into a slot.

use std::sync::Arc;

use crate::loom::cell::UnsafeCell;
use crate::reclaim::Owned;

/// Keys up to this many bytes (every TLS session id) live inside the entry, without a second
/// allocation.
const INLINE_KEY: usize = 32;

/// Tag bit on a slot word: the entry's value was removed; the slot keeps the key (claim rule).
pub(crate) const DEAD: usize = 0b01;
/// Tag bit on a slot word: the block is being rebuilt; no CAS may succeed on this slot again.
pub(crate) const FROZEN: usize = 0b10;

/// The key's bytes when they fit, else the pointer to a heap copy. A union rather than bytes
/// holding an address, so the pointer keeps its provenance.
union KeyBytes {
    inline: [u8; INLINE_KEY],
    heap: *mut u8,
}

/// Packed so that an entry with its key is 56 bytes (one 64-byte malloc chunk): the key's
/// length sits beside `seq`, and the hash is not stored (the slot's tag already filters lookups,
/// and the rare paths that need it, rebuilds and splits, recompute it).
struct EntryData<T> {
    /// Opaque order for eviction: smaller goes first. The policy stores the expiry instant.
    rank: u64,
    /// From `Arc::into_raw`. Whether this entry owns a strong count is the table's business
    /// (see the ownership rules in `raw/mod.rs`); dropping an `Entry` never touches it.
    value: *const T,
    /// Tie-break among equal ranks: smaller was (re-)added earlier (wrapping).
    seq: u32,
    key_len: u32,
    key: KeyBytes,
}

impl<T> EntryData<T> {
    #[inline]
    fn key(&self) -> &[u8] {
        let len = self.key_len as usize;
        if len <= INLINE_KEY {
            // SAFETY: short keys are stored in `inline` (see `Entry::new`).
            unsafe { &self.key.inline[..len] }
        } else {
            // SAFETY: long keys are a live `Box<[u8]>` of `len` bytes at `heap`, freed only by
            // `drop`.
            unsafe { core::slice::from_raw_parts(self.key.heap, len) }
        }
    }
}

impl<T> Drop for EntryData<T> {
    fn drop(&mut self) {
        let len = self.key_len as usize;
        if len > INLINE_KEY {
            // SAFETY: made by `Box::into_raw` in `Entry::new`, dropped once, here.
            let heap = core::ptr::slice_from_raw_parts_mut(unsafe { self.key.heap }, len);
            // SAFETY: as above.
            drop(unsafe { Box::from_raw(heap) });
        }
    }
}

/// A cached value, its key and its order. Published into a slot by CAS and never changed after
/// that; the payload sits in the facade's `UnsafeCell` so that loom checks it is only read after
/// the publishing CAS.
pub(crate) struct Entry<T> {
    data: UnsafeCell<EntryData<T>>,
}

impl<T> Entry<T> {
    pub(crate) fn new(key: &[u8], rank: u64, seq: u64, value: *const T) -> Self {
        let key_len = u32::try_from(key.len()).expect("ids are limited far below 4 GiB");
        let key = if key.len() <= INLINE_KEY {
            let mut inline = [0; INLINE_KEY];
            inline[..key.len()].copy_from_slice(key);
            KeyBytes { inline }
        } else {
            KeyBytes {
                heap: Box::into_raw(Box::<[u8]>::from(key)).cast::<u8>(),
            }
        };
        Entry {
            data: UnsafeCell::new(EntryData {
                rank,
                value,
                seq: seq as u32,
                key_len,
                key,
            }),
        }
    }

    #[inline]
    fn read<R>(&self, f: impl FnOnce(&EntryData<T>) -> R) -> R {
        // SAFETY: the data is written only through `&mut self` (before publication) and read
        // through `&self` after it, never both at once.
        self.data.with(|d| f(unsafe { &*d }))
    }

    #[inline]
    pub(crate) fn rank(&self) -> u64 {
        self.read(|d| d.rank)
    }

    /// The insertion order, comparable with wrapping arithmetic (see `sooner`).
    #[inline]
    pub(crate) fn seq(&self) -> u32 {
        self.read(|d| d.seq)
    }

    #[inline]
    pub(crate) fn value_ptr(&self) -> *const T {
        self.read(|d| d.value)
    }

    #[inline]
    pub(crate) fn has_key(&self, key: &[u8]) -> bool {
        self.read(|d| d.key() == key)
    }

    #[inline]
    pub(crate) fn with_key<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        self.read(|d| f(d.key()))
    }

    /// Sets the order of an entry not yet published.
    pub(crate) fn set_order(&mut self, rank: u64, seq: u64) {
        // SAFETY: `&mut self`: the entry is not shared yet.
        self.data.with_mut(|d| unsafe {
            (*d).rank = rank;
            (*d).seq = seq as u32;
        })
    }
}

// The point of the packing: one 64-byte malloc chunk per entry on 64-bit targets.
#[cfg(all(target_pointer_width = "64", not(session_cache_loom)))]
const _: () = assert!(size_of::<Entry<()>>() == 56);

/// Returns a new strong reference to the value behind `ptr`.
///
/// # Safety
/// `ptr` must come from `Arc::into_raw` and its strong count must stay at least 1 for the
/// duration of the call: in this crate, the caller is pinned and loaded `ptr` from an entry
/// that was reachable after it pinned, so the table's own reference is released (deferred)
/// only after the caller unpins.
#[inline]
pub(crate) unsafe fn clone_arc<T>(ptr: *const T) -> Arc<T> {
    // SAFETY: see the function's contract.
    unsafe {
        Arc::increment_strong_count(ptr);
        Arc::from_raw(ptr)
    }
}

/// A new entry in an allocation this thread freed before, when it has one (no `malloc`).
#[inline]
pub(crate) fn alloc_entry<T>(entry: Entry<T>) -> Owned<Entry<T>> {
    #[cfg(not(session_cache_loom))]
    if pool::fits::<T>() {
        if let Some(memory) = pool::take() {
            let raw = memory.cast::<Entry<T>>();
            // SAFETY: `memory` came from the global allocator with the layout of `Entry<T>`
            // (`pool::fits`), through `Box::into_raw` of an entry whose contents were dropped,
            // and nothing else refers to it; writing the entry makes it a valid `Box`.
            unsafe {
                raw.write(entry);
                return Owned::from_raw(raw);
            }
        }
    }
    Owned::new(entry)
}

/// Frees an entry (its key too); the allocation is kept for this thread's next insert.
pub(crate) fn free_entry<T>(entry: Owned<Entry<T>>) {
    #[cfg(not(session_cache_loom))]
    if pool::fits::<T>() {
        let raw = Box::into_raw(entry.into_box());
        // SAFETY: `raw` is a valid, uniquely owned entry: drop its contents once, then hand the
        // bare allocation to the pool (or back to the allocator, with the layout it came with).
        unsafe {
            core::ptr::drop_in_place(raw);
            pool::give(raw.cast::<u8>(), std::alloc::Layout::new::<Entry<T>>());
        }
        return;
    }
    drop(entry);
}

/// Per-thread free list of entry allocations: an evicting insert frees an entry (through the
/// collector, often on the same thread) for each one it allocates, and `malloc` of these
/// chunks in bursts that the collector frees missed the allocator's own cache most of the time.
#[cfg(not(session_cache_loom))]
mod pool {
    use core::cell::RefCell;
    use std::alloc::Layout;

    use super::Entry;

    /// Allocations kept per thread (16 KiB): enough to absorb a batch of releases.
    const MAX: usize = 256;

    /// Whether `Entry<T>` has the layout the pool keeps (that of every `Entry`: a thin value
    /// pointer whatever `T` is).
    #[inline]
    pub(super) const fn fits<T>() -> bool {
        let (a, b) = (Layout::new::<Entry<T>>(), Layout::new::<Entry<()>>());
        a.size() == b.size() && a.align() == b.align()
    }

    struct Free(RefCell<Vec<*mut u8>>);

    impl Drop for Free {
        fn drop(&mut self) {
            for memory in self.0.get_mut().drain(..) {
                // SAFETY: every pointer kept was allocated with the entry layout and is owned
                // by the pool alone.
                unsafe { std::alloc::dealloc(memory, Layout::new::<Entry<()>>()) };
            }
        }
    }

    std::thread_local! {
        static FREE: Free = const { Free(RefCell::new(Vec::new())) };
    }

    #[inline]
    pub(super) fn take() -> Option<*mut u8> {
        FREE.try_with(|f| f.0.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten()
    }

    /// # Safety
    /// `memory` was allocated with `layout`, the entry layout, and is owned by the caller.
    pub(super) unsafe fn give(memory: *mut u8, layout: Layout) {
        let kept = FREE
            .try_with(|f| match f.0.try_borrow_mut() {
                Ok(mut free) if free.len() < MAX => {
                    if free.capacity() == 0 {
                        free.reserve_exact(MAX);
                    }
                    free.push(memory);
                    true
                }
                _ => false,
            })
            .unwrap_or(false);
        if !kept {
            // SAFETY: per the contract.
            unsafe { std::alloc::dealloc(memory, layout) };
        }
    }
}
