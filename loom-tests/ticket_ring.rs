//! Loom models of the rustls client store's hand-written parts
//! (`src/integrations/client_state.rs`): the ticket ring (a ticket is taken at most once; inserts
//! racing takes hand every ticket out exactly once; no ticket outlives retirement) and the rule
//! that finds the cache entry a write goes to (a write to a live entry is never lost).
//!
//! The ring touches no cache and no reclaimer, so its models are the same in both builds of the
//! gate. Values count their drops in std atomics (not modelled: they only record). Each model
//! has a mutant, a fault in the code it must catch, on the `// mutant:` line above it.

use session_cache::integrations::{live_entry, TicketRing};
use session_cache::{Session, SessionCache};
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
    run_bounded(name, usize::MAX, f)
}

/// As `run`, with at most `epoch_bound` preemptions on the real collector, whose pins multiply
/// the branches of a model that goes through the cache.
fn run_bounded(name: &str, epoch_bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let mut b = loom::model::Builder::new();
    let bound = b.preemption_bound.unwrap_or(3);
    b.preemption_bound = Some(if cfg!(session_cache_graveyard) {
        bound
    } else {
        bound.min(epoch_bound)
    });
    b.check(move || {
        r.fetch_add(1, SeqCst);
        f();
    });
    eprintln!("{name}: {} executions", runs.load(SeqCst));
}

/// Two takers of the one ticket in the ring: exactly one gets it, and it is dropped once.
// mutant: ring_take_load: take is a load then a store of null, so two takers both get the ticket
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
// mutant: ring_insert_store: insert overwrites the ticket it displaces instead of handing it back
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
// mutant: ring_no_recheck: insert does not look at the retired flag again after its write
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

/// A cache entry as the client store keeps one per server: a set of writes, retired (emptied)
/// when the cache evicts it.
struct Entry {
    key: Vec<u8>,
    writes: loom::sync::atomic::AtomicUsize,
    retired: loom::sync::atomic::AtomicBool,
}

impl Session for Entry {
    fn id(&self) -> &[u8] {
        &self.key
    }
    fn set_not_resumable(&self) {
        // Release: pairs with the Acquire in `retired`, as the ring's flag does.
        self.retired
            .store(true, loom::sync::atomic::Ordering::Release);
    }
}

fn entry(key: &[u8]) -> Arc<Entry> {
    Arc::new(Entry {
        key: key.to_vec(),
        writes: loom::sync::atomic::AtomicUsize::new(0),
        retired: loom::sync::atomic::AtomicBool::new(false),
    })
}

fn retired(e: &Entry) -> bool {
    e.retired.load(loom::sync::atomic::Ordering::Acquire)
}

fn write(cache: &SessionCache<Entry>, key: &[u8], bit: usize) {
    if let Some(e) = live_entry(cache, key, || entry(key), retired) {
        e.writes.fetch_or(bit, loom::sync::atomic::Ordering::SeqCst);
    }
}

/// Capacity 1. Thread A writes bit 1 to server "a". Thread C writes bit 2 to "a", caches "b"
/// (evicting "a", which retires it), then writes bit 4 to "a" again. C's last write was made to
/// a live entry and nothing removes "a" after it, so whatever the interleaving, the entry
/// cached for "a" at rest holds bit 4 (and bit 1 if A's write came after the eviction). The
/// lost write: A's `get_or_add` returns C's first entry, the eviction retires it, C makes a
/// new entry and writes 4 to it, and A, seeing its entry retired, `add`s a fresh one over C's.
/// That interleaving takes 3 preemptions; on the real collector the model runs at bound 2 (at 3
/// it explores ~290 000 executions, minutes), the drop-at-end build checks it at the gate's bound.
// mutant: replace_retired: a writer that meets a retired entry `add`s a fresh one over the live one
#[test]
fn t2_client_entry_write_is_never_lost() {
    run_bounded("t2_client_entry_write_is_never_lost", 2, || {
        let cache = Arc::new(
            SessionCache::builder()
                .capacity(1)
                .clock(session_cache::ManualClock::new())
                .build(),
        );
        let c = cache.clone();
        let other = loom::thread::spawn(move || write(&c, b"a", 1));
        write(&cache, b"a", 2);
        cache.add(entry(b"b"));
        write(&cache, b"a", 4);
        other.join().unwrap();
        let at_rest = cache
            .get_with(b"a", |e| {
                e.writes.load(loom::sync::atomic::Ordering::SeqCst)
            })
            .expect("server a is cached at rest");
        assert!(
            at_rest & 4 != 0,
            "the write made to a live entry was lost (entry holds {at_rest:#b})"
        );
    });
}
