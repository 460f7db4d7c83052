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

// The client store's hand-written concurrency, also built (and exported, hidden) for the loom
// models in loom-tests/ticket_ring.rs.
#[cfg(any(feature = "rustls", session_cache_loom))]
mod client_state;
#[cfg(session_cache_loom)]
#[doc(hidden)]
pub use client_state::{live_entry, TicketRing};

#[cfg(feature = "openssl")]
pub mod openssl;
