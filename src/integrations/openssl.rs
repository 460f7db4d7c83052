//! session-cache as OpenSSL's external session cache (the `openssl` crate, system libssl).
//!
//! [`OpensslExternalCache::install`] turns OpenSSL's own cache off for lookups and stores
//! (`SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL`), switches the server to stateful tickets
//! (`SSL_OP_NO_TICKET`) and registers three callbacks:
//!
//! * new session → [`SessionCache::add`], keyed by [`session_key`] (protocol version and session
//!   id), living as long as the session's own timeout ([`SslSessionRef::timeout`]);
//! * get session → [`SessionCache::get`] for TLS ≤ 1.2 session ids (a session resumes as often as the
//!   client likes until it expires) and [`SessionCache::take`] for TLS 1.3 stateful tickets (a
//!   ticket resumes at most once, even when two connections race with it);
//! * remove session → [`SessionCache::remove_id`] (OpenSSL removes sessions after fatal alerts,
//!   unclean closes and when it finds one expired).
//!
//! # Keys
//!
//! OpenSSL keys its cache by (protocol version, session id), and so does the adapter: a lookup
//! made by a TLS 1.3 connection never finds, and so never takes, a TLS 1.2 session with the same
//! id (a TLS 1.2 session id travels in clear in the ServerHello, so without the version anyone who
//! saw it could send it as a TLS 1.3 PSK identity and destroy the session). The layout, the only
//! place it is defined, is [`session_key`]: one byte of protocol version, then the session id.
//!
//! # Which sessions OpenSSL is handed
//!
//! OpenSSL must never be handed a session of another `SslContext`. The adapter makes that hold
//! whatever safe code does with its cache (adding another adapter's sessions, an `on_miss` that
//! returns them, a context freed and a new one allocated at its address):
//!
//! * every [`OpensslSession`] carries an owner stamp. The new-session callback stamps the
//!   sessions it makes with its adapter; a session decoded from DER (a second tier shared by
//!   several servers) carries none and is stamped by the first adapter that hands it to OpenSSL;
//! * the get-session callback hands OpenSSL only sessions stamped with its own adapter (or
//!   unstamped, which it then stamps); any other session is a miss;
//! * a stamp is a counted reference to its adapter's identity, so no later adapter can have the
//!   same one, and an adapter holds a counted reference to the one context it was installed on,
//!   so no other context can pass for it (not even one allocated where a freed one was).
//!
//! # Panics in callbacks
//!
//! The cache's `on_remove` and `on_miss` callbacks run inside OpenSSL's callbacks (an add that
//! evicts, a remove, a lookup that misses). A panic must not unwind through libssl (undefined
//! behaviour on older Rust, an abort of the whole process on current Rust), so each of the
//! three callbacks catches it at the boundary and answers OpenSSL as if nothing had been
//! stored, removed or found: the new session is not stored (or, if the panic came from an
//! eviction after the add, stays stored: the cache is consistent after a panicking callback),
//! the lookup is a miss and the connection makes a full handshake. The panic is reported by the
//! panic hook as usual (it prints the message) and counted in
//! [`OpensslExternalCache::callback_panics`].
//!
//! With client certificate verification, also set a session id context
//! (`SslContextBuilder::set_session_id_context`), as OpenSSL requires for resumption.
//!
//! Why `SSL_OP_NO_TICKET`: with OpenSSL's default stateless tickets, TLS ≤ 1.2 sessions never reach
//! the cache, and every TLS 1.3 ticket would still be handed to the new-session callback and stored
//! although OpenSSL never looks it up. With it, every resumption goes through the cache.
//!
//! ```no_run
//! use openssl::ssl::{SslAcceptor, SslMethod};
//! use session_cache::integrations::openssl::OpensslExternalCache;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = OpensslExternalCache::new();
//! let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
//! // ... certificate and key ...
//! cache.install(&mut acceptor)?;
//! let acceptor = acceptor.build();
//! # let _ = acceptor;
//! println!("{:?}", cache.stats());
//! # Ok(()) }
//! ```

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ssl::{
    SslContext, SslContextBuilder, SslContextRef, SslOptions, SslRef, SslSession,
    SslSessionCacheMode, SslSessionRef, SslVersion,
};

