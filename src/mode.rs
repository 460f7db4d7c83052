//! OpenSSL's session-cache mode bits.

bitflags::bitflags! {
    /// How the cache takes part in resumption, with OpenSSL's `SSL_SESS_CACHE_*` bit values.
    ///
    /// Only some bits change what [`SessionCache`](crate::SessionCache) itself does:
    /// `NO_INTERNAL_LOOKUP` (`get` skips the table and asks `on_miss` directly),
    /// `NO_INTERNAL_STORE` (sessions returned by `on_miss` are not stored), `NO_AUTO_CLEAR` (no
    /// incremental sweep of expired entries) and `UPDATE_TIME` (every `add`, identical re-adds
    /// included, restarts the session's lifetime). As in OpenSSL, `add` and `remove` work in
    /// every mode, and `get` looks up even when the mode is `OFF`. `CLIENT` and `SERVER` are for
    /// integrations to decide whether to store sessions automatically.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CacheMode: u32 {
        /// `SSL_SESS_CACHE_OFF`: no automatic caching on either side.
        const OFF = 0x0000;
        /// `SSL_SESS_CACHE_CLIENT`: integrations store client sessions.
        const CLIENT = 0x0001;
        /// `SSL_SESS_CACHE_SERVER`: integrations store server sessions (the default).
        const SERVER = 0x0002;
        /// `SSL_SESS_CACHE_BOTH`.
        const BOTH = Self::CLIENT.bits() | Self::SERVER.bits();
        /// `SSL_SESS_CACHE_NO_AUTO_CLEAR`: do not sweep expired entries while adding.
        const NO_AUTO_CLEAR = 0x0080;
        /// `SSL_SESS_CACHE_NO_INTERNAL_LOOKUP`: `get` asks only the `on_miss` handler.
        const NO_INTERNAL_LOOKUP = 0x0100;
        /// `SSL_SESS_CACHE_NO_INTERNAL_STORE`: sessions from `on_miss` are not stored.
        const NO_INTERNAL_STORE = 0x0200;
        /// `SSL_SESS_CACHE_NO_INTERNAL`: both of the above.
        const NO_INTERNAL = Self::NO_INTERNAL_LOOKUP.bits() | Self::NO_INTERNAL_STORE.bits();
        /// `SSL_SESS_CACHE_UPDATE_TIME`: `add` restarts the lifetime of the session it adds.
        const UPDATE_TIME = 0x0400;
    }
}

impl Default for CacheMode {
    /// `SERVER`, as OpenSSL.
    fn default() -> Self {
        CacheMode::SERVER
    }
}
