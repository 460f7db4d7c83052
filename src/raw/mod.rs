//! The raw lock-free table: byte keys to `Arc<T>` values, each with an opaque rank.
//!
//! It knows nothing of clocks, capacity or TLS; `policy` builds those on top.
//!
//! # Layout
//!
//! A power-of-two array of buckets (doubled as it fills: point 6). A key hashes (seeded ahash)
//! to one bucket and lives nowhere else. A bucket points to a [`Block`]: an array of slots in
//! groups of [`GROUP`](block::GROUP) (one group to start), or to nothing until its first insert.
//! A slot is one 16-byte [`Pair`]: the value's `Arc::into_raw` pointer with two tag bits, `DEAD`
//! and `FROZEN`, and its rank. There is no per-entry allocation: a slot's key is its value's own
//! key ([`Keyed`]), which does not change while the value is cached. A group also keeps a
//! one-byte tag of each slot's key hash, matched eight at a time, and a tie-break hint per slot.
//!
//! # Protocol
//!
//! Slot pairs move only by CAS:
//!
//! ```text
//!   empty ──claim──▶ (v, r) ──replace / re-add──▶ (v', r') ──remove──▶ DEAD (final)
//!   any pair ──freeze (fetch_or)──▶ pair|FROZEN          (final: every CAS on it fails)
//! ```
//!
//! 1. **Claim rule.** Within one block, a slot holds values of one key only: a claim installs
//!    the first value of a key into an empty slot, and every later CAS on that slot installs
//!    another value of the same key (its key was compared, and the CAS expects the very pair it
//!    compared) or kills it. Claims go to the *first* empty slot, so claimed slots form a
//!    prefix. A removed slot is `DEAD` for good: it keeps no pointer (the value's count is
//!    released promptly, so its key cannot be read again) and is never reused in this block.
//!    **A key has at most one live slot in a block**: an insert of `k` scans the whole prefix
//!    for a live `k` before it claims the first empty slot; two inserts of `k` race for the
//!    same first empty slot and the loser then sees `k` live there; and a slot that an insert
//!    passed over as another key's, or as dead, can never hold `k` live later.
//! 2. **Rebuild.** Dead slots are recycled by rebuilding one bucket alone: an insert that finds
//!    no empty slot (and not its key) freezes every slot of the block that is not dead (empty
//!    ones too, so no claim can land after the copy; a dead slot is final already: no CAS
//!    expects `DEAD`), copies the live pairs into a fresh block (sized for them
//!    with room to spare), and swings the bucket pointer by CAS. Anyone who meets a frozen slot while
//!    writing does the same (helping), so no thread waits for another: losers of the swing free
//!    their own unpublished block at once. After the freeze nothing in the old block can
//!    change, so every helper copies the same live set.
//! 3. **Reads need no re-check.** A reader loads the bucket pointer, then slot pairs. Each pair
//!    it reads was the current value of that key's slot at some instant while that block was
//!    current: a pair not yet frozen means the block has not been swung; a frozen pair holds the
//!    value it had when frozen, which stayed current until the swing, after the reader loaded the
//!    block. So every answer (hit, expired, or absent at the prefix's end) is the abstract state
//!    at an instant inside the call: linearizable. (Designs that claim a key in one word and
//!    store the value in another must re-check; here claim, value and rank are one pair.)
//! 4. **Ownership.** A live pair owns one strong count of its value. The CAS that kills or
//!    replaces it releases that count (deferred); a rebuild or split moves it to the new block
//!    (the old block is freed without touching it). An identical re-add keeps the table's count
//!    and drops the caller's.
//! 5. **Reclamation.** Nothing is freed synchronously: every released value and unlinked block
//!    goes through [`Reclaimer::retire`], so a reader pinned before the unlink can still
//!    dereference it (and take a reference: the value's count stays at least 1 until its
//!    deferred release). Every expected pair of a CAS was loaded under the same guard as the
//!    CAS, so its value cannot be freed and its address reused in between (no ABA).
//! 6. **Growth.** When the live count passes [`GROW_AT`] per bucket (an unbounded cache, or a
//!    raised capacity), a table twice as wide is hung off the current one (`next`) and buckets
//!    are split into it one at a time; inserts migrate a few each ([`MIGRATE_CHUNK`]) and any
//!    writer that touches a bucket of a growing table migrates that bucket first. A split
//!    (i) CASes the bucket word to `MIGRATING` (from then on it can only become `MOVED`, so no
//!    rebuild can swing it again), (ii) freezes the block, (iii) builds the low child (bucket
//!    `i` of the next table) from the frozen pairs whose hash has the new bit clear, CASes it in
//!    from null, then builds the high child (`i + n`) as *every other* live pair of the frozen
//!    block and CASes it in: so each value lands in exactly one child even if helpers disagree
//!    about a hash (a key that changed while cached), and (iv) CASes the word to `MOVED`.
//!    Writers reach a child only through a `MOVED` parent, so nothing is written to a child
//!    before its content is complete, and a child is never null again (a rebuild installs an
//!    empty block rather than null), so a late helper cannot resurrect old content. Readers
//!    follow `MOVED` words to the next table; a `MIGRATING` block is still the current state of
//!    its keys (point 3). The thread that moves the last bucket makes the next table the root.
//!    An insert splits at most [`MIGRATE_CHUNK`] buckets plus its own.
//!
//! # Orderings
//!
//! Slot and bucket loads are `Acquire` and CASes `AcqRel` (`Acquire` on failure): a value's
//! contents, and a block's, are written before the publishing CAS and read after the loading
//! one. Freezing is `AcqRel` for the same reason. Tags, hints and counters are `Relaxed`; each
//! use says why.

mod block;
mod invariants;
#[cfg(all(test, not(session_cache_loom)))]
mod tests;

