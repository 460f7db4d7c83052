//! A block: the slots of one bucket, in one allocation, in groups of [`GROUP`].
//!
//! A group is the tags of its slots in one word, their tie-break hints, then the slots: a lookup
//! reads the tag word, matches every slot's tag at once, and loads only the slots whose tag
//! matches (or is not yet written). A slot is 16 bytes, read and written as one [`Pair`]: the
//! session pointer (with the `DEAD` / `FROZEN` bits) and its rank, so a lookup decides hit, miss
//! or expired from the slot alone and dereferences only the session it returns.

use core::alloc::Layout;
use core::mem::MaybeUninit;

use crate::loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::loom::{AtomicPair, Pair};
use crate::reclaim::{Owned, Pointable};

/// Slots per group. Loom models use 2, so that a few inserts already force a rebuild.
#[cfg(not(session_cache_loom))]
pub(crate) const GROUP: usize = 8;
#[cfg(session_cache_loom)]
pub(crate) const GROUP: usize = 2;

/// Tag bit on a slot word: the session was removed. The word keeps no pointer; the slot stays
/// claimed by its key for as long as the block lives (claim rule).
pub(crate) const DEAD: usize = 0b01;
/// Tag bit on a slot word: the block is being rebuilt; no CAS may succeed on this slot again.
pub(crate) const FROZEN: usize = 0b10;
// The loom build's `AtomicPair` encodes this one bit apart, so that freezing is a single RMW.
#[cfg(session_cache_loom)]
const _: () = assert!(FROZEN == 0b10, "the loom AtomicPair's FROZEN_BIT");
/// Both tag bits: `Arc::into_raw` pointers are at least 8-aligned (an `ArcInner` starts with two
/// `usize` counts), so they never use these.
pub(crate) const TAG_BITS: usize = DEAD | FROZEN;

/// What a slot holds, read from its word.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    /// Never claimed (the claimed slots of a block form a prefix: every later slot is empty too).
    Empty,
    /// Claimed, and its session removed.
    Dead,
    /// A live session.
    Live,
}

/// The state of a slot word (ignoring `FROZEN`).
#[inline]
pub(crate) fn state(word: usize) -> State {
    if word & !TAG_BITS != 0 {
        State::Live
    } else if word & DEAD != 0 {
        State::Dead
    } else {
        State::Empty
    }
}

/// The pointer in a live slot word.
#[inline]
pub(crate) fn pointer<T>(word: usize) -> *const T {
    (word & !TAG_BITS) as *const T
}

/// `GROUP` slots with their tags and hints, on three cache lines of their own.
///
/// Laid out for a lookup: the tag word, the block's length and the first three slots share
/// the group's first line, the next four slots the second; the hints, read only to break ties
/// between eviction candidates, come last. (With the hints between the tags and the slots, and
/// the length in a header of its own, a hit read the bucket word, the header and tag line, and
/// the slot's line: one more miss than now for most hits.)
#[repr(C, align(64))]
pub(crate) struct Group {
    /// Byte `i` is the tag of slot `i`'s key: 0 until the slot's claimer writes it, just after
    /// its claim. A slot's key never changes within a block, so a non-zero tag is right forever;
    /// a zero tag only means "look at the slot".
    tags: AtomicU64,
    /// In a block's first group, the number of groups of the block: written when it is
    /// allocated, before it is shared, and never again. Unused in the other groups.
    groups: usize,
    slots: [AtomicPair; GROUP],
    /// Per slot, the tie-break sequence of the session last written there (see
    /// [`Group::seq`]): written just after the CAS that wrote the slot, so it may lag it.
    seqs: [AtomicU32; GROUP],
}

/// Byte lanes of a tag word that a group uses.
const LANES: u64 = if GROUP == 8 {
    u64::MAX
} else {
    (1 << (8 * GROUP)) - 1
};
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of `v` that is zero, and nothing else (exact: no borrow between
/// bytes).
#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    !(((v & LOW7) + LOW7) | v | LOW7)
}

/// How many lanes a set of [`HIGH`] bits names. A multiply sums the bytes into the top one
/// (at most 8, so no byte carries): three instructions, where `count_ones` without the
/// `popcnt` feature (not in the baseline x86-64 target) is a dozen, paid per group an
/// evicting add samples.
#[inline(always)]
fn lanes_in(high_bits: u64) -> usize {
    debug_assert_eq!(
        high_bits & !HIGH,
        0,
        "only the high bit of a byte names a lane"
    );
    ((high_bits >> 7).wrapping_mul(0x0101_0101_0101_0101) >> 56) as usize
}

