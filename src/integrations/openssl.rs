//! session-cache as OpenSSL's external session cache (the `openssl` crate, system libssl).
//!
//! [`OpensslExternalCache::install`] turns OpenSSL's own cache off for lookups and stores
//! (`SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL`), switches the server to stateful tickets
//! (`SSL_OP_NO_TICKET`) and registers three callbacks:
//!
//! * new session → [`SessionCache::add`], keyed by the session id, living as long as the session's
//!   own timeout ([`SslSessionRef::timeout`]);
//! * get session → [`SessionCache::get`] for TLS ≤ 1.2 session ids (a session resumes as often as the
//!   client likes until it expires) and [`SessionCache::take`] for TLS 1.3 stateful tickets (a
//!   ticket resumes at most once, even when two connections race with it);
//! * remove session → [`SessionCache::remove_id`] (OpenSSL removes sessions after fatal alerts,
//!   unclean closes and when it finds one expired).
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
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{
    SslContextBuilder, SslOptions, SslRef, SslSession, SslSessionCacheMode, SslSessionRef,
    SslVersion,
};

use crate::{CacheMode, Session, SessionCache, Stats};

// The fleet tier: sessions travel as DER.
#[cfg(feature = "redis")]
mod remote;

/// A session stored for OpenSSL: the `SslSession` (one reference) and a copy of its id.
///
/// Only the adapter's new-session callback makes these, so every session in an adapter's cache
/// belongs to the one `SslContext` the adapter is installed on.
pub struct OpensslSession {
    id: Vec<u8>,
    timeout: Duration,
    session: SslSession,
}

impl OpensslSession {
    fn new(session: SslSession) -> Self {
        Self {
            id: session.id().to_vec(),
            // A negative timeout would be a libssl bug; treat it as already expired.
            timeout: Duration::from_secs(u64::try_from(session.timeout()).unwrap_or(0)),
            session,
        }
    }

    /// The OpenSSL session.
    pub fn session(&self) -> &SslSessionRef {
        &self.session
    }
}

impl Session for OpensslSession {
    fn id(&self) -> &[u8] {
        &self.id
    }

    /// The session's own lifetime (`SSL_SESSION_get_timeout`, 7200 s by default for a context).
    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }
}

impl fmt::Debug for OpensslSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpensslSession")
            .field("id_len", &self.id.len())
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
    /// The `SSL_CTX` this adapter is installed on (null before `install`); only compared.
    ctx: Arc<AtomicPtr<openssl_sys::SSL_CTX>>,
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
            ctx: Arc::new(AtomicPtr::new(ptr::null_mut())),
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
        let me = builder.as_ptr();
        // AcqRel/Acquire: only the pointer value matters; strong enough to make the check total.
        match self
            .ctx
            .compare_exchange(ptr::null_mut(), me, Ordering::AcqRel, Ordering::Acquire)
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
                cache.add(Arc::new(OpensslSession::new(session)));
            }
        });

        let cache = self.cache.clone();
        builder.set_remove_session_callback(move |_ctx, session: &SslSessionRef| {
            // This may run with OpenSSL's ctx->lock held: touch only our own cache, never the ctx.
            cache.remove_id(session.id());
        });

        let cache = self.cache.clone();
        let get = move |ssl: &mut SslRef, id: &[u8]| -> Option<SslSession> {
            if id.is_empty() {
                return None;
            }
            let found = if ssl.version2() == Some(SslVersion::TLS1_3) {
                // A TLS 1.3 stateful ticket: single use.
                if cache.mode().contains(CacheMode::NO_INTERNAL_LOOKUP) {
                    return None;
                }
                cache.take(id)
            } else {
                cache.get(id)
            };
            // OpenSSL takes over one reference (the shim sets *copy = 0 and forgets the handle),
            // so hand it its own clone (SSL_SESSION_up_ref).
            found.map(|s| s.session.clone())
        };
        // SAFETY: the callback returns only sessions from this adapter's cache, which holds nothing
        // but sessions made by this context's new-session callback (`OpensslSession::new` is
        // private to this module and `install` refuses any other context), so a returned session
        // is never associated with a different `SslContext`.
        unsafe { builder.set_get_session_callback(get) };
        Ok(())
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
            .field("installed", &!self.ctx.load(Ordering::Relaxed).is_null())
            .finish()
    }
}
