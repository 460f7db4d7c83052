//! Unit tests of the raw table against its own invariants (`check_invariants`), single-threaded:
//! claims, rebuilds, growth, and that the checker catches a broken rule.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::block::{tag_of, Slots};
use super::{Insert, OnExisting, Order, RawTable, BLOCK_WIDTH};
use crate::loom::sync::atomic::Ordering::{Acquire, Relaxed};
use crate::reclaim::Shared;

type Table = RawTable<Vec<u8>>;

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
        t.insert(Arc::new(v), |v| &v[..], order(n), REPLACE, &guard),
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
    let word = b.slot(0).word.load(Acquire, &guard);
    // Break the claim rule: the same entry in the next slot too, with the right tag.
    b.slot(1).word.store(word, Relaxed);
    b.slot(1).set_tag(tag_of(t.hash(&key(1))));
    let caught = catch_unwind(AssertUnwindSafe(|| t.check_invariants(&guard)));
    // Restore before the table is dropped (it would free the entry twice).
    b.slot(1).word.store(Shared::null(), Relaxed);
    let msg = caught.expect_err("a duplicate key must be reported");
    let msg = msg.downcast_ref::<String>().expect("a formatted message");
    assert!(msg.contains("claimed twice"), "{msg}");
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
    b.slot(0).force_tag(right ^ 2);
    let caught = catch_unwind(AssertUnwindSafe(|| t.check_invariants(&guard)));
    b.slot(0).force_tag(right);
    let msg = caught.expect_err("a wrong tag must be reported");
    let msg = msg.downcast_ref::<String>().expect("a formatted message");
    assert!(msg.contains("tag"), "{msg}");
    assert_eq!(t.check_invariants(&guard), 1);
}
