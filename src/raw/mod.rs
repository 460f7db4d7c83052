//! The raw lock-free table: byte keys to `Arc<T>` values, each with an opaque order.
//!
//! It knows nothing of clocks, capacity or TLS; `policy` builds those on top.
//!
//! # Layout
//!
//! A fixed power-of-two array of buckets. A key hashes (seeded ahash) to one bucket and lives
//! nowhere else. A bucket points to a [`Block`]: a small array of slots (8 to start), searched
//! linearly, or to nothing while the bucket is empty. Each slot is one word: null, or a pointer
//! to an immutable [`Entry`] (key, hash, order, `Arc::into_raw` value) with two tag bits,
//! `DEAD` and `FROZEN`.
//!
//! # Protocol
//!
//! Slot words move only by CAS:
//!
//! ```text
//!   null ──claim──▶ E(k) ──replace / identical re-add──▶ E'(k) ──remove──▶ E'(k)|DEAD
//!                                                         ▲                     │
//!                                                         └──────re-add─────────┘
//!   any word ──freeze (fetch_or)──▶ word|FROZEN          (final: every CAS on it fails)
//! ```
//!
//! 1. **Claim rule.** Within one block, every entry ever stored in a slot carries the same key:
//!    a claim installs the first entry of a key into a null slot, and every later CAS on that
//!    slot installs another entry of the same key (or tags the same entry `DEAD`). Claims go to
//!    the *first* null slot, so claimed slots form a prefix. An insert of `k` scans the whole
//!    prefix before it claims; two inserts of `k` therefore race for the same first null slot
//!    and the loser sees `k` there. **A key occupies at most one slot of a block.** Removal
//!    keeps the key (`DEAD`), which is what keeps this true: a freed slot is never reused for
//!    another key.
//! 2. **Rebuild.** Dead slots are recycled by rebuilding one bucket alone: an insert that finds
//!    no null slot (and not its key) freezes every slot of the block (empty ones too), copies the
//!    live entries — the same `Entry` pointers — into a fresh block (twice as wide if most were
//!    live, so a bucket never evicts on its own), and swings the bucket pointer by CAS. Anyone
//!    who meets a frozen slot while writing does the same (helping), so no thread waits for
//!    another: losers of the swing free their own unpublished block at once. After the freeze
//!    nothing in the old block can change, so every helper copies the same live set.
//! 3. **Reads need no re-check.** A reader loads the bucket pointer, then slot words. Each word
//!    it reads was the current value of that key's slot at some instant while that block was
//!    current: a word not yet frozen means the block has not been swung; a frozen word holds the
//!    value it had when frozen, which stayed current until the swing, after the reader loaded the
//!    block. So every answer (hit, dead, or absent at the prefix's end) is the abstract state at
//!    an instant inside the call: linearizable. (Designs that claim a key in one word and store
//!    the value in another must re-check the bucket pointer; here claim and value are one word.)
//! 4. **Ownership.** An `Entry` allocation belongs to the one slot that points to it (the table
//!    never shares one between two live blocks). It is freed by whoever unlinks it from its
//!    slot: the CAS that replaces it (deferred), or the destruction of a frozen block for the
//!    `DEAD` entries left in it (deferred). Live entries of a frozen block moved to the new block
//!    and are not freed with the old one. A strong count of the value belongs to a live entry; it
//!    is released (deferred) by the CAS that tags the entry `DEAD` or replaces it with another
//!    value. An identical re-add moves the count to the new entry and drops the caller's.
//! 5. **Reclamation.** Nothing is freed synchronously: every unlinked entry, value and block goes
//!    through [`Reclaimer::retire`], so a reader pinned before the unlink can still dereference it
//!    (and take a reference: the value's count stays at least 1 until its deferred release). All
//!    expected values of a CAS are loaded under the same guard as the CAS, so their memory cannot
//!    be reused in between (no ABA).
//!
//! # Orderings
//!
//! Slot and bucket loads are `Acquire` and CASes `AcqRel` (`Acquire` on failure): an entry's or
//! block's contents are written before the publishing CAS and read after the loading one.
//! Freezing is `AcqRel` for the same reason. Tags and counters are `Relaxed`; each use says why.

mod block;
mod entry;

