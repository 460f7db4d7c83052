//! A session that counts its drops, and the exactly-once check for both reclaimer builds.
//!
//! The counters are std atomics, not loom ones: with the real epoch collector a release can
//! run when loom tears an execution down (dropping the collector), outside the model, where
//! loom's atomics may not be touched. They only record; the protocol never reads them.
//!
//! - Graveyard build (`--cfg session_cache_graveyard`): dropping the cache frees everything
//!   it retired, so a model checks "released exactly once" at its end.
//! - Real collector: releases still queued in the collector run when loom drops it after the
//!   execution. Inside the model we check "at most once"; [`model`] checks, after all
//!   executions, that releases == sessions made, which fails on a leak and on a double release.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use session_cache::Session;

/// Sessions made and dropped across all executions of one model.
#[derive(Default)]
pub struct Totals {
    made: AtomicUsize,
    dropped: Arc<AtomicUsize>,
}

/// Runs `f` under `loom::model` with per-execution drop counting, then checks the totals.
pub fn model(f: impl Fn(&Drops) + Sync + Send + 'static) {
    run(None, f)
}

/// As [`model`], at most `bound` preemptions whatever `LOOM_MAX_PREEMPTIONS` says: for models
/// whose state space is too large at the gate's bound.
pub fn model_bounded(bound: usize, f: impl Fn(&Drops) + Sync + Send + 'static) {
    run(Some(bound), f)
}

fn run(bound: Option<usize>, f: impl Fn(&Drops) + Sync + Send + 'static) {
    let totals = Arc::new(Totals::default());
    let t2 = totals.clone();
    let mut builder = loom::model::Builder::new();
    if let Some(bound) = bound {
        builder.preemption_bound = Some(bound);
    }
    builder.check(move || {
        let drops = Drops {
            made: AtomicUsize::new(0),
            dropped: Arc::new(AtomicUsize::new(0)),
            totals: t2.clone(),
        };
        f(&drops);
        let (made, dropped) = (drops.made.load(SeqCst), drops.dropped.load(SeqCst));
        assert!(dropped <= made, "a session was released twice");
        if cfg!(session_cache_graveyard) {
            assert_eq!(
                dropped, made,
                "every session released exactly once at the end"
            );
        }
    });
    assert_eq!(
        totals.dropped.load(SeqCst),
        totals.made.load(SeqCst),
        "over all executions, every session made was released exactly once"
    );
}

pub struct Drops {
    made: AtomicUsize,
    dropped: Arc<AtomicUsize>,
    totals: Arc<Totals>,
}

impl Drops {
    pub fn session(&self, id: &[u8], serial: usize) -> Arc<S> {
        self.made.fetch_add(1, SeqCst);
        self.totals.made.fetch_add(1, SeqCst);
        Arc::new(S {
            id: id.to_vec(),
            serial,
            dropped: self.dropped.clone(),
            total: self.totals.dropped.clone(),
        })
    }
}

pub struct S {
    pub id: Vec<u8>,
    pub serial: usize,
    dropped: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

impl Session for S {
    fn id(&self) -> &[u8] {
        &self.id
    }
}

impl Drop for S {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, SeqCst);
        self.total.fetch_add(1, SeqCst);
    }
}
