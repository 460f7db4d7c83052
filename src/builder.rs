//! Configuring a cache.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, MonotonicClock, TimeSource};
use crate::policy::{Policy, RemoveCallback, Settings};
use crate::{CacheMode, RemovalCause, Session, SessionCache};

/// OpenSSL's `SSL_SESSION_CACHE_MAX_SIZE_DEFAULT`.
pub(crate) const DEFAULT_CAPACITY: usize = 20_480;
/// The timeout OpenSSL's manual documents (its 3.0 code uses 7200 s; we choose the shorter).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// The default limit on id length: far above any TLS id or ticket name, small enough that
/// stored keys cannot be used to make the cache hold large blobs.
pub(crate) const DEFAULT_MAX_ID_LEN: usize = 4096;

pub(crate) type MissHandler<S> = Box<dyn Fn(&[u8]) -> Option<Arc<S>> + Send + Sync>;

/// Builds a [`SessionCache`] with settings other than the defaults.
///
/// ```
/// use session_cache::{CacheMode, ManualClock, RemovalCause, Session, SessionCache};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// struct Sess(Vec<u8>);
/// impl Session for Sess {
///     fn id(&self) -> &[u8] { &self.0 }
/// }
///
/// let cache = SessionCache::<Sess>::builder()
///     .capacity(10_000)
///     .timeout(Duration::from_secs(7200))
///     .mode(CacheMode::SERVER | CacheMode::UPDATE_TIME)
///     .clock(ManualClock::new())
///     .on_remove(|session: &Arc<Sess>, cause| {
///         if cause == RemovalCause::Evicted {
///             eprintln!("evicted {:02x?}", session.id());
///         }
///     })
///     .build();
/// assert_eq!(cache.capacity(), 10_000);
/// ```
pub struct Builder<S: Session> {
    capacity: usize,
    timeout: Duration,
    mode: CacheMode,
    clock: TimeSource,
    max_id_len: usize,
    on_remove: Option<RemoveCallback<S>>,
    on_miss: Option<MissHandler<S>>,
    hash_seed: Option<u64>,
    /// The fleet tier (`Builder::remote`, feature `redis`).
    pub(crate) remote: crate::tier::TierSlot<S>,
}

