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
//!   (re)subscription, every copy this node pulled from Redis and that may still be live is
//!   dropped locally (the next lookup fetches it again if it still exists).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::core::Core;
use super::keys::invalidation_channel;
use super::stats::Counters;
use crate::loom::sync::atomic::{
    AtomicU64, AtomicUsize,
    Ordering::{Acquire, Release},
};

/// The most pulled ids remembered for resubscriptions; beyond it the expired ones are pruned,
/// then the oldest forgotten.
const PULLED_MAX: usize = 1 << 17;

#[derive(Default)]
pub(crate) struct Invalidations {
    /// Ids queued and not yet applied (what the lookups check).
    pub(crate) pending: AtomicUsize,
    /// Announcements received (and resubscriptions) so far.
    generation: AtomicU64,
    queue: Mutex<Vec<Vec<u8>>>,
    /// Ids this node fetched from Redis into its local cache, and until when they live.
    pulled: Mutex<HashMap<Vec<u8>, Instant>>,
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

    /// Remembers that `id` was pulled into the local cache for `lifetime`.
    pub(crate) fn pulled(&self, id: &[u8], lifetime: Duration) {
        let now = Instant::now();
        let mut p = self.pulled.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() >= PULLED_MAX {
            p.retain(|_, until| *until > now);
            if p.len() >= PULLED_MAX {
                // Forget an arbitrary one: a resubscription will not drop its copy (it still
                // expires on time).
                if let Some(k) = p.keys().next().cloned() {
                    p.remove(&k);
                }
            }
        }
        p.insert(id.to_vec(), now + lifetime);
    }

    /// Subscribed again after a gap: every pulled copy still live is suspect.
    fn resubscribed(&self) {
        let now = Instant::now();
        let ids: Vec<Vec<u8>> = {
            let mut p = self.pulled.lock().unwrap_or_else(|e| e.into_inner());
            p.drain()
                .filter(|(_, until)| *until > now)
                .map(|(id, _)| id)
                .collect()
        };
        self.push(ids);
    }
}

/// The subscriber thread.
pub(crate) fn run(core: Arc<Core>, client: redis::Client) {
    let channel = invalidation_channel(&core.cfg.namespace);
    let mut backoff = Duration::from_millis(50);
    while !core.stopping() {
        let Ok(mut conn) = client.get_connection_with_timeout(core.cfg.connect_timeout) else {
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
    }
}
