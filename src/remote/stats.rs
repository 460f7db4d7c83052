//! The tier's counters.

use crate::loom::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a tier's counters ([`SessionCache::remote_stats`](crate::SessionCache::remote_stats)).
///
/// Lookups are `get`s that missed locally and `take`s; every lookup ends in exactly one of
/// `hits`, `misses`, `errors`, `timeouts`, `rejected` and `decrypt_failures`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteStats {
    /// Lookups that Redis answered with a valid session.
    pub hits: u64,
    /// Lookups that Redis answered with nothing (or with a session whose lifetime had passed).
    pub misses: u64,
    /// Lookups that failed (connection refused or lost, an error reply), and writes or
    /// removals whose command failed.
    pub errors: u64,
    /// Lookups that gave up after the read budget.
    pub timeouts: u64,
    /// Lookups not sent at all: the circuit breaker was open or the queue was full.
    pub rejected: u64,
    /// Values that did not open or decode: unknown key, tampered with, truncated, stored under
    /// another key or namespace. Each is a miss and never a session.
    pub decrypt_failures: u64,
    /// Sessions that Redis stored (acknowledged `SET`s).
    pub writes: u64,
    /// Sessions that were not stored: the queue was full, Redis refused (e.g. out of memory),
    /// or the connection failed under them.
    pub dropped_writes: u64,
    /// Removals that Redis carried out (`DEL` and the announcement to the other nodes).
    pub removals: u64,
    /// Removals waiting to be retried because Redis could not be reached.
    pub pending_removals: u64,
    /// Removals given up: the session's lifetime bound passed, or the retry list was full.
    pub abandoned_removals: u64,
    /// Removal announcements received from other nodes (each drops the local copy).
    pub invalidations: u64,
    /// Whether the I/O thread holds a working connection now.
    pub connected: bool,
    /// Whether the circuit breaker is open now (lookups are not sent).
    pub breaker_open: bool,
    /// Whether the subscription to other nodes' removal announcements is up now.
    pub subscribed: bool,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) decrypt_failures: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) dropped_writes: AtomicU64,
    pub(crate) removals: AtomicU64,
    pub(crate) pending_removals: AtomicU64,
    pub(crate) abandoned_removals: AtomicU64,
    pub(crate) invalidations: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        // Relaxed: a statistics counter; nothing is published through it.
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        // Relaxed: as in `bump`.
        c.fetch_add(n, Relaxed);
    }

    pub(crate) fn snapshot(
        &self,
        connected: bool,
        breaker_open: bool,
        subscribed: bool,
    ) -> RemoteStats {
        // Relaxed: statistics, read independently (a snapshot may be off by operations in flight).
        let r = |c: &AtomicU64| c.load(Relaxed);
        RemoteStats {
            hits: r(&self.hits),
            misses: r(&self.misses),
            errors: r(&self.errors),
            timeouts: r(&self.timeouts),
            rejected: r(&self.rejected),
            decrypt_failures: r(&self.decrypt_failures),
            writes: r(&self.writes),
            dropped_writes: r(&self.dropped_writes),
            removals: r(&self.removals),
            pending_removals: r(&self.pending_removals),
            abandoned_removals: r(&self.abandoned_removals),
            invalidations: r(&self.invalidations),
            connected,
            breaker_open,
            subscribed,
        }
    }
}
