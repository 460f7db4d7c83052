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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{
    SslContextBuilder, SslOptions, SslRef, SslSession, SslSessionCacheMode, SslSessionRef,
    SslVersion,
};

use crate::{CacheMode, Session, SessionCache, Stats};

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

/// A session stored for OpenSSL: the `SslSession` (one reference) and its [`session_key`].
///
/// Only the adapter's new-session callback makes these, so every session in an adapter's cache
/// belongs to the one `SslContext` the adapter is installed on.
pub struct OpensslSession {
    key: Vec<u8>,
    timeout: Duration,
    session: SslSession,
}

impl OpensslSession {
    /// `None` when the session has no key ([`session_key`]).
    fn new(session: SslSession) -> Option<Self> {
        Some(Self {
            key: session_key(session.protocol_version(), session.id())?,
            // A negative timeout would be a libssl bug; treat it as already expired.
            timeout: Duration::from_secs(u64::try_from(session.timeout()).unwrap_or(0)),
            session,
        })
    }

    /// The OpenSSL session.
    pub fn session(&self) -> &SslSessionRef {
        &self.session
    }

    /// The session id (the key without its version byte).
    pub fn session_id(&self) -> &[u8] {
        &self.key[1..]
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
    /// The address of the `SSL_CTX` this adapter is installed on (0 before `install`); only
    /// compared.
    ctx: Arc<AtomicUsize>,
}

impl OpensslExternalCache {
    /// An adapter over a default cache ([`SessionCache::new`]: mode `SERVER`, 20 480 sessions;
    /// expiry follows each session's timeout).
    pub fn new() -> Self {
        Self::with_cache(SessionCache::new())
    }

    /// An adapter over a cache configured with [`SessionCache::builder`].
    pub fn with_cache(cache: SessionCache<OpensslSession>) -> Self {
        Self {
            cache: Arc::new(cache),
            ctx: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The underlying cache (stats, mode, capacity, flushing).
    pub fn cache(&self) -> &SessionCache<OpensslSession> {
        &self.cache
    }

    /// Shorthand for `self.cache().stats()`.
    pub fn stats(&self) -> Stats {
        self.cache.stats()
    }

    /// Installs the cache on `builder` (see the module docs for exactly what is set).
    ///
    /// Installing again on the same builder is allowed (it re-registers the same callbacks); any
    /// other context is refused with [`InstallError::OtherContext`].
    pub fn install(&self, builder: &mut SslContextBuilder) -> Result<(), InstallError> {
        let me = builder.as_ptr() as usize;
        // AcqRel/Acquire: only the address matters; strong enough to make the check total.
        match self
            .ctx
            .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {}
            Err(prev) if prev == me => {}
            Err(_) => return Err(InstallError::OtherContext),
        }

        builder
            .set_session_cache_mode(SslSessionCacheMode::SERVER | SslSessionCacheMode::NO_INTERNAL);
        builder.set_options(SslOptions::NO_TICKET);

        let cache = self.cache.clone();
        builder.set_new_session_callback(move |_ssl: &mut SslRef, session: SslSession| {
            let mode = cache.mode();
            if mode.contains(CacheMode::SERVER) && !mode.contains(CacheMode::NO_INTERNAL_STORE) {
                if let Some(session) = OpensslSession::new(session) {
                    cache.add(Arc::new(session));
                }
            }
        });

        let cache = self.cache.clone();
        builder.set_remove_session_callback(move |_ctx, session: &SslSessionRef| {
            // This may run with OpenSSL's ctx->lock held: touch only our own cache, never the ctx.
            if let Some(key) = session_key(session.protocol_version(), session.id()) {
                cache.remove_id(&key);
            }
        });

        let cache = self.cache.clone();
        let get = move |ssl: &mut SslRef, id: &[u8]| -> Option<SslSession> {
            // OpenSSL takes over one reference (the shim sets *copy = 0 and forgets the handle),
            // so hand it its own clone (SSL_SESSION_up_ref).
            lookup(&cache, ssl.version2()?, id).map(|s| s.session.clone())
        };
        // SAFETY: the callback returns only sessions from this adapter's cache, which holds nothing
        // but sessions made by this context's new-session callback (`OpensslSession::new` is
        // private to this module and `install` refuses any other context), so a returned session
        // is never associated with a different `SslContext`.
        unsafe { builder.set_get_session_callback(get) };
        Ok(())
    }
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
            .field("installed", &(self.ctx.load(Ordering::Relaxed) != 0))
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
}