use core::marker::PhantomData;
use std::sync::Arc;

use crate::loom::sync::atomic::AtomicUsize;
use crate::loom::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use crate::loom::Pair;
use crate::reclaim::{Atomic, Guard, Owned, Pinned, Pointer, Reclaimer, Retired, Shared};

use self::block::{
    block_with, pointer, state, tag_of, Block, Group, SlotRef, Slots, State, DEAD, FROZEN, GROUP,
    TAG_BITS,
};

/// Slots in a fresh block: one group. Loom models use 2, so that a few inserts already force a
/// rebuild.
pub(crate) const BLOCK_WIDTH: usize = GROUP;

/// A value the table can hold: its key is read from it.
///
/// The key must not change while the value is cached. One that does cannot cause memory
/// unsafety, a panic or a leak (the table never trusts two readings of it to agree: see point 6
/// of the module docs); its lookups may miss.
pub(crate) trait Keyed: Send + Sync + 'static {
    fn key(&self) -> &[u8];
}

impl<S: crate::Session> Keyed for S {
    #[inline(always)]
    fn key(&self) -> &[u8] {
        self.id()
    }
}

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
    value: *const T,
    /// The key as the insert read it (once: hashed, probed and compared as this reading).
    key: &'g [u8],
    hash: u64,
}

impl<T> Fresh<'_, T> {
    /// The hash of the key the insert read.
    #[inline]
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }
}

/// A live entry seen under a guard.
pub(crate) struct Found<'g, T> {
    slot: SlotRef<'g>,
    /// Without `FROZEN`: the pair a CAS on `slot` expects if nothing changed.
    pair: Pair,
    _value: PhantomData<&'g T>,
}

impl<'g, T: Keyed> Found<'g, T> {
    #[inline]
    fn ptr(&self) -> *const T {
        pointer(self.pair.word)
    }

    /// The cached value, borrowed for as long as the guard is held.
    #[inline]
    pub(crate) fn value(&self) -> &'g T {
        // SAFETY: the pair was live when loaded under `'g`, so the table's strong count is
        // released no earlier than after `'g` ends.
        unsafe { &*self.ptr() }
    }

    /// A new strong reference to the cached value.
    #[inline]
    pub(crate) fn to_arc(&self) -> Arc<T> {
        // SAFETY: as for `value`: the count is at least 1 while `'g` is held.
        unsafe { clone_arc(self.ptr()) }
    }

    #[inline]
    pub(crate) fn rank(&self) -> u64 {
        self.pair.rank
    }

    /// Whether this entry should be evicted before `other`: it expires sooner, or as soon and
    /// was (re-)added earlier. Sequence numbers are 32-bit hints and wrap; two live entries are
    /// never 2^31 inserts apart in one stripe in practice, and a wrong tie-break only reorders
    /// entries that expire at the same instant.
    #[inline]
    pub(crate) fn goes_before(&self, other: &Found<'_, T>) -> bool {
        let (a, b) = (self.rank(), other.rank());
        a < b || (a == b && (self.slot.seq().wrapping_sub(other.slot.seq()) as i32) < 0)
    }

    /// Whether this entry is cached under the key of `fresh`: the entry an insert made, or
    /// one that replaced it since.
    #[inline]
    pub(crate) fn shares_key_with(&self, fresh: &Fresh<'_, T>) -> bool {
        if self.ptr() == fresh.value {
            return true;
        }
        // Fault for the loom gate: spare only the very value the insert made, so an add can
        // evict a racing add's replacement of it (model `t2_add_never_evicts_its_own_id`).
        #[cfg(session_cache_mutant = "evict_own_id")]
        return false;
        // A written tag is that of the slot's key forever: another tag, another key, and no
        // need to read the session.
        let tag = self.slot.tag();
        if tag != 0 && tag != tag_of(fresh.hash) {
            return false;
        }
        self.value().key() == fresh.key
    }

    /// Whether this is the very value `fresh` inserted (the cheap half of `shares_key_with`).
    #[inline]
    pub(crate) fn is(&self, fresh: &Fresh<'_, T>) -> bool {
        self.ptr() == fresh.value
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

/// The width of a block rebuilt for `live` entries: the fewest whole groups with room for one
/// more claim (the insert that found the block full is the usual rebuilder).
///
/// Tight on purpose. A block's slots stay claimed by their keys until it is rebuilt, so a
/// table that adds and removes all day holds, per bucket, its live entries plus the claims
/// made since the last rebuild; room for three more claims (as this once was) kept a churned
/// table 30 % larger than a freshly filled one, room for one keeps it within 10 %, for about
/// one rebuild more per six adds in that churn.
fn width_for(live: usize) -> usize {
    (live + 1).div_ceil(GROUP) * GROUP
}

/// Where a key stands in a block, for a writer.
enum Probe<'g> {
    /// This slot holds the key live, with this (unfrozen) pair.
    Key(SlotRef<'g>, Pair),
    /// The key is absent and slot `i` is the first empty one.
    Empty(usize),
    /// Part of the block is frozen: rebuild (help), then retry.
    Frozen,
    /// The key is absent and no slot is free: rebuild, then retry.
    Full,
}

/// One generation of the bucket array.
struct Table {
    buckets: Box<[Atomic<Block>]>,
    mask: usize,
    /// The table twice as wide that this one's buckets are moving to, while growing.
    next: Atomic<Table>,
    /// The next bucket index to hand out to a migrating insert, modulo the bucket count: it
    /// laps the array until every bucket moved.
    claimed: AtomicUsize,
    /// Buckets whose word is `MOVED`.
    moved: AtomicUsize,
}

impl Table {
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
struct Spot<'g> {
    table: &'g Table,
    index: usize,
    word: Shared<'g, Block>,
}

impl<'g> Spot<'g> {
    fn bucket(&self) -> &'g Atomic<Block> {
        &self.table.buckets[self.index]
    }

    #[inline(always)]
    fn block(&self) -> Option<&'g Block> {
        // SAFETY: loaded under the guard `'g`; blocks are freed only by deferred reclamation.
        unsafe { self.word.with_tag(0).as_ref() }
    }
}

