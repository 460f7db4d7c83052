//! rustls 0.23 session stores backed by [`SessionCache`].
//!
//! * [`RustlsServerStore`] implements [`StoresServerSessions`]: set it as
//!   `ServerConfig::session_storage`. rustls keys TLS 1.2 sessions by their session id and, when no
//!   ticketer is configured, TLS 1.3 resumption by a random 32-byte stateful ticket. TLS 1.3 tickets
//!   are looked up with [`StoresServerSessions::take`], which maps to [`SessionCache::take`]: exactly
//!   one of any number of racing takes of one ticket gets it, so a ticket resumes at most once.
//! * [`RustlsClientStore`] implements [`ClientSessionStore`]: set it as
//!   `ClientConfig::resumption = Resumption::store(Arc::new(store))`.
//!
//! Both keep the cache's modes and timeouts (see each type) and expose its [`Stats`].
//!
//! ```no_run
//! # use std::sync::Arc;
//! use session_cache::integrations::rustls::{RustlsClientStore, RustlsServerStore};
//! # fn cfg(mut server: rustls::ServerConfig, mut client: rustls::ClientConfig) {
//! let store = Arc::new(RustlsServerStore::new());
//! server.session_storage = store.clone();
//! client.resumption = rustls::client::Resumption::store(Arc::new(RustlsClientStore::new(256)));
//! println!("{:?}", store.stats());
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::server::StoresServerSessions;
use rustls::NamedGroup;

use super::client_state::{live_entry, TicketRing};
use crate::loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::{CacheMode, Session, SessionCache, Stats};

// ---------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------

/// One server-side session as rustls hands it to the store: its random id and its encoded value.
///
/// The value holds the session's master secret; it is overwritten with zeros when the last
/// reference goes away (best effort: freed memory is not otherwise scrubbed).
pub struct RustlsSession {
    id: Vec<u8>,
    value: Vec<u8>,
}

impl RustlsSession {
    /// Makes a session from rustls's key and encoded value.
    ///
    /// ```
    /// use session_cache::integrations::rustls::RustlsSession;
    /// use session_cache::Session;
    ///
    /// let s = RustlsSession::new(b"id".to_vec(), b"value".to_vec());
    /// assert_eq!((s.id(), s.value()), (&b"id"[..], &b"value"[..]));
    /// ```
    pub fn new(id: Vec<u8>, value: Vec<u8>) -> Self {
        Self { id, value }
    }

    /// The encoded session (rustls's `ServerSessionValue` encoding).
    ///
    /// ```
    /// use session_cache::integrations::rustls::RustlsSession;
    ///
    /// assert_eq!(RustlsSession::new(vec![1], vec![2, 3]).value(), &[2, 3]);
    /// ```
    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

impl Session for RustlsSession {
    fn id(&self) -> &[u8] {
        &self.id
    }
}

impl Drop for RustlsSession {
    fn drop(&mut self) {
        self.value.fill(0);
        std::hint::black_box(&self.value);
    }
}

impl fmt::Debug for RustlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value is secret; show only sizes.
        f.debug_struct("RustlsSession")
            .field("id_len", &self.id.len())
            .field("value_len", &self.value.len())
            .finish()
    }
}

/// rustls's [`StoresServerSessions`] on top of a [`SessionCache`].
///
/// Modes (read on every call, so [`SessionCache::set_mode`] takes effect at once):
/// * without [`CacheMode::SERVER`] nothing is stored or found (`can_cache` is false, so rustls
///   issues no session id and no stateful ticket);
/// * [`CacheMode::NO_INTERNAL_STORE`]: `put` stores nothing and returns false, `can_cache` is false;
/// * [`CacheMode::NO_INTERNAL_LOOKUP`]: `get` skips the table and asks only the cache's `on_miss`
///   source (as [`SessionCache::get`] does); `take` finds nothing, because single use cannot be
///   guaranteed for sessions that come from an external source.
///
/// Timeouts and capacity are the cache's (default 300 s, 20 480 sessions). Queried keys come from
/// the network: they are only ever used as lookup keys, never stored (an empty key finds nothing).
#[derive(Debug, Default)]
pub struct RustlsServerStore {
    cache: SessionCache<RustlsSession>,
}

