//! [`RemoteSession`] for the sessions of the ready-made TLS adapters.
//!
//! * rustls: [`RustlsSession`](crate::integrations::rustls::RustlsSession) travels as the
//!   value rustls gave the store (already bytes).
//! * OpenSSL: `OpensslSession` travels as DER (`i2d_SSL_SESSION` / `d2i_SSL_SESSION`); see
//!   `src/integrations/openssl/remote.rs`.

#[cfg(feature = "rustls")]
impl super::RemoteSession for crate::integrations::rustls::RustlsSession {
    fn encode(&self) -> Vec<u8> {
        self.value().to_vec()
    }

    fn decode(id: &[u8], bytes: &[u8]) -> Option<Self> {
        Some(Self::new(id.to_vec(), bytes.to_vec()))
    }
}
