//! A fleet-wide second tier on Redis (feature `redis`): resume anywhere, single use everywhere.
//!
//! A TLS terminator that runs as a fleet behind a load balancer gives each node its own local
//! [`SessionCache`](crate::SessionCache). With a [`RedisTier`], the nodes also share one Redis
//! server, so a client resumes on whichever node it reaches, and a TLS 1.3 ticket resumes once
//! in the whole fleet (RFC 8446 section 8.1).
//!
//! ```no_run
//! use session_cache::remote::{RedisTier, RemoteSession};
//! use session_cache::{Session, SessionCache};
//! use std::time::Duration;
//!
//! struct Ticket { id: Vec<u8>, secret: Vec<u8> }
//! impl Session for Ticket {
//!     fn id(&self) -> &[u8] { &self.id }
//! }
//! impl RemoteSession for Ticket {
//!     fn encode(&self) -> Vec<u8> { self.secret.clone() }
//!     fn decode(id: &[u8], bytes: &[u8]) -> Option<Self> {
//!         Some(Ticket { id: id.to_vec(), secret: bytes.to_vec() })
//!     }
//! }
//!
//! # fn main() -> Result<(), session_cache::remote::RemoteError> {
//! let tier = RedisTier::builder("redis://127.0.0.1:6379/")
//!     .namespace("edge")
//!     .encryption_key([7u8; 32])
//!     .read_budget(Duration::from_millis(5))
//!     .build()?;
//! let cache: SessionCache<Ticket> = SessionCache::builder().capacity(20_480).remote(tier).build();
//! println!("{:?}", cache.remote_stats());
//! # Ok(()) }
//! ```
//!
//! # What each operation does
//!
//! * **`add`**: as without a tier, then the session is encoded ([`RemoteSession::encode`]),
//!   sealed and queued for Redis with a TTL equal to its lifetime (the session's own timeout
//!   or the cache's). The caller never waits: the I/O thread batches the writes. A write is
//!   dropped (counted in `dropped_writes`) when the queue is full or Redis refuses it; the
//!   TTL is reduced by the time it spent in the queue, so it never exceeds what the session has
//!   left, and a session whose lifetime ran out in the queue is not written.
//! * **`get`**: local first. On a local miss, Redis is asked within the read budget; a value
//!   that opens and decodes is cached locally for the lifetime it has left (the smaller of
//!   Redis's TTL and the expiry sealed in the value) and returned. Then `on_miss`, as without a
//!   tier. A local hit never touches the network.
//! * **`take`**: the local copy is removed, then Redis decides with `GETDEL`. Because a node
//!   sends its writes and takes through one ordered queue, a take right after an add on the
//!   same node finds the write; a take of an id that another node took returns `None` even
//!   where a local copy existed. When Redis cannot confirm (down, slow, breaker open), `take`
//!   returns `None`: a full handshake, never a replay
//!   ([`take_best_effort`](RedisTierBuilder::take_best_effort) changes that).
//! * **`remove` / `remove_id`**: removed locally, then `DEL` in Redis and an announcement on the
//!   namespace's channel, which makes every other node drop the copy it pulled
//!   (see "Removals on other nodes" below). `remove` returns at once; a removal that cannot
//!   reach Redis is retried, before anything else once it can, until it succeeds or the
//!   longest lifetime the session could have has passed.
//! * **`clear`, `flush_expired`, `get_or_add`** act on the local cache only.
//!
//! # Faults
//!
//! A lookup waits at most the read budget (plus the time to send it a reply: microseconds),
//! whatever the server does. A silent, frozen, slow, full or vanished server shows in
//! [`RemoteStats`] (`timeouts`, `errors`, `rejected`, `dropped_writes`) and never in a panic.
//! After a few failures in a row the circuit breaker stops sending lookups for a
//! cooldown (they are misses at once); the I/O thread reconnects by itself when the server is
//! back. Sessions that only a restarted, non-persistent server held are misses afterwards.
//! Run Redis without persistence (`save ""`, `appendonly no`): values are sealed, but a
//! session store has no use for a disk.
//!
//! # Bad data
//!
//! A value sealed with an unknown key, tampered with, truncated, copied from another key or
//! from another namespace, or that [`RemoteSession::decode`] refuses, is a miss counted in
//! `decrypt_failures`: never a panic, never a session. See "Layout and sealing" below.
//!
//! # Threads
//!
//! TLS session callbacks are synchronous, so every call here is synchronous too and may come
//! from any thread. Each tier runs two threads of its own: one owns the command connection, one the subscription to removal announcements. Callers hand operations to
//! the first through a bounded queue and, for lookups, wait for its answer up to the read
//! budget. No async runtime is involved.
//!
//! # Removals on other nodes
//!
//! A removal sends `DEL` and a `PUBLISH` on `<namespace>:invalidate` in one pipeline. Each
//! node's subscriber thread queues the ids announced by other nodes, and the cache applies
//! them at the start of its next lookup (`get`, `get_with`, `contains`): on a local hit, the
//! cost of the tier is that one load and branch. A lookup whose round trip overlapped an
//! announcement drops the copy it just cached; when its subscription starts or was broken, a
//! node drops every local copy it added or pulled from Redis (announcements may have been
//! missed meanwhile), so after a Redis restart it resumes only what Redis still holds. The time a
//! removal takes to reach another node is measured in `docs/remote.md`.
//!
//! # Layout and sealing
//!
//! A session lives under the key `<namespace>:<hex(id)>` (lowercase hex of the id bytes the
//! cache keys by, whatever they hold, e.g. a protocol version followed by a session id). Its
//! value is `version (1) | key id (8) | nonce (24) | XChaCha20-Poly1305 ciphertext + tag`; the
//! plaintext is the expiry (ms since the Unix epoch) followed by [`RemoteSession::encode`];
//! the associated data is the version, the key id and the Redis key, so a value opens only
//! under the key it was written to. The key id selects among the
//! [`encryption_key`](RedisTierBuilder::encryption_key) and the
//! [`previous_key`](RedisTierBuilder::previous_key)s (rotation). Nonces are random: nodes
//! need no coordination.
//!
//! # Minimum Rust version
//!
//! The `redis` crate needs Rust 1.88; the rest of this crate needs 1.80.

mod breaker;
mod config;
mod core;
pub(crate) mod hook;
mod invalidate;
mod keys;
mod seal;
mod sessions;
mod stats;
mod worker;

pub use self::config::{RedisTierBuilder, RemoteError};
pub use self::core::RedisTier;
pub use self::stats::RemoteStats;

use crate::Session;

/// A session that can travel between nodes: it turns into bytes and back.
///
/// The bytes are sealed before they leave the process, so they may hold the
/// session's secrets. `decode` gets the id the session was stored under and must return a
/// session with that id (anything else is refused as bad data); it should return `None` for
/// bytes it cannot parse, never panic.
pub trait RemoteSession: Session + Sized {
    /// The session as bytes.
    fn encode(&self) -> Vec<u8>;
    /// The session stored under `id` as `bytes`, or `None` when they do not make one.
    fn decode(id: &[u8], bytes: &[u8]) -> Option<Self>;
}