impl Group {
    #[cfg(all(test, not(session_cache_loom)))]
    fn new() -> Self {
        Group {
            tags: AtomicU64::new(0),
            groups: 1,
            slots: core::array::from_fn(|_| AtomicPair::null()),
            seqs: core::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    #[inline(always)]
    pub(crate) fn slot(&self, lane: usize) -> &AtomicPair {
        &self.slots[lane]
    }

    /// The slots a lookup for `tag` must look at, as a bit set of lanes (bit `8 * lane + 7`):
    /// those tagged `tag`, and those with no tag yet (unclaimed, or claimed a moment ago).
    #[inline(always)]
    pub(crate) fn candidates(&self, tag: u8) -> u64 {
        // Relaxed: a tag only filters; whatever it lets through is checked on the slot, and a
        // stale zero tag only costs that check.
        let tags = self.tags.load(Ordering::Relaxed);
        (zero_bytes(tags ^ (u64::from(tag) * 0x0101_0101_0101_0101)) | zero_bytes(tags))
            & LANES
            & HIGH
    }

    /// Slots of this group whose tag is written: the claimed ones but those claimed a moment
    /// ago (their claimer writes the tag just after the claim).
    #[inline]
    pub(crate) fn tagged(&self) -> usize {
        // Relaxed: see `candidates`; a count for a heuristic.
        let tags = self.tags.load(Ordering::Relaxed);
        GROUP - lanes_in(zero_bytes(tags) & LANES & HIGH)
    }

    /// The tag written for slot `lane`, or 0.
    #[inline]
    pub(crate) fn tag(&self, lane: usize) -> u8 {
        // Relaxed: see `candidates`.
        (self.tags.load(Ordering::Relaxed) >> (8 * lane)) as u8
    }

    /// Writes the tag of slot `lane`, claimed by a key with that tag.
    #[inline]
    pub(crate) fn set_tag(&self, lane: usize, tag: u8) {
        debug_assert!(tag != 0, "tags are never 0");
        // Relaxed: see `candidates`. Tag rule: a slot's tag goes from 0 to its key's tag once and
        // never changes after, as its key never does (claim rule); OR-ing it in leaves the other
        // slots' tags as they are.
        let before = self
            .tags
            .fetch_or(u64::from(tag) << (8 * lane), Ordering::Relaxed);
        let before = (before >> (8 * lane)) as u8;
        debug_assert!(
            before == 0 || before == tag,
            "a slot's tag changed: {before} -> {tag}"
        );
    }

    /// Overwrites a tag, breaking the tag rule on purpose (the checker's own tests).
    #[cfg(all(test, not(session_cache_loom)))]
    pub(crate) fn force_tag(&self, lane: usize, tag: u8) {
        // Relaxed: single-threaded test.
        let tags = self.tags.load(Ordering::Relaxed) & !(0xff << (8 * lane));
        self.tags
            .store(tags | u64::from(tag) << (8 * lane), Ordering::Relaxed);
    }

    /// The tie-break sequence of slot `lane`: smaller was (re-)added earlier, compared with
    /// wrapping arithmetic. A hint: it is written just after the slot, so for a moment it may
    /// belong to the slot's previous session; it only ever orders sessions that expire at the
    /// same instant.
    #[inline]
    pub(crate) fn seq(&self, lane: usize) -> u32 {
        // Relaxed: a hint (see above); the writer's own later reads see it in program order.
        #[cfg(not(session_cache_loom))]
        return self.seqs[lane].load(Ordering::Relaxed);
        // Loom: never written (see `set_seq`), so not read either.
        #[cfg(session_cache_loom)]
        {
            let _ = lane;
            0
        }
    }

    /// Records the tie-break sequence of the session just written to slot `lane`. Not in loom
    /// builds: a hint that orders nothing the models check would multiply their interleavings
    /// (there every sequence reads 0, and ties go to the slot met first: the earlier claimed).
    #[inline]
    pub(crate) fn set_seq(&self, lane: usize, seq: u32) {
        // Relaxed: a hint (see `seq`).
        #[cfg(not(session_cache_loom))]
        self.seqs[lane].store(seq, Ordering::Relaxed);
        #[cfg(session_cache_loom)]
        let _ = (lane, seq);
    }
}

/// The groups of one bucket, in one allocation aligned to a cache line, its length in the first
/// group (see [`Group::groups`]). Blocks are replaced whole, never resized in place.
///
/// (crossbeam's own array `Pointable` puts the length in a header before the elements: with
/// cache-line groups that header would be a line of its own.)
#[repr(transparent)]
pub(crate) struct Block([MaybeUninit<Group>]);

impl Block {
    fn layout(groups: usize) -> Layout {
        Layout::array::<Group>(groups).expect("a block's size fits in isize")
    }
}

impl Pointable for Block {
    const ALIGN: usize = core::mem::align_of::<Group>();

    /// The number of groups; the groups themselves are left uninitialised (`block_with`
    /// initialises them before the block is shared).
    type Init = usize;

    unsafe fn init(groups: usize) -> usize {
        assert!(groups > 0, "a block has at least one group");
        #[cfg(not(session_cache_loom))]
        if let Some(first) = pool::take(groups) {
            return first as usize;
        }
        let layout = Block::layout(groups);
        // SAFETY: `layout` has a non-zero size (at least one group).
        let first = unsafe { std::alloc::alloc(layout) }.cast::<Group>();
        if first.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: `first` is a fresh allocation of at least one group, owned here.
        unsafe { core::ptr::addr_of_mut!((*first).groups).write(groups) };
        first as usize
    }

    unsafe fn deref<'a>(ptr: usize) -> &'a Self {
        let first = ptr as *const Group;
        // SAFETY: (the trait's contract) `ptr` came from `init`, which wrote the length, and has
        // not been dropped; the length is never written again.
        let groups = unsafe { core::ptr::addr_of!((*first).groups).read() };
        let slice = core::ptr::slice_from_raw_parts(first.cast::<MaybeUninit<Group>>(), groups);
        // SAFETY: the allocation holds `groups` groups (possibly uninitialised, hence
        // `MaybeUninit`); `Block` is a transparent wrapper of that slice.
        unsafe { &*(slice as *const Block) }
    }

    unsafe fn deref_mut<'a>(ptr: usize) -> &'a mut Self {
        let first = ptr as *mut Group;
        // SAFETY: as in `deref`; the caller has the only reference.
        let groups = unsafe { core::ptr::addr_of!((*first).groups).read() };
        let slice = core::ptr::slice_from_raw_parts_mut(first.cast::<MaybeUninit<Group>>(), groups);
        // SAFETY: as in `deref`.
        unsafe { &mut *(slice as *mut Block) }
    }

    unsafe fn drop(ptr: usize) {
        // SAFETY: as in `deref`; nothing in a group needs dropping (atomics and integers).
        unsafe {
            let groups = core::ptr::addr_of!((*(ptr as *const Group)).groups).read();
            #[cfg(not(session_cache_loom))]
            if pool::keep(ptr as *mut Group, groups) {
                return;
            }
            std::alloc::dealloc(ptr as *mut u8, Block::layout(groups));
        }
    }
}

/// Freed blocks of one and two groups, kept per thread for its next rebuilds.
///
/// A churned table rebuilds a block every few adds, and an allocation aligned to a cache line
/// costs `posix_memalign` about twice what `malloc` does; a freed block is the right size
/// already. A block reaches this pool only once its grace period is over (or, never shared, at
/// once), and leaves it as the uninitialised memory `Block::init` would have allocated, its
/// length still written. At most [`pool::KEEP`] of each size wait here, so the pool is a few
/// KiB per thread; the rest is freed, and so is the pool when its thread exits.
#[cfg(not(session_cache_loom))]
mod pool {
    use core::cell::RefCell;

    use super::{Block, Group};

    /// Blocks of each size a thread keeps.
    pub(super) const KEEP: usize = 16;

    struct Pool {
        /// Index `g - 1`: blocks of `g` groups.
        free: [Vec<*mut Group>; 2],
    }

    impl Drop for Pool {
        fn drop(&mut self) {
            for (i, list) in self.free.iter_mut().enumerate() {
                for first in list.drain(..) {
                    // SAFETY: pooled blocks are allocations of `i + 1` groups, owned by the pool.
                    unsafe { std::alloc::dealloc(first.cast(), Block::layout(i + 1)) };
                }
            }
        }
    }

    // std's `thread_local!` directly: this module is not built for loom.
    std::thread_local! {
        static POOL: RefCell<Pool> = const {
            RefCell::new(Pool {
                free: [Vec::new(), Vec::new()],
            })
        };
    }

    /// A pooled block of `groups` groups, if there is one.
    #[inline]
    pub(super) fn take(groups: usize) -> Option<*mut Group> {
        if groups > 2 {
            return None;
        }
        // `try_with`: none while the thread's locals are being destroyed.
        POOL.try_with(|p| p.try_borrow_mut().ok()?.free[groups - 1].pop())
            .ok()
            .flatten()
    }

    /// Keeps `first`, a block of `groups` groups no thread can reach any more, if there is
    /// room; `false` if the caller must free it.
    #[inline]
    pub(super) fn keep(first: *mut Group, groups: usize) -> bool {
        if groups > 2 {
            return false;
        }
        POOL.try_with(|p| {
            let Ok(mut p) = p.try_borrow_mut() else {
                return false;
            };
            let list = &mut p.free[groups - 1];
            if list.len() >= KEEP {
                return false;
            }
            // The first push allocates the list's buffer: reserve it whole, once.
            if list.capacity() == 0 {
                list.reserve_exact(KEEP);
            }
            list.push(first);
            true
        })
        .unwrap_or(false)
    }
}

/// A block of `width` slots (a multiple of [`GROUP`]) whose first ones hold `live` (pair, tag,
/// seq) in order, the rest empty: the only way blocks are made. Built whole before it is
/// shared, so no slot is written twice and none through an atomic store.
pub(crate) fn block_with(
    width: usize,
    live: impl IntoIterator<Item = (Pair, u8, u32)>,
) -> Owned<Block> {
    debug_assert!(width > 0 && width % GROUP == 0, "a block of {width} slots");
    let mut block = Owned::<Block>::init(width / GROUP);
    let mut live = live.into_iter();
    for group in block.0.iter_mut() {
        // Field by field into the allocation: a `Group` built by value and then moved in was
        // two copies of 176 bytes per group, on the path of every rebuild.
        let g = group.as_mut_ptr();
        let mut tags = 0u64;
        for lane in 0..GROUP {
            let (slot, seq) = match live.next() {
                Some((pair, tag, seq)) => {
                    tags |= u64::from(tag) << (8 * lane);
                    (AtomicPair::new(pair), seq)
                }
                None => (AtomicPair::null(), 0),
            };
            // SAFETY: `g` points to this group's (uninitialised) memory, owned here; each field
            // is written once, before the block is shared, and `group.write` is not used.
            unsafe {
                core::ptr::addr_of_mut!((*g).slots[lane]).write(slot);
                core::ptr::addr_of_mut!((*g).seqs[lane]).write(AtomicU32::new(seq));
            }
        }
        // SAFETY: as above; with this every field of the group is initialised (`groups` by
        // `Block::init`, in the first group; it is not read in the others).
        unsafe { core::ptr::addr_of_mut!((*g).tags).write(AtomicU64::new(tags)) };
    }
    debug_assert!(
        live.next().is_none(),
        "more live slots than the block is wide"
    );
    block
}

/// One slot of a block, by position.
#[derive(Clone, Copy)]
pub(crate) struct SlotRef<'a> {
    pub(crate) group: &'a Group,
    pub(crate) lane: usize,
}

impl<'a> SlotRef<'a> {
    #[inline(always)]
    pub(crate) fn pair(&self) -> &'a AtomicPair {
        self.group.slot(self.lane)
    }

