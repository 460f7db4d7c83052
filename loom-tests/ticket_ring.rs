//! Loom models of the rustls client store's hand-written part
//! (`src/integrations/client_state.rs`): the ticket ring (a ticket is taken at most once; inserts
//! racing takes hand every ticket out exactly once; no ticket outlives retirement).
//!
//! The ring touches no cache and no reclaimer, so its models are the same in both builds of the
//! gate. Values count their drops in std atomics (not modelled: they only record, as in
//! `support.rs`). Each model has a mutant, a fault in the code under
//! `--cfg session_cache_mutant="..."` that it must catch:
//!
//! | model | mutant |
//! |---|---|
//! | `t2_ring_take_once` | `ring_take_load`: take is a load then a store of null |
//! | `t2_ring_inserts_racing_a_take` | `ring_insert_store`: insert overwrites the displaced ticket |
//! | `t2_ring_insert_racing_retire` | `ring_no_recheck`: insert does not look at the flag again |

use session_cache::integrations::TicketRing;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// A ticket that counts its drops.
struct Ticket {
    id: u32,
    drops: Arc<AtomicUsize>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

fn ticket(id: u32, drops: &Arc<AtomicUsize>) -> Ticket {
    Ticket {
        id,
        drops: drops.clone(),
    }
}

fn ids(tickets: impl IntoIterator<Item = Option<Ticket>>) -> Vec<u32> {
    let mut ids: Vec<u32> = tickets.into_iter().flatten().map(|t| t.id).collect();
    ids.sort_unstable();
    ids
}

fn run(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(move || {
        r.fetch_add(1, SeqCst);
        f();
    });
    eprintln!("{name}: {} executions", runs.load(SeqCst));
}

/// Two takers of the one ticket in the ring: exactly one gets it, and it is dropped once.
#[test]
fn t2_ring_take_once() {
    run("t2_ring_take_once", || {
        let drops = Arc::new(AtomicUsize::new(0));
        let ring = Arc::new(TicketRing::new(2));
        assert!(ring.insert(ticket(1, &drops)).is_none());
        let r = ring.clone();
        let other = loom::thread::spawn(move || r.take().map(|t| t.id));
        let mine = ring.take().map(|t| t.id);
        let theirs = other.join().unwrap();
        assert!(
            mine.is_none() || theirs.is_none(),
            "the ticket was taken twice"
        );
        assert!(mine.is_some() || theirs.is_some(), "the ticket was lost");
        assert_eq!(ring.take().map(|t| t.id), None);
        assert_eq!(
            drops.load(SeqCst),
            1,
            "dropped {} times",
            drops.load(SeqCst)
        );
    });
}

/// A ring of two slots holding ticket 1; one thread inserts 2 and 3 (the third insert wraps
/// onto 1's slot), the other takes. Every ticket comes out exactly once: taken, displaced, or
/// left in the ring, and is dropped exactly once.
#[test]
fn t2_ring_inserts_racing_a_take() {
    run("t2_ring_inserts_racing_a_take", || {
        let drops = Arc::new(AtomicUsize::new(0));
        let ring = Arc::new(TicketRing::new(2));
        assert!(ring.insert(ticket(1, &drops)).is_none());
        let r = ring.clone();
        let d = drops.clone();
        let inserter =
            loom::thread::spawn(move || [r.insert(ticket(2, &d)), r.insert(ticket(3, &d))]);
        let taken = ring.take();
        let displaced = inserter.join().unwrap();
        let left = [ring.take(), ring.take(), ring.take()];
        let all = ids(displaced.into_iter().chain([taken]).chain(left));
        assert_eq!(all, [1, 2, 3], "every ticket comes out exactly once");
        drop(ring);
        assert_eq!(
            drops.load(SeqCst),
            3,
            "dropped {} times",
            drops.load(SeqCst)
        );
    });
}

/// An insert racing the ring's retirement: when both have returned, the ticket has been
/// dropped (by the retirement, by the insert's second look, or handed back), none is left.
#[test]
fn t2_ring_insert_racing_retire() {
    run("t2_ring_insert_racing_retire", || {
        let drops = Arc::new(AtomicUsize::new(0));
        let ring = Arc::new(TicketRing::new(1));
        let r = ring.clone();
        let d = drops.clone();
        let inserter = loom::thread::spawn(move || drop(r.insert(ticket(1, &d))));
        ring.retire();
        inserter.join().unwrap();
        assert!(ring.is_retired());
        assert_eq!(
            drops.load(SeqCst),
            1,
            "a ticket outlived the retirement of its ring"
        );
        assert_eq!(ring.take().map(|t| t.id), None);
    });
}
