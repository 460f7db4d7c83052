//! Loom models of the inbox of deferred releases (`src/reclaim/inbox.rs`): the lock-free stack
//! other threads push a thread's due batches to, which its owner takes all at once and closes
//! when it exits. Every batch pushed is delivered exactly once: taken by the owner, taken by its
//! close, or given back to the pusher because the inbox was closed. No batch is lost, none is
//! delivered twice.
//!
//! The inbox touches no cache and no reclaimer, so its models are the same in both builds of
//! the gate. Each model has a mutant, a fault in the inbox it must catch, on the `// mutant:`
//! line above it.

use loom::thread;
use session_cache::Inbox;
use std::sync::Arc;

fn run(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = runs.clone();
    loom::model(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        f();
    });
    eprintln!(
        "{name}: {} executions",
        runs.load(std::sync::atomic::Ordering::SeqCst)
    );
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}

// mutant: inbox_blind_push: a push stores its node over the head without checking it, so a push
// racing the owner's close overwrites the closed mark and its batch is never delivered.
#[test]
fn t2_inbox_push_races_close() {
    run("t2_inbox_push_races_close", || {
        let inbox = Arc::new(Inbox::<u32>::new());
        let pusher = {
            let inbox = inbox.clone();
            thread::spawn(move || {
                let mut back = Vec::new();
                for batch in [1, 2] {
                    if let Err(batch) = inbox.push(batch) {
                        back.push(batch);
                    }
                }
                back
            })
        };
        // The owner takes what is there, then exits (closes).
        let mut delivered = inbox.take_all();
        delivered.extend(inbox.close());
        delivered.extend(pusher.join().unwrap());
        assert_eq!(
            sorted(delivered),
            vec![1, 2],
            "every batch is delivered exactly once: taken, or given back once closed"
        );
        assert!(inbox.is_empty(), "nothing is left in a closed inbox");
    });
}

// mutant: inbox_load_then_clear: the owner reads the list and clears the head in two steps, so a
// push between them is lost.
#[test]
fn t2_inbox_pushes_race_a_take() {
    run("t2_inbox_pushes_race_a_take", || {
        let inbox = Arc::new(Inbox::<u32>::new());
        let pusher = {
            let inbox = inbox.clone();
            thread::spawn(move || {
                for batch in [1, 2] {
                    assert!(inbox.push(batch).is_ok(), "the inbox is open");
                }
            })
        };
        let mut delivered = inbox.take_all();
        pusher.join().unwrap();
        delivered.extend(inbox.take_all());
        assert_eq!(
            sorted(delivered.clone()),
            vec![1, 2],
            "every batch pushed is taken exactly once"
        );
        assert!(inbox.close().is_empty(), "nothing was left behind");
    });
}