impl RustlsServerStore {
    /// A store over a default cache ([`SessionCache::new`]: mode `SERVER`, 300 s, 20 480 sessions).
    ///
    /// ```
    /// use rustls::server::StoresServerSessions;
    /// use session_cache::integrations::rustls::RustlsServerStore;
    ///
    /// let store = RustlsServerStore::new();
    /// assert!(store.put(b"session id".to_vec(), b"encoded value".to_vec()));
    /// assert_eq!(store.get(b"session id").as_deref(), Some(&b"encoded value"[..]));
    /// assert_eq!(store.take(b"session id").as_deref(), Some(&b"encoded value"[..]));
    /// assert!(store.take(b"session id").is_none(), "single use");
    /// assert_eq!(store.stats().hits, 2);
    /// ```
    pub fn new() -> Self {
        Self::with_cache(SessionCache::new())
    }

    /// A store over a cache configured with [`SessionCache::builder`].
    ///
    /// ```
    /// use session_cache::integrations::rustls::RustlsServerStore;
    /// use session_cache::SessionCache;
    /// use std::time::Duration;
    ///
    /// let store = RustlsServerStore::with_cache(
    ///     SessionCache::builder()
    ///         .capacity(100_000)
    ///         .timeout(Duration::from_secs(3600))
    ///         .build(),
    /// );
    /// assert_eq!(store.cache().capacity(), 100_000);
    /// ```
    pub fn with_cache(cache: SessionCache<RustlsSession>) -> Self {
        Self { cache }
    }

    /// The underlying cache (stats, mode, timeout, capacity, flushing).
    ///
    /// ```
    /// use session_cache::integrations::rustls::RustlsServerStore;
    ///
    /// let store = RustlsServerStore::new();
    /// assert_eq!(store.cache().flush_expired(), 0);
    /// ```
    pub fn cache(&self) -> &SessionCache<RustlsSession> {
        &self.cache
    }

    /// Shorthand for `self.cache().stats()`.
    ///
    /// ```
    /// use session_cache::integrations::rustls::RustlsServerStore;
    ///
    /// assert_eq!(RustlsServerStore::new().stats().entries, 0);
    /// ```
    pub fn stats(&self) -> Stats {
        self.cache.stats()
    }
}

impl StoresServerSessions for RustlsServerStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mode = self.cache.mode();
        if !mode.contains(CacheMode::SERVER) || mode.contains(CacheMode::NO_INTERNAL_STORE) {
            return false;
        }
        // `add` is false only for a rejected id here (the Arc is fresh, so never "identical").
        self.cache.add(Arc::new(RustlsSession::new(key, value)))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        if key.is_empty() || !self.cache.mode().contains(CacheMode::SERVER) {
            return None;
        }
        self.cache.get(key).map(|s| s.value.clone())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mode = self.cache.mode();
        if key.is_empty()
            || !mode.contains(CacheMode::SERVER)
            || mode.contains(CacheMode::NO_INTERNAL_LOOKUP)
        {
            return None;
        }
        // SessionCache::take removes and returns: of racing takes exactly one wins.
        self.cache.take(key).map(|s| s.value.clone())
    }

    fn can_cache(&self) -> bool {
        let mode = self.cache.mode();
        mode.contains(CacheMode::SERVER) && !mode.contains(CacheMode::NO_INTERNAL_STORE)
    }
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// What [`RustlsClientStore`] remembers about one server; one cache entry per server name.
///
/// # Lock-freedom
/// The entry itself never changes identity while cached; its parts are updated in place with
/// atomic operations, so no operation takes a lock:
/// * the key-exchange hint is an `AtomicU32`;
/// * the TLS 1.2 session is an [`arc_swap::ArcSwapOption`]: replaced as a whole, read by cloning
///   the value under a short-lived guard, and the replaced value is dropped by the replacing
///   thread at once (or by the last reader that was copying it at that instant);
/// * the TLS 1.3 tickets are a ring of take-once slots filled round-robin from an insert counter.
///   A ticket is owned by exactly one slot and moves only by `swap`, so it is handed out at most
///   once even when takes and inserts race. Inserting into a full ring drops the oldest ticket.
///   `take` scans from the newest slot backwards. (Model-checked with loom:
///   `loom-tests/ticket_ring.rs`.)
///
/// # Retirement
/// When the cache evicts, expires or clears the entry (or `remove` is called with it), it is
/// retired: its TLS 1.2 session and tickets are dropped before that call returns, and a write
/// that races the retirement is undone by the writer (it looks at the retired flag again after
/// writing, `src/integrations/client_state.rs`), so no secret stays behind in a retired entry. The
/// key-exchange hint (a group name, not a secret) stays until the entry is freed.
///
/// Creating the entry for a new server is `get` (miss) then `SessionCache::get_or_add`, which never
/// replaces a live entry: threads that create one server's entry at the same moment all get the
/// same entry. A writer that meets a retired entry looks again with `get_or_add`, never with an
/// `add` that could replace a live entry another thread has just made and written to; so no write
/// to a live entry is lost.
pub struct ServerState {
    key: Box<[u8]>,
    /// 0 = no hint, else `HINT_SET | u16::from(group)`.
    kx_hint: AtomicU32,
    tls12: ArcSwapOption<Tls12ClientSessionValue>,
    /// The tickets; its retired flag is the entry's.
    tickets: TicketRing<Tls13ClientSessionValue>,
}