use crate::loom::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use crate::{CacheMode, Session, SessionCache, Stats};

// The fleet tier: sessions travel as DER.
#[cfg(feature = "redis")]
mod remote;

/// The identity of one adapter (shared by its clones). Only its address is ever used; every
/// stamp holds a counted reference, so the address cannot be reused while a stamp exists.
#[derive(Debug)]
struct Owner;

/// The protocol versions the adapter caches, with their key byte: the low byte of the version's
/// wire number (0x0300 SSL 3.0 … 0x0304 TLS 1.3, 0xFEFF DTLS 1.0, 0xFEFD DTLS 1.2), which is
/// distinct for every version OpenSSL names.
const VERSIONS: [(SslVersion, u8); 7] = [
    (SslVersion::SSL3, 0x00),
    (SslVersion::TLS1, 0x01),
    (SslVersion::TLS1_1, 0x02),
    (SslVersion::TLS1_2, 0x03),
    (SslVersion::TLS1_3, 0x04),
    (SslVersion::DTLS1, 0xFF),
    (SslVersion::DTLS1_2, 0xFD),
];

/// The cache key of an OpenSSL session: OpenSSL's own key, (protocol version, session id).
///
/// Layout: one byte for the version (the low byte of its wire number: `0x03` TLS 1.2, `0x04`
/// TLS 1.3, `0x00`-`0x02` SSL 3.0 to TLS 1.1, `0xFF` DTLS 1.0, `0xFD` DTLS 1.2), then the session
/// id as OpenSSL reports it (1 to 32 bytes). A second tier that stores sessions under a namespace
/// stores these bytes after it. `None` for an empty id or a version OpenSSL does not name
/// ([`SslVersion`] has no other constants): such sessions are neither stored nor found.
///
/// ```
/// use openssl::ssl::SslVersion;
/// use session_cache::integrations::openssl::session_key;
///
/// assert_eq!(session_key(SslVersion::TLS1_2, b"id"), Some(vec![0x03, b'i', b'd']));
/// assert_eq!(session_key(SslVersion::TLS1_3, b"id"), Some(vec![0x04, b'i', b'd']));
/// assert_eq!(session_key(SslVersion::TLS1_3, b""), None);
/// ```
pub fn session_key(version: SslVersion, id: &[u8]) -> Option<Vec<u8>> {
    if id.is_empty() {
        return None;
    }
    let (_, tag) = VERSIONS.iter().find(|(v, _)| *v == version)?;
    let mut key = Vec::with_capacity(1 + id.len());
    key.push(*tag);
    key.extend_from_slice(id);
    Some(key)
}

/// A session stored for OpenSSL: the `SslSession` (one reference), its [`session_key`] and the
/// stamp of the adapter it belongs to (see the module docs: an adapter hands OpenSSL only its own
/// sessions, and adopts unstamped ones).
///
/// Safe code can only get these from an adapter's cache; the new-session callback makes them,
/// stamped. Sessions decoded from DER (by a second tier, with a crate-internal `from_der`) are
/// unstamped until an adapter serves one.
pub struct OpensslSession {
    key: Vec<u8>,
    timeout: Duration,
    session: SslSession,
    /// Null, or `Arc::into_raw` of the owning adapter's identity (a counted reference, released
    /// in `Drop`). Set at most once.
    owner: AtomicPtr<Owner>,
}

impl OpensslSession {
    /// An unstamped session; `None` when it has no key ([`session_key`]).
    fn new(session: SslSession) -> Option<Self> {
        Some(Self {
            key: session_key(session.protocol_version(), session.id())?,
            // A negative timeout would be a libssl bug; treat it as already expired.
            timeout: Duration::from_secs(u64::try_from(session.timeout()).unwrap_or(0)),
            session,
            owner: AtomicPtr::new(ptr::null_mut()),
        })
    }

