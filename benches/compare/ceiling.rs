//! Ceilings: what an ideal flat table would reach under the cache's contract, measured beside
//! the peers by `compare throughput --subjects ceiling,...` (docs/benchmarks.md, "The ceiling
//! of any layout on crossbeam-epoch").
//!
//! A ceiling is **not a cache**. It is the fastest table this design could possibly become, so
//! that its rate bounds what any layout on crossbeam-epoch with expiry can reach:
//! - no indirection: groups of seven 16-byte slots (the session's `Arc` pointer and its expiry)
//!   and their tags on one cache-line pair, found from the hash alone, like `hashbrown`;
//! - no growth, no tombstones, no rebuilds, no freezing: a removed slot is empty again at once.
//!   That is only correct while no other thread writes (a concurrent claimer could take the
//!   slot behind a dead one and duplicate a key), and even then a key that went past a full
//!   group when it was added is missed once that group has room again (`compare check` shows
//!   how many of 20 480 are still found after an overfill). Both only make a ceiling faster,
//!   and the measured mixes look up no such key: `resume` does not write, and `churn` removes
//!   the key it has just added, whose eviction starts at the key's own group;
//! - a plain per-thread statistics count, a plain (non-atomic read-modify-write) live count and
//!   an eviction that takes the oldest entry of the insert's home group.
//!
//! What it keeps, each one switchable ([`Parts`]) so that its cost can be read off:
//! - the epoch pin around every operation (crossbeam-epoch's locked `cmpxchg`), and a removed
//!   or evicted session released through a deferred batch of 48, flushed to the collector at
//!   once, as the shipped cache's prompt-release bound needs ([`Parts::PIN`]);
//! - the coarse clock read a lookup needs to judge expiry, and an add needs to stamp it
//!   ([`Parts::CLOCK`]);
//! - the hit and miss counts OpenSSL's statistics report ([`Parts::STATS`]).
//!
//! Sound uses, which `compare` enforces: the `resume` mix at any thread count (the table is
//! filled by one thread before the measured lookups start, and nothing writes during them);
//! the `churn` mix at one thread (one writer, no concurrent reader). Without [`Parts::PIN`] a
//! removed session is released at once, which is sound for the same reason.

// Atomics: one writer at a time (see above), so the orderings only have to publish a slot to
// the readers of `resume`, which start after the fill: Release on the slot and tag stores
// pairs with the readers' Acquire loads.

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering::{AcqRel, Release};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed};
use std::sync::Arc;

use portable_atomic::AtomicU128;

use super::{Hasher, Id, Sess, Subject, CAP, TTL};

#[path = "ceiling_shared.rs"]
mod shared;
pub use shared::SharedCeiling;
#[path = "ceiling_assoc.rs"]
mod assoc;
pub use assoc::AssocCeiling;

/// The ceilings by name, what each keeps, and the line `compare` prints for it.
pub const CEILINGS: &[(&str, Parts, &str)] = &[
    (
        "ceiling",
        Parts(Parts::PIN.0 | Parts::CLOCK.0 | Parts::STATS.0),
        "a ceiling, not a cache (ceiling.rs): a flat table with the pin, deferred release, clock and counts",
    ),
    (
        "ceiling-no-clock",
        Parts(Parts::PIN.0 | Parts::STATS.0),
        "a ceiling, not a cache (ceiling.rs): the pin, deferred release and counts, no clock",
    ),
    (
        "ceiling-no-pin",
        Parts(Parts::CLOCK.0 | Parts::STATS.0),
        "a ceiling, not a cache (ceiling.rs): the clock and counts, no pin, released at once",
    ),
    (
        "ceiling-bare",
        Parts(0),
        "a ceiling, not a cache (ceiling.rs): the bare probe, released at once",
    ),
    (
        "ceiling-shared",
        Parts(Parts::SHARED.0 | Parts::CLOCK.0 | Parts::STATS.0),
        "a ceiling, not a cache (ceiling_shared.rs): set-associative, slots by compare-exchange, the pin, deferred release, clock and counts",
    ),
    (
        "ceiling-assoc",
        Parts(Parts::SHARED.0 | Parts::ASSOC.0 | Parts::CLOCK.0 | Parts::STATS.0),
        "a probe, not a cache (ceiling_assoc.rs): the shared ceiling's groups with an exact live count, no duplicate key, eviction only when full",
    ),
    (
        "ceiling-assoc-credit",
        Parts(Parts::SHARED.0 | Parts::ASSOC.0 | Parts::CREDIT.0 | Parts::CLOCK.0 | Parts::STATS.0),
        "a probe, not a cache (ceiling_assoc.rs): as ceiling-assoc, the count taken in per-thread chunks of room",
    ),
    (
        "ceiling-shared-no-clock",
        Parts(Parts::SHARED.0 | Parts::STATS.0),
        "a ceiling, not a cache (ceiling_shared.rs): set-associative, slots by compare-exchange, the pin, deferred release and counts, no clock",
    ),
];

