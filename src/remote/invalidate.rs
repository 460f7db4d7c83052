//! Removal announcements: how a `remove` on one node reaches the copies other nodes pulled
//! into their local caches.
//!
//! A removal sends `DEL <key>` and `PUBLISH <namespace>:invalidate <token><id>` in one
//! pipeline. Every node's tier keeps a subscriber connection on that channel (its second
//! thread); a message from another node queues the id here and raises `pending`. The cache
//! applies what is pending at the start of its next lookup of any id (`get`, `get_with`,
//! `contains`): on a local hit, the cost of the tier is this one load and branch. So a removal
//! takes effect on another node one pub/sub delivery after it reached Redis (measured in
//! docs/remote.md), and at the latest at that node's next lookup.
//!
//! Two races are closed:
//! * a lookup that fetched a value from Redis just before another node removed it could
//!   cache it after the announcement was applied: the generation counter below tells the
//!   lookup that an announcement arrived during its round trip, and it drops its local copy;
//! * announcements sent while this node's subscriber was disconnected are lost: on every
//!   (re)subscription, every local copy this node added or pulled from Redis and that may
//!   still be live is dropped locally (the next lookup fetches it again if it still exists in
//!   Redis). After a Redis restart or a broken subscription, a node thus resumes only what
//!   Redis still holds: a removal is never missed, at the price of those local copies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::core::Core;
use super::keys::invalidation_channel;
use super::stats::Counters;
use crate::loom::sync::atomic::{
    AtomicBool, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

/// The most ids remembered per shard for resubscriptions; beyond it the expired ones are
/// pruned, then an arbitrary one is forgotten (its copy then outlives a missed announcement,
/// until it expires).
const TRACKED_PER_SHARD: usize = 1 << 14;
const SHARDS: usize = 16;

#[derive(Default)]
pub(crate) struct Invalidations {
    /// Ids queued and not yet applied (what the lookups check).
    pub(crate) pending: AtomicUsize,
    /// Announcements received (and resubscriptions) so far.
    generation: AtomicU64,
    queue: Mutex<Vec<Vec<u8>>>,
    /// Ids this node added or fetched from Redis into its local cache, and until when they
    /// live; sharded by id, so that adds on many threads rarely meet.
    tracked: [Mutex<HashMap<Vec<u8>, Instant>>; SHARDS],
    /// Whether the subscriber is subscribed now.
    pub(crate) subscribed: AtomicBool,
}

impl Invalidations {
    pub(crate) fn push(&self, ids: impl IntoIterator<Item = Vec<u8>>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let before = q.len();
        q.extend(ids);
        let n = q.len() - before;
        // Release: pairs with the Acquire loads in `generation` and of `pending` (the hook).
        self.generation.fetch_add(1, Release);
        self.pending.fetch_add(n, Release);
    }

    /// Takes every queued id.
    pub(crate) fn take_all(&self) -> Vec<Vec<u8>> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        // Release: a lookup that sees 0 may skip the lock; the ids are ours to apply now.
        self.pending.store(0, Release);
        std::mem::take(&mut *q)
    }

    pub(crate) fn generation(&self) -> u64 {
        // Acquire: pairs with the Release in `push`.
        self.generation.load(Acquire)
    }

    /// Remembers that `id` entered the local cache for `lifetime`.
    pub(crate) fn track(&self, id: &[u8], lifetime: Duration) {
        let now = Instant::now();
        let shard = id
            .iter()
            .fold(0usize, |h, b| h.wrapping_mul(31) ^ usize::from(*b))
            % SHARDS;
        let mut p = self.tracked[shard]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if p.len() >= TRACKED_PER_SHARD {
            p.retain(|_, until| *until > now);
            if p.len() >= TRACKED_PER_SHARD {
                // Forget an arbitrary one: a resubscription will not drop its copy (it still
                // expires on time).
                if let Some(k) = p.keys().next().cloned() {
                    p.remove(&k);
                }
            }
        }
        p.insert(id.to_vec(), now + lifetime);
    }

    /// Subscribed (again): announcements may have been missed before, so every tracked copy
    /// still live is suspect.
    fn resubscribed(&self) {
        let now = Instant::now();
        let mut ids = Vec::new();
        for shard in &self.tracked {
            let mut p = shard.lock().unwrap_or_else(|e| e.into_inner());
            ids.extend(
                p.drain()
                    .filter(|(_, until)| *until > now)
                    .map(|(id, _)| id),
            );
        }
        self.push(ids);
    }
}

/// The subscriber thread.
pub(crate) fn run(core: Arc<Core>, client: redis::Client) {
    let channel = invalidation_channel(&core.cfg.namespace);
    let mut backoff = Duration::from_millis(50);
    while !core.stopping() {
        let Some(mut conn) = super::worker::connect(&client, core.cfg.connect_timeout) else {
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(1));
            continue;
        };
        backoff = Duration::from_millis(50);
        let mut ps = conn.as_pubsub();
        if ps.subscribe(&channel).is_err()
            || ps
                .set_read_timeout(Some(Duration::from_millis(100)))
                .is_err()
        {
            continue;
        }
        core.inval.resubscribed();
        // Relaxed: a status flag for statistics and tests.
        core.inval.subscribed.store(true, Relaxed);
        while !core.stopping() {
            match ps.get_message() {
                Ok(msg) => {
                    let payload = msg.get_payload_bytes();
                    if payload.len() > 8 && payload[..8] != core.token {
                        Counters::bump(&core.stats.invalidations);
                        core.inval.push([payload[8..].to_vec()]);
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(_) => break,
            }
        }
        // Relaxed: as above.
        core.inval.subscribed.store(false, Relaxed);
    }
}
