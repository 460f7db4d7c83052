//! What the cache stores.

use std::time::Duration;

/// A value the cache can hold: a TLS session, a ticket, or anything keyed by bytes.
///
/// ```
/// use session_cache::Session;
/// use std::time::Duration;
///
/// struct Ticket {
///     id: [u8; 32],
///     secret: Vec<u8>,
/// }
///
/// impl Session for Ticket {
///     fn id(&self) -> &[u8] {
///         &self.id
///     }
///     fn timeout(&self) -> Option<Duration> {
///         Some(Duration::from_secs(600)) // this kind outlives the cache's default
///     }
/// }
/// ```
pub trait Session: Send + Sync + 'static {
    /// The bytes that key the cache: a TLS session id, a ticket id, a server name...
    ///
    /// Any length from 1 to the cache's `max_id_len` (default 4096). Must not change while the
    /// session is cached: the cache keeps no copy of it, and compares a lookup's id with the
    /// cached session's own `id()`. One that changes cannot cause memory unsafety, a panic or a
    /// leak (an add hashes and places the session by the one reading it made; nothing relies on
    /// two readings agreeing), but its lookups may then miss, by its old id and by its new one,
    /// and another add of its old id may cache a second session beside it; each is released
    /// when it leaves.
    fn id(&self) -> &[u8];

    /// This session's own lifetime in the cache, counted from when it is added; `None` uses the
    /// cache's timeout.
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// Called when the cache evicts, expires or clears this session, or when
    /// [`SessionCache::remove`](crate::SessionCache::remove) is called with it (OpenSSL's
    /// `not_resumable` flag). Not called on a replacement or a `take`. A no-op by default.
    fn set_not_resumable(&self) {}
}