    #[inline]
    pub(crate) fn seq(&self) -> u32 {
        self.group.seq(self.lane)
    }

    #[inline]
    pub(crate) fn tag(&self) -> u8 {
        self.group.tag(self.lane)
    }
}

/// Access to the (always initialised) groups and slots of a block.
pub(crate) trait Slots {
    fn groups(&self) -> impl Iterator<Item = &Group>;
    fn width(&self) -> usize;
    fn slot(&self, i: usize) -> SlotRef<'_>;
    fn slots(&self) -> impl Iterator<Item = SlotRef<'_>>;
}

impl Slots for Block {
    #[inline]
    fn groups(&self) -> impl Iterator<Item = &Group> {
        // SAFETY: `block_with` initialises every group before the block is shared, and blocks are
        // made nowhere else.
        self.0.iter().map(|g| unsafe { g.assume_init_ref() })
    }

    #[inline]
    fn width(&self) -> usize {
        self.0.len() * GROUP
    }

    #[inline]
    fn slot(&self, i: usize) -> SlotRef<'_> {
        // SAFETY: as in `groups`.
        let group = unsafe { self.0[i / GROUP].assume_init_ref() };
        SlotRef {
            group,
            lane: i % GROUP,
        }
    }

    #[inline]
    fn slots(&self) -> impl Iterator<Item = SlotRef<'_>> {
        self.groups()
            .flat_map(|group| (0..GROUP).map(move |lane| SlotRef { group, lane }))
    }
}