const HINT_SET: u32 = 1 << 16;

impl ServerState {
    fn new(key: Vec<u8>, tickets: usize) -> Self {
        Self {
            key: key.into_boxed_slice(),
            kx_hint: AtomicU32::new(0),
            tls12: ArcSwapOption::empty(),
            tickets: TicketRing::new(tickets),
        }
    }

    fn retired(&self) -> bool {
        self.tickets.is_retired()
    }

    fn kx_hint(&self) -> Option<NamedGroup> {
        // Relaxed: a plain value with nothing else published through it.
        let v = self.kx_hint.load(Ordering::Relaxed);
        (v & HINT_SET != 0).then(|| NamedGroup::from(v as u16))
    }

    fn set_kx_hint(&self, group: NamedGroup) {
        // Relaxed: see kx_hint.
        self.kx_hint
            .store(HINT_SET | u32::from(u16::from(group)), Ordering::Relaxed);
    }

    fn tls12(&self) -> Option<Tls12ClientSessionValue> {
        self.tls12.load().as_deref().cloned()
    }

    fn replace_tls12(&self, value: Option<Tls12ClientSessionValue>) {
        // The old value is dropped here (arc-swap pays readers' debts before handing it back).
        self.tls12.store(value.map(Arc::new));
        // The second look of `client_state` (module docs): `store` swaps one word, and `retire`
        // empties the slot by swap after setting the flag, so either its swap takes our value
        // or ours synchronizes with it and the flag is seen here.
        if self.tickets.is_retired() {
            self.tls12.store(None);
        }
    }

    fn insert_ticket(&self, value: Tls13ClientSessionValue) {
        // The displaced (oldest) ticket, or `value` itself on a retired entry: dropped now.
        drop(self.tickets.insert(value));
    }

    fn take_ticket(&self) -> Option<Tls13ClientSessionValue> {
        self.tickets.take()
    }

    fn retire(&self) {
        // The flag first (inside `retire`), then the TLS 1.2 slot: see `replace_tls12`.
        self.tickets.retire();
        self.tls12.store(None);
    }
}

impl Session for ServerState {
    fn id(&self) -> &[u8] {
        &self.key
    }

    /// Evicted, expired or cleared: forget the secrets now rather than when the last user lets go.
    fn set_not_resumable(&self) {
        self.retire();
    }
}

impl fmt::Debug for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sessions and tickets are secret; show only the shape.
        f.debug_struct("ServerState")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("kx_hint", &self.kx_hint())
            .field("ticket_slots", &self.tickets.len())
            .finish_non_exhaustive()
    }
}