impl<S: Session> core::fmt::Debug for Builder<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Builder")
            .field("capacity", &self.capacity)
            .field("timeout", &self.timeout)
            .field("mode", &self.mode)
            .field("max_id_len", &self.max_id_len)
            .field("on_remove", &self.on_remove.is_some())
            .field("on_miss", &self.on_miss.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Session> Default for Builder<S> {
    fn default() -> Self {
        Builder {
            capacity: DEFAULT_CAPACITY,
            timeout: DEFAULT_TIMEOUT,
            mode: CacheMode::default(),
            clock: TimeSource::of(MonotonicClock),
            max_id_len: DEFAULT_MAX_ID_LEN,
            on_remove: None,
            on_miss: None,
            hash_seed: None,
            remote: Default::default(),
        }
    }
}

impl<S: Session> Builder<S> {
    /// The most entries the cache holds (`SSL_CTX_sess_set_cache_size`); 0 means unbounded.
    /// Default 20 480. The bucket array is sized for it; see [`SessionCache::set_capacity`].
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::<Sess>::builder().capacity(1).build();
    /// cache.add(Arc::new(Sess(b"a".to_vec())));
    /// cache.add(Arc::new(Sess(b"b".to_vec())));
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    /// The lifetime of sessions that do not carry their own (`SSL_CTX_set_timeout`). Default
    /// 300 s. `Duration::MAX` means "never expires".
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// use std::time::Duration;
    /// let cache = SessionCache::<Sess>::builder().timeout(Duration::from_secs(7200)).build();
    /// assert_eq!(cache.timeout(), Duration::from_secs(7200));
    /// ```
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The time source. Default: [`MonotonicClock`].
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// use session_cache::ManualClock;
    /// use std::time::Duration;
    /// let clock = ManualClock::new();
    /// let cache = SessionCache::builder().clock(clock.clone()).build();
    /// cache.add(Arc::new(Sess(b"id-1".to_vec())));
    /// clock.advance(Duration::from_secs(301));
    /// assert!(cache.get(b"id-1").is_none()); // expired
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = TimeSource::of(clock);
        self
    }

    /// The mode bits (`SSL_CTX_set_session_cache_mode`). Default `SERVER`.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// use session_cache::CacheMode;
    /// let cache = SessionCache::<Sess>::builder().mode(CacheMode::OFF).build();
    /// assert_eq!(cache.mode(), CacheMode::OFF);
    /// ```
    pub fn mode(mut self, mode: CacheMode) -> Self {
        self.mode = mode;
        self
    }

    /// The longest id accepted, in bytes (clamped to 1 ..= `u32::MAX`). Default 4096. Longer
    /// ids are refused by `add` and are misses for lookups.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::<Sess>::builder().max_id_len(16).build();
    /// assert!(!cache.add(Arc::new(Sess(vec![1; 17]))));
    /// ```
    pub fn max_id_len(mut self, n: usize) -> Self {
        self.max_id_len = n.clamp(1, u32::MAX as usize);
        self
    }

    /// Called for every entry that leaves the cache, with the reason, after the operation that
    /// removed it (OpenSSL's `remove_session_cb`, which we also call for replacements and
    /// takes, and never for a `remove` that found nothing).
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// use session_cache::RemovalCause;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// let evicted = Arc::new(AtomicUsize::new(0));
    /// let counter = evicted.clone();
    /// let cache = SessionCache::builder()
    ///     .capacity(1)
    ///     .on_remove(move |_s: &Arc<Sess>, cause| {
    ///         if cause == RemovalCause::Evicted {
    ///             counter.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build();
    /// cache.add(Arc::new(Sess(b"a".to_vec())));
    /// cache.add(Arc::new(Sess(b"b".to_vec())));
    /// assert_eq!(evicted.load(Ordering::Relaxed), 1);
    /// ```
    pub fn on_remove(mut self, f: impl Fn(&Arc<S>, RemovalCause) + Send + Sync + 'static) -> Self {
        self.on_remove = Some(Box::new(f));
        self
    }

    /// A second tier (OpenSSL's `get_session_cb`): called by `get` when the table has nothing
    /// for an id (or always under `NO_INTERNAL_LOOKUP`). A session it returns counts in
    /// `cb_hits`, is stored with `add` unless `NO_INTERNAL_STORE`, and is returned.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::builder()
    ///     .on_miss(|id: &[u8]| (id == b"remote").then(|| Arc::new(Sess(id.to_vec()))))
    ///     .build();
    /// assert!(cache.get(b"remote").is_some()); // from the second tier, now stored
    /// assert!(cache.contains(b"remote"));
    /// assert_eq!(cache.stats().cb_hits, 1);
    /// ```
    pub fn on_miss(mut self, f: impl Fn(&[u8]) -> Option<Arc<S>> + Send + Sync + 'static) -> Self {
        self.on_miss = Some(Box::new(f));
        self
    }

    /// Hashes ids with this fixed seed instead of a random one, so that a test input that
    /// failed replays exactly (the seed decides which ids share a bucket, and so which entries a
    /// sampled eviction looks at). Not for production: a known seed lets an attacker choose ids
    /// that collide.
    #[doc(hidden)]
    pub fn hash_seed(mut self, seed: u64) -> Self {
        self.hash_seed = Some(seed);
        self
    }

    /// Builds the cache.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache: SessionCache<Sess> = SessionCache::builder().build();
    /// assert!(cache.is_empty());
    /// ```
    pub fn build(self) -> SessionCache<S> {
        let settings = Settings {
            capacity: self.capacity,
            timeout: self.timeout,
            mode: self.mode,
        };
        SessionCache {
            policy: Policy::new(
                settings,
                self.clock,
                self.on_remove,
                self.max_id_len,
                self.hash_seed,
            ),
            on_miss: self.on_miss,
            remote: self.remote,
        }
    }
}
