//! Ready-made adapters that plug [`SessionCache`](crate::SessionCache) into TLS libraries.
//!
//! * [`rustls`] (feature `rustls`): [`rustls::RustlsServerStore`] implements rustls's
//!   `StoresServerSessions` (TLS 1.2 session ids and TLS 1.3 stateful, single-use tickets) and
//!   [`rustls::RustlsClientStore`] implements `ClientSessionStore`.
//! * [`openssl`] (feature `openssl`): [`openssl::OpensslExternalCache`] makes the cache OpenSSL's
//!   external session cache (`SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL` plus the
//!   new / get / remove session callbacks).

#[cfg(feature = "rustls")]
pub mod rustls;

#[cfg(feature = "openssl")]
pub mod openssl;
