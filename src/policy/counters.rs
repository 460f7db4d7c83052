//! Statistics and the live-entry count.
//!
//! Statistics are striped: one cache-padded stripe per thread slot, summed on read, so that no
//! single counter is written by every thread on the get path. A thread that holds one of the
//! process's first thread slots (see [`thread_slot`]) owns the stripe of that number outright and
//! counts with a plain load and store, no locked instruction; threads beyond the stripes share
//! one last stripe, counted with atomic read-modify-writes.
//!
//! # The live count and each stripe's room
//!
//! Eviction must know exactly how far over capacity the cache is, or racing inserts each evict
//! for the other's entry too (a capacity-1 cache could end empty), so the count that decides it
//! is one atomic, `live`, on which each eviction is reserved ([`Counters::reserve_eviction`]).
//! But an atomic every thread writes on every add and every remove is a cache line that moves
//! between cores twice per add + remove pair. So a removal does not give its place back to
//! `live` at once: it keeps it as *room* in its own stripe, and the thread's next add of a new
//! id takes that room instead of counting itself in. `live` counts the entries plus the room
//! the stripes hold:
//!
//! ```text
//!   live = entries + Σ room − evictions reserved and not yet done      (exact at rest)
//! ```
//!
//! - **Depositing** (a removal of any cause): the owner adds one to its room, then sets its bit in
//!   `roomy` unless it is set already. A stripe holding more than [`ROOM_MAX`] gives all but
//!   [`ROOM_KEPT`] back to `live` (a `clear` on one thread, say).
//! - **Taking** (an add of a new id): the owner takes one from its room by CAS (racing thieves),
//!   and only then reads `live`: if the cache is over capacity (a shrink), it is a counted add
//!   with that excess to evict. With no room of its own it counts in on `live` as before; if the
//!   cache is exactly full it first steals the room other stripes hold, and only if there is
//!   none does it evict in place.
//! - **Stealing**: for each bit set in `roomy`, clear the bit, *then* swap that stripe's room to
//!   zero. With the owner's order (add, then look at the bit) every room a completed deposit
//!   left is visible to every later thief: either the thief's swap takes it, or the owner's look
//!   at the bit comes after the thief cleared it and sets it again. A bit may be set over an
//!   empty room (the owner took it back); thieves clear such bits. So room never hides, and a
//!   cache holds exactly its capacity at rest, as with one count.
//! - **Visibility**: counting on `live` with acquire-release RMWs makes every entry counted before
//!   an add visible to that add's eviction. An add that took room did no RMW on `live`; its RMW
//!   on its room (after its entry was linked) is what a later thread synchronizes with: a thief
//!   swapping it, or an add that found nothing to evict, which counts itself in and then
//!   drains every room back into `live` ([`Counters::count_in_and_drain`]) before it looks
//!   again. A room taken before the drain is read by the drain's RMW; a room deposited after it
//!   synchronizes with the drain, so the add that takes it reads the new count and evicts the
//!   excess itself. Either way one of the two sees the other's entry.
//!
//! In the steady state of a thread that adds and removes, no write touches a line another
//! thread writes. `len()` sums the rooms: it is for callers, not for the hot path.

use crossbeam_utils::CachePadded;

use crate::loom::sync::atomic::{
    AtomicIsize, AtomicU64, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, SeqCst},
};
// The thread slots' ordering (loom builds have no slots).
#[cfg(not(session_cache_loom))]
use crate::loom::sync::atomic::Ordering::Release;
use crate::Stats;

/// One thread slot's counters.
///
/// All `Relaxed`: each is an independent tally with no data published through it. Sums read
/// while other threads write may be momentarily off by the operations in flight.
pub(crate) struct Stripe {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) cache_full: AtomicU64,
    pub(crate) cb_hits: AtomicU64,
    pub(crate) inserts: AtomicU64,
    pub(crate) replacements: AtomicU64,
    pub(crate) removals: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) cleared: AtomicU64,
    /// Insertion order within this stripe: the eviction tie-break.
    pub(crate) seq: AtomicU64,
    /// Where this stripe's eviction and sweeping hand points next (a bucket index).
    pub(crate) hand: AtomicUsize,
    /// Whether several threads may write this stripe at once (the overflow stripe, or every
    /// stripe in loom models), so that counts need read-modify-writes.
    shared: bool,
    /// This stripe's index: that of its room, for an owned stripe.
    index: usize,
}