/// The parts of the contract a ceiling keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts(u8);

impl Parts {
    /// The epoch pin per operation, and deferred release of what an operation unlinks.
    pub const PIN: Parts = Parts(1);
    /// The clock per lookup that finds an entry, and per add.
    pub const CLOCK: Parts = Parts(2);
    /// Per-thread hit and miss counts.
    pub const STATS: Parts = Parts(4);
    /// The shared ceiling ([`SharedCeiling`]): sound with any number of writers; always pins.
    pub const SHARED: Parts = Parts(8);
    /// With [`SHARED`](Self::SHARED): the associative probe ([`AssocCeiling`]) instead.
    pub const ASSOC: Parts = Parts(16);
    /// With [`ASSOC`](Self::ASSOC): the live count in per-thread chunks of room.
    pub const CREDIT: Parts = Parts(32);

    pub fn has(self, p: Parts) -> bool {
        self.0 & p.0 != 0
    }
}

/// Lanes per group: seven slots beside the tag word fill two cache lines.
const LANES: usize = 7;
/// Groups: 28 672 slots for 20 480 sessions, a load of 0.71.
const GROUPS: usize = 4096;
/// Every byte of a tag word whose high bit marks its lane as taken (lanes 0-6).
const TAKEN: u64 = 0x0080_8080_8080_8080;
/// A released batch's length, as in the shipped cache.
const BATCH: usize = 48;

#[repr(C, align(64))]
struct Group {
    /// One byte per lane: 0 for empty, else 0x80 | seven bits of the hash.
    tags: AtomicU64,
    _pad: u64,
    /// Each: the session's `Arc` pointer (low half, 0 for empty) and its expiry in coarse
    /// nanoseconds (high half).
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

    /// Lanes whose tag is `tag`, as a byte mask.
    #[inline(always)]
    fn candidates(tags: u64, tag: u64) -> u64 {
        let x = tags ^ tag.wrapping_mul(0x0101_0101_0101_0101);
        x.wrapping_sub(0x0101_0101_0101_0101) & !x & TAKEN
    }

    /// The lane among those `tags` marks with `tag` whose session has the id `id`, and the
    /// slot's value.
    ///
    /// # Safety
    /// Every session a slot of this group points to stays alive during the call: the caller is
    /// pinned (a slot's session is released only after it was unlinked, and then after every
    /// guard that could have loaded it has ended) or, for a ceiling without the pin, no other
    /// thread writes.
    #[inline(always)]
    unsafe fn find(&self, tags: u64, tag: u64, id: &Id) -> Option<(usize, u128)> {
        let mut lanes = Self::candidates(tags, tag);
        while lanes != 0 {
            let lane = (lanes.trailing_zeros() / 8) as usize;
            lanes &= lanes - 1;
            let pair = self.slots[lane].load(Acquire);
            let p = pointer(pair);
            // SAFETY: the caller's contract.
            if !p.is_null() && unsafe { &*p }.id == *id {
                return Some((lane, pair));
            }
        }
        None
    }
}

/// A removed or evicted session waiting for its release.
struct Released(*const Sess);

impl Released {
    /// Drops the table's reference.
    ///
    /// # Safety
    /// The pointer came from `Arc::into_raw`, its slot no longer holds it, and no reader that
    /// loaded it before it was unlinked can still dereference it.
    unsafe fn release(self) {
        // SAFETY: the caller's contract: the table's reference, no longer reachable.
        drop(unsafe { Arc::from_raw(self.0) });
    }
}

/// A batch on its way through the collector.
struct Batch(Vec<Released>);

// SAFETY: a batch only carries pointers to `Sess` (which is `Send + Sync`) whose references the
// table gave up; the thread that runs the deferred release drops them, as an `Arc` may be.
unsafe impl Send for Batch {}