    /// A session made by the context of `owner`'s adapter, stamped with it.
    fn owned_by(session: SslSession, owner: &Arc<Owner>) -> Option<Self> {
        let s = Self::new(session)?;
        // Cannot fail: `s` is unstamped and not shared yet.
        let adopted = s.adopt(owner);
        debug_assert!(adopted);
        Some(s)
    }

    /// Decodes a session from DER (`d2i_SSL_SESSION`), as a second tier that shares sessions
    /// between servers stores them ([`OpensslSession::to_der`]). The result belongs to no
    /// context: the first adapter whose get-session callback serves it (from its cache or its
    /// `on_miss`) adopts it, and no other adapter will ever hand it to OpenSSL. Its key is
    /// [`session_key`] of the decoded version and id, its lifetime the decoded timeout.
    ///
    /// `None` for bytes that are not a DER session, or a session without a key (empty id,
    /// unnamed version).
    #[allow(dead_code)] // the API of the fleet tier (a feature of its own); tested here
    pub(crate) fn from_der(der: &[u8]) -> Option<Self> {
        Self::new(SslSession::from_der(der).ok()?)
    }

    /// The session in DER (`i2d_SSL_SESSION`), what [`OpensslSession::from_der`] reads back.
    /// The encoding holds the master secret: store it only where the sessions themselves may be.
    #[allow(dead_code)] // the API of the fleet tier (a feature of its own); tested here
    pub(crate) fn to_der(&self) -> Result<Vec<u8>, ErrorStack> {
        self.session.to_der()
    }

    /// True if the session may be handed to the context of `owner`'s adapter: it is stamped with
    /// `owner`, or was unstamped and is stamped with `owner` from now on. False if another
    /// adapter's stamp is on it.
    fn adopt(&self, owner: &Arc<Owner>) -> bool {
        let me = Arc::as_ptr(owner).cast_mut();
        // Relaxed: only the address is compared; nothing is read through it, and the stamp that
        // stored it is an RMW, so a non-null value seen here is final.
        let seen = self.owner.load(Ordering::Relaxed);
        if !seen.is_null() {
            return seen == me;
        }
        let mine = Arc::into_raw(Arc::clone(owner)).cast_mut();
        // AcqRel/Acquire: the CAS decides the stamp once; the reference it stores is released
        // only in `Drop` (exclusive access), so no ordering beyond the CAS's atomicity is needed,
        // and this one is simply the strong default for a one-time publication.
        match self.owner.compare_exchange(
            ptr::null_mut(),
            mine,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(other) => {
                // SAFETY: `mine` came from `Arc::into_raw` just above and was not stored (the CAS
                // failed), so this is the one release of that reference.
                drop(unsafe { Arc::from_raw(mine) });
                other == me
            }
        }
    }

    /// The OpenSSL session.
    ///
    /// ```no_run
    /// use session_cache::integrations::openssl::OpensslExternalCache;
    ///
    /// let cache = OpensslExternalCache::new();
    /// // ... after handshakes: every cached session, with its id and OpenSSL handle.
    /// if let Some(s) = cache.cache().get(&[0x03, 1, 2, 3]) {
    ///     assert_eq!(s.session_id(), s.session().id());
    /// }
    /// ```
    pub fn session(&self) -> &SslSessionRef {
        &self.session
    }

    /// The session id (the key without its version byte).
    ///
    /// ```no_run
    /// use session_cache::integrations::openssl::OpensslExternalCache;
    ///
    /// let cache = OpensslExternalCache::new();
    /// // ... after handshakes: every cached session, with its id and OpenSSL handle.
    /// if let Some(s) = cache.cache().get(&[0x03, 1, 2, 3]) {
    ///     assert_eq!(s.session_id(), s.session().id());
    /// }
    /// ```
    pub fn session_id(&self) -> &[u8] {
        &self.key[1..]
    }
}

impl Drop for OpensslSession {
    fn drop(&mut self) {
        // Relaxed: `&mut self`, no other thread can reach the stamp.
        let owner = self.owner.load(Ordering::Relaxed);
        if !owner.is_null() {
            // SAFETY: a non-null stamp is a reference made by `Arc::into_raw` in `adopt` and
            // stored by its successful CAS; it is released only here, once.
            drop(unsafe { Arc::from_raw(owner) });
        }
    }
}