impl Stripe {
    fn new(index: usize, shared: bool) -> Self {
        Stripe {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            cache_full: AtomicU64::new(0),
            cb_hits: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            replacements: AtomicU64::new(0),
            removals: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            cleared: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            // Spread the hands so threads sample different buckets.
            hand: AtomicUsize::new(index.wrapping_mul(0x9E37_79B9)),
            shared,
            index,
        }
    }

    /// Adds one to `counter`, a field of this stripe.
    #[inline]
    pub(crate) fn bump(&self, counter: &AtomicU64) {
        self.next(counter);
    }

    /// Adds one to `counter`, a field of this stripe; returns its value before.
    #[inline]
    pub(crate) fn next(&self, counter: &AtomicU64) -> u64 {
        if self.shared {
            counter.fetch_add(1, Relaxed)
        } else {
            // Relaxed load and store: this thread is the stripe's only writer (it holds the
            // stripe's thread slot; a previous holder's writes happen-before through the slot
            // bitmap, see `thread_slot`), so nothing can come between the two.
            let n = counter.load(Relaxed);
            counter.store(n.wrapping_add(1), Relaxed);
            n
        }
    }
}

/// A stripe keeps up to this much room from its removals when it gives the rest back.
pub(crate) const ROOM_KEPT: isize = 16;
/// A stripe holding more room than this gives all but [`ROOM_KEPT`] back to the live count.
pub(crate) const ROOM_MAX: isize = 2 * ROOM_KEPT;

pub(crate) struct Counters {
    stripes: Box<[CachePadded<Stripe>]>,
    /// The room of each owned stripe (not the shared last one): places of removed entries that
    /// the stripe's thread will fill with its next adds. Apart from the stripes, so that thieves
    /// reading a room do not take the line the owner counts its statistics on.
    rooms: Box<[CachePadded<AtomicIsize>]>,
    /// Bit `i` of word `i / 64`: room `i` may be above zero (never clear while it is, at rest).
    roomy: CachePadded<Box<[AtomicU64]>>,
    /// Live entries plus the room the stripes hold, less the evictions reserved and not yet
    /// done (module docs). Briefly negative when a removal's decrement overtakes the insert's
    /// increment.
    live: CachePadded<AtomicIsize>,
    /// Loom builds: whether an insert into an exactly full cache stays uncounted (as in every
    /// other build) instead of counting in and reserving its eviction. Off by default (it
    /// doubles the scheduling points of every insert); the models of the in-place path turn
    /// it on. A std atomic: setting it is not part of any race a model explores.
    #[cfg(session_cache_loom)]
    in_place: std::sync::atomic::AtomicBool,
}

