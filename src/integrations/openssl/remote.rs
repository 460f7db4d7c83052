//! OpenSSL sessions on the fleet tier (features `openssl` and `redis`): they travel as DER.

use super::OpensslSession;
use crate::remote::RemoteSession;
use crate::Session;

impl RemoteSession for OpensslSession {
    /// `i2d_SSL_SESSION`: the session with its master secret (sealed before it leaves).
    fn encode(&self) -> Vec<u8> {
        // An encoding failure (out of memory) gives no bytes, which no node decodes.
        self.to_der().unwrap_or_default()
    }

    /// `d2i_SSL_SESSION`; refused unless it is a session with this very key (protocol version
    /// and id). The session is unstamped: the adapter that first serves it adopts it.
    fn decode(id: &[u8], bytes: &[u8]) -> Option<Self> {
        let session = OpensslSession::from_der(bytes)?;
        (session.id() == id).then_some(session)
    }
}