use core::marker::PhantomData;
use std::sync::Arc;

use crate::loom::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use crate::reclaim::{Atomic, Guard, Owned, Pinned, Reclaimer, Shared};

use self::block::{tag_of, Block};
pub(crate) use self::entry::clone_arc;
use self::entry::{Entry, DEAD, FROZEN};

/// Slots in a fresh block. Loom models use 2 so that a few inserts already force a rebuild.
#[cfg(not(session_cache_loom))]
pub(crate) const BLOCK_WIDTH: usize = 8;
#[cfg(session_cache_loom)]
pub(crate) const BLOCK_WIDTH: usize = 2;

/// The outcome of [`RawTable::insert`].
pub(crate) enum Insert<T> {
    /// The key was absent (or dead); the new entry has this identity.
    New(EntryId),
    /// Another value was cached under the key; here is a reference to it.
    Replaced(Arc<T>),
    /// That very value (`Arc::ptr_eq`) was cached: its order was refreshed, and the caller's
    /// reference dropped.
    Identical,
}

/// Where an entry stands for eviction: smaller `rank` goes first, then smaller `seq`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Order {
    pub(crate) rank: u64,
    pub(crate) seq: u64,
}

/// The identity of an entry, comparable while the guard that saw it is held.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct EntryId(usize);

/// A live entry seen under a guard.
pub(crate) struct Found<'g, T> {
    slot: &'g Atomic<Entry<T>>,
    /// Untagged: the value a CAS on `slot` expects if nothing changed.
    entry: Shared<'g, Entry<T>>,
}

impl<'g, T> Found<'g, T> {
    #[inline]
    fn entry(&self) -> &'g Entry<T> {
        // SAFETY: non-null, loaded under the guard `'g`, and entries are freed only through
        // deferred reclamation after they are unlinked.
        unsafe { self.entry.deref() }
    }

    /// The cached value, borrowed for as long as the guard is held.
    #[inline]
    pub(crate) fn value(&self) -> &'g T {
        // SAFETY: the entry was live when loaded under `'g`, so the table's strong count is
        // released no earlier than after `'g` ends.
        unsafe { &*self.entry().value_ptr() }
    }

    /// A new strong reference to the cached value.
    #[inline]
    pub(crate) fn to_arc(&self) -> Arc<T> {
        // SAFETY: as for `value`: the count is at least 1 while `'g` is held.
        unsafe { clone_arc(self.entry().value_ptr()) }
    }

    #[inline]
    pub(crate) fn rank(&self) -> u64 {
        self.entry().rank()
    }

    #[inline]
    pub(crate) fn seq(&self) -> u64 {
        self.entry().seq()
    }

    #[inline]
    pub(crate) fn id(&self) -> EntryId {
        EntryId(self.entry.as_raw() as usize)
    }
}

/// Where a key stands in a block, for a writer.
enum Probe<'g, T> {
    /// Slot `i` holds the key (live or `DEAD`), with this word.
    Key(usize, Shared<'g, Entry<T>>),
    /// The key is absent and slot `i` is the first null one.
    Empty(usize),
    /// Part of the block is frozen: rebuild (help), then retry.
    Frozen,
    /// The key is absent and no slot is free: rebuild, then retry.
    Full,
}

/// The lock-free table. See the module docs for the protocol.
pub(crate) struct RawTable<T> {
    buckets: Box<[Atomic<Block<T>>]>,
    mask: usize,
    hasher: ahash::RandomState,
    reclaim: Reclaimer,
    _owns: PhantomData<Arc<T>>,
}

// SAFETY: the table owns strong counts of `Arc<T>` and hands out `Arc<T>` and `&T` to any
// thread; that is sound exactly when `Arc<T>` is `Send + Sync`, i.e. when `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for RawTable<T> {}
// SAFETY: as above; all shared mutation goes through atomics.
unsafe impl<T: Send + Sync> Sync for RawTable<T> {}

