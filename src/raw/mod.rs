//! The raw lock-free table: byte keys to `Arc<T>` values, each with an opaque order.
//!
//! It knows nothing of clocks, capacity or TLS; `policy` builds those on top.
//!
//! # Layout
//!
//! A power-of-two array of buckets (doubled as it fills: point 6). A key hashes (seeded ahash)
//! to one bucket and lives nowhere else. A bucket points to a [`Block`]: a small array of slots
//! (8 to start), searched linearly, or to nothing until its first insert. Each slot is one word
//! — null, or a pointer to an immutable [`Entry`] (key, order, `Arc::into_raw` value) with two
//! tag bits, `DEAD` and `FROZEN` — beside a one-byte tag of the key's hash.
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
//! 6. **Growth.** When the live count passes [`GROW_AT`] per bucket (an unbounded cache, or a
//!    raised capacity), a table twice as wide is hung off the current one (`next`) and buckets
//!    are split into it one at a time; inserts migrate a few each ([`MIGRATE_CHUNK`]) and any
//!    writer that touches a bucket of a growing table migrates that bucket first. A split
//!    (i) CASes the bucket word to `MIGRATING` (from then on it can only become `MOVED`, so no
//!    rebuild can swing it again), (ii) freezes the block, (iii) builds the two children
//!    (buckets `i` and `i + n` of the next table) from the frozen entries and CASes each in from
//!    null — every helper builds the same children, losers drop theirs — and (iv) CASes the
//!    word to `MOVED`. Writers reach a child only through a `MOVED` parent, so nothing is written
//!    to a child before its content is complete, and a child is never null again (a rebuild
//!    installs an empty block rather than null), so a late helper cannot resurrect old
//!    content. Readers follow `MOVED` words to the next table; a `MIGRATING` block is still the
//!    current state of its keys (point 3). The thread that moves the last bucket makes the next
//!    table the root. An insert splits at most [`MIGRATE_CHUNK`] buckets plus its own.
//!
//! # Orderings
//!
//! Slot and bucket loads are `Acquire` and CASes `AcqRel` (`Acquire` on failure): an entry's or
//! block's contents are written before the publishing CAS and read after the loading one.
//! Freezing is `AcqRel` for the same reason. Tags and counters are `Relaxed`; each use says why.

mod block;
mod entry;
mod invariants;
#[cfg(all(test, not(session_cache_loom)))]
mod tests;

use core::marker::PhantomData;
use std::sync::Arc;

use crate::loom::sync::atomic::AtomicUsize;
use crate::loom::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use crate::reclaim::{Atomic, Guard, Owned, Pinned, Pointer, Reclaimer, Retired, Shared};

pub(crate) use self::block::rank_hint;
use self::block::{new_block, tag_of, Block, Slot, Slots};
pub(crate) use self::entry::clone_arc;
use self::entry::{alloc_entry, Entry, DEAD, FROZEN};

/// Slots in a fresh block. Loom models use 2 so that a few inserts already force a rebuild.
#[cfg(not(session_cache_loom))]
pub(crate) const BLOCK_WIDTH: usize = 8;
#[cfg(session_cache_loom)]
pub(crate) const BLOCK_WIDTH: usize = 2;

/// The outcome of [`RawTable::insert`].
pub(crate) enum Insert<'g, T> {
    /// The key was absent (or dead); this is the new entry.
    New(Fresh<'g, T>),
    /// Another value was cached under the key; here is a reference to it.
    Replaced(Arc<T>),
    /// That very value (`Arc::ptr_eq`) was cached: its order was refreshed, and the caller's
    /// reference dropped.
    Identical,
    /// [`OnExisting::KeepLive`]: a live value was cached and kept; here is a reference to it.
    /// The caller's value was dropped, never published.
    Kept(Arc<T>),
}

/// What [`RawTable::insert`] does when the key already has a live entry.
#[derive(Clone, Copy, Debug)]
pub(crate) enum OnExisting {
    /// Replace it (an identical value: refresh its order; its rank too if `refresh_rank`).
    Replace { refresh_rank: bool },
    /// Keep it if its rank is at least `live_from` (not expired), else replace it (that very
    /// value too: it takes the new rank).
    KeepLive { live_from: u64 },
}

/// Where an entry stands for eviction: smaller `rank` goes first, then smaller `seq`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Order {
    pub(crate) rank: u64,
    pub(crate) seq: u64,
}

/// The entry an insert just published, seen under the insert's guard.
pub(crate) struct Fresh<'g, T> {
    entry: Shared<'g, Entry<T>>,
}