/// Root bucket `index` as a walk over it sees it.
enum RootBucket<'g> {
    /// The bucket's own block (none before its first insert).
    Block(Option<&'g Block>),
    /// The bucket moved: its entries are in its children in the next table.
    Moved(&'g Table, usize),
}

/// A live slot copied by a rebuild or a split.
#[derive(Clone, Copy)]
struct Moving {
    pair: Pair,
    tag: u8,
    seq: u32,
}

/// The live slots of a frozen block, gathered once (a split reads each key once).
type Live = smallvec::SmallVec<[Moving; 16]>;

/// The lock-free table. See the module docs for the protocol.
pub(crate) struct RawTable<T> {
    root: Atomic<Table>,
    hasher: ahash::RandomState,
    reclaim: Reclaimer,
    /// Loom builds: rebuilds freeze a block as the other builds do (see [`RawTable::freeze`]).
    #[cfg(session_cache_loom)]
    freeze_as_shipped: std::sync::atomic::AtomicBool,
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

impl<T: Keyed> RawTable<T> {
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
            #[cfg(session_cache_loom)]
            freeze_as_shipped: std::sync::atomic::AtomicBool::new(false),
            _owns: PhantomData,
        }
    }

    #[inline(always)]
    pub(crate) fn pin(&self) -> Pinned {
        self.reclaim.pin()
    }

    #[inline(always)]
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        use core::hash::{BuildHasher, Hasher};
        // The bytes alone, without `Hash for [u8]`'s length prefix: ahash mixes the length in
        // itself, and every key of this table is hashed here.
        let mut hasher = self.hasher.build_hasher();
        hasher.write(key);
        hasher.finish()
    }

    #[inline]
    fn root<'g>(&self, guard: &'g Guard) -> &'g Table {
        // SAFETY: the root is never null, and a replaced root is retired (deferred).
        unsafe { self.root.load(Acquire, guard).deref() }
    }

    /// Buckets of the current root table (sampling and flushing walk these; a moved bucket
    /// stands for its children).
    pub(crate) fn bucket_count(&self, guard: &Guard) -> usize {
        self.root(guard).buckets.len()
    }

    /// The bucket of `hash` for a reader: follows `MOVED` words.
    #[inline(always)]
    fn read_spot<'g>(&self, hash: u64, guard: &'g Guard) -> Spot<'g> {
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
    fn write_spot<'g>(&self, hash: u64, guard: &'g Guard) -> Spot<'g> {
        loop {
            let spot = self.read_spot(hash, guard);
            if spot.table.next.load(Acquire, guard).is_null() && spot.word.tag() & MIGRATING == 0 {
                return spot;
            }
            self.migrate(spot.table, spot.index, guard);
        }
    }

    /// The live entry for `key`, if any.
    #[inline(always)]
    pub(crate) fn find<'g>(&self, key: &[u8], hash: u64, guard: &'g Guard) -> Option<Found<'g, T>> {
        let b = self.read_spot(hash, guard).block()?;
        let (slot, pair) = Self::slot_of(b, key, hash)?;
        Some(Found {
            slot,
            pair: Pair {
                word: pair.word & !FROZEN,
                ..pair
            },
            _value: PhantomData,
        })
    }

    /// The live slot of `key` in `b` and its pair, for a reader: frozen pairs are answers too
    /// (module docs, point 3).
    #[inline(always)]
    fn slot_of<'g>(b: &'g Block, key: &[u8], hash: u64) -> Option<(SlotRef<'g>, Pair)> {
        let tag = tag_of(hash);
        for (g, group) in b.groups().enumerate() {
            let mut lanes = group.candidates(tag);
            while lanes != 0 {
                let lane = (lanes.trailing_zeros() / 8) as usize;
                lanes &= lanes - 1;
                let pair = group.slot(lane).load(Acquire);
                match state(pair.word) {
                    State::Empty => {
                        crate::work::slots(g * GROUP + lane + 1);
                        return None; // the end of the claimed prefix
                    }
                    State::Dead => {}
                    State::Live => {
                        // SAFETY: live under the caller's guard: its count is released no
                        // earlier than after the guard ends.
                        if unsafe { &*pointer::<T>(pair.word) }.key() == key {
                            crate::work::slots(g * GROUP + lane + 1);
                            return Some((SlotRef { group, lane }, pair));
                        }
                    }
                }
            }
        }
        crate::work::slots(b.width());
        None
    }

    /// Where `key` stands in `b`, for a writer.
    fn probe<'g>(b: &'g Block, key: &[u8], hash: u64) -> Probe<'g> {
        let tag = tag_of(hash);
        for (g, group) in b.groups().enumerate() {
            let mut lanes = group.candidates(tag);
            while lanes != 0 {
                let lane = (lanes.trailing_zeros() / 8) as usize;
                lanes &= lanes - 1;
                let pair = group.slot(lane).load(Acquire);
                if pair.word & FROZEN != 0 {
                    crate::work::slots(g * GROUP + lane + 1);
                    return Probe::Frozen;
                }
                match state(pair.word) {
                    State::Empty => {
                        crate::work::slots(g * GROUP + lane + 1);
                        return Probe::Empty(g * GROUP + lane);
                    }
                    State::Dead => {}
                    State::Live => {
                        // SAFETY: live under the caller's guard (see `slot_of`).
                        if unsafe { &*pointer::<T>(pair.word) }.key() == key {
                            crate::work::slots(g * GROUP + lane + 1);
                            return Probe::Key(SlotRef { group, lane }, pair);
                        }
                    }
                }
            }
        }
        crate::work::slots(b.width());
        Probe::Full
    }

    /// Caches `value` under its key, with `order`; `on_existing` says what happens to a live
    /// entry already there.
    ///
    /// An identical re-add keeps the cached rank unless `refresh_rank`, and always takes the new
    /// `seq` (it becomes the most recent among equal ranks).
    pub(crate) fn insert<'g>(
        &self,
        value: Arc<T>,
        order: Order,
        on_existing: OnExisting,
        guard: &'g Guard,
    ) -> Insert<'g, T> {
        let Order { rank, seq } = order;
        let seq = seq as u32;
        let refresh_rank = matches!(on_existing, OnExisting::Replace { refresh_rank: true });
        let value = Arc::into_raw(value);
        let word = value as usize;
        debug_assert_eq!(word & TAG_BITS, 0, "an Arc pointer with its low bits set");
        // SAFETY: we hold the strong count we were given until it is published or dropped
        // below, and after publication the guard keeps it alive until `'g` ends.
        let key: &'g [u8] = unsafe { &*value }.key();
        // The key is read once: it is hashed, probed and compared as this one reading.
        let hash = self.hash(key);
        let tag = tag_of(hash);
        let fresh = Fresh { value, key, hash };
        let new = Pair { word, rank };
        self.help_grow(guard);
        loop {
            let spot = self.write_spot(hash, guard);
            let Some(b) = spot.block() else {
                if self.install_first(spot.bucket(), new, tag, seq, guard) {
                    return Insert::New(fresh);
                }
                continue;
            };
            let (slot, old) = match Self::probe(b, key, hash) {
                Probe::Frozen | Probe::Full => {
                    self.rebuild(&spot, guard);
                    continue;
                }
                Probe::Empty(i) => {
                    let s = b.slot(i);
                    #[cfg(not(session_cache_mutant = "claim_store"))]
                    let expected = Pair::default();
                    // Mutant (loom-tests/README.md): claim whatever is there, like a store.
                    #[cfg(session_cache_mutant = "claim_store")]
                    let expected = s.pair().load(Acquire);
                    if s.pair()
                        .compare_exchange(expected, new, AcqRel, Acquire)
                        .is_err()
                    {
                        // Someone claimed it (or froze it): look again.
                        continue;
                    }
                    // Claim rule: claims go to the first empty slot, so the claimed slots form
                    // a prefix (no slot is ever empty again). Not in loom builds, whose models
                    // check it at rest (`check_invariants`).
                    #[cfg(not(session_cache_loom))]
                    debug_assert!(
                        (0..i).all(|j| state(b.slot(j).pair().load(Relaxed).word) != State::Empty),
                        "a claim past an empty slot"
                    );
                    s.group.set_tag(s.lane, tag);
                    s.group.set_seq(s.lane, seq);
                    return Insert::New(fresh);
                }
                Probe::Key(slot, old) => (slot, old),
            };
            let old_value = pointer::<T>(old.word);
            if let OnExisting::KeepLive { live_from } = on_existing {
                if old.rank >= live_from {
                    // SAFETY: `old` was live under `guard`; its count is released deferred.
                    let existing = unsafe { clone_arc(old_value) };
                    // SAFETY: the caller's count, never published: ours to drop.
                    drop(unsafe { Arc::from_raw(value) });
                    return Insert::Kept(existing);
                }
            }
            let identical = old_value == value;
            // Under `KeepLive` the old entry is expired here: even that very value takes the new
            // rank, or it would stay cached expired.
            let keep_rank =
                identical && !refresh_rank && matches!(on_existing, OnExisting::Replace { .. });
            let new = Pair {
                word,
                rank: if keep_rank { old.rank } else { rank },
            };
            // An identical re-add that changes nothing but the tie-break hint needs no CAS: the
            // slot held exactly this pair when it was loaded, an instant inside this call.
            let cas = if new == old {
                Ok(old)
            } else {
                #[cfg(not(session_cache_mutant = "relaxed_publish"))]
                let cas = slot.pair().compare_exchange(old, new, AcqRel, Acquire);
                // Mutant (loom-tests/README.md): publish the replacing value without Release.
                #[cfg(session_cache_mutant = "relaxed_publish")]
                let cas = slot.pair().compare_exchange(old, new, Relaxed, Relaxed);
                cas
            };
            if cas.is_err() {
                continue;
            }
            slot.group.set_seq(slot.lane, seq);
            if identical {
                // SAFETY: two counts exist, the table's (kept) and the caller's; dropping the
                // caller's leaves at least one. (Mutant `identical_rc`, loom-tests/README.md:
                // keep the caller's, a leak.)
                #[cfg(not(session_cache_mutant = "identical_rc"))]
                unsafe {
                    Arc::decrement_strong_count(value)
                };
                return Insert::Identical;
            }
            // SAFETY: `old` was live under `guard`; its count is released only below, deferred
            // past this guard.
            let previous = unsafe { clone_arc(old_value) };
            // SAFETY: unlinked by our CAS; the slot owned one strong count.
            #[cfg(not(session_cache_mutant = "eager_release"))]
            unsafe {
                self.retire_value(old_value, guard)
            };
            // Mutant (loom-tests/README.md): release the replaced value at once, while readers
            // may still take it. SAFETY: none; that is the fault.
            #[cfg(session_cache_mutant = "eager_release")]
            unsafe {
                Arc::decrement_strong_count(old_value)
            };
            return Insert::Replaced(previous);
        }
    }

    /// Installs a fresh block holding only `new` into a bucket that never had one; false if
    /// another block got there first (ours was never shared, and holds no count).
    fn install_first(
        &self,
        bucket: &Atomic<Block>,
        new: Pair,
        tag: u8,
        seq: u32,
        guard: &Guard,
    ) -> bool {
        let fresh = block_with(BLOCK_WIDTH, [(new, tag, seq)]);
        bucket
            .compare_exchange(Shared::null(), fresh, AcqRel, Acquire, guard)
            .is_ok()
    }

    /// Removes the live entry for `key` and returns a reference to its value.
    pub(crate) fn remove(&self, key: &[u8], hash: u64, guard: &Guard) -> Option<Arc<T>> {
        self.remove_with(key, hash, guard, |value| {
            // SAFETY: `with` runs under `guard` on the value just unlinked, whose count is
            // released deferred.
            unsafe { clone_arc(value) }
        })
    }

    /// Removes the live entry for `key`; `with` reads its value (under the guard, before the
    /// table's reference is released) and its result is returned.
    pub(crate) fn remove_with<R>(
        &self,
        key: &[u8],
        hash: u64,
        guard: &Guard,
        with: impl FnOnce(&T) -> R,
    ) -> Option<R> {
        self.remove_where(key, hash, guard, |_| true, with)
    }

    /// Removes exactly the entry `found` saw, unless it was replaced or removed meanwhile.
    /// Eviction and expiry use this, so they never remove a value that just replaced the one
    /// they judged. (An identical re-add that kept the rank leaves the same pair: the entry is
    /// then the same one, only its tie-break hint newer.)
    pub(crate) fn remove_found(&self, found: &Found<'_, T>, guard: &Guard) -> Option<Arc<T>> {
        self.remove_found_with(found, guard, |value| {
            // SAFETY: as in `remove`.
            unsafe { clone_arc(value) }
        })
    }

    /// [`remove_found`](Self::remove_found), reading the removed value with `with`.
    pub(crate) fn remove_found_with<R>(
        &self,
        found: &Found<'_, T>,
        guard: &Guard,
        with: impl FnOnce(&T) -> R,
    ) -> Option<R> {
        if self.kill(found.slot, found.pair, guard) {
            return Some(with(found.value()));
        }
        // The slot changed: the entry is gone, or its block was frozen and the entry moved to
        // a new block (the same pair). Look for it there.
        let key = found.value().key();
        #[cfg(not(session_cache_mutant = "evict_by_key"))]
        let wanted = |pair: Pair| pair == found.pair;
        // Mutant (loom-tests/README.md): remove whatever now holds the key.
        #[cfg(session_cache_mutant = "evict_by_key")]
        let wanted = |_: Pair| true;
        self.remove_where(key, self.hash(key), guard, wanted, with)
    }

    /// Removes the live entry for `key` if its (unfrozen) pair satisfies `wanted`.
    fn remove_where<R>(
        &self,
        key: &[u8],
        hash: u64,
        guard: &Guard,
        wanted: impl Fn(Pair) -> bool,
        with: impl FnOnce(&T) -> R,
    ) -> Option<R> {
        loop {
            let spot = self.write_spot(hash, guard);
            let b = spot.block()?;
            let (slot, pair) = Self::slot_of(b, key, hash)?;
            let unfrozen = Pair {
                word: pair.word & !FROZEN,
                ..pair
            };
            if !wanted(unfrozen) {
                return None;
            }
            if pair.word & FROZEN != 0 {
                self.rebuild(&spot, guard);
                continue;
            }
            if self.kill(slot, pair, guard) {
                // SAFETY: live under `guard` when loaded; its count is released deferred.
                return Some(with(unsafe { &*pointer::<T>(pair.word) }));
            }
        }
    }

    /// Kills the live, unfrozen `pair` of `slot` and retires the table's reference to its
    /// value (deferred: the caller may still read it under `guard`); false if the slot changed.
    #[inline]
    fn kill(&self, slot: SlotRef<'_>, pair: Pair, guard: &Guard) -> bool {
        let dead = Pair {
            word: DEAD,
            rank: 0,
        };
        #[cfg(not(session_cache_mutant = "kill_store"))]
        if slot
            .pair()
            .compare_exchange(pair, dead, AcqRel, Acquire)
            .is_err()
        {
            return false;
        }
        // Mutant (loom-tests/README.md): store the tag instead of CASing it: two removers win.
        #[cfg(session_cache_mutant = "kill_store")]
        slot.pair()
            .store(dead, crate::loom::sync::atomic::Ordering::Release);
        // SAFETY: our CAS unlinked the value from the table; the slot owned one strong count.
        unsafe { self.retire_value(pointer::<T>(pair.word), guard) };
        true
    }

    /// Calls `f` for every live entry of root bucket `index` (or, once it moved, of its
    /// children in the next table).
    #[inline(always)]
    pub(crate) fn for_each_in_bucket<'g>(
        &self,
        index: usize,
        guard: &'g Guard,
        mut f: impl FnMut(Found<'g, T>),
    ) {
        self.walk_bucket_while(index, guard, |found| {
            f(found);
            true
        });
    }

    /// Calls `f` for the live entries of root bucket `index` (or, once it moved, of its
    /// children in the next table), in slot order, until it returns false.
    #[inline(always)]
    pub(crate) fn walk_bucket_while<'g>(
        &self,
        index: usize,
        guard: &'g Guard,
        mut f: impl FnMut(Found<'g, T>) -> bool,
    ) {
        match self.root_bucket(index, guard) {
            RootBucket::Block(Some(b)) => {
                Self::walk_block(b, &mut f);
            }
            RootBucket::Block(None) => {}
            RootBucket::Moved(root, index) => {
                // Through a `dyn`: the only direct call of `f` is the one above, which inlines.
                let mut f: &mut dyn FnMut(Found<'g, T>) -> bool = &mut f;
                Self::walk(root, index, guard, &mut f);
            }
        }
    }

    /// Root bucket `index` (reduced modulo the bucket count): its block, or where it moved.
    #[inline(always)]
    fn root_bucket<'g>(&self, index: usize, guard: &'g Guard) -> RootBucket<'g> {
        let root = self.root(guard);
        let index = index & root.mask;
        let word = root.buckets[index].load(Acquire, guard);
        if word.tag() & MOVED != 0 {
            return RootBucket::Moved(root, index);
        }
        // SAFETY: loaded under `guard`; blocks are freed only by deferred reclamation.
        RootBucket::Block(unsafe { word.with_tag(0).as_ref() })
    }

    /// The live entries and the width of each bucket's block, bucket by bucket of the root
    /// (tests of the eviction's balance and of the width rule).
    #[cfg(all(test, not(session_cache_loom)))]
    pub(crate) fn bucket_shapes(&self, guard: &Guard) -> Vec<(usize, usize)> {
        let root = self.root(guard);
        (0..root.buckets.len())
            .map(|i| {
                let (mut live, mut width) = (0, 0);
                Self::each_block(root, i, guard, &mut |b| {
                    Self::walk_block(b, &mut |_| {
                        live += 1;
                        true
                    });
                    width += b.width();
                });
                (live, width)
            })
            .collect()
    }

    /// Slots claimed in bucket `index` of the root (its children, if it moved), as the tag
    /// words tell: live and dead ones, less any claimed a moment ago. Reads no slot.
    /// (Inline for a bucket that did not move: an evicting add asks this of two buckets, and
    /// the call frame of the general walk cost more than the count.)
    #[inline]
    pub(crate) fn tagged_in_bucket(&self, index: usize, guard: &Guard) -> usize {
        match self.root_bucket(index, guard) {
            RootBucket::Block(b) => b.map_or(0, |b| b.groups().map(Group::tagged).sum()),
            RootBucket::Moved(root, index) => Self::tagged(root, index, guard),
        }
    }

    #[cold]
    #[inline(never)]
    fn tagged(table: &Table, index: usize, guard: &Guard) -> usize {
        let mut tagged = 0;
        Self::each_block(table, index, guard, &mut |b| {
            tagged += b.groups().map(Group::tagged).sum::<usize>()
        });
        tagged
    }

    /// Calls `f` with the block of bucket `index` of `table`, or with the blocks of its
    /// children if it moved (none if the bucket has no block yet).
    #[inline]
    fn each_block<'g>(
        table: &'g Table,
        index: usize,
        guard: &'g Guard,
        f: &mut impl FnMut(&'g Block),
    ) {
        let word = table.buckets[index].load(Acquire, guard);
        if word.tag() & MOVED != 0 {
            // SAFETY: a table with a `MOVED` bucket has a next table, retired only after it.
            let next = unsafe { table.next.load(Acquire, guard).deref() };
            Self::each_block(next, index, guard, f);
            Self::each_block(next, index + table.buckets.len(), guard, f);
            return;
        }
        // SAFETY: loaded under `guard`; blocks are freed only by deferred reclamation.
        if let Some(b) = unsafe { word.with_tag(0).as_ref() } {
            f(b);
        }
    }

    fn walk<'g>(
        table: &'g Table,
        index: usize,
        guard: &'g Guard,
        f: &mut impl FnMut(Found<'g, T>) -> bool,
    ) {
        let mut more = true;
        Self::each_block(table, index, guard, &mut |b| {
            more = more && Self::walk_block(b, f);
        });
    }

    /// The live slots of `b`, in order, up to its first empty one, while `f` returns true;
    /// false if `f` stopped the walk.
    #[inline(always)]
    fn walk_block<'g>(b: &'g Block, f: &mut impl FnMut(Found<'g, T>) -> bool) -> bool {
        for group in b.groups() {
            for lane in 0..GROUP {
                crate::work::slots(1);
                let pair = group.slot(lane).load(Acquire);
                match state(pair.word) {
                    State::Empty => return true,
                    State::Dead => {}
                    State::Live => {
                        let found = Found {
                            slot: SlotRef { group, lane },
                            pair: Pair {
                                word: pair.word & !FROZEN,
                                ..pair
                            },
                            _value: PhantomData,
                        };
                        if !f(found) {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    /// Whether rebuilds freeze as the non-loom builds do: skipping dead slots, each other slot
    /// with a CAS from the value just loaded. Loom builds freeze every slot with one RMW unless
    /// a model asks for this (the load per slot multiplies the interleavings of the larger
    /// rebuild models; the shipped freeze has models of its own).
    #[inline(always)]
    fn freezes_as_shipped(&self) -> bool {
        #[cfg(not(session_cache_loom))]
        return true;
        #[cfg(session_cache_loom)]
        return self
            .freeze_as_shipped
            .load(std::sync::atomic::Ordering::SeqCst);
    }

    /// Loom builds: rebuilds of this table freeze as the other builds do from now on.
    #[cfg(session_cache_loom)]
    pub(crate) fn freeze_as_shipped(&self) {
        self.freeze_as_shipped
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Freezes every slot of `b` but the dead ones (final already; loom builds freeze those
    /// too, unless [`freezes_as_shipped`](Self::freezes_as_shipped)) and returns its live
    /// slots, in `live` (empty on entry): after this no CAS on the block can succeed, so every
    /// helper that reads it gathers the same live set. (An out-parameter: returned by value, the
    /// 400-byte set was copied once more on every rebuild.)
    fn freeze(&self, b: &Block, live: &mut Live) {
        // Mutant (loom-tests/README.md): gather the live set from loads made before the freeze.
        #[cfg(session_cache_mutant = "copy_unfrozen")]
        let before: Vec<Pair> = b.slots().map(|s| s.pair().load(Acquire)).collect();
        debug_assert!(live.is_empty(), "a live set gathered twice");
        // Groups, then lanes: a flattened iterator over the slots cost a few branches per slot.
        // (The group's index is read by a mutant only.)
        #[allow(clippy::unused_enumerate_index)]
        for (_g, group) in b.groups().enumerate() {
            for lane in 0..GROUP {
                let slot = SlotRef { group, lane };
                #[cfg(not(session_cache_mutant = "no_freeze"))]
                let pair = if self.freezes_as_shipped() {
                    // A dead slot is final (no CAS expects `DEAD`: claims expect an empty slot,
                    // kills and replacements a live pair), so it needs no freezing: a 16-byte CAS
                    // saved for each removed entry of the block.
                    let current = slot.pair().load(Acquire);
                    if state(current.word) == State::Dead {
                        continue;
                    }
                    // The freezing RMW as one CAS from the value just read: `fetch_or` on a 16-byte
                    // word is itself a load and a CAS loop, so this saves a load per slot. A slot
                    // written since is frozen by the RMW itself.
                    let frozen = Pair {
                        word: current.word | FROZEN,
                        ..current
                    };
                    match slot
                        .pair()
                        .compare_exchange(current, frozen, AcqRel, Acquire)
                    {
                        Ok(before) => before,
                        // Mutant (loom-tests/README.md): trust the load when the CAS fails, so a
                        // slot written between the two is copied as it was before.
                        #[cfg(session_cache_mutant = "freeze_trusts_stale_load")]
                        Err(_) => current,
                        #[cfg(not(session_cache_mutant = "freeze_trusts_stale_load"))]
                        Err(_) => slot.pair().fetch_or_word(FROZEN, AcqRel),
                    }
                } else {
                    // Every slot with one RMW, dead ones too (loom models by default: see
                    // `freezes_as_shipped`).
                    slot.pair().fetch_or_word(FROZEN, AcqRel)
                };
                #[cfg(session_cache_mutant = "no_freeze")]
                let pair = slot.pair().load(Acquire);
                #[cfg(session_cache_mutant = "copy_unfrozen")]
                let pair = {
                    let _ = pair;
                    before[_g * GROUP + lane]
                };
                if state(pair.word) == State::Live {
                    live.push(Moving {
                        pair: Pair {
                            word: pair.word & !FROZEN,
                            ..pair
                        },
                        tag: slot.tag(),
                        seq: slot.seq(),
                    });
                }
            }
        }
    }

    /// The tag of a moving slot: the one written for it, or its key's (a claimer that had not
    /// written it yet writes it into the old block).
    fn tag_of_moving(&self, m: &Moving) -> u8 {
        if m.tag != 0 {
            return m.tag;
        }
        // SAFETY: live in a frozen block under the caller's guard.
        tag_of(self.hash(unsafe { &*pointer::<T>(m.pair.word) }.key()))
    }

    /// A fresh block holding `live`, sized for them.
    fn block_of(&self, live: &[Moving]) -> Owned<Block> {
        crate::work::block_built();
        block_with(
            width_for(live.len()),
            live.iter().map(|m| (m.pair, self.tag_of_moving(m), m.seq)),
        )
    }

    /// Rebuilds the full or frozen block at `spot` (module docs, point 2). Any thread may call
    /// it any number of times; one swing wins. In a growing table it splits the bucket instead.
    #[cold]
    fn rebuild(&self, spot: &Spot<'_>, guard: &Guard) {
        if spot.word.tag() & MIGRATING != 0 || !spot.table.next.load(Acquire, guard).is_null() {
            self.migrate(spot.table, spot.index, guard);
            return;
        }
        let Some(b) = spot.block() else { return };
        let mut live = Live::new();
        self.freeze(b, &mut live);
        // Never null: a bucket that had a block keeps one (module docs, point 6).
        let fresh = self.block_of(&live).into_shared(guard);
        match spot
            .bucket()
            .compare_exchange(spot.word, fresh, AcqRel, Acquire, guard)
        {
            // SAFETY: the old block is unlinked; every thread that can still see it is pinned.
            Ok(_) => unsafe { self.retire_block(spot.word, guard) },
            // SAFETY: never published. Dropping a block releases no counts.
            Err(_) => drop(unsafe { fresh.into_owned() }),
        }
    }

    /// Starts doubling the bucket array if `live` entries crowd the root and no growth is in
    /// progress (inserts move a few buckets of a growth in progress, see `help_grow`).
    #[inline]
    pub(crate) fn grow_if_crowded(&self, live: usize, guard: &Guard) {
        let root = self.root(guard);
        if live > root.buckets.len() * GROW_AT {
            Self::start_growth(root, guard);
        }
    }

    #[cold]
    fn start_growth(root: &Table, guard: &Guard) {
        if root.next.load(Acquire, guard).is_null() {
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
    fn migrate(&self, table: &Table, i: usize, guard: &Guard) {
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
        // (ii) Freeze, (iii) build and install the low child, then the high one as the rest.
        let n = table.buckets.len();
        // SAFETY: loaded under `guard`.
        let old = unsafe { word.with_tag(0).as_ref() };
        let mut live = Live::new();
        if let Some(b) = old {
            self.freeze(b, &mut live);
        }
        let low = self.install_child(&next.buckets[i], guard, || {
            live.iter()
                .copied()
                .filter(|m| {
                    // SAFETY: live in the frozen block under `guard`.
                    let key = unsafe { &*pointer::<T>(m.pair.word) }.key();
                    self.hash(key) as usize & n == 0
                })
                .collect()
        });
        // The high child is every live value the installed low child did not take. The low
        // child is as its builder made it until this bucket is `MOVED` (writers reach it only
        // through a `MOVED` parent), which needs the high child installed first; a helper that
        // reads it later finds the high child installed and builds nothing.
        self.install_child(&next.buckets[i + n], guard, || {
            // The high child is still missing, so this bucket is not `MOVED` and the next table
            // is not the root: the low child is a plain block pointer (no growth tags yet).
            debug_assert!(
                low.tag() == 0 && !low.is_null(),
                "a split saw a moved child"
            );
            // SAFETY: loaded under `guard`; a swung-out child is retired, not freed, while we
            // are pinned.
            let Some(low) = (unsafe { low.as_ref() }) else {
                return Live::new();
            };
            let in_low = |m: &Moving| {
                low.slots()
                    .map(|s| s.pair().load(Acquire).word)
                    .take_while(|&w| state(w) != State::Empty)
                    .any(|w| w & !TAG_BITS == m.pair.word)
            };
            live.iter().copied().filter(|m| !in_low(m)).collect()
        });
        // (iv) Publish the move.
        if bucket
            .compare_exchange(word, Shared::null().with_tag(MOVED), AcqRel, Acquire, guard)
            .is_ok()
        {
            if !word.with_tag(0).is_null() {
                // SAFETY: unlinked by our CAS; its live counts now belong to the children.
                unsafe { self.retire_block(word.with_tag(0), guard) };
            }
            if table.moved.fetch_add(1, AcqRel) + 1 == n {
                self.promote(table, guard);
            }
        }
    }

    /// Installs a child block holding what `build` gathers into `bucket`, unless a child is
    /// there already; returns the child installed (ours or the first helper's).
    fn install_child<'g>(
        &self,
        bucket: &Atomic<Block>,
        guard: &'g Guard,
        build: impl FnOnce() -> Live,
    ) -> Shared<'g, Block> {
        let current = bucket.load(Acquire, guard);
        // Any word but the empty one (a block, or a `MOVED` tag with no pointer once the next
        // table has grown in turn) is a child someone installed.
        if current.into_usize() != 0 {
            return current;
        }
        let child = self.block_of(&build());
        match bucket.compare_exchange(Shared::null(), child, AcqRel, Acquire, guard) {
            Ok(installed) => installed,
            // Another helper installed its child first; ours was never shared.
            Err(e) => e.current,
        }
    }

    /// Makes `table.next` the root once every bucket of `table` has moved.
    fn promote(&self, table: &Table, guard: &Guard) {
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
                let retired = Retired::new(current.into_usize(), free_table);
                self.reclaim.retire(guard, retired);
            }
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
    unsafe fn retire_block(&self, block: Shared<'_, Block>, guard: &Guard) {
        // SAFETY: per the contract. A block owns no counts once frozen and copied (module
        // docs, point 4).
        unsafe {
            let retired = Retired::new(block.with_tag(0).into_usize(), free_block);
            self.reclaim.retire(guard, retired);
        }
    }
}

/// Returns a new strong reference to the value behind `ptr`.
///
/// # Safety
/// `ptr` must come from `Arc::into_raw` and its strong count must stay at least 1 for the
/// duration of the call: in this crate, the caller is pinned and loaded `ptr` from a slot that
/// was reachable after it pinned, so the table's own reference is released (deferred) only
/// after the caller unpins.
#[inline]
pub(crate) unsafe fn clone_arc<T>(ptr: *const T) -> Arc<T> {
    // SAFETY: see the function's contract.
    unsafe {
        Arc::increment_strong_count(ptr);
        Arc::from_raw(ptr)
    }
}

// The releases the table retires, each taking the address it was retired with. They run on
// whichever thread the collector picks: `T: Send + Sync` for every table that retires them.

/// # Safety
/// `data` is an unlinked `Table` whose buckets are all `MOVED`, retired once.
unsafe fn free_table(data: usize) {
    // SAFETY: per the contract.
    drop(unsafe { Owned::<Table>::from_usize(data) });
}

/// # Safety
/// `data` is a strong count of an `Arc<T>` (`Arc::into_raw`) the table unlinked, retired once.
unsafe fn release_value<T>(data: usize) {
    // SAFETY: per the contract.
    drop(unsafe { Arc::from_raw(data as *const T) });
}

/// # Safety
/// `data` is a frozen `Block` unlinked from its bucket, retired once.
unsafe fn free_block(data: usize) {
    // SAFETY: per the contract; a block's slots hold no counts of their own to release.
    drop(unsafe { Owned::<Block>::from_usize(data) });
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
                if word.tag() & MIGRATING != 0 {
                    // A split left half done: its children in the next table may hold the
                    // same live values. Drop those child blocks without releasing anything; the
                    // counts are released once, below, from this (the owning) block.
                    // SAFETY: a `MIGRATING` bucket's table has a next table.
                    let next = unsafe { t.next.load(Relaxed, guard).deref() };
                    for child in [i, i + n] {
                        let c = next.buckets[child].swap(Shared::null(), Relaxed, guard);
                        if !c.is_null() {
                            // SAFETY: exclusive access; dropping a block releases no counts.
                            drop(unsafe { c.into_owned() });
                        }
                    }
                }
                for slot in block.slots() {
                    let pair = slot.pair().load(Relaxed);
                    match state(pair.word) {
                        State::Empty => break,
                        State::Dead => {}
                        // SAFETY: a live slot owns one strong count (module docs, point 4).
                        State::Live => drop(unsafe { Arc::from_raw(pointer::<T>(pair.word)) }),
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

    type V = super::tests::K;

    fn insert(t: &RawTable<V>, key: Vec<u8>) {
        let guard = t.pin();
        let order = Order { rank: 0, seq: 0 };
        let on = OnExisting::Replace {
            refresh_rank: false,
        };
        let _ = t.insert(Arc::new(super::tests::K(key)), order, on, &guard);
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