impl<T> core::fmt::Debug for RawTable<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawTable")
            .field("buckets", &self.buckets.len())
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> RawTable<T> {
    /// A table of at least `buckets` buckets (rounded up to a power of two), all empty.
    pub(crate) fn new(buckets: usize) -> Self {
        let n = buckets.max(1).next_power_of_two();
        // Loom needs the same hashes in every execution it replays.
        #[cfg(session_cache_loom)]
        let hasher = ahash::RandomState::with_seeds(1, 2, 3, 4);
        #[cfg(not(session_cache_loom))]
        let hasher = ahash::RandomState::new();
        RawTable {
            buckets: (0..n).map(|_| Atomic::null()).collect(),
            mask: n - 1,
            hasher,
            reclaim: Reclaimer::new(),
            _owns: PhantomData,
        }
    }

    #[inline]
    pub(crate) fn pin(&self) -> Pinned {
        self.reclaim.pin()
    }

    #[inline]
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    pub(crate) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    #[inline]
    fn bucket(&self, hash: u64) -> &Atomic<Block<T>> {
        &self.buckets[hash as usize & self.mask]
    }

    /// The live entry for `key`, if any.
    #[inline]
    pub(crate) fn find<'g>(&self, key: &[u8], hash: u64, guard: &'g Guard) -> Option<Found<'g, T>> {
        let block = self.bucket(hash).load(Acquire, guard);
        // SAFETY: loaded under `guard`; blocks are freed only by deferred reclamation.
        let b = unsafe { block.as_ref() }?;
        let (i, word) = Self::slot_of(b, key, hash, guard)?;
        if word.tag() & DEAD != 0 {
            return None;
        }
        Some(Found {
            slot: &b.slots[i],
            entry: word.with_tag(0),
        })
    }

    /// The slot of `key` in `b` and its word, for a reader: frozen words are answers too
    /// (module docs, point 3).
    #[inline]
    fn slot_of<'g>(
        b: &'g Block<T>,
        key: &[u8],
        hash: u64,
        guard: &'g Guard,
    ) -> Option<(usize, Shared<'g, Entry<T>>)> {
        let tag = tag_of(hash);
        for i in 0..b.width() {
            if !b.may_hold(i, tag) {
                continue;
            }
            let word = b.slots[i].load(Acquire, guard);
            if word.is_null() {
                return None; // the end of the claimed prefix
            }
            // SAFETY: non-null, loaded under `guard`.
            if unsafe { word.deref() }.has_key(hash, key) {
                return Some((i, word));
            }
        }
        None
    }

    /// Where `key` stands in `b`, for a writer.
    fn probe<'g>(b: &'g Block<T>, key: &[u8], hash: u64, guard: &'g Guard) -> Probe<'g, T> {
        let tag = tag_of(hash);
        for i in 0..b.width() {
            if !b.may_hold(i, tag) {
                continue;
            }
            let word = b.slots[i].load(Acquire, guard);
            if word.tag() & FROZEN != 0 {
                return Probe::Frozen;
            }
            if word.is_null() {
                return Probe::Empty(i);
            }
            // SAFETY: non-null, loaded under `guard`.
            if unsafe { word.deref() }.has_key(hash, key) {
                return Probe::Key(i, word);
            }
        }
        Probe::Full
    }

    /// Caches `value` under `key_of(&value)`, with `order`.
    ///
    /// An identical re-add keeps the cached rank unless `refresh_rank`, and always takes the new
    /// `seq` (it becomes the most recent among equal ranks).
    pub(crate) fn insert(
        &self,
        value: Arc<T>,
        key_of: impl FnOnce(&T) -> &[u8],
        hash: u64,
        order: Order,
        refresh_rank: bool,
        guard: &Guard,
    ) -> Insert<T> {
        let Order { rank, seq } = order;
        let value = Arc::into_raw(value);
        // SAFETY: we hold the strong count we were given until it is published or dropped
        // below, and after publication the guard keeps it alive until we return.
        let key = key_of(unsafe { &*value });
        let bucket = self.bucket(hash);
        let tag = tag_of(hash);
        let mut new = Owned::new(Entry::new(key, hash, rank, seq, value));
        loop {
            let block = bucket.load(Acquire, guard);
            // SAFETY: loaded under `guard`.
            let Some(b) = (unsafe { block.as_ref() }) else {
                match self.install_first(bucket, new, tag, guard) {
                    Ok(id) => return Insert::New(id),
                    Err(back) => {
                        new = back;
                        continue;
                    }
                }
            };
            let (i, word) = match Self::probe(b, key, hash, guard) {
                Probe::Frozen | Probe::Full => {
                    self.rebuild(bucket, block, guard);
                    continue;
                }
                Probe::Empty(i) => {
                    new.set_order(rank, seq);
                    match b.slots[i].compare_exchange(Shared::null(), new, AcqRel, Acquire, guard) {
                        Ok(published) => {
                            b.set_tag(i, tag);
                            return Insert::New(EntryId(published.as_raw() as usize));
                        }
                        // Someone claimed it (or froze it): look again.
                        Err(e) => {
                            new = e.new;
                            continue;
                        }
                    }
                }
                Probe::Key(i, word) => (i, word),
            };
            let slot = &b.slots[i];
            // SAFETY: non-null, loaded under `guard`.
            let old = unsafe { word.deref() };
            if word.tag() & DEAD != 0 {
                new.set_order(rank, seq);
                match slot.compare_exchange(word, new, AcqRel, Acquire, guard) {
                    Ok(published) => {
                        // SAFETY: the dead entry is unlinked; its value was released when it
                        // died, so only the entry itself is freed.
                        unsafe { self.retire_entry(word.with_tag(0), guard) };
                        return Insert::New(EntryId(published.as_raw() as usize));
                    }
                    Err(e) => {
                        new = e.new;
                        continue;
                    }
                }
            }
            let identical = old.value_ptr() == value;
            new.set_order(
                if identical && !refresh_rank {
                    old.rank()
                } else {
                    rank
                },
                seq,
            );
            match slot.compare_exchange(word, new, AcqRel, Acquire, guard) {
                Ok(_) if identical => {
                    // SAFETY: two counts exist, the old entry's (now the new entry's) and the
                    // caller's; dropping the caller's leaves at least one.
                    unsafe { Arc::decrement_strong_count(value) };
                    // SAFETY: the old entry is unlinked; its count moved to the new entry.
                    unsafe { self.retire_entry(word, guard) };
                    return Insert::Identical;
                }
                Ok(_) => {
                    // SAFETY: `old` was live under `guard`; its count is released only below,
                    // deferred past this guard.
                    let previous = unsafe { clone_arc(old.value_ptr()) };
                    // SAFETY: unlinked by our CAS; it owned one strong count.
                    unsafe { self.retire_entry_and_value(word, guard) };
                    return Insert::Replaced(previous);
                }
                Err(e) => new = e.new,
            }
        }
    }

    /// Installs a fresh block holding only `new` into an empty bucket.
    fn install_first(
        &self,
        bucket: &Atomic<Block<T>>,
        new: Owned<Entry<T>>,
        tag: u8,
        guard: &Guard,
    ) -> Result<EntryId, Owned<Entry<T>>> {
        let fresh = Block::new(BLOCK_WIDTH);
        // Relaxed: the block is published by the `AcqRel` CAS below.
        fresh.slots[0].store(new, Relaxed);
        fresh.set_tag(0, tag);
        match bucket.compare_exchange(Shared::null(), Owned::new(fresh), AcqRel, Acquire, guard) {
            Ok(published) => {
                // SAFETY: just published under `guard`.
                let first = unsafe { published.deref() }.slots[0].load(Relaxed, guard);
                Ok(EntryId(first.as_raw() as usize))
            }
            Err(e) => {
                let mut fresh = e.new.into_box();
                let slot = core::mem::replace(&mut fresh.slots[0], Atomic::null());
                // SAFETY: the block was never published; we stored `new` there ourselves.
                Err(unsafe { slot.into_owned() })
            }
        }
    }

    /// Removes the live entry for `key` and returns a reference to its value.
    pub(crate) fn remove(&self, key: &[u8], hash: u64, guard: &Guard) -> Option<Arc<T>> {
        let bucket = self.bucket(hash);
        loop {
            let block = bucket.load(Acquire, guard);
            // SAFETY: loaded under `guard`.
            let b = unsafe { block.as_ref() }?;
            let (i, word) = Self::slot_of(b, key, hash, guard)?;
            if word.tag() & DEAD != 0 {
                return None;
            }
            if word.tag() & FROZEN != 0 {
                self.rebuild(bucket, block, guard);
                continue;
            }
            if let Some(value) = self.kill(&b.slots[i], word, guard) {
                return Some(value);
            }
        }
    }

    /// Removes exactly the entry `found` saw, unless it was replaced or removed meanwhile.
    /// Eviction and expiry use this, so they never remove a value that just replaced the one
    /// they judged.
    pub(crate) fn remove_found(&self, found: &Found<'_, T>, guard: &Guard) -> Option<Arc<T>> {
        if let Some(value) = self.kill(found.slot, found.entry, guard) {
            return Some(value);
        }
        // The slot changed: the entry is gone, or its block was frozen and the entry moved to
        // the bucket's new block (same pointer). Look for it there.
        let entry = found.entry();
        let hash = entry.hash();
        let bucket = self.bucket(hash);
        entry.with_key(|key| loop {
            let block = bucket.load(Acquire, guard);
            // SAFETY: loaded under `guard`.
            let b = unsafe { block.as_ref() }?;
            let (i, word) = Self::slot_of(b, key, hash, guard)?;
            if word.with_tag(0) != found.entry || word.tag() & DEAD != 0 {
                return None;
            }
            if word.tag() & FROZEN != 0 {
                self.rebuild(bucket, block, guard);
                continue;
            }
            if let Some(value) = self.kill(&b.slots[i], word, guard) {
                return Some(value);
            }
        })
    }

    /// Tags the live, unfrozen `word` of `slot` `DEAD`; on success returns a reference to its
    /// value and retires the table's own.
    #[inline]
    fn kill(
        &self,
        slot: &Atomic<Entry<T>>,
        word: Shared<'_, Entry<T>>,
        guard: &Guard,
    ) -> Option<Arc<T>> {
        slot.compare_exchange(word, word.with_tag(DEAD), AcqRel, Acquire, guard)
            .ok()?;
        // SAFETY: `word` was live under `guard`; the table's count is released deferred.
        let value = unsafe { word.deref() }.value_ptr();
        // SAFETY: as above.
        let result = unsafe { clone_arc(value) };
        // SAFETY: our CAS unlinked the value from the table; it owned one strong count.
        unsafe { self.retire_value(value, guard) };
        Some(result)
    }

    /// Calls `f` for every live entry of bucket `index`.
    pub(crate) fn for_each_in_bucket<'g>(
        &self,
        index: usize,
        guard: &'g Guard,
        mut f: impl FnMut(Found<'g, T>),
    ) {
        let block = self.buckets[index & self.mask].load(Acquire, guard);
        // SAFETY: loaded under `guard`.
        let Some(b) = (unsafe { block.as_ref() }) else {
            return;
        };
        for slot in b.slots.iter() {
            let word = slot.load(Acquire, guard);
            if word.is_null() {
                break;
            }
            if word.tag() & DEAD == 0 {
                f(Found {
                    slot,
                    entry: word.with_tag(0),
                });
            }
        }
    }

    /// Rebuilds the block `old` of `bucket` (module docs, point 2). Any thread may call it any
    /// number of times; one swing wins.
    #[cold]
    fn rebuild<'g>(&self, bucket: &Atomic<Block<T>>, old: Shared<'g, Block<T>>, guard: &'g Guard) {
        // SAFETY: `old` was loaded under `guard` from `bucket`.
        let b = unsafe { old.deref() };
        // Freeze every slot, empty ones included, before reading the live set: after this no
        // CAS on the block can succeed, so every helper copies the same entries.
        let mut live = 0;
        for slot in b.slots.iter() {
            #[cfg(not(session_cache_mutant = "no_freeze"))]
            let word = slot.fetch_or(FROZEN, AcqRel, guard);
            #[cfg(session_cache_mutant = "no_freeze")]
            let word = slot.load(Acquire, guard);
            if !word.is_null() && word.tag() & DEAD == 0 {
                live += 1;
            }
        }
        let fresh = if live == 0 {
            Shared::null()
        } else {
            let width = if live * 2 <= BLOCK_WIDTH {
                BLOCK_WIDTH
            } else {
                (live * 2).next_power_of_two()
            };
            let nb = Block::new(width);
            let mut j = 0;
            for slot in b.slots.iter() {
                let word = slot.load(Acquire, guard);
                if !word.is_null() && word.tag() & DEAD == 0 && j < width {
                    // SAFETY: non-null, loaded under `guard`.
                    let hash = unsafe { word.deref() }.hash();
                    // Relaxed: published by the `AcqRel` CAS on the bucket below.
                    nb.slots[j].store(word.with_tag(0), Relaxed);
                    nb.set_tag(j, tag_of(hash));
                    j += 1;
                }
            }
            Owned::new(nb).into_shared(guard)
        };
        match bucket.compare_exchange(old, fresh, AcqRel, Acquire, guard) {
            // SAFETY: `old` is unlinked; every thread that can still see it is pinned.
            Ok(_) => unsafe { self.retire_block(old, guard) },
            Err(_) => {
                if !fresh.is_null() {
                    // SAFETY: never published. Dropping a block frees no entries.
                    drop(unsafe { fresh.into_owned() });
                }
            }
        }
    }

    /// # Safety
    /// `entry` is unlinked, and its value's count is not owned by it (released or moved).
    unsafe fn retire_entry(&self, entry: Shared<'_, Entry<T>>, guard: &Guard) {
        let raw = entry.as_raw() as *mut Entry<T>;
        // SAFETY: per the contract; freed once, after every reader that may see it.
        unsafe {
            self.reclaim
                .retire(guard, move || drop(Owned::from_raw(raw)));
        }
    }

    /// # Safety
    /// `entry` is unlinked and owns one strong count of its value.
    unsafe fn retire_entry_and_value(&self, entry: Shared<'_, Entry<T>>, guard: &Guard) {
        let raw = entry.as_raw() as *mut Entry<T>;
        // SAFETY: per the contract; both are released once, after every reader.
        unsafe {
            self.reclaim.retire(guard, move || {
                let entry = Owned::from_raw(raw);
                drop(Arc::from_raw(entry.value_ptr()));
            });
        }
    }

    /// # Safety
    /// `value` is a strong count the table owned and just unlinked.
    unsafe fn retire_value(&self, value: *const T, guard: &Guard) {
        // The pointer crosses to the reclaiming thread as an address: `T: Send + Sync`.
        let addr = value as usize;
        // SAFETY: per the contract; released once, after every reader.
        unsafe {
            self.reclaim
                .retire(guard, move || drop(Arc::from_raw(addr as *const T)));
        }
    }

    /// # Safety
    /// `block` is frozen and unlinked from its bucket.
    unsafe fn retire_block(&self, block: Shared<'_, Block<T>>, guard: &Guard) {
        let raw = block.as_raw() as *mut Block<T>;
        // SAFETY: per the contract. The `DEAD` entries left in a frozen block belong to it
        // (module docs, point 4); its live entries moved on and are not touched.
        unsafe {
            self.reclaim.retire(guard, move || {
                let block = Owned::from_raw(raw);
                let unprotected = crossbeam_epoch::unprotected();
                for slot in block.slots.iter() {
                    // Relaxed: reclamation happens after every access to the block.
                    let word = slot.load(Relaxed, unprotected);
                    if !word.is_null() && word.tag() & DEAD != 0 {
                        drop(word.with_tag(0).into_owned());
                    }
                }
            });
        }
    }
}

impl<T> Drop for RawTable<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other thread can reach the table; what was retired earlier
        // belongs to the reclaimer and is not reachable from the buckets any more.
        let guard = unsafe { crossbeam_epoch::unprotected() };
        for bucket in self.buckets.iter() {
            // Relaxed: exclusive access.
            let block = bucket.load(Relaxed, guard);
            if block.is_null() {
                continue;
            }
            // SAFETY: the block is reachable only from this bucket.
            let block = unsafe { block.into_owned() };
            for slot in block.slots.iter() {
                let word = slot.load(Relaxed, guard);
                if word.is_null() {
                    continue;
                }
                // SAFETY: this slot owns the entry (module docs, point 4).
                let entry = unsafe { word.with_tag(0).into_owned() };
                if word.tag() & DEAD == 0 {
                    // SAFETY: a live entry owns one strong count.
                    drop(unsafe { Arc::from_raw(entry.value_ptr()) });
                }
            }
        }
    }
}
