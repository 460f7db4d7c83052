//! OpenSSL sessions on the fleet tier (features `openssl` and `redis`): they travel as DER.

use openssl::ssl::SslSession;

use super::OpensslSession;
use crate::remote::RemoteSession;

impl RemoteSession for OpensslSession {
    /// `i2d_SSL_SESSION`: the session with its master secret (sealed before it leaves).
    fn encode(&self) -> Vec<u8> {
        // An encoding failure (out of memory) gives no bytes, which no node decodes.
        self.session.to_der().unwrap_or_default()
    }

    /// `d2i_SSL_SESSION`; refused unless it is a session with this very id.
    fn decode(id: &[u8], bytes: &[u8]) -> Option<Self> {
        let session = SslSession::from_der(bytes).ok()?;
        (session.id() == id).then(|| OpensslSession::new(session))
    }
}
