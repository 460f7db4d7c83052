//! What the cache reports: statistics and why an entry left.

/// A snapshot of the cache's counters (OpenSSL's `SSL_CTX_sess_*` statistics and a few more).
///
/// Counters are striped per thread and summed when read, so a snapshot taken while other
/// threads work may be off by the operations in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Live entries (`SSL_CTX_sess_number`).
    pub entries: usize,
    /// Lookups (`get`, `get_with`, `take`) that found a live entry (`sess_hit`).
    pub hits: u64,
    /// Internal lookups that found nothing (`sess_miss`).
    pub misses: u64,
    /// Lookups that found an expired entry, which they removed (`sess_timeout`).
    pub timeouts: u64,
    /// Entries evicted to make room (`sess_cache_full`).
    pub cache_full: u64,
    /// Sessions supplied by the `on_miss` handler (`sess_cb_hit`).
    pub cb_hits: u64,
    /// Adds that inserted a new id.
    pub inserts: u64,
    /// Adds that replaced another object under the same id.
    pub replacements: u64,
    /// Entries removed by `remove`, `remove_id` or `take`.
    pub removals: u64,
    /// Entries removed because they expired (by a lookup, the sweep, `flush_expired`, or an
    /// expired entry that `get_or_add` replaced).
    pub expired: u64,
    /// Entries removed by `clear`.
    ///
    /// Every entry leaves through exactly one of `removals`, `cache_full`, `expired` and
    /// `cleared`, so at rest `entries == inserts - removals - cache_full - expired - cleared`.
    pub cleared: u64,
}

/// Why an entry left the cache, as reported to the `on_remove` callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// `remove`, `remove_id` or `take`.
    Removed,
    /// An `add` of another object with the same id.
    Replaced,
    /// Evicted to keep the cache within its capacity.
    Evicted,
    /// Its lifetime ended.
    Expired,
    /// `clear`.
    Cleared,
}

impl RemovalCause {
    /// Whether the cache marks the session not resumable for this cause (OpenSSL does for
    /// eviction, expiry and flushing, and not for a replacement).
    ///
    /// ```
    /// use session_cache::RemovalCause;
    /// assert!(RemovalCause::Evicted.marks_not_resumable());
    /// assert!(!RemovalCause::Replaced.marks_not_resumable());
    /// ```
    pub fn marks_not_resumable(self) -> bool {
        matches!(
            self,
            RemovalCause::Evicted | RemovalCause::Expired | RemovalCause::Cleared
        )
    }
}

/// What a successful [`SessionCache::try_add`](crate::SessionCache::try_add) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Added {
    /// The id was not cached; the session was inserted (and perhaps another evicted).
    Inserted,
    /// Another object was cached under the id and was replaced.
    Replaced,
    /// That very object was already cached: nothing changed but its place among equal expiries
    /// (and its expiry under `UPDATE_TIME`); the reference passed in was dropped.
    AlreadyCached,
}

impl Added {
    /// What `add` returns for this outcome (`SSL_CTX_add_session`'s 1 or 0).
    ///
    /// ```
    /// use session_cache::Added;
    /// assert!(Added::Replaced.changed());
    /// assert!(!Added::AlreadyCached.changed());
    /// ```
    pub fn changed(self) -> bool {
        !matches!(self, Added::AlreadyCached)
    }
}

/// Why [`SessionCache::try_add`](crate::SessionCache::try_add) refused a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddError {
    /// The session's id is empty. (OpenSSL accepts it and then can never evict past it: the
    /// mechanism of CVE-2024-2511.)
    EmptyId,
    /// The session's id is longer than the cache's `max_id_len`.
    IdTooLong {
        /// The id's length.
        len: usize,
        /// The cache's limit.
        max: usize,
    },
}

impl core::fmt::Display for AddError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AddError::EmptyId => f.write_str("session id is empty"),
            AddError::IdTooLong { len, max } => {
                write!(
                    f,
                    "session id is {len} bytes, longer than the limit of {max}"
                )
            }
        }
    }
}

impl std::error::Error for AddError {}
