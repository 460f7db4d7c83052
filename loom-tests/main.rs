//! Loom models of the cache's races (docs/design.md, "Hazards"), through the public API. How to
//! run them, and what each checks: loom-tests/README.md. `.ci/gates/loom.sh` runs them all.
//!
//! Under `session_cache_loom` the table has blocks of 2 slots and a cache of capacity <= 4 has
//! one bucket, so a third id in a bucket already forces a rebuild.
//!
//! Model names: `t3_*` have three threads (drop-at-end collector only), `t2_*` two (both
//! collectors), `tg_*` grow the table (both collectors, at a lower preemption bound:
//! [`model_growth`]).
//!
//! Mutants: a `// mutant: NAME: what it breaks` line right above a model's `#[test]` says that
//! the build with `--cfg session_cache_mutant="NAME"` must make that model fail (`(epoch)` after
//! the name: on the real collector). The gate reads these lines; they are the only list.
//!
//! Every model's sessions are [`TestSession`]s made through this harness (see [`World`] and
//! [`counted`]): after each execution the harness checks that none was released twice (and, on
//! the drop-at-end collector, that each was released exactly once), and after all executions
//! that every session made was released exactly once (on the real collector, releases still
//! queued when an execution ends run when loom drops the collector).
#![cfg(session_cache_loom)]
#![allow(missing_docs)]

// The inbox of deferred releases (src/reclaim/inbox.rs).
mod inbox;
mod models;
// The stripes' room: a removal's place kept for its thread's next add (src/policy/counters.rs).
mod rooms;
mod same_id;
mod table_growth;
// The rustls client store's ticket ring and write rule (src/integrations/client_state.rs).
mod ticket_ring;

use session_cache::{ManualClock, RemovalCause, SessionCache};
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
pub use testkit::TestSession;
use testkit::{RemovalLog, Tracker};

thread_local! {
    /// The tracker of the execution loom is running on this thread (loom runs a model's threads
    /// as coroutines of the thread that called `check`).
    static EXECUTION: RefCell<Option<Arc<Tracker>>> = const { RefCell::new(None) };
}

fn execution() -> Arc<Tracker> {
    EXECUTION
        .with(|e| e.borrow().clone())
        .expect("called inside `model`")
}

/// A counted session of the running execution.
pub fn counted(id: &[u8], serial: u32) -> Arc<TestSession> {
    execution().session_serial(id, serial, None)
}

/// Objects of one execution, and the `on_remove` log.
#[derive(Debug)]
pub struct World {
    pub objs: Vec<Arc<TestSession>>,
    pub log: RemovalLog,
    tracker: Arc<Tracker>,
}

impl Default for World {
    fn default() -> Self {
        World {
            objs: Vec::new(),
            log: RemovalLog::default(),
            tracker: execution(),
        }
    }
}

impl World {
    /// A session with the one-byte id `id`; its serial is its index in [`World::objs`].
    pub fn sess(&mut self, id: u8, timeout_secs: Option<u64>) -> Arc<TestSession> {
        let serial = self.objs.len() as u32;
        let s = self
            .tracker
            .session_serial(&[id], serial, timeout_secs.map(Duration::from_secs));
        self.objs.push(s.clone());
        s
    }

    pub fn cache(&self, capacity: usize) -> SessionCache<TestSession> {
        SessionCache::builder()
            .capacity(capacity)
            .timeout(Duration::from_secs(300))
            .clock(ManualClock::new())
            .on_remove(self.log.callback())
            .build()
    }

    /// The causes reported for object `serial`.
    pub fn causes(&self, serial: u32) -> Vec<RemovalCause> {
        self.log.causes(serial)
    }

    /// Drops the cache and checks every object was released by it exactly once.
    pub fn finish(self, cache: SessionCache<TestSession>) {
        cache.check_invariants();
        drop(cache);
        // Drop-at-end collector: dropping the cache freed everything it retired. Real
        // collector: garbage may sit in the (loom-modelled) collector until the execution ends;
        // flushing it here would only multiply loom's branches, so only over-release is checked
        // here (and exact release by `model`, over all executions).
        let strict = cfg!(session_cache_graveyard);
        for o in &self.objs {
            assert!(
                !o.dead.load(SeqCst),
                "{o:?} dropped while the model still holds it"
            );
            assert_eq!(o.drops.load(SeqCst), 0, "{o:?} over-released");
            if strict {
                assert_eq!(
                    Arc::strong_count(o),
                    1,
                    "{o:?} leaked: the cache did not release it"
                );
            }
        }
        let drops: Vec<_> = self.objs.iter().map(|o| o.drops.clone()).collect();
        drop(self);
        if strict {
            for (i, d) in drops.iter().enumerate() {
                assert_eq!(d.load(SeqCst), 1, "#{i} dropped {} times", d.load(SeqCst));
            }
        }
    }
}

/// Runs `f` under loom at `LOOM_MAX_PREEMPTIONS` (default 3), with drop counting, and reports
/// how many executions were explored.
pub fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    run(name, None, f)
}

/// As [`model`], for the table-growth models, whose state space at bound 2 is too large for
/// CI: at most `LOOM_GROWTH_PREEMPTIONS` preemptions (default 1; the deeper run raises it).
pub fn model_growth(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let bound = std::env::var("LOOM_GROWTH_PREEMPTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    run(name, Some(bound), f)
}

fn run(name: &str, cap: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    let totals = Tracker::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let (r, t) = (runs.clone(), totals.clone());
    let mut b = loom::model::Builder::new();
    let bound = b.preemption_bound.unwrap_or(3);
    b.preemption_bound = Some(cap.map_or(bound, |c| c.min(bound)));
    // The real collector's pin/unpin adds many branches per operation.
    b.max_branches = b.max_branches.max(20_000);
    b.check(move || {
        r.fetch_add(1, SeqCst);
        let exec = t.child();
        EXECUTION.with(|e| *e.borrow_mut() = Some(exec.clone()));
        f();
        EXECUTION.with(|e| *e.borrow_mut() = None);
        let (made, dropped) = (exec.created(), exec.dropped());
        assert!(dropped <= made, "a session was released twice");
        if cfg!(session_cache_graveyard) {
            assert_eq!(
                dropped, made,
                "every session released exactly once at the end"
            );
        }
    });
    assert!(totals.created() > 0, "{name}: the model made no session");
    assert_eq!(
        totals.dropped(),
        totals.created(),
        "{name}: over all executions, every session made was released exactly once"
    );
    eprintln!(
        "{name}: {} executions (preemption bound {})",
        runs.load(SeqCst),
        b.preemption_bound.unwrap_or(0)
    );
}
