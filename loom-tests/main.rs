//! Loom models of the cache's races (DESIGN.md sections 2-3), through the public API.
//!
//! Run (see loom-tests/README.md, or `.ci/gates/loom.sh` which runs all of this):
//!
//! ```sh
//! # every model, three-thread ones included, on the drop-at-end collector:
//! CARGO_TARGET_DIR=target/loom-graveyard LOOM_MAX_PREEMPTIONS=3 \
//!   RUSTFLAGS="--cfg session_cache_loom --cfg crossbeam_loom --cfg session_cache_graveyard" \
//!   cargo test --release --test loom
//! # the two-thread models on crossbeam-epoch's real collector:
//! CARGO_TARGET_DIR=target/loom-epoch LOOM_MAX_PREEMPTIONS=3 \
//!   RUSTFLAGS="--cfg session_cache_loom --cfg crossbeam_loom" \
//!   cargo test --release --test loom t2_
//! ```
//!
//! Under `session_cache_loom` the table has blocks of 2 slots and a cache of capacity <= 4 has
//! one bucket, so a third id in a bucket already forces a rebuild.
//!
//! Model names: `t3_*` have three threads (graveyard build only), `t2_*` two (both builds).
//! Every model checks the final state, every return value, and that every `Arc` the cache took
//! was released exactly once (strictly in the graveyard build; in the epoch build, where the
//! collector may still hold garbage when the model ends, that nothing was released twice or
//! early).
#![cfg(session_cache_loom)]
#![allow(missing_docs)]

mod models;
// Exact release totals over all executions (also on the real collector), same-id races and the
// bucket-array doubling (table growth), from the core's first models.
mod same_id;
mod support;
mod table_growth;
// The rustls client store's ticket ring and write rule (src/integrations/client_state.rs).
mod ticket_ring;

use session_cache::{ManualClock, RemovalCause, Session, SessionCache};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A session that records its drops; `dead` lets a reader detect use after release.
pub struct LSess {
    pub id: Vec<u8>,
    pub serial: u32,
    pub timeout: Option<Duration>,
    pub dead: AtomicBool,
    pub drops: Arc<AtomicUsize>,
}

impl Session for LSess {
    fn id(&self) -> &[u8] {
        &self.id
    }
    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

impl Drop for LSess {
    fn drop(&mut self) {
        self.dead.store(true, SeqCst);
        self.drops.fetch_add(1, SeqCst);
    }
}

impl std::fmt::Debug for LSess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.serial)
    }
}

/// Objects of one model run, and the `on_remove` log.
#[derive(Default, Debug)]
pub struct World {
    pub objs: Vec<Arc<LSess>>,
    pub log: Arc<Mutex<Vec<(u32, RemovalCause)>>>,
}

impl World {
    pub fn sess(&mut self, id: u8, timeout_secs: Option<u64>) -> Arc<LSess> {
        let s = Arc::new(LSess {
            id: vec![id],
            serial: self.objs.len() as u32,
            timeout: timeout_secs.map(Duration::from_secs),
            dead: AtomicBool::new(false),
            drops: Arc::new(AtomicUsize::new(0)),
        });
        self.objs.push(s.clone());
        s
    }

    pub fn cache(&self, capacity: usize) -> SessionCache<LSess> {
        let log = self.log.clone();
        SessionCache::builder()
            .capacity(capacity)
            .timeout(Duration::from_secs(300))
            .clock(ManualClock::new())
            .on_remove(move |s: &Arc<LSess>, c| log.lock().unwrap().push((s.serial, c)))
            .build()
    }

    /// The causes reported for object `serial`.
    pub fn causes(&self, serial: u32) -> Vec<RemovalCause> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|e| e.0 == serial).map(|e| e.1).collect()
    }

    /// Drops the cache and checks every object was released by it exactly once.
    pub fn finish(self, cache: SessionCache<LSess>) {
        drop(cache);
        // Graveyard: dropping the cache freed everything it retired. Epoch: garbage may sit in
        // the (loom-modelled) collector until the execution ends; flushing it here would only
        // multiply loom's branches, so only over-release is checked.
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

/// Runs `f` under loom, reporting how many executions were explored.
pub fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    // The real collector's pin/unpin adds many branches per operation.
    b.max_branches = b.max_branches.max(20_000);
    b.check(move || {
        r.fetch_add(1, SeqCst);
        f();
    });
    eprintln!("{name}: {} executions", runs.load(SeqCst));
}
