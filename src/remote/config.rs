//! Configuring a tier: [`RedisTierBuilder`] and the errors of [`RedisTierBuilder::build`].

use std::fmt;
use std::time::Duration;

use super::RedisTier;

/// Why a tier could not be built. An unreachable server is not among them: a tier whose
/// server is down is built, degrades (every lookup a miss, `take` `None`) and connects by
/// itself when the server is up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteError {
    /// The URL is not a Redis URL (`redis://`, `rediss://`, `redis+unix://`, `unix://`).
    InvalidUrl(String),
    /// No [`encryption_key`](RedisTierBuilder::encryption_key): values are never stored in
    /// clear.
    MissingKey,
    /// The namespace is empty or contains whitespace, `:`, `*`, `?` or `[`.
    InvalidNamespace(String),
    /// The read budget is zero.
    InvalidBudget,
    /// The TLS settings were refused (e.g. a root certificate that is not PEM).
    Tls(String),
    /// The I/O threads could not be started.
    Spawn(String),
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(e) => write!(f, "not a usable Redis URL: {e}"),
            Self::MissingKey => f.write_str("an encryption key is required: values are sealed"),
            Self::InvalidNamespace(n) => write!(
                f,
                "namespace {n:?} must be non-empty, without whitespace, ':', '*', '?' or '['"
            ),
            Self::InvalidBudget => f.write_str("the read budget must be longer than zero"),
            Self::Tls(e) => write!(f, "TLS settings refused: {e}"),
            Self::Spawn(e) => write!(f, "cannot start the tier's I/O threads: {e}"),
        }
    }
}

impl std::error::Error for RemoteError {}