/// The tag of a hash: its top bits, never 0. The bucket index uses the low bits.
#[inline]
pub(crate) fn tag_of(hash: u64) -> u8 {
    ((hash >> 56) as u8) | 1
}

#[cfg(all(test, not(session_cache_loom)))]
mod tests {
    use super::*;

    #[test]
    fn zero_bytes_is_exact() {
        for v in [
            0u64,
            1,
            0x100,
            0x0100_0000_0000_0000,
            u64::MAX,
            0x00ff_00ff_0001_8000,
        ] {
            for lane in 0..8 {
                let byte = (v >> (8 * lane)) & 0xff;
                let flagged = zero_bytes(v) >> (8 * lane + 7) & 1 == 1;
                assert_eq!(flagged, byte == 0, "{v:#x} lane {lane}");
            }
            assert_eq!(zero_bytes(v) & !HIGH, 0);
        }
    }

    #[test]
    fn lanes_in_counts_every_subset_of_lanes() {
        for set in 0u32..256 {
            let high_bits = (0..8)
                .filter(|lane| set >> lane & 1 == 1)
                .fold(0u64, |m, lane| m | 0x80 << (8 * lane));
            assert_eq!(
                lanes_in(high_bits),
                set.count_ones() as usize,
                "{high_bits:#x}"
            );
        }
    }