impl Session for OpensslSession {
    /// The cache key, [`session_key`]: version byte, then session id.
    fn id(&self) -> &[u8] {
        &self.key
    }

    /// The session's own lifetime (`SSL_SESSION_get_timeout`, 7200 s by default for a context).
    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }
}

impl fmt::Debug for OpensslSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpensslSession")
            .field("id_len", &self.session_id().len())
            .field("timeout", &self.timeout)
            .field("protocol", &self.session.protocol_version())
            .finish_non_exhaustive()
    }
}

/// Why [`OpensslExternalCache::install`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallError {
    /// This adapter already serves another `SslContext`. OpenSSL must never be handed a session
    /// of a different context; make one adapter per context.
    OtherContext,
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherContext => {
                f.write_str("this session cache is already installed on another SslContext")
            }
        }
    }
}

impl std::error::Error for InstallError {}

/// Makes a [`SessionCache`] the external session cache of one OpenSSL server context.
///
/// Cheap to clone (the clones share the cache). The cache's modes apply on top of OpenSSL's:
/// without [`CacheMode::SERVER`] or with [`CacheMode::NO_INTERNAL_STORE`] new sessions are not
/// stored; [`CacheMode::NO_INTERNAL_LOOKUP`] makes lookups skip the table as in
/// [`SessionCache::get`] (and TLS 1.3 tickets find nothing, since their single use cannot be
/// guaranteed by an external source).
#[derive(Clone)]
pub struct OpensslExternalCache {
    cache: Arc<SessionCache<OpensslSession>>,
    /// This adapter's identity: the stamp of the sessions it may hand to OpenSSL.
    owner: Arc<Owner>,
    /// The context this adapter is installed on (a counted reference: while it is held, no other
    /// context can have its address). Set by the first `install`.
    ctx: Arc<OnceLock<SslContext>>,
    /// Panics caught at the boundary of OpenSSL's callbacks.
    panics: Arc<AtomicU64>,
}

impl OpensslExternalCache {
    /// An adapter over a default cache ([`SessionCache::new`]: mode `SERVER`, 20 480 sessions;
    /// expiry follows each session's timeout).
    ///
    /// ```
    /// use session_cache::integrations::openssl::OpensslExternalCache;
    ///
    /// let cache = OpensslExternalCache::new();
    /// assert_eq!(cache.stats().entries, 0);
    /// assert_eq!(cache.callback_panics(), 0);
    /// ```
    pub fn new() -> Self {
        Self::with_cache(SessionCache::new())
    }