/// Counters specific to the client store (the cache's [`Stats`] also count the lookups that the
/// store's writes make to find a server's entry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStoreStats {
    /// `tls12_session` calls that returned a session.
    pub tls12_hits: u64,
    /// `tls12_session` calls that found none.
    pub tls12_misses: u64,
    /// `take_tls13_ticket` calls that returned a ticket.
    pub tickets_taken: u64,
    /// `take_tls13_ticket` calls that found none.
    pub ticket_misses: u64,
    /// Tickets accepted by `insert_tls13_ticket`.
    pub tickets_inserted: u64,
}

/// rustls's [`ClientSessionStore`] on top of a [`SessionCache`], lock-free.
///
/// One cache entry ([`ServerState`]) per server name holds the key-exchange hint, the latest
/// TLS 1.2 session and up to `tickets_per_server` TLS 1.3 tickets (newest first, each at most once;
/// see [`ServerState`] for how this stays lock-free). The number of servers is bounded by the
/// cache's capacity; the whole entry of a server expires `timeout` after it was created (the
/// tickets' own lifetimes are checked by rustls too).
///
/// Modes: without [`CacheMode::CLIENT`] nothing is stored or found; [`CacheMode::NO_INTERNAL_STORE`]
/// drops every write; [`CacheMode::NO_INTERNAL_LOOKUP`] makes every lookup miss the table (only the
/// cache's `on_miss` source is asked), so reads find nothing and each write starts a fresh entry.
pub struct RustlsClientStore {
    cache: SessionCache<ServerState>,
    tickets_per_server: usize,
    tls12_hits: AtomicU64,
    tls12_misses: AtomicU64,
    tickets_taken: AtomicU64,
    ticket_misses: AtomicU64,
    tickets_inserted: AtomicU64,
}

impl RustlsClientStore {
    /// TLS 1.3 tickets kept per server by [`RustlsClientStore::new`] (rustls's own store keeps 8).
    pub const DEFAULT_TICKETS_PER_SERVER: usize = 8;

    /// A store for up to `max_servers` servers (0 = unbounded), 8 tickets each, mode `CLIENT`, the
    /// cache's default timeout (300 s).
    ///
    /// ```
    /// use session_cache::integrations::rustls::RustlsClientStore;
    ///
    /// let store = RustlsClientStore::new(256);
    /// assert_eq!(store.cache().capacity(), 256);
    /// assert_eq!(store.tickets_per_server(), RustlsClientStore::DEFAULT_TICKETS_PER_SERVER);
    /// assert_eq!(store.client_stats().tickets_taken, 0);
    /// assert_eq!(store.stats().entries, 0);
    /// ```
    pub fn new(max_servers: usize) -> Self {
        Self::with_cache(
            SessionCache::builder()
                .capacity(max_servers)
                .mode(CacheMode::CLIENT)
                .build(),
            Self::DEFAULT_TICKETS_PER_SERVER,
        )
    }

    /// A store over a cache you configured (its mode must include [`CacheMode::CLIENT`]).
    ///
    /// ```
    /// use session_cache::integrations::rustls::RustlsClientStore;
    /// use session_cache::{CacheMode, SessionCache};
    ///
    /// let cache = SessionCache::builder().capacity(64).mode(CacheMode::CLIENT).build();
    /// let store = RustlsClientStore::with_cache(cache, 4);
    /// assert_eq!(store.tickets_per_server(), 4);
    /// ```
    pub fn with_cache(cache: SessionCache<ServerState>, tickets_per_server: usize) -> Self {
        Self {
            cache,
            tickets_per_server,
            tls12_hits: AtomicU64::new(0),
            tls12_misses: AtomicU64::new(0),
            tickets_taken: AtomicU64::new(0),
            ticket_misses: AtomicU64::new(0),
            tickets_inserted: AtomicU64::new(0),
        }
    }

    /// The underlying cache (one entry per server).
    ///
    /// ```
    /// use session_cache::integrations::rustls::RustlsClientStore;
    ///
    /// assert!(RustlsClientStore::new(8).cache().is_empty());
    /// ```
    pub fn cache(&self) -> &SessionCache<ServerState> {
        &self.cache
    }

    /// The TLS 1.3 tickets kept per server.
    ///
    /// ```
    /// use session_cache::integrations::rustls::RustlsClientStore;
    ///
    /// assert_eq!(RustlsClientStore::new(8).tickets_per_server(), 8);
    /// ```
    pub fn tickets_per_server(&self) -> usize {
        self.tickets_per_server
    }