    fn address(b: &Owned<Block>) -> usize {
        (&**b as *const Block).cast::<u8>() as usize
    }

    fn assert_empty(b: &Block, width: usize) {
        assert_eq!(b.width(), width);
        for group in b.groups() {
            assert_eq!(group.candidates(0x55), LANES & HIGH, "tags left over");
        }
        for slot in b.slots() {
            assert_eq!(
                state(slot.pair().load(Ordering::Relaxed).word),
                State::Empty
            );
            assert_eq!(slot.seq(), 0);
        }
    }

    #[test]
    fn groups_are_cache_lines_and_the_first_line_has_three_slots() {
        assert_eq!(core::mem::align_of::<Group>(), 64);
        assert_eq!(core::mem::size_of::<Group>(), 192);
        let b = block_with(
            16,
            [(
                Pair {
                    word: 0x1000,
                    rank: 7,
                },
                9,
                3,
            )],
        );
        assert_eq!(address(&b) % 64, 0);
        let g = b.groups().next().unwrap();
        let base = (g as *const Group).cast::<u8>() as usize;
        let lane = |l: usize| (g.slot(l) as *const AtomicPair).cast::<u8>() as usize - base;
        assert!(lane(2) + 16 <= 64 && lane(3) >= 64 && lane(6) + 16 <= 128);
        assert_eq!(b.slot(0).pair().load(Ordering::Relaxed).rank, 7);
        assert_eq!((b.slot(0).tag(), b.slot(0).seq()), (9, 3));
        assert_eq!(b.width(), 16);
    }

    #[test]
    fn a_freed_block_is_reused_by_its_thread_and_reads_as_new() {
        // Made and freed on a thread of its own, so other tests' blocks do not interfere.
        std::thread::spawn(|| {
            let live = (1..=7).map(|i| {
                (
                    Pair {
                        word: i << 4,
                        rank: i as u64,
                    },
                    5,
                    11,
                )
            });
            let a = block_with(8, live);
            let at = address(&a);
            drop(a);
            let b = block_with(8, []);
            assert_eq!(address(&b), at, "the freed block was not reused");
            assert_empty(&b, 8);
            // A block of another size is not handed out for it.
            let c = block_with(16, []);
            assert_ne!(address(&c), at);
            assert_empty(&c, 16);
            // More than the pool keeps, freed and made again: each reads as new.
            let blocks: Vec<_> = (0..pool::KEEP + 4).map(|_| block_with(8, [])).collect();
            drop(blocks);
            let again: Vec<_> = (0..pool::KEEP + 4).map(|_| block_with(8, [])).collect();
            again.iter().for_each(|b| assert_empty(b, 8));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn candidates_are_the_matching_and_untagged_slots() {
        let g = Group::new();
        g.set_tag(0, 5);
        g.set_tag(1, 7);
        g.set_tag(3, 5);
        let lanes = |m: u64| {
            (0..8)
                .filter(|l| m >> (8 * l + 7) & 1 == 1)
                .collect::<Vec<_>>()
        };
        assert_eq!(lanes(g.candidates(5)), vec![0, 2, 3, 4, 5, 6, 7]);
        assert_eq!(lanes(g.candidates(7)), vec![1, 2, 4, 5, 6, 7]);
        assert_eq!(lanes(g.candidates(9)), vec![2, 4, 5, 6, 7]);
    }
}
