//! The table's invariants at rest, as code: the module docs' rules, checked over every
//! reachable bucket. Tests, the fuzz harnesses and the loom models call this when no operation
//! is in flight.

use std::collections::HashSet;

use super::block::{pointer, state, tag_of, Block, Slots, State, FROZEN};
use super::{Keyed, RawTable, Table, MIGRATING, MOVED};
use crate::loom::sync::atomic::Ordering::Acquire;
use crate::reclaim::Guard;

impl<T: Keyed> RawTable<T> {
    /// Checks the table's invariants and returns the number of live entries. Panics, naming
    /// the broken rule, if one does not hold.
    ///
    /// Call it only at rest (no operation in flight on any thread): the rules below hold at
    /// every instant for what they cover, but an operation in flight may be between two of its
    /// steps (a frozen block not yet swung, a split not yet published).
    ///
    /// - **Claim rule** (module docs, point 1): in every block, claimed slots form a prefix
    ///   and a key has at most one live slot.
    /// - **Tags:** every live slot carries the tag of its key's hash, and its key hashes to
    ///   the bucket that holds it; an unclaimed slot has no tag.
    /// - **Rest:** no reachable slot is frozen and no bucket is `MIGRATING` (rebuilds and
    ///   splits complete inside the operation that starts them).
    /// - **Growth** (point 6): a `MOVED` bucket holds no block (so no live entry), its two
    ///   children in the next table exist, and a bucket that has not moved has no children yet.
    pub(crate) fn check_invariants(&self, guard: &Guard) -> usize {
        self.check_table(self.root(guard), 0, guard)
    }

    fn check_table(&self, table: &Table, depth: usize, guard: &Guard) -> usize {
        assert!(depth < 8, "tables nest {depth} deep: growth never finishes");
        let n = table.buckets.len();
        assert!(
            n.is_power_of_two() && table.mask == n - 1,
            "bucket array of {n}"
        );
        let next = table.next.load(Acquire, guard);
        // SAFETY: loaded under `guard`; tables are retired only after they are unlinked.
        let next_table = unsafe { next.as_ref() };
        if let Some(nt) = next_table {
            assert_eq!(nt.buckets.len(), 2 * n, "the next table is twice as wide");
        }
        let mut live = 0;
        for (i, bucket) in table.buckets.iter().enumerate() {
            let word = bucket.load(Acquire, guard);
            assert_eq!(
                word.tag() & MIGRATING,
                0,
                "bucket {i} of {n} is MIGRATING at rest"
            );
            if word.tag() & MOVED != 0 {
                assert!(
                    word.with_tag(0).is_null(),
                    "bucket {i} of {n} is MOVED but still holds a block"
                );
                let nt = next_table.expect("a MOVED bucket in a table without a next table");
                for child in [i, i + n] {
                    assert!(
                        !nt.buckets[child].load(Acquire, guard).is_null(),
                        "bucket {i} of {n} is MOVED but its child {child} is missing"
                    );
                }
                continue;
            }
            if let Some(nt) = next_table {
                for child in [i, i + n] {
                    assert!(
                        nt.buckets[child].load(Acquire, guard).is_null(),
                        "bucket {i} of {n} has not moved but its child {child} exists"
                    );
                }
            }
            // SAFETY: loaded under `guard`; blocks are retired only after they are unlinked.
            if let Some(b) = unsafe { word.with_tag(0).as_ref() } {
                live += self.check_block(b, i, table.mask, guard);
            }
        }
        if let Some(nt) = next_table {
            // Only the children of moved buckets are filled, and those were checked to exist;
            // what they hold is checked like any bucket.
            live += self.check_table(nt, depth + 1, guard);
        }
        live
    }

    /// Checks one block of bucket `index`; returns its live entries.
    fn check_block(&self, b: &Block, index: usize, mask: usize, _guard: &Guard) -> usize {
        let mut keys: HashSet<Vec<u8>> = HashSet::new();
        let mut live = 0;
        let mut end = None;
        for (i, slot) in b.slots().enumerate() {
            let pair = slot.pair().load(Acquire);
            assert_eq!(
                pair.word & FROZEN,
                0,
                "bucket {index} slot {i}: a reachable frozen slot at rest"
            );
            match state(pair.word) {
                State::Empty => {
                    end.get_or_insert(i);
                    assert_eq!(
                        slot.tag(),
                        0,
                        "bucket {index} slot {i}: an unclaimed slot with a tag"
                    );
                    continue;
                }
                _ if end.is_some() => {
                    panic!("bucket {index}: slot {i} is claimed after the unclaimed slot {end:?}")
                }
                State::Dead => continue,
                State::Live => {}
            }
            // SAFETY: live under the caller's guard.
            let key = unsafe { &*pointer::<T>(pair.word) }.key().to_vec();
            let hash = self.hash(&key);
            assert_eq!(
                slot.tag(),
                tag_of(hash),
                "bucket {index} slot {i}: the tag is not that of the key's hash"
            );
            assert_eq!(
                hash as usize & mask,
                index,
                "slot {i}: a key of bucket {} found in bucket {index}",
                hash as usize & mask
            );
            assert!(
                keys.insert(key),
                "bucket {index} slot {i}: a key live twice in one block"
            );
            live += 1;
        }
        live
    }
}