/// A live entry seen under a guard.
pub(crate) struct Found<'g, T> {
    slot: &'g Slot<T>,
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

    /// The slot's hint of the entry's rank ([`block::rank_hint`]): may lag the entry while a
    /// write to the slot is in flight; 0 in loom builds.
    #[inline]
    pub(crate) fn rank_hint(&self) -> u32 {
        self.slot.hint()
    }

    /// Insertion order among equal ranks, compared with wrapping arithmetic: see
    /// [`Found::goes_before`].
    #[inline]
    fn seq(&self) -> u32 {
        self.entry().seq()
    }

    /// Whether this entry should be evicted before `other`: it expires sooner, or as soon and
    /// was (re-)added earlier. Sequence numbers are 32 bits and wrap; two live entries are never
    /// 2^31 inserts apart in one stripe in practice, and a wrong tie-break only reorders
    /// entries that expire at the same instant.
    #[inline]
    pub(crate) fn goes_before(&self, other: &Found<'_, T>) -> bool {
        let (a, b) = (self.rank(), other.rank());
        a < b || (a == b && (self.seq().wrapping_sub(other.seq()) as i32) < 0)
    }

    /// Whether this entry is cached under the key of `fresh`: the entry an insert made, or
    /// one that replaced it since.
    #[inline]
    pub(crate) fn shares_key_with(&self, fresh: &Fresh<'_, T>) -> bool {
        if self.entry == fresh.entry {
            return true;
        }
        // Fault for the loom gate: spare only the very entry the insert made, so an add can
        // evict a racing add's replacement of it (model `t2_add_never_evicts_its_own_id`).
        #[cfg(session_cache_mutant = "evict_own_id")]
        return false;
        // SAFETY: `fresh` was published under a guard that is still held (its lifetime), and
        // entries are freed only through deferred reclamation.
        let fresh = unsafe { fresh.entry.deref() };
        fresh.with_key(|key| self.entry().has_key(key))
    }
}

/// Tag bit on a bucket word: the bucket is being split into the next table.
const MIGRATING: usize = 0b01;
/// Tag bit on a bucket word (with a null pointer): the bucket's keys live in the next table.
const MOVED: usize = 0b10;

/// Average live entries per bucket above which the bucket array doubles.
#[cfg(not(session_cache_loom))]
pub(crate) const GROW_AT: usize = 8;
// Loom: past 4 per bucket, so the models of a few ids in one bucket never grow (growth would
// multiply their state space) while the table-growth models, with five or more, do.
#[cfg(session_cache_loom)]
pub(crate) const GROW_AT: usize = 4;
/// Buckets an insert migrates while a table grows.
const MIGRATE_CHUNK: usize = 8;

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

/// One generation of the bucket array.
struct Table<T> {
    buckets: Box<[Atomic<Block<T>>]>,
    mask: usize,
    /// The table twice as wide that this one's buckets are moving to, while growing.
    next: Atomic<Table<T>>,
    /// The next bucket index to hand out to a migrating insert, modulo the bucket count: it
    /// laps the array until every bucket moved.
    claimed: AtomicUsize,
    /// Buckets whose word is `MOVED`.
    moved: AtomicUsize,
}

impl<T> Table<T> {
    fn new(n: usize) -> Self {
        Table {
            buckets: (0..n).map(|_| Atomic::null()).collect(),
            mask: n - 1,
            next: Atomic::null(),
            claimed: AtomicUsize::new(0),
            moved: AtomicUsize::new(0),
        }
    }
}

/// A bucket as a writer found it: its table, index and word.
struct Spot<'g, T> {
    table: &'g Table<T>,
    index: usize,
    word: Shared<'g, Block<T>>,
}

impl<'g, T> Spot<'g, T> {
    fn bucket(&self) -> &'g Atomic<Block<T>> {
        &self.table.buckets[self.index]
    }

    fn block(&self) -> Option<&'g Block<T>> {
        // SAFETY: loaded under the guard `'g`; blocks are freed only by deferred reclamation.
        unsafe { self.word.with_tag(0).as_ref() }
    }
}