impl Counters {
    pub(crate) fn new() -> Self {
        // Loom: two owned stripes, used only by the threads of a model that asks for one
        // (`loom_use_stripe`); every other thread counts on the shared one, which keeps the
        // models small.
        #[cfg(session_cache_loom)]
        let owned = 2;
        // Four stripes per core: the first threads of the process own one each.
        #[cfg(not(session_cache_loom))]
        let owned = std::thread::available_parallelism()
            .map_or(4, |p| p.get() * 4)
            .clamp(4, MAX_SLOTS);
        Counters {
            stripes: (0..=owned)
                .map(|i| CachePadded::new(Stripe::new(i, i == owned)))
                .collect(),
            rooms: (0..owned)
                .map(|_| CachePadded::new(AtomicIsize::new(0)))
                .collect(),
            roomy: CachePadded::new((0..owned.div_ceil(64)).map(|_| AtomicU64::new(0)).collect()),
            live: CachePadded::new(AtomicIsize::new(0)),
            #[cfg(session_cache_loom)]
            in_place: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Loom builds: inserts into an exactly full cache stay uncounted from now on.
    #[cfg(session_cache_loom)]
    pub(crate) fn count_in_place(&self) {
        self.in_place
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The stripe of the calling thread: its own, or the shared last one.
    #[inline]
    pub(crate) fn local(&self) -> &Stripe {
        let last = self.stripes.len() - 1;
        &self.stripes[thread_slot().min(last)]
    }

    /// The room of `stripe` (the calling thread's): none for the shared one.
    #[inline(always)]
    fn own_room(&self, stripe: &Stripe) -> Option<(usize, &AtomicIsize)> {
        let slot = stripe.index;
        self.rooms.get(slot).map(|room| (slot, &**room))
    }

    /// Live entries, never below zero: the live count less the room the stripes hold (module
    /// docs). Exact at rest; while others write, off by the operations in flight.
    pub(crate) fn len(&self) -> usize {
        // Relaxed: a count; the entries themselves are published by the table's CASes.
        let room: isize = self.rooms.iter().map(|r| r.load(Relaxed)).sum();
        (self.live.load(Relaxed) - room).max(0) as usize
    }

    /// The live count itself, the stripes' room included: what eviction decides by (room held
    /// elsewhere was stolen or synchronized with first, see `make_room`).
    #[inline]
    pub(crate) fn taken(&self) -> usize {
        // Relaxed: as in `len`.
        self.live.load(Relaxed).max(0) as usize
    }

    /// The exact live count at rest, below zero included (`len` clamps): for invariant checks.
    pub(crate) fn exact_len(&self) -> isize {
        // An RMW that changes nothing reads the latest count.
        let room: isize = self.rooms.iter().map(|r| r.fetch_add(0, AcqRel)).sum();
        self.live.fetch_add(0, AcqRel) - room
    }

    /// Whether every stripe holding room has its bit set (module docs). At rest only.
    pub(crate) fn room_is_visible(&self) -> bool {
        self.rooms
            .iter()
            .enumerate()
            .all(|(i, r)| r.load(Relaxed) <= 0 || self.roomy[i / 64].load(Relaxed) & bit(i) != 0)
    }

    /// Counts one entry out: a removal of any cause but a reserved eviction. Its place goes to
    /// the calling thread's room (module docs), or back to the live count on the shared stripe.
    #[inline]
    pub(crate) fn count_out(&self, stripe: &Stripe) {
        let Some((slot, room)) = self.own_room(stripe) else {
            // Relaxed: as in `taken`; every update is an RMW, so none is lost.
            self.live.fetch_add(-1, Relaxed);
            return;
        };
        let held = self.deposit(slot, room, 1);
        if held > ROOM_MAX {
            self.give_back(room);
        }
    }

    /// Adds `n` places to room `slot` (the caller's own), then sets its bit unless it is set;
    /// returns the room after.
    #[inline]
    fn deposit(&self, slot: usize, room: &AtomicIsize, n: isize) -> isize {
        // SeqCst, with the bit's load and set below and a thief's clear and swap: the owner adds
        // then looks at the bit, the thief clears it then swaps, so one of the two sees the
        // other (module docs, "Stealing"). Release also pairs with a thief's or a drain's
        // RMW, as taking room does.
        #[cfg(not(session_cache_mutant = "room_bit_first"))]
        let held = room.fetch_add(n, SeqCst) + n;
        let word = &self.roomy[slot / 64];
        if word.load(SeqCst) & bit(slot) == 0 {
            word.fetch_or(bit(slot), SeqCst);
        }
        // Mutant (loom-tests/README.md): look at the bit before depositing, so that a thief
        // clearing it in between never sees this room.
        #[cfg(session_cache_mutant = "room_bit_first")]
        let held = room.fetch_add(n, SeqCst) + n;
        held
    }

    /// Takes all of room `i` (another stripe's, or every stripe's in a drain): clears its bit,
    /// *then* swaps the room to zero (module docs, "Stealing"); returns what it held.
    fn take_room_of(&self, i: usize) -> isize {
        // SeqCst: see `deposit`.
        self.roomy[i / 64].fetch_and(!bit(i), SeqCst);
        self.rooms[i].swap(0, SeqCst).max(0)
    }

    /// Gives the room above [`ROOM_KEPT`] back to the live count (unless thieves took it).
    #[cold]
    fn give_back(&self, room: &AtomicIsize) {
        // AcqRel: as every RMW on a room (module docs, "Visibility").
        let mut held = room.load(Relaxed);
        while held > ROOM_KEPT {
            match room.compare_exchange_weak(held, ROOM_KEPT, AcqRel, Relaxed) {
                Ok(_) => {
                    // Relaxed: as in `count_out`.
                    self.live.fetch_add(-(held - ROOM_KEPT), Relaxed);
                    return;
                }
                Err(now) => held = now,
            }
        }
    }

    /// Takes one place from the calling thread's room, if it has any.
    #[inline]
    fn take_own_room(&self, stripe: &Stripe) -> bool {
        let Some((_, room)) = self.own_room(stripe) else {
            return false;
        };
        let mut held = room.load(Relaxed);
        while held > 0 {
            // AcqRel: Release publishes the entry this add linked (module docs, "Visibility");
            // Acquire, pairing with a drain's RMW, orders the read of `live` after it.
            match room.compare_exchange_weak(held, held - 1, AcqRel, Relaxed) {
                Ok(_) => return true,
                Err(now) => held = now,
            }
        }
        false
    }

    /// Steals the room other stripes hold (module docs, "Stealing"): one place for the calling
    /// add, the rest to its own room. False if there was none.
    #[inline]
    fn steal_room(&self, stripe: &Stripe) -> bool {
        let own = self.own_room(stripe);
        // Most often no other stripe holds any: one load of each bitmap word.
        let mine = own.map_or(0, |(slot, _)| bit(slot));
        let others = |w: usize, word: &AtomicU64| {
            // SeqCst: see `deposit`.
            let bits = word.load(SeqCst);
            if own.is_some_and(|(slot, _)| slot / 64 == w) {
                bits & !mine
            } else {
                bits
            }
        };
        if self
            .roomy
            .iter()
            .enumerate()
            .all(|(w, word)| others(w, word) == 0)
        {
            return false;
        }
        self.steal_room_slow(own)
    }

    #[cold]
    #[inline(never)]
    fn steal_room_slow(&self, own: Option<(usize, &AtomicIsize)>) -> bool {
        let mut got = 0;
        for (w, word) in self.roomy.iter().enumerate() {
            // SeqCst: see `deposit`.
            let mut bits = word.load(SeqCst);
            while bits != 0 && got == 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if own.is_some_and(|(slot, _)| slot == i) {
                    continue;
                }
                got = self.take_room_of(i);
            }
            if got > 0 {
                break;
            }
        }
        if got == 0 {
            return false;
        }
        if got > 1 {
            match own {
                Some((slot, room)) => {
                    self.deposit(slot, room, got - 1);
                }
                // Relaxed: as in `count_out`.
                None => {
                    self.live.fetch_add(-(got - 1), Relaxed);
                }
            }
        }
        true
    }

    /// Gives all the room the stripes hold back to the live count; returns how much. Before an
    /// eviction of more than one entry (after a shrink) the count must say how many entries
    /// there are, not how many places are taken; and see [`count_in_and_drain`].
    ///
    /// [`count_in_and_drain`]: Self::count_in_and_drain
    fn drain_rooms(&self) -> isize {
        let drained: isize = (0..self.rooms.len()).map(|i| self.take_room_of(i)).sum();
        if drained > 0 {
            // AcqRel: as in `count_in`.
            self.live.fetch_add(-drained, AcqRel);
        }
        drained
    }

    /// Gives a reserved eviction back (the victim was gone): one more place taken.
    #[inline]
    pub(crate) fn unreserve(&self) {
        // Relaxed: as in `reserve_eviction`.
        self.live.fetch_add(1, Relaxed);
    }

    /// Counts an insert in, unless the cache holds exactly `capacity` entries (`capacity` not
    /// 0): then the count stays, and the inserting thread must evict one entry, whose place in
    /// the count its own takes (or count itself in with [`count_in`](Self::count_in) if it
    /// cannot). Returns the count before, and whether the insert was counted. The insert takes
    /// its thread's room first, and into a full cache steals room before it evicts (module
    /// docs); a full cache thus takes no write to the shared count on an evicting insert.
    #[inline]
    pub(crate) fn add_live_unless_full(&self, stripe: &Stripe, capacity: usize) -> (isize, bool) {
        if self.take_own_room(stripe) {
            // Acquire: after the room's CAS (see `take_own_room`). Over capacity (a shrink):
            // a counted insert with the excess to evict, and the room must not hide entries.
            let live = self.live.load(Acquire);
            if capacity != 0 && live > as_count(capacity) {
                return (live - 1 - self.drain_rooms(), true);
            }
            return (live - 1, true);
        }
        // Loom builds count in (the insert then reserves its eviction as after a shrink)
        // unless a model asks for this path: the load before the CAS doubled the scheduling
        // points of every insert in the models, which check the counting rules through the
        // reserving path. The in-place models, the fuzz and the concurrent suites check this
        // path.
        #[cfg(session_cache_loom)]
        if !self.in_place.load(std::sync::atomic::Ordering::SeqCst) {
            return (self.count_in(stripe), true);
        }
        let full = as_count(capacity);
        // AcqRel on success, as in `count_in`; Relaxed on failure: the load that finds the
        // cache full publishes nothing, and the eviction that follows reads the table itself.
        match self.live.fetch_update(AcqRel, Relaxed, |n| {
            (capacity == 0 || n != full).then_some(n + 1)
        }) {
            Ok(before) if capacity != 0 && before >= full => {
                // Over capacity: evict what the entries, not the places, say is too many.
                (before - self.drain_rooms(), true)
            }
            Ok(before) => (before, true),
            Err(full) if self.steal_room(stripe) => (full - 1, true),
            Err(full) => (full, false),
        }
    }

    /// Counts an inserted entry in; returns the count before. An insert that finds the count
    /// over its capacity evicts the excess, so it must then see the entries of the inserts it
    /// counted after.
    #[inline]
    pub(crate) fn count_in(&self, stripe: &Stripe) -> isize {
        if self.take_own_room(stripe) {
            // Acquire: as in `add_live_unless_full`.
            return self.live.load(Acquire) - 1;
        }
        // AcqRel: Release publishes this insert's entry (linked before it is counted) to the
        // insert that counts after it, and Acquire, pairing with that Release, makes the
        // entries counted before this one visible to the eviction that may follow.
        self.live.fetch_add(1, AcqRel)
    }

    /// Counts in an insert that found nothing to evict in its place, then gives all the
    /// stripes' room back to the count; returns the count after both, read by an RMW (the
    /// latest). The drain after the count is what makes the entries of adds that took room
    /// visible to the look this insert takes next (module docs, "Visibility"): a room taken
    /// before the drain's RMW on it is read by that RMW, and one deposited and taken after it
    /// sees this count in `live`, so that add evicts the excess itself.
    pub(crate) fn count_in_and_drain(&self, stripe: &Stripe) -> isize {
        self.count_in(stripe);
        #[cfg(not(session_cache_mutant = "no_victim_keeps_room"))]
        self.drain_rooms();
        // AcqRel: as in `count_in`.
        self.live.fetch_add(0, AcqRel)
    }

    /// Takes one entry off the count if the cache is over `capacity`: the caller must then evict
    /// one entry (without counting it out again) or give the reservation back with
    /// [`unreserve`](Self::unreserve). False when the cache is within capacity (someone else made
    /// room).
    pub(crate) fn reserve_eviction(&self, capacity: usize) -> bool {
        // Relaxed: the CAS reads the latest count in its modification order, which is all the
        // reservation needs.
        let mut n = self.live.load(Relaxed);
        loop {
            if n <= capacity as isize {
                return false;
            }
            match self.live.compare_exchange_weak(n, n - 1, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(current) => n = current,
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let sum = |f: fn(&Stripe) -> &AtomicU64| -> u64 {
            self.stripes.iter().map(|s| f(s).load(Relaxed)).sum()
        };
        Stats {
            entries: self.len(),
            hits: sum(|s| &s.hits),
            misses: sum(|s| &s.misses),
            timeouts: sum(|s| &s.timeouts),
            cache_full: sum(|s| &s.cache_full),
            cb_hits: sum(|s| &s.cb_hits),
            inserts: sum(|s| &s.inserts),
            replacements: sum(|s| &s.replacements),
            removals: sum(|s| &s.removals),
            expired: sum(|s| &s.expired),
            cleared: sum(|s| &s.cleared),
        }
    }
}

/// Thread slots the process hands out (bits of [`SLOTS`]); threads beyond them share a stripe.
#[cfg(not(session_cache_loom))]
const MAX_SLOTS: usize = 256;

/// Which thread slots are held: bit `i` of word `i / 64`.
#[cfg(not(session_cache_loom))]
static SLOTS: [AtomicU64; MAX_SLOTS / 64] = [const { AtomicU64::new(0) }; MAX_SLOTS / 64];

/// A thread's slot, given back when the thread exits.
#[cfg(not(session_cache_loom))]
struct Slot(usize);

#[cfg(not(session_cache_loom))]
impl Slot {
    /// The lowest free slot, or `MAX_SLOTS` (the shared stripe) when all are held.
    fn take() -> Slot {
        for (w, word) in SLOTS.iter().enumerate() {
            // Acquire (the load and the CAS): the slot's previous holder released it with a
            // `Release` `fetch_and`, so its plain stores to the stripes happen-before ours.
            let mut bits = word.load(Acquire);
            while bits != u64::MAX {
                let bit = (!bits).trailing_zeros() as usize;
                match word.compare_exchange_weak(bits, bits | 1 << bit, Acquire, Acquire) {
                    Ok(_) => return Slot(w * 64 + bit),
                    Err(now) => bits = now,
                }
            }
        }
        Slot(MAX_SLOTS)
    }
}

#[cfg(not(session_cache_loom))]
impl Drop for Slot {
    fn drop(&mut self) {
        // Anything this thread still counts while it exits goes to the shared stripe.
        CACHED.with(|c| c.set(MAX_SLOTS));
        if self.0 < MAX_SLOTS {
            // Release: pairs with the `Acquire` in `take` of the next holder.
            SLOTS[self.0 / 64].fetch_and(!(1 << (self.0 % 64)), Release);
        }
    }
}

/// No slot asked for yet.
#[cfg(not(session_cache_loom))]
const UNSET: usize = usize::MAX;

// std's `thread_local!` directly: this is not built for loom. `CACHED` has a `const`
// initialiser and no destructor, so reading it is a plain thread-local load on every
// operation; `SLOT` owns the slot and gives it back when the thread exits.
#[cfg(not(session_cache_loom))]
std::thread_local! {
    static CACHED: core::cell::Cell<usize> = const { core::cell::Cell::new(UNSET) };
    static SLOT: Slot = Slot::take();
}

/// The calling thread's slot: the lowest free one when it first asks, held until it exits.
/// While it holds slot `i`, no other thread does, so stripe `i` of every cache has one writer.
#[cfg(not(session_cache_loom))]
#[inline(always)]
fn thread_slot() -> usize {
    let slot = CACHED.with(core::cell::Cell::get);
    if slot != UNSET {
        return slot;
    }
    first_slot()
}

#[cfg(not(session_cache_loom))]
#[cold]
fn first_slot() -> usize {
    // A thread that is exiting (its slot already given back) counts on the shared stripe.
    let slot = SLOT.try_with(|s| s.0).unwrap_or(MAX_SLOTS);
    CACHED.with(|c| c.set(slot));
    slot
}

// Loom: the stripe a model's thread asked for (`loom_use_stripe`), else the shared one.
#[cfg(session_cache_loom)]
crate::loom::thread_local! {
    static LOOM_STRIPE: core::cell::Cell<usize> = core::cell::Cell::new(usize::MAX);
}

#[cfg(session_cache_loom)]
fn thread_slot() -> usize {
    LOOM_STRIPE.with(core::cell::Cell::get)
}

/// Loom builds: the calling thread counts on owned stripe `i` (0 or 1) from now on.
#[cfg(session_cache_loom)]
pub(crate) fn loom_use_stripe(i: usize) {
    LOOM_STRIPE.with(|s| s.set(i));
}

/// Bit of stripe `i` in its word of `roomy`.
#[inline]
fn bit(i: usize) -> u64 {
    1 << (i % 64)
}

/// `capacity` as a value of the live count (which no real cache reaches `isize::MAX` of).
#[inline]
fn as_count(capacity: usize) -> isize {
    capacity.min(isize::MAX as usize) as isize
}

/// How far a live count of `count` is over `capacity`: the entries the insert that made it so
/// has to evict.
#[inline]
pub(crate) fn excess_over(count: isize, capacity: usize) -> usize {
    count.saturating_sub(as_count(capacity)).max(0) as usize
}