impl Batch {
    /// Hands `items` to the collector as one deferred release, and flushes.
    ///
    /// # Safety
    /// Every item is unlinked: no slot holds it any more, so only readers pinned before now can
    /// have loaded it.
    unsafe fn hand_off(guard: &crossbeam_epoch::Guard, items: Vec<Released>) {
        let batch = Batch(items);
        // SAFETY: the caller's contract; the collector runs the closure only after every guard
        // pinned before this defer has ended.
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

/// This thread's gathering batch; at thread exit the rest is released at once (sound for the
/// uses above: the exiting thread is the only writer, and no one reads during a write mix).
struct Gathering(Vec<Released>);

impl Drop for Gathering {
    fn drop(&mut self) {
        for r in self.0.drain(..) {
            // SAFETY: unlinked by this thread, the only writer; no reader runs during a write
            // mix, so nothing can still hold it.
            unsafe { r.release() };
        }
    }
}

thread_local! {
    static GATHERING: RefCell<Gathering> = const { RefCell::new(Gathering(Vec::new())) };
    /// Hits and misses of this thread, written by it alone.
    static COUNTS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

fn coarse_nanos() -> u64 {
    clock_nanos(libc::CLOCK_MONOTONIC_COARSE)
}

/// `clock` in nanoseconds.
fn clock_nanos(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the monotonic clocks, coarse or not, exist on
    // every Linux this benchmark runs on.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// See the module docs.
pub struct Ceiling {
    groups: Box<[Group]>,
    kept: Kept,
    live: AtomicUsize,
}

/// Where a key stands: its group, lane and slot value.
struct Place {
    group: usize,
    lane: usize,
    pair: u128,
}

fn pointer(pair: u128) -> *const Sess {
    pair as u64 as *const Sess
}

fn expiry(pair: u128) -> u64 {
    (pair >> 64) as u64
}

/// A lane's tag for `hash`: seven bits of it, and the high bit that marks the lane taken.
#[inline(always)]
fn tag(hash: u64) -> u64 {
    (hash >> 57) | 0x80
}

/// Releases every session still in `groups`.
///
/// # Safety
/// The table that owns `groups` is being dropped: no reader is left, and each live slot holds
/// one reference of its own, released here once.
unsafe fn release_all(groups: &[Group]) {
    for group in groups {
        for slot in group.slots.iter() {
            let p = pointer(slot.load(Relaxed));
            if !p.is_null() {
                // SAFETY: the caller's contract.
                unsafe { Released(p).release() };
            }
        }
    }
}

/// The per-operation costs of the contract a ceiling keeps or drops by its [`Parts`]: the hash,
/// the clock and the counts. (The pin is each ceiling's own: the flat one may go without.)
struct Kept {
    hasher: Hasher,
    parts: Parts,
}

impl Kept {
    fn new(parts: Parts) -> Self {
        Kept {
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
    fn now(&self) -> u64 {
        if self.parts.has(Parts::CLOCK) {
            coarse_nanos()
        } else {
            0
        }
    }

    /// A lookup's answer, as a cache's `get` gives it, from the slot value it found: a live
    /// session is cloned for the caller, then `guard` ends, then the clone is dropped.
    ///
    /// # Safety
    /// `found`'s pointer was loaded from a slot under `guard` (or, for a ceiling without the
    /// pin, while no other thread writes), so its session stays alive while `guard` does.
    #[inline(always)]
    unsafe fn answer<G>(&self, found: Option<u128>, guard: G) -> bool {
        let hit = match found {
            Some(pair) if expiry(pair) > self.now() => {
                let p = pointer(pair);
                // SAFETY: the caller's contract; the clone is the caller's reference.
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

    #[inline(always)]
    fn count(&self, hit: bool) {
        if self.parts.has(Parts::STATS) {
            COUNTS.with(|c| {
                let (h, m) = c.get();
                c.set((h + hit as u64, m + !hit as u64));
            });
        }
    }
}

impl Ceiling {
    pub fn new(parts: Parts) -> Self {
        Ceiling {
            groups: (0..GROUPS).map(|_| Group::new()).collect(),
            kept: Kept::new(parts),
            live: AtomicUsize::new(0),
        }
    }

    #[inline(always)]
    fn home(hash: u64) -> usize {
        hash as usize & (GROUPS - 1)
    }

    #[inline(always)]
    fn pin(&self) -> Option<crossbeam_epoch::Guard> {
        self.kept.parts.has(Parts::PIN).then(crossbeam_epoch::pin)
    }

    /// The slot holding `id`: probes groups from the home group on until one has a free lane
    /// (no key goes past a group that had room when it was added; module docs for a group
    /// that has room again).
    #[inline(always)]
    fn locate(&self, id: &Id, hash: u64) -> Option<Place> {
        let tag = tag(hash);
        let mut g = Self::home(hash);
        loop {
            let group = &self.groups[g];
            let tags = group.tags.load(Acquire);
            // SAFETY: a slot's pointer is a live `Arc`'s: it is released only after it is
            // unlinked, and then (with the pin) after every guard that could have loaded it
            // ends, or (without) while no other thread reads (module docs).
            if let Some((lane, pair)) = unsafe { group.find(tags, tag, id) } {
                return Some(Place {
                    group: g,
                    lane,
                    pair,
                });
            }
            if tags & TAKEN != TAKEN {
                return None;
            }
            g = (g + 1) % GROUPS;
        }
    }

    /// Empties the slot at `place` and hands its session to `retire`.
    fn kill(&self, place: Place, guard: Option<&crossbeam_epoch::Guard>) -> bool {
        let group = &self.groups[place.group];
        if group.slots[place.lane]
            .compare_exchange(place.pair, 0, AcqRel, Acquire)
            .is_err()
        {
            return false;
        }
        let tags = group.tags.load(Acquire);
        group
            .tags
            .store(tags & !(0xff << (place.lane * 8)), Release);
        // Relaxed: one writer (module docs); the count publishes nothing.
        self.live.store(self.live.load(Relaxed) - 1, Relaxed);
        self.retire(Released(pointer(place.pair)), guard);
        true
    }

    /// Releases an unlinked session: through a deferred batch under the pin, else at once.
    fn retire(&self, r: Released, guard: Option<&crossbeam_epoch::Guard>) {
        let Some(guard) = guard else {
            // SAFETY: without the pin a ceiling runs only where no other thread reads while it
            // writes (module docs), and this thread holds no reference from the slot.
            unsafe { r.release() };
            return;
        };
        GATHERING.with(|b| {
            let mut b = b.borrow_mut();
            b.0.push(r);
            if b.0.len() == BATCH {
                let full = std::mem::replace(&mut b.0, Vec::with_capacity(BATCH));
                // SAFETY: every session in the batch was unlinked by `kill`.
                unsafe { Batch::hand_off(guard, full) };
            }
        });
    }

    /// Evicts the oldest entry of the first group from `from` (the group of `keep`, the entry
    /// just added) on that holds one besides `keep`: a hole after it leaves it reachable.
    fn evict(&self, from: usize, keep: u128, guard: Option<&crossbeam_epoch::Guard>) {
        let mut g = from;
        loop {
            let group = &self.groups[g];
            let mut oldest: Option<(usize, u128)> = None;
            for (lane, slot) in group.slots.iter().enumerate() {
                let pair = slot.load(Acquire);
                let older = oldest.map_or(true, |(_, o)| expiry(pair) < expiry(o));
                if pair != 0 && pair != keep && older {
                    oldest = Some((lane, pair));
                }
            }
            if let Some((lane, pair)) = oldest {
                if self.kill(
                    Place {
                        group: g,
                        lane,
                        pair,
                    },
                    guard,
                ) {
                    return;
                }
            }
            g = (g + 1) % GROUPS;
        }
    }
}

impl Subject for Ceiling {
    type Prepared = Arc<Sess>;
    fn prepare(&self, s: Arc<Sess>) -> Arc<Sess> {
        s
    }

    fn add_prepared(&self, s: Arc<Sess>) {
        let hash = self.kept.hash(&s.id);
        let guard = self.pin();
        if self.locate(&s.id, hash).is_some() {
            return;
        }
        let expires = self.kept.now().saturating_add(TTL.as_nanos() as u64);
        let pair = (Arc::into_raw(s) as u64 as u128) | ((expires as u128) << 64);
        let tag = tag(hash);
        let mut g = Self::home(hash);
        'claim: loop {
            let group = &self.groups[g];
            let tags = group.tags.load(Acquire);
            for lane in 0..LANES {
                if tags >> (lane * 8) & 0x80 == 0
                    && group.slots[lane]
                        .compare_exchange(0, pair, AcqRel, Acquire)
                        .is_ok()
                {
                    group.tags.store(tags | tag << (lane * 8), Release);
                    break 'claim;
                }
            }
            g = (g + 1) % GROUPS;
        }
        // Relaxed: as in `kill`.
        let live = self.live.load(Relaxed) + 1;
        self.live.store(live, Relaxed);
        if live > CAP {
            self.evict(g, pair, guard.as_ref());
        }
    }

    #[inline]
    fn get(&self, id: &Id) -> bool {
        let hash = self.kept.hash(id);
        let guard = self.pin();
        let found = self.locate(id, hash).map(|place| place.pair);
        // SAFETY: `locate` loaded the slot under `guard` (module docs for the unpinned use).
        unsafe { self.kept.answer(found, guard) }
    }

    fn remove(&self, id: &Id) -> bool {
        let hash = self.kept.hash(id);
        let guard = self.pin();
        match self.locate(id, hash) {
            Some(place) => self.kill(place, guard.as_ref()),
            None => false,
        }
    }

    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }

    fn settle(&self) {
        crossbeam_epoch::pin().flush();
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: the table is being dropped, and no reader is left.
        unsafe { release_all(&self.groups) };
    }
}