/// The lock-free table. See the module docs for the protocol.
pub(crate) struct RawTable<T> {
    root: Atomic<Table<T>>,
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
        f.debug_struct("RawTable").finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> RawTable<T> {
    /// A table of at least `buckets` buckets (rounded up to a power of two), all empty. Keys
    /// are hashed with a random seed, or with `seed` when given (tests that must replay a
    /// failing input exactly: the seed decides which keys share a bucket).
    pub(crate) fn new(buckets: usize, seed: Option<u64>) -> Self {
        let n = buckets.max(1).next_power_of_two();
        // Loom needs the same hashes in every execution it replays.
        #[cfg(session_cache_loom)]
        let seed = seed.or(Some(1));
        let hasher = match seed {
            Some(seed) => ahash::RandomState::with_seeds(
                seed,
                seed ^ 0x9e37_79b9_7f4a_7c15,
                seed.rotate_left(21),
                !seed,
            ),
            None => ahash::RandomState::new(),
        };
        RawTable {
            root: Atomic::new(Table::new(n)),
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

    /// The hash of an entry's key: recomputed (rebuilds and splits only), not stored.
    fn entry_hash(&self, entry: &Entry<T>) -> u64 {
        entry.with_key(|key| self.hash(key))
    }

    #[inline]
    fn root<'g>(&self, guard: &'g Guard) -> &'g Table<T> {
        // SAFETY: the root is never null, and a replaced root is retired (deferred).
        unsafe { self.root.load(Acquire, guard).deref() }
    }

    /// Buckets of the current root table (sampling and flushing walk these; a moved bucket
    /// stands for its children).
    pub(crate) fn bucket_count(&self, guard: &Guard) -> usize {
        self.root(guard).buckets.len()
    }

    /// The bucket of `hash` for a reader: follows `MOVED` words.
    #[inline]
    fn read_spot<'g>(&self, hash: u64, guard: &'g Guard) -> Spot<'g, T> {
        let mut table = self.root(guard);
        loop {
            let index = hash as usize & table.mask;
            let word = table.buckets[index].load(Acquire, guard);
            if word.tag() & MOVED == 0 {
                return Spot { table, index, word };
            }
            // SAFETY: a table with a `MOVED` bucket has a next table, retired only after it.
            table = unsafe { table.next.load(Acquire, guard).deref() };
        }
    }

    /// The bucket of `hash` for a writer: like a reader, but it first splits a bucket of a
    /// growing table into the next one (help-on-touch), so writes land in the newest table.
    fn write_spot<'g>(&self, hash: u64, guard: &'g Guard) -> Spot<'g, T> {
        loop {
            let spot = self.read_spot(hash, guard);
            if spot.table.next.load(Acquire, guard).is_null() && spot.word.tag() & MIGRATING == 0 {
                return spot;
            }
            self.migrate(spot.table, spot.index, guard);
        }
    }

    /// The live entry for `key`, if any.
    #[inline]
    pub(crate) fn find<'g>(&self, key: &[u8], hash: u64, guard: &'g Guard) -> Option<Found<'g, T>> {
        let b = self.read_spot(hash, guard).block()?;
        let (i, word) = Self::slot_of(b, key, hash, guard)?;
        if word.tag() & DEAD != 0 {
            return None;
        }
        Some(Found {
            slot: b.slot(i),
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
        for i in 0..b.len() {
            if !b.slot(i).may_hold(tag) {
                continue;
            }
            let word = b.slot(i).word.load(Acquire, guard);
            if word.is_null() {
                crate::work::slots(i + 1);
                return None; // the end of the claimed prefix
            }
            // SAFETY: non-null, loaded under `guard`.
            if unsafe { word.deref() }.has_key(key) {
                crate::work::slots(i + 1);
                return Some((i, word));
            }
        }
        crate::work::slots(b.len());
        None
    }

    /// Where `key` stands in `b`, for a writer.
    fn probe<'g>(b: &'g Block<T>, key: &[u8], hash: u64, guard: &'g Guard) -> Probe<'g, T> {
        let tag = tag_of(hash);
        for i in 0..b.len() {
            if !b.slot(i).may_hold(tag) {
                continue;
            }
            let word = b.slot(i).word.load(Acquire, guard);
            if word.tag() & FROZEN != 0 {
                crate::work::slots(i + 1);
                return Probe::Frozen;
            }
            if word.is_null() {
                crate::work::slots(i + 1);
                return Probe::Empty(i);
            }
            // SAFETY: non-null, loaded under `guard`.
            if unsafe { word.deref() }.has_key(key) {
                crate::work::slots(i + 1);
                return Probe::Key(i, word);
            }
        }
        crate::work::slots(b.len());
        Probe::Full
    }

    /// Caches `value` under `key_of(&value)`, with `order`; `on_existing` says what happens to
    /// a live entry already there.
    ///
    /// An identical re-add keeps the cached rank unless `refresh_rank`, and always takes the new
    /// `seq` (it becomes the most recent among equal ranks).
    pub(crate) fn insert<'g>(
        &self,
        value: Arc<T>,
        key_of: impl FnOnce(&T) -> &[u8],
        order: Order,
        on_existing: OnExisting,
        guard: &'g Guard,
    ) -> Insert<'g, T> {
        let Order { rank, seq } = order;
        let refresh_rank = matches!(on_existing, OnExisting::Replace { refresh_rank: true });
        let value = Arc::into_raw(value);
        // SAFETY: we hold the strong count we were given until it is published or dropped
        // below, and after publication the guard keeps it alive until we return.
        let key = key_of(unsafe { &*value });
        // The key is read once: it is hashed, stored and compared as this one reading, so a
        // value whose key changes while cached can only make its own lookups miss.
        let hash = self.hash(key);
        let tag = tag_of(hash);
        let mut new = alloc_entry(Entry::new(key, rank, seq, value));
        self.help_grow(guard);
        loop {
            let spot = self.write_spot(hash, guard);
            let Some(b) = spot.block() else {
                match self.install_first(spot.bucket(), new, tag, guard) {
                    Ok(entry) => return Insert::New(Fresh { entry }),
                    Err(back) => {
                        new = back;
                        continue;
                    }
                }
            };
            let (i, word) = match Self::probe(b, key, hash, guard) {
                Probe::Frozen | Probe::Full => {
                    self.rebuild(&spot, guard);
                    continue;
                }
                Probe::Empty(i) => {
                    new.set_order(rank, seq);
                    #[cfg(not(session_cache_mutant = "claim_store"))]
                    let expected = Shared::null();
                    // Mutant (loom-tests/README.md): claim whatever is there, like a store.
                    #[cfg(session_cache_mutant = "claim_store")]
                    let expected = b.slot(i).word.load(Acquire, guard);
                    match b
                        .slot(i)
                        .word
                        .compare_exchange(expected, new, AcqRel, Acquire, guard)
                    {
                        Ok(published) => {
                            // Claim rule: claims go to the first null slot, so the claimed
                            // slots form a prefix (no slot is ever null again). Not in loom
                            // builds, whose models check it at rest (`check_invariants`).
                            #[cfg(not(session_cache_loom))]
                            debug_assert!(
                                (0..i).all(|j| !b.slot(j).word.load(Relaxed, guard).is_null()),
                                "a claim past a null slot"
                            );
                            b.slot(i).set_tag(tag);
                            b.slot(i).set_hint(rank);
                            return Insert::New(Fresh { entry: published });
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
            let slot = &b.slot(i).word;
            // SAFETY: non-null, loaded under `guard`.
            let old = unsafe { word.deref() };
            // Claim rule: every entry a claimed slot ever holds carries the slot's first key.
            debug_assert!(old.has_key(key), "a slot holds another key");
            if word.tag() & DEAD != 0 {
                new.set_order(rank, seq);
                match slot.compare_exchange(word, new, AcqRel, Acquire, guard) {
                    Ok(published) => {
                        b.slot(i).set_hint(rank);
                        // SAFETY: the dead entry is unlinked; its value was released when it
                        // died, so only the entry itself is freed.
                        unsafe { self.retire_entry(word.with_tag(0), guard) };
                        return Insert::New(Fresh { entry: published });
                    }
                    Err(e) => {
                        new = e.new;
                        continue;
                    }
                }
            }
            if let OnExisting::KeepLive { live_from } = on_existing {
                if old.rank() >= live_from {
                    // SAFETY: `old` was live under `guard`; its count is released deferred.
                    let existing = unsafe { clone_arc(old.value_ptr()) };
                    // Never published: dropping it frees the entry, not the value.
                    drop(new);
                    // SAFETY: the caller's count, never published: ours to drop.
                    drop(unsafe { Arc::from_raw(value) });
                    return Insert::Kept(existing);
                }
            }
            let identical = old.value_ptr() == value;
            // Under `KeepLive` the old entry is expired here: even that very value takes the new
            // rank, or it would stay cached expired.
            let keep_rank =
                identical && !refresh_rank && matches!(on_existing, OnExisting::Replace { .. });
            let new_rank = if keep_rank { old.rank() } else { rank };
            new.set_order(new_rank, seq);
            #[cfg(not(session_cache_mutant = "relaxed_publish"))]
            let cas = slot.compare_exchange(word, new, AcqRel, Acquire, guard);
            // Mutant (loom-tests/README.md): publish the replacing entry without Release.
            #[cfg(session_cache_mutant = "relaxed_publish")]
            let cas = slot.compare_exchange(word, new, Relaxed, Relaxed, guard);
            if cas.is_ok() {
                b.slot(i).set_hint(new_rank);
            }
            match cas {
                Ok(_) if identical => {
                    // SAFETY: two counts exist, the old entry's (now the new entry's) and the
                    // caller's; dropping the caller's leaves at least one. (Mutant
                    // `identical_rc`, loom-tests/README.md: keep the caller's, a leak.)
                    #[cfg(not(session_cache_mutant = "identical_rc"))]
                    unsafe {
                        Arc::decrement_strong_count(value)
                    };
                    // SAFETY: the old entry is unlinked; its count moved to the new entry.
                    unsafe { self.retire_entry(word, guard) };
                    return Insert::Identical;
                }
                Ok(_) => {
                    // SAFETY: `old` was live under `guard`; its count is released only below,
                    // deferred past this guard.
                    let previous = unsafe { clone_arc(old.value_ptr()) };
                    // SAFETY: unlinked by our CAS; it owned one strong count.
                    #[cfg(not(session_cache_mutant = "eager_release"))]
                    unsafe {
                        self.retire_entry_and_value(word, guard)
                    };
                    // Mutant (loom-tests/README.md): release the replaced value at once, while
                    // readers may still take it. SAFETY: none; that is the fault.
                    #[cfg(session_cache_mutant = "eager_release")]
                    unsafe {
                        Arc::decrement_strong_count(old.value_ptr());
                        self.retire_entry(word, guard);
                    }
                    return Insert::Replaced(previous);
                }
                Err(e) => new = e.new,
            }
        }
    }

    /// Installs a fresh block holding only `new` into a bucket that never had one.
    fn install_first<'g>(
        &self,
        bucket: &Atomic<Block<T>>,
        new: Owned<Entry<T>>,
        tag: u8,
        guard: &'g Guard,
    ) -> Result<Shared<'g, Entry<T>>, Owned<Entry<T>>> {
        let fresh = new_block(BLOCK_WIDTH);
        // Relaxed: the block is published by the `AcqRel` CAS below.
        fresh.slot(0).set_hint(new.rank());
        fresh.slot(0).word.store(new, Relaxed);
        fresh.slot(0).set_tag(tag);
        match bucket.compare_exchange(Shared::null(), fresh, AcqRel, Acquire, guard) {
            Ok(published) => {
                // SAFETY: just published under `guard`.
                let first = unsafe { published.deref() }
                    .slot(0)
                    .word
                    .load(Relaxed, guard);
                Ok(first)
            }
            Err(e) => {
                // SAFETY: the block was never published; we stored `new` there ourselves, and
                // dropping the block frees only the block.
                let back = unsafe {
                    e.new
                        .slot(0)
                        .word
                        .load(Relaxed, crossbeam_epoch::unprotected())
                        .into_owned()
                };
                Err(back)
            }
        }
    }

    /// Removes the live entry for `key` and returns a reference to its value.
    pub(crate) fn remove(&self, key: &[u8], hash: u64, guard: &Guard) -> Option<Arc<T>> {
        self.remove_where(key, hash, guard, |_| true)
    }

    /// Removes exactly the entry `found` saw, unless it was replaced or removed meanwhile.
    /// Eviction and expiry use this, so they never remove a value that just replaced the one
    /// they judged.
    pub(crate) fn remove_found(&self, found: &Found<'_, T>, guard: &Guard) -> Option<Arc<T>> {
        if let Some(value) = self.kill(&found.slot.word, found.entry, guard) {
            return Some(value);
        }
        // The slot changed: the entry is gone, or its block was frozen and the entry moved to
        // a new block (same pointer). Look for it there.
        let entry = found.entry();
        entry.with_key(|key| {
            #[cfg(not(session_cache_mutant = "evict_by_key"))]
            let wanted = |word: Shared<'_, Entry<T>>| word == found.entry;
            // Mutant (loom-tests/README.md): remove whatever now holds the key.
            #[cfg(session_cache_mutant = "evict_by_key")]
            let wanted = |_: Shared<'_, Entry<T>>| true;
            self.remove_where(key, self.hash(key), guard, wanted)
        })
    }

    /// Removes the live entry for `key` if its (untagged) word satisfies `wanted`.
    fn remove_where(
        &self,
        key: &[u8],
        hash: u64,
        guard: &Guard,
        wanted: impl Fn(Shared<'_, Entry<T>>) -> bool,
    ) -> Option<Arc<T>> {
        loop {
            let spot = self.write_spot(hash, guard);
            let b = spot.block()?;
            let (i, word) = Self::slot_of(b, key, hash, guard)?;
            if word.tag() & DEAD != 0 || !wanted(word.with_tag(0)) {
                return None;
            }
            if word.tag() & FROZEN != 0 {
                self.rebuild(&spot, guard);
                continue;
            }
            if let Some(value) = self.kill(&b.slot(i).word, word, guard) {
                return Some(value);
            }
        }
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
        #[cfg(not(session_cache_mutant = "kill_store"))]
        slot.compare_exchange(word, word.with_tag(DEAD), AcqRel, Acquire, guard)
            .ok()?;
        // Mutant (loom-tests/README.md): store the tag instead of CASing it: two removers win.
        #[cfg(session_cache_mutant = "kill_store")]
        slot.store(
            word.with_tag(DEAD),
            crate::loom::sync::atomic::Ordering::Release,
        );
        // SAFETY: `word` was live under `guard`; the table's count is released deferred.
        let value = unsafe { word.deref() }.value_ptr();
        // SAFETY: as above.
        let result = unsafe { clone_arc(value) };
        // SAFETY: our CAS unlinked the value from the table; it owned one strong count.
        unsafe { self.retire_value(value, guard) };
        Some(result)
    }

    /// Calls `f` for every live entry of root bucket `index` (or, once it moved, of its
    /// children in the next table).
    pub(crate) fn for_each_in_bucket<'g>(
        &self,
        index: usize,
        guard: &'g Guard,
        mut f: impl FnMut(Found<'g, T>),
    ) {
        let root = self.root(guard);
        Self::walk(root, index & root.mask, guard, &mut f);
    }

    fn walk<'g>(
        table: &'g Table<T>,
        index: usize,
        guard: &'g Guard,
        f: &mut impl FnMut(Found<'g, T>),
    ) {
        let word = table.buckets[index].load(Acquire, guard);
        if word.tag() & MOVED != 0 {
            // SAFETY: a table with a `MOVED` bucket has a next table, retired only after it.
            let next = unsafe { table.next.load(Acquire, guard).deref() };
            Self::walk(next, index, guard, f);
            Self::walk(next, index + table.buckets.len(), guard, f);
            return;
        }
        // SAFETY: loaded under `guard`.
        let Some(b) = (unsafe { word.with_tag(0).as_ref() }) else {
            return;
        };
        for slot in b.slots() {
            crate::work::slots(1);
            let word = slot.word.load(Acquire, guard);
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

    /// Freezes every slot of `b` (empty ones too) and counts its live entries: after this no
    /// CAS on the block can succeed, so every helper that reads it sees the same live set.
    fn freeze(b: &Block<T>, guard: &Guard) -> usize {
        let mut live = 0;
        for slot in b.slots() {
            #[cfg(not(session_cache_mutant = "no_freeze"))]
            let word = slot.word.fetch_or(FROZEN, AcqRel, guard);
            #[cfg(session_cache_mutant = "no_freeze")]
            let word = slot.word.load(Acquire, guard);
            if !word.is_null() && word.tag() & DEAD == 0 {
                live += 1;
            }
        }
        live
    }

    /// A fresh block holding the live entries of the frozen `b` (those whose hash `keep`
    /// accepts, for a split), sized for them. A rebuild (`keep` is `None`) copies each slot's
    /// tag when it was written instead of hashing the key again.
    fn copy_live(
        &self,
        b: &Block<T>,
        guard: &Guard,
        live: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Owned<Block<T>> {
        let width = if live * 2 <= BLOCK_WIDTH {
            BLOCK_WIDTH
        } else {
            (live * 2).next_power_of_two()
        };
        let nb = new_block(width);
        crate::work::block_built();
        let mut j = 0;
        for slot in b.slots() {
            let word = slot.word.load(Acquire, guard);
            // Mutant (loom-tests/README.md): copy dead entries as live.
            #[cfg(session_cache_mutant = "copy_dead")]
            let word = word.with_tag(0);
            if word.is_null() || word.tag() & DEAD != 0 {
                continue;
            }
            let tag = match (keep, slot.tag()) {
                // A written tag is right for this slot's key forever (claim rule).
                (None, tag) if tag != 0 => tag,
                (keep, _) => {
                    // SAFETY: non-null, loaded under `guard`.
                    let hash = self.entry_hash(unsafe { word.deref() });
                    if !keep.map_or(true, |keep| keep(hash)) {
                        continue;
                    }
                    tag_of(hash)
                }
            };
            if j < width {
                // Relaxed: the block is published by a later `AcqRel` CAS on a bucket.
                nb.slot(j).word.store(word.with_tag(0), Relaxed);
                nb.slot(j).set_tag(tag);
                // SAFETY: non-null, loaded under `guard`. (The old slot's hint may lag its
                // word: the entry's own rank is the one to copy.)
                nb.slot(j).set_hint(unsafe { word.deref() }.rank());
                j += 1;
            }
        }
        nb
    }

    /// Rebuilds the full or frozen block at `spot` (module docs, point 2). Any thread may call
    /// it any number of times; one swing wins. In a growing table it splits the bucket instead.
    #[cold]
    fn rebuild(&self, spot: &Spot<'_, T>, guard: &Guard) {
        if spot.word.tag() & MIGRATING != 0 || !spot.table.next.load(Acquire, guard).is_null() {
            self.migrate(spot.table, spot.index, guard);
            return;
        }
        let Some(b) = spot.block() else { return };
        let live = Self::freeze(b, guard);
        // Never null: a bucket that had a block keeps one (module docs, point 6).
        let fresh = self.copy_live(b, guard, live, None).into_shared(guard);
        match spot
            .bucket()
            .compare_exchange(spot.word, fresh, AcqRel, Acquire, guard)
        {
            // SAFETY: the old block is unlinked; every thread that can still see it is pinned.
            Ok(_) => unsafe { self.retire_block(spot.word, guard) },
            // SAFETY: never published. Dropping a block frees no entries.
            Err(_) => drop(unsafe { fresh.into_owned() }),
        }
    }

    /// Starts doubling the bucket array if `live` entries crowd the root, and in any case
    /// moves a few buckets of a growth in progress.
    pub(crate) fn grow_if_crowded(&self, live: usize, guard: &Guard) {
        let root = self.root(guard);
        if live > root.buckets.len() * GROW_AT && root.next.load(Acquire, guard).is_null() {
            let next = Owned::new(Table::new(root.buckets.len() * 2));
            // One growth at a time; a loser drops its (never shared) table.
            let _ = root
                .next
                .compare_exchange(Shared::null(), next, AcqRel, Acquire, guard);
        }
    }

    /// Moves the next [`MIGRATE_CHUNK`] buckets of a growing root.
    fn help_grow(&self, guard: &Guard) {
        let root = self.root(guard);
        if root.next.load(Acquire, guard).is_null() {
            return;
        }
        let n = root.buckets.len();
        // Relaxed: only hands out indexes. Past the end the cursor keeps counting and laps the
        // array again: buckets whose claimer stalled (preempted between its claim and its
        // split) are then moved by later inserts, not only by writers that happen to touch
        // them, so a growth always finishes while anyone inserts (a moved bucket costs a load).
        let claimed = root.claimed.fetch_add(MIGRATE_CHUNK, Relaxed);
        let start = claimed % n;
        for i in start..(start + MIGRATE_CHUNK).min(n) {
            self.migrate(root, i, guard);
        }
    }

    /// Splits bucket `i` of `table` into its two children in `table.next` (module docs,
    /// point 6). Idempotent; any thread may help.
    fn migrate(&self, table: &Table<T>, i: usize, guard: &Guard) {
        let bucket = &table.buckets[i];
        // SAFETY: called only for tables with a next table, retired only after this one.
        let Some(next) = (unsafe { table.next.load(Acquire, guard).as_ref() }) else {
            return;
        };
        // (i) Claim the bucket for the split.
        let mut word = bucket.load(Acquire, guard);
        loop {
            if word.tag() & MOVED != 0 {
                return;
            }
            if word.tag() & MIGRATING != 0 {
                break;
            }
            match bucket.compare_exchange(word, word.with_tag(MIGRATING), AcqRel, Acquire, guard) {
                Ok(_) => {
                    word = word.with_tag(MIGRATING);
                    break;
                }
                Err(e) => word = e.current,
            }
        }
        // (ii) Freeze, (iii) build and install both children.
        let n = table.buckets.len();
        // SAFETY: loaded under `guard`.
        let old = unsafe { word.with_tag(0).as_ref() };
        for (child, high) in [(i, false), (i + n, true)] {
            let block = match old {
                Some(b) => {
                    Self::freeze(b, guard);
                    let mine = |hash: u64| (hash as usize & n != 0) == high;
                    let live = b
                        .slots()
                        .filter(|s| {
                            let w = s.word.load(Acquire, guard);
                            // SAFETY: non-null words were loaded under `guard`.
                            !w.is_null()
                                && w.tag() & DEAD == 0
                                && mine(self.entry_hash(unsafe { w.deref() }))
                        })
                        .count();
                    self.copy_live(b, guard, live, Some(&mine))
                }
                None => new_block(BLOCK_WIDTH),
            };
            if let Err(e) =
                next.buckets[child].compare_exchange(Shared::null(), block, AcqRel, Acquire, guard)
            {
                // Another helper built the same child first; ours was never shared.
                drop(e.new);
            }
        }
        // (iv) Publish the move.
        if bucket
            .compare_exchange(word, Shared::null().with_tag(MOVED), AcqRel, Acquire, guard)
            .is_ok()
        {
            if !word.with_tag(0).is_null() {
                // SAFETY: unlinked by our CAS; its live entries now belong to the children.
                unsafe { self.retire_block(word.with_tag(0), guard) };
            }
            if table.moved.fetch_add(1, AcqRel) + 1 == n {
                self.promote(table, guard);
            }
        }
    }

    /// Makes `table.next` the root once every bucket of `table` has moved.
    fn promote(&self, table: &Table<T>, guard: &Guard) {
        let next = table.next.load(Acquire, guard);
        let current = self.root.load(Acquire, guard);
        if core::ptr::eq(current.as_raw(), table)
            && self
                .root
                .compare_exchange(current, next, AcqRel, Acquire, guard)
                .is_ok()
        {
            // SAFETY: unlinked from the root; its buckets are all `MOVED` (null), so freeing it
            // frees only its bucket array. Readers that still hold it are pinned.
            unsafe {
                let retired = Retired::new(current.into_usize(), free_table::<T>);
                self.reclaim.retire(guard, retired);
            }
        }
    }

    /// # Safety
    /// `entry` is unlinked, and its value's count is not owned by it (released or moved).
    unsafe fn retire_entry(&self, entry: Shared<'_, Entry<T>>, guard: &Guard) {
        // SAFETY: per the contract; freed once, after every reader that may see it.
        unsafe {
            let retired = Retired::new(entry.with_tag(0).into_usize(), free_entry::<T>);
            self.reclaim.retire(guard, retired);
        }
    }

    /// # Safety
    /// `entry` is unlinked and owns one strong count of its value.
    unsafe fn retire_entry_and_value(&self, entry: Shared<'_, Entry<T>>, guard: &Guard) {
        // SAFETY: per the contract; both are released once, after every reader.
        unsafe {
            let retired = Retired::new(entry.with_tag(0).into_usize(), free_entry_and_value::<T>);
            self.reclaim.retire(guard, retired);
        }
    }

    /// # Safety
    /// `value` is a strong count the table owned and just unlinked.
    unsafe fn retire_value(&self, value: *const T, guard: &Guard) {
        // SAFETY: per the contract; released once, after every reader.
        unsafe {
            let retired = Retired::new(value as usize, release_value::<T>);
            self.reclaim.retire(guard, retired);
        }
    }

    /// # Safety
    /// `block` is frozen and unlinked from its bucket.
    unsafe fn retire_block(&self, block: Shared<'_, Block<T>>, guard: &Guard) {
        // SAFETY: per the contract. The `DEAD` entries left in a frozen block belong to it
        // (module docs, point 4); its live entries moved on and are not touched.
        unsafe {
            let retired = Retired::new(block.with_tag(0).into_usize(), free_block::<T>);
            self.reclaim.retire(guard, retired);
        }
    }
}

// The releases the table retires, each taking the address it was retired with. They run on
// whichever thread the collector picks: `T: Send + Sync` for every table that retires them.

/// # Safety
/// `data` is an unlinked `Table<T>` whose buckets are all `MOVED`, retired once.
unsafe fn free_table<T>(data: usize) {
    // SAFETY: per the contract.
    drop(unsafe { Owned::<Table<T>>::from_usize(data) });
}

/// # Safety
/// `data` is an unlinked `Entry<T>` that no longer owns a strong count, retired once.
unsafe fn free_entry<T>(data: usize) {
    // SAFETY: per the contract.
    entry::free_entry(unsafe { Owned::<Entry<T>>::from_usize(data) });
}

/// # Safety
/// `data` is an unlinked `Entry<T>` owning one strong count of its value, retired once.
unsafe fn free_entry_and_value<T>(data: usize) {
    // SAFETY: per the contract: the entry is ours, and so is the count it holds.
    unsafe {
        let entry = Owned::<Entry<T>>::from_usize(data);
        drop(Arc::from_raw(entry.value_ptr()));
        entry::free_entry(entry);
    }
}

/// # Safety
/// `data` is a strong count of an `Arc<T>` (`Arc::into_raw`) the table unlinked, retired once.
unsafe fn release_value<T>(data: usize) {
    // SAFETY: per the contract.
    drop(unsafe { Arc::from_raw(data as *const T) });
}

/// # Safety
/// `data` is a frozen `Block<T>` unlinked from its bucket, retired once; the `DEAD` entries
/// left in it belong to it, its live entries moved on.
unsafe fn free_block<T>(data: usize) {
    // SAFETY: per the contract.
    unsafe {
        let block = Owned::<Block<T>>::from_usize(data);
        let unprotected = crossbeam_epoch::unprotected();
        for slot in block.slots() {
            // Relaxed: reclamation happens after every access to the block.
            let word = slot.word.load(Relaxed, unprotected);
            if !word.is_null() && word.tag() & DEAD != 0 {
                entry::free_entry(word.with_tag(0).into_owned());
            }
        }
    }
}

impl<T> Drop for RawTable<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other thread can reach the table; what was retired earlier
        // belongs to the reclaimer and is not reachable from the buckets any more.
        let guard = unsafe { crossbeam_epoch::unprotected() };
        // Relaxed: exclusive access.
        let mut table = self.root.load(Relaxed, guard);
        while !table.is_null() {
            // SAFETY: exclusive access; each table is reachable only from its parent.
            let t = unsafe { table.into_owned() };
            let n = t.buckets.len();
            for (i, bucket) in t.buckets.iter().enumerate() {
                let word = bucket.load(Relaxed, guard);
                if word.tag() & MOVED != 0 || word.with_tag(0).is_null() {
                    continue;
                }
                // SAFETY: the block is reachable only from this bucket.
                let block = unsafe { word.with_tag(0).into_owned() };
                let split = word.tag() & MIGRATING != 0;
                if split {
                    // A split left half done: its children in the next table may hold the
                    // same live entries. Drop those child blocks without their entries; the
                    // entries are freed once, below, from this (the owning) block.
                    // SAFETY: a `MIGRATING` bucket's table has a next table.
                    let next = unsafe { t.next.load(Relaxed, guard).deref() };
                    for child in [i, i + n] {
                        let c = next.buckets[child].swap(Shared::null(), Relaxed, guard);
                        if !c.is_null() {
                            // SAFETY: exclusive access; dropping a block frees no entries.
                            drop(unsafe { c.into_owned() });
                        }
                    }
                }
                for slot in block.slots() {
                    let word = slot.word.load(Relaxed, guard);
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
            table = t.next.load(Relaxed, guard);
        }
    }
}

#[cfg(all(test, not(session_cache_loom)))]
mod growth_tests {
    use super::*;
    use std::sync::Arc;

    struct V(Vec<u8>);

    fn insert(t: &RawTable<V>, key: Vec<u8>) {
        let guard = t.pin();
        let order = Order { rank: 0, seq: 0 };
        let on = OnExisting::Replace {
            refresh_rank: false,
        };
        let _ = t.insert(Arc::new(V(key)), |v| &v.0, order, on, &guard);
    }

    /// A growth whose first chunk of buckets was claimed by a thread that then stalled, and
    /// whose keys no writer touches afterwards, still finishes: later inserts lap the array.
    #[test]
    fn a_stalled_claimer_does_not_stop_growth() {
        let t: RawTable<V> = RawTable::new(64, Some(7));
        let buckets = |t: &RawTable<V>| t.bucket_count(&t.pin());
        assert_eq!(buckets(&t), 64);
        {
            let guard = t.pin();
            let root = t.root(&guard);
            let next = Owned::new(Table::new(128));
            assert!(root
                .next
                .compare_exchange(Shared::null(), next, AcqRel, Acquire, &guard)
                .is_ok());
            // The stalled claim: buckets 0..MIGRATE_CHUNK are handed out and never moved.
            root.claimed.fetch_add(MIGRATE_CHUNK, Relaxed);
        }
        // Keys that land in other buckets only, so no write touches the stalled ones.
        let mut n = 0u64;
        let mut inserted = 0;
        while inserted < 64 * 4 {
            let key = n.to_le_bytes().to_vec();
            n += 1;
            if (t.hash(&key) as usize & 63) < MIGRATE_CHUNK {
                continue;
            }
            insert(&t, key);
            inserted += 1;
        }
        assert_eq!(buckets(&t), 128, "the growth never finished");
    }
}
