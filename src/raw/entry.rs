//! One cached value with its key: immutable once published into a slot.

use std::sync::Arc;

use crate::loom::cell::UnsafeCell;

/// Keys up to this many bytes (every TLS session id) live inside the entry, without a second
/// allocation.
const INLINE_KEY: usize = 32;

/// Tag bit on a slot word: the entry's value was removed; the slot keeps the key (claim rule).
pub(crate) const DEAD: usize = 0b01;
/// Tag bit on a slot word: the block is being rebuilt; no CAS may succeed on this slot again.
pub(crate) const FROZEN: usize = 0b10;

/// The key bytes, stored inline when short.
enum Key {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl Key {
    fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE_KEY {
            let mut bytes = [0; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key);
            Key::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(key.into())
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Heap(bytes) => bytes,
        }
    }
}

struct EntryData<T> {
    hash: u64,
    /// Opaque order for eviction: smaller goes first. The policy stores the expiry instant.
    rank: u64,
    /// Tie-break among equal ranks: smaller was (re-)added earlier.
    seq: u64,
    /// From `Arc::into_raw`. Whether this entry owns a strong count is the table's business
    /// (see the ownership rules in `raw/mod.rs`); dropping an `Entry` never touches it.
    value: *const T,
    key: Key,
}

/// A cached value, its key and its order. Published into a slot by CAS and never changed after
/// that; the payload sits in the facade's `UnsafeCell` so that loom checks it is only read after
/// the publishing CAS.
pub(crate) struct Entry<T> {
    data: UnsafeCell<EntryData<T>>,
}

impl<T> Entry<T> {
    pub(crate) fn new(key: &[u8], hash: u64, rank: u64, seq: u64, value: *const T) -> Self {
        Entry {
            data: UnsafeCell::new(EntryData {
                hash,
                rank,
                seq,
                value,
                key: Key::new(key),
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
    pub(crate) fn hash(&self) -> u64 {
        self.read(|d| d.hash)
    }

    #[inline]
    pub(crate) fn rank(&self) -> u64 {
        self.read(|d| d.rank)
    }

    #[inline]
    pub(crate) fn seq(&self) -> u64 {
        self.read(|d| d.seq)
    }

    #[inline]
    pub(crate) fn value_ptr(&self) -> *const T {
        self.read(|d| d.value)
    }

    #[inline]
    pub(crate) fn has_key(&self, hash: u64, key: &[u8]) -> bool {
        self.read(|d| d.hash == hash && d.key.as_bytes() == key)
    }

    #[inline]
    pub(crate) fn with_key<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        self.read(|d| f(d.key.as_bytes()))
    }

    /// Sets the order of an entry not yet published.
    pub(crate) fn set_order(&mut self, rank: u64, seq: u64) {
        // SAFETY: `&mut self`: the entry is not shared yet.
        self.data.with_mut(|d| unsafe {
            (*d).rank = rank;
            (*d).seq = seq;
        })
    }
}

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