/// The settings of one tier (see each builder method).
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) url: String,
    pub(crate) namespace: String,
    pub(crate) key: Option<[u8; 32]>,
    pub(crate) previous_keys: Vec<[u8; 32]>,
    pub(crate) read_budget: Duration,
    pub(crate) io_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) queue_capacity: usize,
    pub(crate) batch_max: usize,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_cooldown: Duration,
    pub(crate) take_best_effort: bool,
    pub(crate) tls_root_pem: Option<Vec<u8>>,
    pub(crate) retry_capacity: usize,
    pub(crate) sync_timeout: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys, nor a password the URL may carry.
        f.debug_struct("Config")
            .field("namespace", &self.namespace)
            .field(
                "keys",
                &(self.key.is_some() as usize + self.previous_keys.len()),
            )
            .field("read_budget", &self.read_budget)
            .field("io_timeout", &self.io_timeout)
            .field("queue_capacity", &self.queue_capacity)
            .field("batch_max", &self.batch_max)
            .field("take_best_effort", &self.take_best_effort)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisTier`]; from [`RedisTier::builder`].
#[derive(Debug, Clone)]
pub struct RedisTierBuilder {
    pub(crate) cfg: Config,
}

impl RedisTierBuilder {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            cfg: Config {
                url: url.to_string(),
                namespace: "session-cache".to_string(),
                key: None,
                previous_keys: Vec::new(),
                read_budget: Duration::from_millis(5),
                io_timeout: Duration::from_secs(1),
                connect_timeout: Duration::from_millis(250),
                queue_capacity: 8192,
                batch_max: 256,
                breaker_threshold: 3,
                breaker_cooldown: Duration::from_secs(1),
                take_best_effort: false,
                tls_root_pem: None,
                retry_capacity: 65_536,
                sync_timeout: Duration::from_secs(1),
            },
        }
    }

    /// The key prefix: sessions of other namespaces are never seen (their values do not even
    /// open here, the namespace being part of what is authenticated). Default `session-cache`.
    ///
    /// ```
    /// use session_cache::remote::RedisTier;
    ///
    /// let builder = RedisTier::builder("redis://127.0.0.1:6379/")
    ///     .encryption_key([7; 32])
    ///     .namespace("edge");
    /// # let _ = builder;
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.cfg.namespace = namespace.into();
        self
    }

    /// The key that seals every value (XChaCha20-Poly1305). Required. Every node of a fleet
    /// needs the same key; rotate with [`previous_key`](Self::previous_key).
    ///
    /// ```
    /// use session_cache::remote::RedisTier;
    ///
    /// let builder = RedisTier::builder("redis://127.0.0.1:6379/")
    ///     .encryption_key([7; 32])
    ///     .namespace("edge");
    /// # let _ = builder;
    /// ```
    pub fn encryption_key(mut self, key: [u8; 32]) -> Self {
        self.cfg.key = Some(key);
        self
    }

    /// A key no longer used to seal but still accepted to open (key rotation): roll the new key
    /// out as `previous_key` on every node, then make it the `encryption_key` and the old one a
    /// `previous_key`, and drop the old one after the longest session lifetime. May be given
    /// several times.
    ///
    /// ```
    /// use session_cache::remote::RedisTier;
    ///
    /// let builder = RedisTier::builder("redis://127.0.0.1:6379/")
    ///     .encryption_key([7; 32])
    ///     .previous_key([6; 32]);
    /// # let _ = builder;
    /// ```
    pub fn previous_key(mut self, key: [u8; 32]) -> Self {
        self.cfg.previous_keys.push(key);
        self
    }

    /// The longest a lookup (`get` after a local miss, `take`) waits for Redis. Default 5 ms.
    ///
    /// ```
    /// use session_cache::remote::RedisTier;
    /// use std::time::Duration;
    ///
    /// let builder = RedisTier::builder("redis://127.0.0.1:6379/")
    ///     .encryption_key([7; 32])
    ///     .read_budget(Duration::from_millis(5));
    /// # let _ = builder;
    /// ```
    pub fn read_budget(mut self, budget: Duration) -> Self {
        self.cfg.read_budget = budget;
        self
    }

    /// The I/O thread's socket timeouts: how long it waits on a silent server before it drops
    /// the connection and reconnects. Callers never wait that long (they wait at most the read
    /// budget). Default 1 s.
    ///
    /// ```
    /// use session_cache::remote::RedisTier;
    /// use std::time::Duration;
    ///
    /// let builder = RedisTier::builder("redis://127.0.0.1:6379/")
    ///     .encryption_key([7; 32])
    ///     .io_timeout(Duration::from_secs(1));
    /// # let _ = builder;
    /// ```
    pub fn io_timeout(mut self, t: Duration) -> Self {
        self.cfg.io_timeout = t;
        self
    }

    /// The longest a connection attempt takes (TCP, TLS and the Redis handshake). Default 250 ms.
    ///
    /// ```
    /// use session_cache::remote::RedisTier;
    /// use std::time::Duration;
    ///
    /// let builder = RedisTier::builder("redis://127.0.0.1:6379/")
    ///     .encryption_key([7; 32])
    ///     .connect_timeout(Duration::from_millis(250));
    /// # let _ = builder;
    /// ```
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.cfg.connect_timeout = t;
        self
    }

    /// The most operations queued for the I/O thread (writes, removals, lookups). A write that
    /// finds it full is dropped and counted in `dropped_writes`; a lookup is `rejected`; a
    /// removal goes to the retry list. Default 8192.
    ///
    /// ```
    /// use session_cache::remote::RedisTier;
    ///
    /// let builder = RedisTier::builder("redis://127.0.0.1:6379/")
    ///     .encryption_key([7; 32])
    ///     .queue_capacity(8192);
    /// # let _ = builder;
    /// ```
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.cfg.queue_capacity = n.max(1);
        self
    }

    /// The most operations sent in one pipeline (one round trip). Default 256.
    ///
    /// ```
    /// use session_cache::remote::RedisTier;
    ///
    /// let builder = RedisTier::builder("redis://127.0.0.1:6379/")
    ///     .encryption_key([7; 32])
    ///     .batch_max(256);
    /// # let _ = builder;
    /// ```
    pub fn batch_max(mut self, n: usize) -> Self {
        self.cfg.batch_max = n.max(1);
        self
    }

    /// The circuit breaker: after `failures` failed lookups or connection attempts in a row,
    /// lookups are not sent for `cooldown`. Default 3 and 1 s.
    ///
    /// ```
    /// use session_cache::remote::RedisTier;
    /// use std::time::Duration;
    ///
    /// let builder = RedisTier::builder("redis://127.0.0.1:6379/")
    ///     .encryption_key([7; 32])
    ///     .breaker(3, Duration::from_secs(1));
    /// # let _ = builder;
    /// ```
    pub fn breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.cfg.breaker_threshold = failures.max(1);
        self.cfg.breaker_cooldown = cooldown;
        self
    }

    /// When Redis cannot confirm a `take` (down, slow, breaker open), return the local copy if
    /// this node holds one, instead of `None`. Off by default: with it, a ticket can resume on
    /// two nodes while Redis is unreachable (a replay window), which is what single use exists
    /// to prevent.
    ///
    /// ```
    /// use session_cache::remote::RedisTier;
    ///
    /// let builder = RedisTier::builder("redis://127.0.0.1:6379/")
    ///     .encryption_key([7; 32])
    ///     .take_best_effort(false);
    /// # let _ = builder;
    /// ```
    pub fn take_best_effort(mut self, on: bool) -> Self {
        self.cfg.take_best_effort = on;
        self
    }

    /// For `rediss://`: trust this root certificate (PEM) instead of the system's roots.
    ///
    /// The TLS connection uses rustls with its process-default crypto provider: ring, which
    /// this feature enables, unless the program also enables another rustls provider; then
    /// install one (`rustls::crypto::CryptoProvider::install_default`) before the first
    /// connection, or the tier never connects (counted as connection failures).
    ///
    /// ```
    /// use session_cache::remote::RedisTier;
    ///
    /// let builder = RedisTier::builder("rediss://127.0.0.1:6380/")
    ///     .encryption_key([7; 32])
    ///     .tls_root_certificate(std::fs::read("redis-ca.pem").unwrap_or_default());
    /// # let _ = builder;
    /// ```
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.cfg.tls_root_pem = Some(pem.into());
        self
    }

    /// The most removals kept for retrying while Redis is unreachable. Default 65 536.
    ///
    /// ```
    /// use session_cache::remote::RedisTier;
    ///
    /// let builder = RedisTier::builder("redis://127.0.0.1:6379/")
    ///     .encryption_key([7; 32])
    ///     .removal_retry_capacity(65_536);
    /// # let _ = builder;
    /// ```
    pub fn removal_retry_capacity(mut self, n: usize) -> Self {
        self.cfg.retry_capacity = n.max(1);
        self
    }

    /// The longest [`SessionCache::sync_remote`](crate::SessionCache::sync_remote) waits.
    /// Default 1 s.
    ///
    /// ```
    /// use session_cache::remote::RedisTier;
    /// use std::time::Duration;
    ///
    /// let builder = RedisTier::builder("redis://127.0.0.1:6379/")
    ///     .encryption_key([7; 32])
    ///     .sync_timeout(Duration::from_secs(1));
    /// # let _ = builder;
    /// ```
    pub fn sync_timeout(mut self, t: Duration) -> Self {
        self.cfg.sync_timeout = t;
        self
    }

    /// Checks the settings and starts the tier's two I/O threads (one for commands, one for
    /// removal announcements). Does not wait for a connection.
    ///
    /// # Errors
    ///
    /// A [`RemoteError`] for settings that cannot work: a URL that is not a Redis URL, no
    /// encryption key, a bad namespace, a zero read budget, a TLS root that is not PEM, or
    /// threads that could not start. An unreachable server is not an error: the tier degrades
    /// (lookups miss, `take` returns `None`) and reconnects by itself.
    ///
    /// ```
    /// use session_cache::remote::{RedisTier, RemoteError};
    ///
    /// let no_key = RedisTier::builder("redis://127.0.0.1:6379/").build();
    /// assert!(matches!(no_key, Err(RemoteError::MissingKey)));
    /// let bad_url = RedisTier::builder("http://example.com/").encryption_key([7; 32]).build();
    /// assert!(matches!(bad_url, Err(RemoteError::InvalidUrl(_))));
    /// ```
    pub fn build(self) -> Result<RedisTier, RemoteError> {
        let cfg = self.cfg;
        if cfg.key.is_none() {
            return Err(RemoteError::MissingKey);
        }
        let ns = &cfg.namespace;
        if ns.is_empty()
            || ns
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, ':' | '*' | '?' | '['))
        {
            return Err(RemoteError::InvalidNamespace(ns.clone()));
        }
        if cfg.read_budget.is_zero() {
            return Err(RemoteError::InvalidBudget);
        }
        RedisTier::start(cfg)
    }
}