    /// Shorthand for `self.cache().stats()`.
    ///
    /// ```
    /// use session_cache::integrations::rustls::RustlsClientStore;
    ///
    /// assert_eq!(RustlsClientStore::new(8).stats().entries, 0);
    /// ```
    pub fn stats(&self) -> Stats {
        self.cache.stats()
    }

    /// What the store handed out and took in.
    ///
    /// ```
    /// use session_cache::integrations::rustls::RustlsClientStore;
    ///
    /// let s = RustlsClientStore::new(8).client_stats();
    /// assert_eq!((s.tls12_hits, s.tickets_inserted), (0, 0));
    /// ```
    pub fn client_stats(&self) -> ClientStoreStats {
        // Relaxed: independent statistics counters.
        ClientStoreStats {
            tls12_hits: self.tls12_hits.load(Ordering::Relaxed),
            tls12_misses: self.tls12_misses.load(Ordering::Relaxed),
            tickets_taken: self.tickets_taken.load(Ordering::Relaxed),
            ticket_misses: self.ticket_misses.load(Ordering::Relaxed),
            tickets_inserted: self.tickets_inserted.load(Ordering::Relaxed),
        }
    }

    fn for_read(&self, name: &ServerName<'_>) -> Option<Arc<ServerState>> {
        if !self.cache.mode().contains(CacheMode::CLIENT) {
            return None;
        }
        self.cache.get(&server_key(name))
    }

    fn for_write(&self, name: &ServerName<'_>) -> Option<Arc<ServerState>> {
        let mode = self.cache.mode();
        if !mode.contains(CacheMode::CLIENT) || mode.contains(CacheMode::NO_INTERNAL_STORE) {
            return None;
        }
        let key = server_key(name);
        let make = || Arc::new(ServerState::new(key.clone(), self.tickets_per_server));
        live_entry(&self.cache, &key, make, ServerState::retired)
    }
}

impl Default for RustlsClientStore {
    /// 256 servers, as rustls's `ClientSessionMemoryCache::new(256 * 8)` would hold.
    fn default() -> Self {
        Self::new(256)
    }
}

impl fmt::Debug for RustlsClientStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsClientStore")
            .field("servers", &self.cache.len())
            .field("capacity", &self.cache.capacity())
            .field("tickets_per_server", &self.tickets_per_server)
            .finish_non_exhaustive()
    }
}

/// The cache key of a server name. DNS names compare case-insensitively in rustls, so they are
/// lower-cased; a one-byte prefix keeps DNS names and IP addresses apart.
fn server_key(name: &ServerName<'_>) -> Vec<u8> {
    let (tag, text) = match name {
        ServerName::DnsName(d) => (b'd', d.as_ref().to_ascii_lowercase()),
        ServerName::IpAddress(_) => (b'i', name.to_str().into_owned()),
        _ => (b'o', name.to_str().into_owned()),
    };
    let mut key = Vec::with_capacity(1 + text.len());
    key.push(tag);
    key.extend_from_slice(text.as_bytes());
    key
}

impl ClientSessionStore for RustlsClientStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        if let Some(s) = self.for_write(&server_name) {
            s.set_kx_hint(group);
        }
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.for_read(server_name)?.kx_hint()
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        if let Some(s) = self.for_write(&server_name) {
            s.replace_tls12(Some(value));
        }
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        let found = self.for_read(server_name).and_then(|s| s.tls12());
        let counter = if found.is_some() {
            &self.tls12_hits
        } else {
            &self.tls12_misses
        };
        // Relaxed: statistics counter.
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        if let Some(s) = self.for_read(server_name) {
            s.replace_tls12(None);
        }
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        if self.tickets_per_server == 0 {
            return;
        }
        if let Some(s) = self.for_write(&server_name) {
            s.insert_ticket(value);
            // Relaxed: statistics counter.
            self.tickets_inserted.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let found = self.for_read(server_name).and_then(|s| s.take_ticket());
        let counter = if found.is_some() {
            &self.tickets_taken
        } else {
            &self.ticket_misses
        };
        // Relaxed: statistics counter.
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }
}