    /// An adapter over a cache configured with [`SessionCache::builder`].
    ///
    /// ```
    /// use session_cache::integrations::openssl::OpensslExternalCache;
    /// use session_cache::SessionCache;
    ///
    /// let cache = OpensslExternalCache::with_cache(SessionCache::builder().capacity(4096).build());
    /// assert_eq!(cache.cache().capacity(), 4096);
    /// ```
    pub fn with_cache(cache: SessionCache<OpensslSession>) -> Self {
        Self {
            cache: Arc::new(cache),
            owner: Arc::new(Owner),
            ctx: Arc::new(OnceLock::new()),
            panics: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The underlying cache (stats, mode, capacity, flushing).
    ///
    /// ```
    /// use session_cache::integrations::openssl::OpensslExternalCache;
    ///
    /// let cache = OpensslExternalCache::new();
    /// assert_eq!(cache.cache().flush_expired(), 0);
    /// ```
    pub fn cache(&self) -> &SessionCache<OpensslSession> {
        &self.cache
    }

    /// Shorthand for `self.cache().stats()`.
    ///
    /// ```
    /// use session_cache::integrations::openssl::OpensslExternalCache;
    ///
    /// assert_eq!(OpensslExternalCache::new().stats().hits, 0);
    /// ```
    pub fn stats(&self) -> Stats {
        self.cache.stats()
    }

    /// How many panics (of the cache's `on_remove` or `on_miss`) were caught in OpenSSL's
    /// callbacks instead of unwinding through libssl (see the module docs).
    ///
    /// ```
    /// use session_cache::integrations::openssl::OpensslExternalCache;
    ///
    /// assert_eq!(OpensslExternalCache::new().callback_panics(), 0);
    /// ```
    pub fn callback_panics(&self) -> u64 {
        // Relaxed: a statistics counter.
        self.panics.load(Ordering::Relaxed)
    }

    /// Installs the cache on `builder` (see the module docs for exactly what is set).
    ///
    /// Installing again on the same builder is allowed (it re-registers the same callbacks); any
    /// other context is refused with [`InstallError::OtherContext`]. The adapter keeps a
    /// reference to its context: the context is freed when both it and the adapter are dropped.
    ///
    /// # Errors
    ///
    /// [`InstallError::OtherContext`] when this adapter is already installed on another
    /// context.
    ///
    /// ```no_run
    /// use openssl::ssl::{SslContext, SslMethod};
    /// use session_cache::integrations::openssl::OpensslExternalCache;
    ///
    /// let cache = OpensslExternalCache::new();
    /// let mut builder = SslContext::builder(SslMethod::tls_server()).unwrap();
    /// cache.install(&mut builder).unwrap();
    /// // ... certificate and key, then build the context and serve.
    /// let mut other = SslContext::builder(SslMethod::tls_server()).unwrap();
    /// assert!(cache.install(&mut other).is_err(), "one adapter, one context");
    /// ```
    pub fn install(&self, builder: &mut SslContextBuilder) -> Result<(), InstallError> {
        let me = builder.as_ptr();
        let bound = self.ctx.get_or_init(|| {
            // SAFETY: `builder` owns a live `SSL_CTX` for the whole borrow; `to_owned` takes a
            // counted reference of its own (`SSL_CTX_up_ref`) before the borrow ends.
            unsafe { SslContextRef::from_ptr(me) }.to_owned()
        });
        // The bound context is alive (we hold it), so equal addresses mean the same context.
        if bound.as_ptr() != me {
            return Err(InstallError::OtherContext);
        }

        builder
            .set_session_cache_mode(SslSessionCacheMode::SERVER | SslSessionCacheMode::NO_INTERNAL);
        builder.set_options(SslOptions::NO_TICKET);

        let (cache, owner) = (self.cache.clone(), self.owner.clone());
        let panics = self.panics.clone();
        builder.set_new_session_callback(move |_ssl: &mut SslRef, session: SslSession| {
            let mode = cache.mode();
            if mode.contains(CacheMode::SERVER) && !mode.contains(CacheMode::NO_INTERNAL_STORE) {
                if let Some(session) = OpensslSession::owned_by(session, &owner) {
                    // A panicking eviction callback: the session stays stored (it was added).
                    boundary(&panics, || cache.add(Arc::new(session)));
                }
            }
        });

        let (cache, panics) = (self.cache.clone(), self.panics.clone());
        builder.set_remove_session_callback(move |_ctx, session: &SslSessionRef| {
            // This may run with OpenSSL's ctx->lock held: touch only our own cache, never the ctx.
            if let Some(key) = session_key(session.protocol_version(), session.id()) {
                boundary(&panics, || cache.remove_id(&key));
            }
        });

        let (cache, owner) = (self.cache.clone(), self.owner.clone());
        let panics = self.panics.clone();
        let get = move |ssl: &mut SslRef, id: &[u8]| -> Option<SslSession> {
            let version = ssl.version2()?;
            // A panicking `on_miss` (or eviction callback of an expired entry): not found.
            boundary(&panics, || serve(&cache, &owner, version, id)).flatten()
        };
        // SAFETY: `serve` returns only sessions that `adopt` admits for this adapter's owner:
        // made by this context's new-session callback (stamped there), or decoded from DER and
        // so associated with no context until this adopts them. A session stamped by another
        // adapter is refused; stamps are counted references, so no two adapters share one; and
        // this adapter serves this one context only (`install` above refuses any other while
        // holding this one alive). So a returned session is never associated with a different
        // `SslContext`, whatever safe code put into the cache or returns from `on_miss`.
        unsafe { builder.set_get_session_callback(get) };
        Ok(())
    }
}

/// Runs `f` inside an OpenSSL callback: a panic stops here (it must not unwind into libssl),
/// is counted in `panics`, and gives `None`. The panic hook has already reported it.
fn boundary<R>(panics: &AtomicU64, f: impl FnOnce() -> R) -> Option<R> {
    // AssertUnwindSafe: the cache stays consistent when a callback panics (the crate's
    // guarantee); nothing else is shared with `f`.
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(_) => {
            // Relaxed: a statistics counter.
            panics.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// The get-session callback: the session for `id` if it may be handed to the context of
/// `owner`'s adapter (see [`OpensslSession::adopt`]). A session of another adapter is a miss
/// (taken out of the cache all the same for TLS 1.3, as any looked-up ticket).
fn serve(
    cache: &SessionCache<OpensslSession>,
    owner: &Arc<Owner>,
    version: SslVersion,
    id: &[u8],
) -> Option<SslSession> {
    let found = lookup(cache, version, id)?;
    // OpenSSL takes over one reference (the shim sets *copy = 0 and forgets the handle), so
    // hand it its own clone (SSL_SESSION_up_ref).
    found.adopt(owner).then(|| found.session.clone())
}

/// The get-session callback's lookup, for a connection of protocol `version` offering `id`:
/// `take` for TLS 1.3 (single use), `get` otherwise, always under this version's key, so that a
/// lookup of one version never finds or removes a session of another.
fn lookup(
    cache: &SessionCache<OpensslSession>,
    version: SslVersion,
    id: &[u8],
) -> Option<Arc<OpensslSession>> {
    let key = session_key(version, id)?;
    if version == SslVersion::TLS1_3 {
        // A TLS 1.3 stateful ticket: single use.
        if cache.mode().contains(CacheMode::NO_INTERNAL_LOOKUP) {
            return None;
        }
        cache.take(&key)
    } else {
        cache.get(&key)
    }
}

impl Default for OpensslExternalCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for OpensslExternalCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpensslExternalCache")
            .field("cache", &self.cache)
            .field("installed", &self.ctx.get().is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::pkey::PKey;
    use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslStream, SslVerifyMode};
    use openssl::x509::X509;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// A server context using `cache`, with a fresh self-signed certificate.
    pub(super) fn acceptor(cache: &OpensslExternalCache) -> SslAcceptor {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        b.set_certificate(&X509::from_pem(ck.cert.pem().as_bytes()).unwrap())
            .unwrap();
        b.set_private_key(
            &PKey::private_key_from_pem(ck.signing_key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        cache.install(&mut b).unwrap();
        b.build()
    }

    /// One connection to a server running `acceptor` on loopback, at most protocol `max`,
    /// offering `offer`. Returns the client's session (after the server's first byte, so TLS 1.3
    /// tickets have arrived) and whether it resumed. `clean`: both sides shut down (otherwise the
    /// server drops the connection, and OpenSSL removes its session).
    pub(super) fn connect(
        acceptor: &SslAcceptor,
        max: SslVersion,
        offer: Option<&SslSession>,
        clean: bool,
    ) -> (SslSession, bool) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = acceptor.clone();
        let server = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let Ok(mut tls) = acceptor.accept(tcp) else {
                return;
            };
            let _ = tls.write_all(b"!");
            let mut buf = [0u8; 16];
            while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
            if clean {
                let _ = tls.shutdown();
            }
        });
        let mut c = SslConnector::builder(SslMethod::tls_client()).unwrap();
        c.set_verify(SslVerifyMode::NONE);
        c.set_max_proto_version(Some(max)).unwrap();
        let mut config = c.build().configure().unwrap();
        config.set_verify_hostname(false);
        if let Some(s) = offer {
            // SAFETY: `s` came from a connection made with a connector of the same settings
            // (the client-side rule of `set_session`: nothing refers to a context).
            unsafe { config.set_session(s).unwrap() };
        }
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut tls: SslStream<TcpStream> = config.connect("localhost", tcp).unwrap();
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).unwrap();
        let session = tls.ssl().session().unwrap().to_owned();
        let reused = tls.ssl().session_reused();
        let _ = tls.shutdown();
        drop(tls);
        server.join().unwrap();
        (session, reused)
    }

    #[test]
    fn keys_are_version_then_id() {
        assert_eq!(
            session_key(SslVersion::TLS1_2, &[7, 8]),
            Some(vec![0x03, 7, 8])
        );
        assert_eq!(
            session_key(SslVersion::TLS1_3, &[7, 8]),
            Some(vec![0x04, 7, 8])
        );
        assert_eq!(session_key(SslVersion::TLS1_3, &[]), None);
        let tags: std::collections::HashSet<u8> = VERSIONS.iter().map(|v| v.1).collect();
        assert_eq!(tags.len(), VERSIONS.len(), "two versions share a key byte");
    }

    #[test]
    fn a_tls13_lookup_never_takes_a_tls12_session_with_the_same_id() {
        let cache = OpensslExternalCache::new();
        let acceptor = acceptor(&cache);
        let (client, reused) = connect(&acceptor, SslVersion::TLS1_2, None, true);
        assert!(!reused);
        let id = client.id().to_vec();
        assert_eq!(cache.cache().len(), 1);
        // The TLS 1.2 session id, seen in clear, offered as a TLS 1.3 PSK identity.
        assert!(lookup(cache.cache(), SslVersion::TLS1_3, &id).is_none());
        assert_eq!(
            cache.cache().len(),
            1,
            "a TLS 1.3 lookup removed a TLS 1.2 session"
        );
        let found = lookup(cache.cache(), SslVersion::TLS1_2, &id).expect("still cached");
        assert_eq!(found.session_id(), &id[..]);
        // And it still resumes.
        assert!(connect(&acceptor, SslVersion::TLS1_2, Some(&client), true).1);
    }

    fn key12(client: &SslSession) -> Vec<u8> {
        session_key(SslVersion::TLS1_2, client.id()).unwrap()
    }

    #[test]
    fn another_adapters_sessions_are_never_handed_to_openssl() {
        let (a, b) = (OpensslExternalCache::new(), OpensslExternalCache::new());
        let (server_a, server_b) = (acceptor(&a), acceptor(&b));
        let (client, _) = connect(&server_b, SslVersion::TLS1_2, None, true);
        assert!(connect(&server_b, SslVersion::TLS1_2, Some(&client), true).1);

        // Safe code puts b's session into a's cache: a must not resume it.
        assert!(a.cache().add(b.cache().get(&key12(&client)).unwrap()));
        assert!(!connect(&server_a, SslVersion::TLS1_2, Some(&client), true).1);

        // Nor through a second tier that returns b's sessions.
        let b2 = b.clone();
        let c = OpensslExternalCache::with_cache(
            SessionCache::builder()
                .on_miss(move |key| b2.cache().get(key))
                .build(),
        );
        let server_c = acceptor(&c);
        assert!(!connect(&server_c, SslVersion::TLS1_2, Some(&client), true).1);
        // b itself still resumes it.
        assert!(connect(&server_b, SslVersion::TLS1_2, Some(&client), true).1);
    }

    #[test]
    fn a_session_from_der_is_adopted_by_the_first_adapter_that_serves_it() {
        let b = OpensslExternalCache::new();
        let (client, _) = connect(&acceptor(&b), SslVersion::TLS1_2, None, true);
        let der = b.cache().get(&key12(&client)).unwrap().to_der().unwrap();
        let shared = Arc::new(OpensslSession::from_der(&der).expect("a DER session"));
        assert_eq!(shared.id(), &key12(&client)[..]);
        assert_eq!(shared.to_der().unwrap(), der);

        // Unstamped: the first adapter to serve it resumes with it and adopts it...
        let (c, d) = (OpensslExternalCache::new(), OpensslExternalCache::new());
        let (server_c, server_d) = (acceptor(&c), acceptor(&d));
        c.cache().add(shared.clone());
        d.cache().add(shared.clone());
        assert!(connect(&server_c, SslVersion::TLS1_2, Some(&client), true).1);
        // ... and no other adapter hands it to its context afterwards.
        assert!(!connect(&server_d, SslVersion::TLS1_2, Some(&client), true).1);
        assert!(connect(&server_c, SslVersion::TLS1_2, Some(&client), true).1);
        // A fresh decoding is unstamped again: d may adopt that one.
        d.cache()
            .add(Arc::new(OpensslSession::from_der(&der).unwrap()));
        assert!(connect(&server_d, SslVersion::TLS1_2, Some(&client), true).1);

        assert!(OpensslSession::from_der(b"not a session").is_none());
        assert!(OpensslSession::from_der(&[]).is_none());
    }

    #[test]
    fn a_new_context_at_a_freed_contexts_address_is_refused() {
        let cache = OpensslExternalCache::new();
        let builder = || SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        let mut first = builder();
        cache.install(&mut first).unwrap();
        cache.install(&mut first).unwrap();
        drop(first);
        // Control: the allocator hands a freed context's address to the next context at once,
        // so the loop below meets the first context's address if it was freed.
        let probe = builder();
        let freed = probe.as_ptr() as usize;
        drop(probe);
        assert!(
            (0..100).any(|_| builder().as_ptr() as usize == freed),
            "the allocator never reused a freed context's address: nothing would be tested"
        );
        // Every other context is refused, wherever it was allocated.
        for _ in 0..100 {
            let mut next = builder();
            assert_eq!(cache.install(&mut next), Err(InstallError::OtherContext));
        }
    }

    /// Panicking cache callbacks inside OpenSSL's callbacks, in a server in this process: each
    /// panic is caught at the boundary, counted, and OpenSSL gets "not found" / "not stored".
    /// Without the boundary the first panic aborts the process, so `panics_never_cross_into_libssl`
    /// runs this in a child process.
    #[test]
    #[ignore = "run in a child process by panics_never_cross_into_libssl"]
    fn panicking_callbacks_in_a_server() {
        // A second tier that panics: the lookup is a miss, the connection a full handshake.
        let cache = OpensslExternalCache::with_cache(
            SessionCache::builder()
                .on_miss(|_| panic!("on_miss panics (expected)"))
                .build(),
        );
        let server = acceptor(&cache);
        let (client, _) = connect(&server, SslVersion::TLS1_2, None, true);
        cache.cache().clear();
        assert!(!connect(&server, SslVersion::TLS1_2, Some(&client), true).1);
        assert_eq!(cache.callback_panics(), 1);

        // An eviction callback that panics in the new-session callback: the new session is
        // stored all the same and resumes.
        let cache = OpensslExternalCache::with_cache(
            SessionCache::builder()
                .capacity(1)
                .on_remove(|_, _| panic!("on_remove panics (expected)"))
                .build(),
        );
        let server = acceptor(&cache);
        connect(&server, SslVersion::TLS1_2, None, true);
        let (second, _) = connect(&server, SslVersion::TLS1_2, None, true);
        assert_eq!(cache.callback_panics(), 1);
        assert_eq!(cache.cache().len(), 1);
        assert!(connect(&server, SslVersion::TLS1_2, Some(&second), true).1);

        // The remove callback (a connection freed without shutdown): the session is removed,
        // the panic of the removal callback stops at the boundary.
        let (third, _) = connect(&server, SslVersion::TLS1_2, None, false);
        assert_eq!(
            cache.callback_panics(),
            3,
            "eviction of `second`, then the removal"
        );
        assert!(cache.cache().is_empty());
        assert!(!connect(&server, SslVersion::TLS1_2, Some(&third), true).1);
    }

    #[test]
    fn panics_never_cross_into_libssl() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "--test-threads=1", "--nocapture"])
            .arg("integrations::openssl::tests::panicking_callbacks_in_a_server")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the server process failed ({}): a panic crossed into libssl?\n{stdout}\n{stderr}",
            out.status
        );
    }
}
