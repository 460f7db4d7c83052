//! A lock-free concurrent cache of TLS sessions, or of any `Arc`'d value keyed by bytes, that
//! keeps OpenSSL's session-cache contract.
//!
//! Servers that resume TLS sessions look them up on every handshake. OpenSSL's internal cache
//! and rustls's default store both take one lock per lookup, which convoys on many cores.
//! `session-cache` keeps the same contract — [`add`](SessionCache::add) /
//! [`remove`](SessionCache::remove) as `SSL_CTX_add_session` / `SSL_CTX_remove_session`, lookup
//! for resumption with a second tier, a size limit, timeouts, flush, statistics and callbacks —
//! with no lock on any path.
//!
//! ```
//! use session_cache::{Session, SessionCache};
//! use std::sync::Arc;
//!
//! struct TlsSession { id: [u8; 32], master_secret: [u8; 48] }
//! impl Session for TlsSession {
//!     fn id(&self) -> &[u8] { &self.id }
//! }
//!
//! let cache = Arc::new(SessionCache::new());
//! let session = Arc::new(TlsSession { id: [1; 32], master_secret: [0; 48] });
//! cache.add(session);
//!
//! let server = Arc::clone(&cache);
//! std::thread::spawn(move || {
//!     // another handshake, another thread: no lock taken
//!     let resumed = server.get(&[1; 32]).expect("cached");
//!     assert_eq!(resumed.master_secret, [0; 48]);
//! })
//! .join()
//! .unwrap();
//! ```
//!
//! # Guarantees
//!
//! - **Consistency.** Every operation on one id is linearizable: it takes effect at one atomic
//!   step between its call and its return. An id is never cached twice; of racing `remove`s and
//!   `take`s of one entry exactly one wins. `clear` and `flush_expired` remove what was there
//!   when they started (and is still there when they reach it); they may miss concurrent adds.
//! - **Progress.** Lock-free: no operation waits for another thread's unfinished step, so a
//!   preempted thread delays no one. Work per operation is bounded (one bucket scan; an
//!   occasional rebuild of that one bucket; while the bucket array doubles, the split of at most
//!   8 more buckets), and memory stays bounded under endless churn of fresh ids.
//! - **Capacity.** Single-threaded, `len() <= capacity` after every `add`, and an add evicts
//!   only what it must: expired entries pay first, and a live entry goes only when the cache is
//!   still over capacity without it. An add never evicts the id it added (not even when a racing
//!   add of the same id replaced its entry meanwhile). Concurrently, the overshoot is at most
//!   the number of threads adding at that moment.
//! - **Reclamation.** Every `Arc` the cache took is released exactly once — on replace, remove,
//!   take, eviction, expiry, `clear`, or when the cache is dropped — through deferred
//!   reclamation (crossbeam-epoch), never while a reader that found it may still use it. A
//!   session the cache unlinked is dropped within 64 further operations of the thread that
//!   unlinked it, whatever they are (lookups included), while no other thread is pinned
//!   (asserted by `tests/release_delay.rs`); [`flush_deferred`] forces it.
//! - **Hashing.** ahash with a random seed per cache: chosen ids cannot pile into one bucket.
//! - **Callbacks** run after the operation took effect, never while the thread is pinned. A
//!   panicking callback cannot corrupt the cache: the other callbacks of the operation still run,
//!   then the panic continues in the caller.
//! - **Bad input** gets an answer, never a panic: empty or over-long ids are refused
//!   ([`try_add`](SessionCache::try_add) says which) and are misses for lookups; a capacity of 0
//!   means unbounded; a clock that goes backwards is treated as standing still.
//!
//! # Where it differs from OpenSSL 3.0
//!
//! Capacity N holds N entries (OpenSSL 3.0 holds N-1); empty ids are refused (OpenSSL accepts
//! them and can then never evict past one: CVE-2024-2511); the default timeout is 300 s, as
//! OpenSSL's manual says (its 3.0 code uses 7200 s); the eviction victim is the soonest-expiring
//! entry of a sample once the table has more than 16 buckets; `on_remove` also reports
//! replacements and takes. The full comparison, with what the cache mirrors and why it differs,
//! is in the repository's `docs/design.md`.

#![warn(missing_docs)]
// Doctests are compiled with warnings as errors, except that an example may declare what it
// does not use (as tokio does).
#![doc(test(attr(deny(warnings), allow(dead_code, unused_variables))))]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The graveyard build's guard is an empty token: the `drop`s that end a pin early elsewhere
// are kept for the real build, where they unpin.
#![cfg_attr(session_cache_graveyard, allow(clippy::drop_non_drop))]

mod builder;
mod cache;
mod clock;
#[cfg(any(feature = "rustls", feature = "openssl", session_cache_loom))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "rustls", feature = "openssl"))))]
pub mod integrations;
mod loom;
mod mode;
mod policy;
mod raw;
mod reclaim;
// The inbox of deferred releases, exported (hidden) for the loom models in loom-tests/inbox.rs.
#[cfg(session_cache_loom)]
#[doc(hidden)]
pub use reclaim::inbox::Inbox;
#[cfg(feature = "redis")]
pub mod remote;
mod session;
mod stats;
mod tier;
#[cfg(feature = "work-stats")]
#[doc(hidden)]
pub mod work;
/// The no-op form of the `work-stats` counters.
#[cfg(not(feature = "work-stats"))]
mod work {
    #[inline(always)]
    pub(crate) fn begin() {}
    #[inline(always)]
    pub(crate) fn slots(_: usize) {}
    #[inline(always)]
    pub(crate) fn block_built() {}
    #[inline(always)]
    pub(crate) fn freed(_: usize) {}
}

pub use builder::Builder;
pub use cache::SessionCache;
pub use clock::{Clock, ManualClock, MonotonicClock};
pub use mode::CacheMode;
pub use reclaim::flush_deferred;
pub use session::Session;
pub use stats::{AddError, Added, RemovalCause, Stats};

/// The README's examples, compiled and run as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
