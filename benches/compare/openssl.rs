//! OpenSSL's internal session cache (the `SSL_CTX`'s lhash + timeout list under `ctx->lock`),
//! driven through FFI.
//!
//! - add: `SSL_SESSION_new` + `SSL_SESSION_set1_id` (the subject's `prepare`), then
//!   `SSL_CTX_add_session`, then our reference is dropped (the cache keeps its own). In the
//!   throughput workloads creating the `SSL_SESSION` is part of the add, just as `Arc::new` is
//!   for the Rust subjects; `profile` mode makes them before its measured loops.
//! - remove / take: `SSL_CTX_remove_session` with a per-thread probe session carrying the id
//!   (OpenSSL removes by id). It reports whether something was removed, which is `take`'s
//!   answer without handing the session back.
//! - get: `SSL_has_matching_session_id`, the read-locked lookup OpenSSL exposes. It does not
//!   `up_ref` the session, so it is slightly cheaper than a real resumption lookup.
//!
//! Capacity is set to `CAP + 1` because OpenSSL 3.0 holds `size - 1` sessions.

use std::ffi::{c_int, c_long, c_uchar, c_uint};
use std::sync::Arc;

use openssl_sys::{SSL, SSL_CTX, SSL_SESSION};

use super::{Id, Sess, Subject};

// Not declared by openssl-sys 0.9.118 (libssl exports them).
extern "C" {
    fn SSL_SESSION_new() -> *mut SSL_SESSION;
    fn SSL_SESSION_set1_id(s: *mut SSL_SESSION, sid: *const c_uchar, len: c_uint) -> c_int;
    fn SSL_SESSION_set_protocol_version(s: *mut SSL_SESSION, v: c_int) -> c_int;
    fn SSL_has_matching_session_id(ssl: *const SSL, id: *const c_uchar, len: c_uint) -> c_int;
}

pub struct OpensslCache {
    ctx: *mut SSL_CTX,
    ssl: *mut SSL,
    version: c_int,
}

// SAFETY: every session-cache entry point used here (`SSL_CTX_add_session`,
// `SSL_CTX_remove_session`, `SSL_has_matching_session_id`) takes `ctx->lock` itself, so the
// `SSL_CTX` may be used from many threads. The shared `SSL` is only read (its version and its
// session context) by `SSL_has_matching_session_id`, and is freed only in `Drop`.
unsafe impl Send for OpensslCache {}
// SAFETY: as for `Send`: OpenSSL synchronizes the cache internally.
unsafe impl Sync for OpensslCache {}

impl OpensslCache {
    pub fn new(cap: usize) -> Self {
        openssl_sys::init();
        // SAFETY: plain constructor calls; each result is checked for null before use.
        unsafe {
            let ctx = openssl_sys::SSL_CTX_new(openssl_sys::TLS_server_method());
            assert!(!ctx.is_null(), "SSL_CTX_new failed");
            openssl_sys::SSL_CTX_sess_set_cache_size(ctx, (cap + 1) as c_long);
            let ssl = openssl_sys::SSL_new(ctx);
            assert!(!ssl.is_null(), "SSL_new failed");
            let version = openssl_sys::SSL_version(ssl);
            OpensslCache { ctx, ssl, version }
        }
    }

    /// A fresh `SSL_SESSION` with `id` and the version the lookups compare against.
    fn session(&self, id: &Id) -> *mut SSL_SESSION {
        // SAFETY: `SSL_SESSION_new` returns an owned session (checked for null); the setters
        // copy `id` (32 bytes, within SSL_MAX_SSL_SESSION_ID_LENGTH).
        unsafe {
            let s = SSL_SESSION_new();
            assert!(!s.is_null(), "SSL_SESSION_new failed");
            SSL_SESSION_set1_id(s, id.as_ptr(), id.len() as c_uint);
            SSL_SESSION_set_protocol_version(s, self.version);
            s
        }
    }
}

impl Drop for OpensslCache {
    fn drop(&mut self) {
        // SAFETY: both were created in `new`, are freed once, and no thread uses them any more
        // (`&mut self`). Freeing the SSL_CTX frees every cached session.
        unsafe {
            openssl_sys::SSL_free(self.ssl);
            openssl_sys::SSL_CTX_free(self.ctx);
        }
    }
}

/// A per-thread session used only to carry an id into `SSL_CTX_remove_session`.
struct Probe(*mut SSL_SESSION);

impl Drop for Probe {
    fn drop(&mut self) {
        // SAFETY: the probe is owned by this thread-local and never stored in a cache.
        unsafe { openssl_sys::SSL_SESSION_free(self.0) }
    }
}

thread_local! {
    static PROBE: Probe = {
        // SAFETY: as in `OpensslCache::session`.
        let s = unsafe { SSL_SESSION_new() };
        assert!(!s.is_null(), "SSL_SESSION_new failed");
        Probe(s)
    };
}

/// An owned `SSL_SESSION` made before it is added (freed here unless the cache took it).
pub struct SslSession(*mut SSL_SESSION);

// SAFETY: an `SSL_SESSION` is reference-counted with atomic counts and only handed to
// `SSL_CTX_add_session`, which locks the cache; the pointer is owned by this value alone.
unsafe impl Send for SslSession {}

impl Drop for SslSession {
    fn drop(&mut self) {
        // SAFETY: we own one reference to the session (from `SSL_SESSION_new`); the cache
        // holds its own if it took it.
        unsafe { openssl_sys::SSL_SESSION_free(self.0) }
    }
}

impl Subject for OpensslCache {
    type Prepared = SslSession;
    fn prepare(&self, s: Arc<Sess>) -> SslSession {
        SslSession(self.session(&s.id))
    }
    fn add_prepared(&self, sess: SslSession) {
        // SAFETY: `sess.0` is a valid owned session; the cache takes its own reference, and
        // ours is released when `sess` drops.
        unsafe {
            openssl_sys::SSL_CTX_add_session(self.ctx, sess.0);
        }
    }
    fn get(&self, id: &Id) -> bool {
        // SAFETY: `self.ssl` is alive for `&self`; `id` is 32 readable bytes.
        unsafe { SSL_has_matching_session_id(self.ssl, id.as_ptr(), id.len() as c_uint) == 1 }
    }
    fn remove(&self, id: &Id) -> bool {
        PROBE.with(|p| {
            // SAFETY: the probe is this thread's own session; setting its id and version and
            // passing it to `SSL_CTX_remove_session` (which removes by id and only marks the
            // probe not resumable) is sound.
            unsafe {
                SSL_SESSION_set1_id(p.0, id.as_ptr(), id.len() as c_uint);
                SSL_SESSION_set_protocol_version(p.0, self.version);
                openssl_sys::SSL_CTX_remove_session(self.ctx, p.0) == 1
            }
        })
    }
    fn take(&self, id: &Id) -> bool {
        self.remove(id)
    }
}
