//! Unit tests of the raw table against its own invariants (`check_invariants`), single-threaded:
//! claims, rebuilds, growth, and that the checker catches a broken rule.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::block::{tag_of, Slots};
use super::{Insert, Keyed, OnExisting, Order, RawTable, BLOCK_WIDTH};
use crate::loom::sync::atomic::Ordering::{Acquire, Relaxed};
use crate::loom::Pair;

/// A value keyed by its own bytes.
pub(super) struct K(pub(super) Vec<u8>);

impl crate::Session for K {
    fn id(&self) -> &[u8] {
        &self.0
    }
}

type Table = RawTable<K>;

const REPLACE: OnExisting = OnExisting::Replace {
    refresh_rank: false,
};

fn key(n: u32) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

fn order(n: u32) -> Order {
    Order {
        rank: u64::from(n),
        seq: u64::from(n),
    }
}

/// Inserts `v` under its own bytes; true if it was new.
fn add(t: &Table, v: Vec<u8>, n: u32) -> bool {
    let guard = t.pin();
    matches!(
        t.insert(Arc::new(K(v)), order(n), REPLACE, &guard),
        Insert::New(_)
    )
}

fn remove(t: &Table, k: &[u8]) -> bool {
    let guard = t.pin();
    t.remove(k, t.hash(k), &guard).is_some()
}

fn contains(t: &Table, k: &[u8]) -> bool {
    let guard = t.pin();
    t.find(k, t.hash(k), &guard).is_some()
}

fn live(t: &Table) -> usize {
    t.check_invariants(&t.pin())
}

#[test]
fn an_empty_table_holds_nothing() {
    assert_eq!(live(&Table::new(1, Some(7))), 0);
    assert_eq!(live(&Table::new(64, None)), 0);
}

#[test]
fn claims_rebuilds_and_removals_keep_the_rules() {
    // One bucket: every key lands in it, so it fills, is rebuilt wider, and recycles dead slots.
    let t = Table::new(1, Some(1));
    let n = 4 * BLOCK_WIDTH as u32;
    for i in 0..n {
        assert!(add(&t, key(i), i));
        assert_eq!(live(&t), i as usize + 1);
    }
    // A second add of a present key replaces, never claims a second slot.
    assert!(!add(&t, key(3), 100));
    assert_eq!(live(&t), n as usize);
    for i in (0..n).step_by(2) {
        assert!(remove(&t, &key(i)));
        assert!(!remove(&t, &key(i)), "removed twice");
        assert_eq!(live(&t), (n - i / 2 - 1) as usize);
    }
    // Removed keys come back (into their DEAD slot, or a rebuilt block).
    for i in (0..n).step_by(2) {
        assert!(add(&t, key(i), n + i));
    }
    assert_eq!(live(&t), n as usize);
    for i in 0..n {
        assert!(contains(&t, &key(i)), "key {i} lost");
    }
}

#[test]
fn churn_through_one_bucket_keeps_the_rules() {
    let t = Table::new(1, Some(2));
    for i in 0..500u32 {
        assert!(add(&t, key(i), i));
        if i >= 3 {
            assert!(remove(&t, &key(i - 3)));
        }
        assert_eq!(live(&t), (i as usize + 1).min(3));
    }
}

#[test]
fn growth_keeps_the_rules_at_every_step() {
    let t = Table::new(1, Some(3));
    let n = 40 * BLOCK_WIDTH as u32;
    for i in 0..n {
        assert!(add(&t, key(i), i));
        let guard = t.pin();
        t.grow_if_crowded(i as usize + 1, &guard);
        t.help_grow(&guard);
        drop(guard);
        assert_eq!(live(&t), i as usize + 1, "after insert {i}");
    }
    assert!(t.bucket_count(&t.pin()) > 1, "the table never grew");
    for i in 0..n {
        assert!(contains(&t, &key(i)), "key {i} lost by growth");
    }
}

#[test]
fn the_checker_catches_a_key_claimed_twice() {
    let t = Table::new(1, Some(4));
    assert!(add(&t, key(1), 1));
    let guard = t.pin();
    let b = t
        .read_spot(t.hash(&key(1)), &guard)
        .block()
        .expect("a block");
    let pair = b.slot(0).pair().load(Acquire);
    // Break the claim rule: the same value in the next slot too, with the right tag.
    b.slot(1).pair().store(pair, Relaxed);
    let s = b.slot(1);
    s.group.set_tag(s.lane, tag_of(t.hash(&key(1))));
    let caught = catch_unwind(AssertUnwindSafe(|| t.check_invariants(&guard)));
    // Restore before the table is dropped (it would release the value twice).
    b.slot(1).pair().store(Pair::default(), Relaxed);
    s.group.force_tag(s.lane, 0);
    let msg = caught.expect_err("a duplicate key must be reported");
    let msg = msg.downcast_ref::<String>().expect("a formatted message");
    assert!(msg.contains("live twice"), "{msg}");
}

#[test]
fn the_checker_catches_a_wrong_tag() {
    let t = Table::new(1, Some(5));
    assert!(add(&t, key(1), 1));
    let guard = t.pin();
    let b = t
        .read_spot(t.hash(&key(1)), &guard)
        .block()
        .expect("a block");
    let right = tag_of(t.hash(&key(1)));
    let s = b.slot(0);
    s.group.force_tag(s.lane, right ^ 2);
    let caught = catch_unwind(AssertUnwindSafe(|| t.check_invariants(&guard)));
    s.group.force_tag(s.lane, right);
    let msg = caught.expect_err("a wrong tag must be reported");
    let msg = msg.downcast_ref::<String>().expect("a formatted message");
    assert!(msg.contains("tag"), "{msg}");
    assert_eq!(t.check_invariants(&guard), 1);
}

#[test]
fn a_split_puts_every_value_in_exactly_one_child() {
    // Keys that straddle the new bit: after the growth every key is found, once.
    let t = Table::new(1, Some(6));
    let n = 6 * BLOCK_WIDTH as u32;
    for i in 0..n {
        assert!(add(&t, key(i), i));
    }
    let guard = t.pin();
    t.grow_if_crowded(usize::MAX / 2, &guard);
    t.help_grow(&guard);
    drop(guard);
    assert_eq!(t.bucket_count(&t.pin()), 2);
    assert_eq!(live(&t), n as usize);
    for i in 0..n {
        assert!(contains(&t, &key(i)), "key {i} lost by the split");
    }
}

#[test]
fn keyed_reads_the_session_id() {
    assert_eq!(K(vec![1, 2]).key(), &[1, 2]);
}
