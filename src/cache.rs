//! The OpenSSL-shaped API: `SSL_CTX_add_session`, `SSL_CTX_remove_session`, the resumption
//! lookup with its second tier, flush, settings and statistics.

use std::sync::Arc;
use std::time::Duration;

use crate::builder::{Builder, MissHandler};
use crate::policy::{Lookup, Policy};
use crate::{AddError, Added, CacheMode, Session, Stats};

/// A lock-free concurrent cache of sessions keyed by their id, with OpenSSL's session-cache
/// contract.
///
/// Every method takes `&self` and may be called from any number of threads; none of them
/// blocks or waits for another thread. See the crate documentation for the guarantees.
///
/// ```
/// use session_cache::{Session, SessionCache};
/// use std::sync::Arc;
///
/// struct Sess { id: Vec<u8>, master_secret: [u8; 48] }
/// impl Session for Sess {
///     fn id(&self) -> &[u8] { &self.id }
/// }
///
/// let cache = SessionCache::new();
/// let s = Arc::new(Sess { id: b"session-1".to_vec(), master_secret: [7; 48] });
/// assert!(cache.add(s.clone()));              // inserted
/// assert!(!cache.add(s.clone()));             // the very same object: no-op
/// let hit = cache.get(b"session-1").unwrap(); // resume
/// assert!(Arc::ptr_eq(&hit, &s));
/// assert!(cache.take(b"session-1").is_some()); // single use (TLS 1.3 tickets)
/// assert!(cache.get(b"session-1").is_none());
/// ```
pub struct SessionCache<S: Session> {
    pub(crate) policy: Policy<S>,
    pub(crate) on_miss: Option<MissHandler<S>>,
    /// The fleet tier, if any (feature `redis`): one hook per operation below.
    pub(crate) remote: crate::tier::TierSlot<S>,
}

impl<S: Session> Default for SessionCache<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Session> core::fmt::Debug for SessionCache<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the sessions themselves: they hold secrets.
        f.debug_struct("SessionCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("timeout", &self.timeout())
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

impl<S: Session> SessionCache<S> {
    /// A cache with OpenSSL's defaults: capacity 20 480, timeout 300 s, mode `SERVER`.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache: SessionCache<Sess> = SessionCache::new();
    /// assert_eq!((cache.capacity(), cache.len()), (20_480, 0));
    /// ```
    pub fn new() -> Self {
        Builder::default().build()
    }

    /// Loom builds only: an add into an exactly full cache stays uncounted while it evicts, as
    /// in every other build (loom builds otherwise count it in and reserve the eviction, which
    /// keeps the other models small).
    #[cfg(session_cache_loom)]
    #[doc(hidden)]
    pub fn loom_count_in_place(&self) {
        self.policy.count_in_place();
    }

    /// Loom builds only: the calling thread counts on owned stripe `i` (0 or 1) of every cache
    /// from now on, and keeps the room of its removals there as every other build does (loom
    /// builds otherwise count every thread on the shared stripe, which holds no room).
    #[cfg(session_cache_loom)]
    #[doc(hidden)]
    pub fn loom_use_stripe(i: usize) {
        crate::policy::loom_use_stripe(i);
    }

    /// Loom builds only: rebuilds freeze a block as in every other build (skipping its dead
    /// slots, each other slot with a CAS from the value just loaded; loom builds otherwise
    /// freeze every slot with one RMW, which keeps the larger rebuild models small).
    #[cfg(session_cache_loom)]
    #[doc(hidden)]
    pub fn loom_freeze_as_shipped(&self) {
        self.policy.freeze_as_shipped();
    }

    /// A builder for other settings, a clock, and callbacks.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::<Sess>::builder().capacity(2).build();
    /// assert_eq!(cache.capacity(), 2);
    /// ```
    pub fn builder() -> Builder<S> {
        Builder::default()
    }

    /// Caches `session` under its id (`SSL_CTX_add_session`).
    ///
    /// Returns `true` if it was inserted or replaced another object with the same id, and
    /// `false` if that very object (`Arc::ptr_eq`) was already cached (then the reference passed
    /// in is dropped and nothing else changes, except the entry's place among equal expiries
    /// and, under [`CacheMode::UPDATE_TIME`], its expiry) or if the id is empty or too long.
    /// Inserting into a full cache evicts the entry that expires soonest.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::new();
    /// let s = Arc::new(Sess(b"id-1".to_vec()));
    /// assert!(cache.add(s.clone()));                 // inserted
    /// assert!(!cache.add(s));                        // that very object again: a no-op
    /// assert!(cache.add(Arc::new(Sess(b"id-1".to_vec())))); // another object: replaces it
    /// assert!(!cache.add(Arc::new(Sess(Vec::new())))); // an empty id is refused
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn add(&self, session: Arc<S>) -> bool {
        self.try_add(session).is_ok_and(Added::changed)
    }

    /// Like [`add`](Self::add), saying what happened, or why the session was refused.
    ///
    /// # Errors
    ///
    /// [`AddError::EmptyId`] for an empty id, [`AddError::IdTooLong`] for an id longer than
    /// [`max_id_len`](Self::max_id_len); the cache is unchanged then.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// use session_cache::{AddError, Added};
    /// let cache = SessionCache::new();
    /// let s = Arc::new(Sess(b"id-1".to_vec()));
    /// assert_eq!(cache.try_add(s.clone()), Ok(Added::Inserted));
    /// assert_eq!(cache.try_add(s), Ok(Added::AlreadyCached));
    /// assert_eq!(cache.try_add(Arc::new(Sess(Vec::new()))), Err(AddError::EmptyId));
    /// ```
    pub fn try_add(&self, session: Arc<S>) -> Result<Added, AddError> {
        let refresh = self.mode().contains(CacheMode::UPDATE_TIME);
        self.remote.add(&self.policy, session, refresh)
    }

    /// Returns the live session cached under `session.id()`, or, when there is none (or only an
    /// expired one), caches `session` and returns it. Never replaces a live entry: of any number
    /// of racing `get_or_add`s of one id, all get the same session. Counts as an insert when it
    /// inserts, and nothing otherwise; `session` is dropped when another is returned. With a fleet
    /// tier (feature `redis`) it acts on the local cache only.
    ///
    /// # Errors
    ///
    /// As [`try_add`](Self::try_add): [`AddError::EmptyId`] or [`AddError::IdTooLong`], with
    /// nothing looked up or cached.
    ///
    /// ```
    /// use session_cache::{Session, SessionCache};
    /// use std::sync::Arc;
    ///
    /// struct Peer { name: Vec<u8> }
    /// impl Session for Peer {
    ///     fn id(&self) -> &[u8] { &self.name }
    /// }
    ///
    /// let cache = SessionCache::new();
    /// let first = cache.get_or_add(Arc::new(Peer { name: b"example.com".to_vec() })).unwrap();
    /// let again = cache.get_or_add(Arc::new(Peer { name: b"example.com".to_vec() })).unwrap();
    /// assert!(Arc::ptr_eq(&first, &again));
    /// ```
    pub fn get_or_add(&self, session: Arc<S>) -> Result<Arc<S>, AddError> {
        self.policy.get_or_insert(session)
    }

    /// Removes whatever is cached under `session.id()` (`SSL_CTX_remove_session`); `true` if
    /// something was. Removal is by id: the cached object need not be `session`. `session` is
    /// marked not resumable either way (unless its id is empty, as OpenSSL). Of any number of
    /// racing `remove`s and [`take`](Self::take)s of one entry, exactly one wins.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::new();
    /// let s = Arc::new(Sess(b"id-1".to_vec()));
    /// cache.add(s.clone());
    /// assert!(cache.remove(&Sess(b"id-1".to_vec()))); // by id: another object with the id will do
    /// assert!(!cache.remove(&s));                     // nothing left to remove
    /// ```
    pub fn remove(&self, session: &S) -> bool {
        let id = session.id();
        if id.is_empty() {
            return false;
        }
        session.set_not_resumable();
        let removed = self.policy.remove(id);
        self.remote.removed(&self.policy, id, session.timeout());
        removed
    }

    /// Removes whatever is cached under `id`; `true` if something was. Marks nothing.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::new();
    /// cache.add(Arc::new(Sess(b"id-1".to_vec())));
    /// assert!(cache.remove_id(b"id-1"));
    /// assert!(!cache.remove_id(b"id-1"));
    /// ```
    pub fn remove_id(&self, id: &[u8]) -> bool {
        let removed = self.policy.remove(id);
        self.remote.removed(&self.policy, id, None);
        removed
    }

    /// Removes and returns the session cached under `id`: a single-use lookup (rustls's
    /// `take`, TLS 1.3 anti-replay). Counts a hit, a miss or a timeout like `get`, but never
    /// consults `on_miss` and ignores the mode.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::new();
    /// cache.add(Arc::new(Sess(b"ticket".to_vec())));
    /// assert!(cache.take(b"ticket").is_some()); // resumes once
    /// assert!(cache.take(b"ticket").is_none()); // and never again
    /// ```
    pub fn take(&self, id: &[u8]) -> Option<Arc<S>> {
        let local = match self.policy.take(id) {
            Lookup::Hit(session) => Some(session),
            Lookup::Expired | Lookup::Miss => None,
        };
        self.remote.take(&self.policy, id, local)
    }

    /// Looks up `id` for resumption.
    ///
    /// Unless the mode has `NO_INTERNAL_LOOKUP`: a live entry is a hit; an expired one is
    /// removed, counted as a timeout, and `None` is returned (as OpenSSL, the second tier is not
    /// asked then); nothing cached counts a miss. On a miss (or always under
    /// `NO_INTERNAL_LOOKUP`) the `on_miss` handler, if any, is asked; see
    /// [`Builder::on_miss`].
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::new();
    /// cache.add(Arc::new(Sess(b"id-1".to_vec())));
    /// assert!(cache.get(b"id-1").is_some());
    /// assert!(cache.get(b"id-2").is_none());
    /// assert_eq!((cache.stats().hits, cache.stats().misses), (1, 1));
    /// ```
    #[inline]
    pub fn get(&self, id: &[u8]) -> Option<Arc<S>> {
        let mode = self.mode();
        if !mode.contains(CacheMode::NO_INTERNAL_LOOKUP) {
            self.remote.apply_invalidations(&self.policy);
            match self.policy.get(id) {
                Lookup::Hit(session) => return Some(session),
                Lookup::Expired => return None,
                Lookup::Miss => {}
            }
        }
        self.ask_second_tier(id, mode)
    }

    /// Looks up `id` like [`get`](Self::get) but reads the session in place with `f`, without
    /// touching its reference count. `f` runs while the calling thread is pinned: keep it
    /// short and never block in it. The second tier is not consulted.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::new();
    /// cache.add(Arc::new(Sess(b"id-1".to_vec())));
    /// assert_eq!(cache.get_with(b"id-1", |s| s.0.len()), Some(4));
    /// assert_eq!(cache.get_with(b"id-2", |s| s.0.len()), None);
    /// ```
    pub fn get_with<R>(&self, id: &[u8], f: impl FnOnce(&S) -> R) -> Option<R> {
        if self.mode().contains(CacheMode::NO_INTERNAL_LOOKUP) {
            return None;
        }
        self.remote.apply_invalidations(&self.policy);
        match self.policy.get_with(id, f) {
            Lookup::Hit(r) => Some(r),
            Lookup::Expired | Lookup::Miss => None,
        }
    }

    #[inline(always)]
    fn ask_second_tier(&self, id: &[u8], mode: CacheMode) -> Option<Arc<S>> {
        if let Some(session) = self.remote.fetch(&self.policy, id, mode) {
            return Some(session);
        }
        let on_miss = self.on_miss.as_ref()?;
        self.ask_callback(on_miss, id, mode)
    }

    /// The `get_session_cb` half of [`ask_second_tier`](Self::ask_second_tier), out of line.
    #[inline(never)]
    fn ask_callback(&self, on_miss: &MissHandler<S>, id: &[u8], mode: CacheMode) -> Option<Arc<S>> {
        let session = on_miss(id)?;
        self.policy.count_cb_hit();
        if !mode.contains(CacheMode::NO_INTERNAL_STORE) {
            // As OpenSSL: the result of storing is not the lookup's business.
            let _ = self
                .policy
                .insert(Arc::clone(&session), mode.contains(CacheMode::UPDATE_TIME));
        }
        Some(session)
    }

    /// Whether a live session is cached under `id`. Counts nothing and removes nothing.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::new();
    /// cache.add(Arc::new(Sess(b"id-1".to_vec())));
    /// assert!(cache.contains(b"id-1"));
    /// assert_eq!(cache.stats().hits, 0); // counts nothing
    /// ```
    pub fn contains(&self, id: &[u8]) -> bool {
        self.remote.apply_invalidations(&self.policy);
        self.policy.contains(id)
    }

    /// The number of cached entries (`SSL_CTX_sess_number`), expired ones not yet removed
    /// included. Exact when no other thread is changing the cache.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::new();
    /// cache.add(Arc::new(Sess(b"id-1".to_vec())));
    /// cache.add(Arc::new(Sess(b"id-2".to_vec())));
    /// assert_eq!(cache.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.policy.len()
    }

    /// Whether [`len`](Self::len) is 0.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache: SessionCache<Sess> = SessionCache::new();
    /// assert!(cache.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the cache holds; 0 means unbounded.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::<Sess>::builder().capacity(0).build();
    /// assert_eq!(cache.capacity(), 0); // unbounded
    /// ```
    pub fn capacity(&self) -> usize {
        self.policy.capacity()
    }

    /// Sets the capacity (`SSL_CTX_sess_set_cache_size`) and returns the previous one. A
    /// smaller capacity takes effect at the next insert of a new id, which evicts down to it.
    /// A larger one lets the bucket array double, one bucket at a time, as entries arrive.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::new();
    /// for i in 0..4u8 {
    ///     cache.add(Arc::new(Sess(vec![i + 1])));
    /// }
    /// assert_eq!(cache.set_capacity(2), 20_480);
    /// assert_eq!(cache.len(), 4);               // not yet: at the next insert of a new id
    /// cache.add(Arc::new(Sess(vec![9])));
    /// assert_eq!(cache.len(), 2);
    /// ```
    pub fn set_capacity(&self, n: usize) -> usize {
        self.policy.set_capacity(n)
    }

    /// The lifetime given to sessions without their own.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// use std::time::Duration;
    /// let cache: SessionCache<Sess> = SessionCache::new();
    /// assert_eq!(cache.timeout(), Duration::from_secs(300));
    /// ```
    pub fn timeout(&self) -> Duration {
        self.policy.timeout()
    }

    /// Sets the timeout for sessions added from now on (`SSL_CTX_set_timeout`); returns the
    /// previous one.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// use std::time::Duration;
    /// let cache: SessionCache<Sess> = SessionCache::new();
    /// let old = cache.set_timeout(Duration::from_secs(7200));
    /// assert_eq!((old, cache.timeout()), (Duration::from_secs(300), Duration::from_secs(7200)));
    /// ```
    pub fn set_timeout(&self, t: Duration) -> Duration {
        self.policy.set_timeout(t)
    }

    /// The mode bits.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// use session_cache::CacheMode;
    /// let cache: SessionCache<Sess> = SessionCache::new();
    /// assert_eq!(cache.mode(), CacheMode::SERVER);
    /// ```
    pub fn mode(&self) -> CacheMode {
        self.policy.mode()
    }

    /// Sets the mode bits (`SSL_CTX_set_session_cache_mode`); returns the previous ones.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// use session_cache::CacheMode;
    /// let cache: SessionCache<Sess> = SessionCache::new();
    /// cache.set_mode(CacheMode::SERVER | CacheMode::NO_AUTO_CLEAR);
    /// assert!(cache.mode().contains(CacheMode::NO_AUTO_CLEAR));
    /// ```
    pub fn set_mode(&self, mode: CacheMode) -> CacheMode {
        self.policy.set_mode(mode)
    }

    /// The number of buckets of the table now (it doubles as an unbounded cache fills). For
    /// tests and diagnostics; not part of the stable API.
    #[doc(hidden)]
    pub fn bucket_count(&self) -> usize {
        self.policy.bucket_count()
    }

    /// Checks the cache's internal invariants (the table's claim and tag rules, no live entry
    /// in a moved bucket, the live count equal to the live entries) and panics, naming the
    /// broken rule, if one does not hold. Only meaningful at rest: call it when no other thread
    /// is using the cache. For tests; not part of the stable API.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        self.policy.check_invariants()
    }

    /// The longest id accepted.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::<Sess>::builder().max_id_len(32).build();
    /// assert_eq!(cache.max_id_len(), 32);
    /// assert!(!cache.add(Arc::new(Sess(vec![1; 33]))));
    /// ```
    pub fn max_id_len(&self) -> usize {
        self.policy.max_id_len()
    }

    /// Removes every expired entry (`SSL_CTX_flush_sessions(ctx, now)`): each is marked not
    /// resumable and reported as `Expired`. Returns how many were removed. With a fleet tier
    /// (feature `redis`) it acts on the local cache only: Redis expires its copies by TTL.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// use session_cache::ManualClock;
    /// use std::time::Duration;
    /// let clock = ManualClock::new();
    /// let cache = SessionCache::builder()
    ///     .timeout(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .build();
    /// cache.add(Arc::new(Sess(b"id-1".to_vec())));
    /// clock.advance(Duration::from_secs(11));
    /// assert_eq!(cache.flush_expired(), 1);
    /// assert!(cache.is_empty());
    /// ```
    pub fn flush_expired(&self) -> usize {
        self.policy.flush_expired()
    }

    /// Removes every entry (`SSL_CTX_flush_sessions(ctx, 0)`): each is marked not resumable and
    /// reported as `Cleared`. With a fleet tier (feature `redis`) it acts on the local cache
    /// only; the sessions stay in Redis for the other nodes.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::new();
    /// cache.add(Arc::new(Sess(b"id-1".to_vec())));
    /// cache.clear();
    /// assert!(cache.is_empty());
    /// assert_eq!(cache.stats().cleared, 1);
    /// ```
    pub fn clear(&self) {
        self.policy.clear()
    }

    /// A snapshot of the statistics.
    ///
    /// ```
    /// # use session_cache::{Session, SessionCache};
    /// # use std::sync::Arc;
    /// # struct Sess(Vec<u8>);
    /// # impl Session for Sess { fn id(&self) -> &[u8] { &self.0 } }
    /// let cache = SessionCache::new();
    /// cache.add(Arc::new(Sess(b"id-1".to_vec())));
    /// cache.get(b"id-1");
    /// let st = cache.stats();
    /// assert_eq!((st.entries, st.inserts, st.hits), (1, 1, 1));
    /// ```
    pub fn stats(&self) -> Stats {
        self.policy.stats()
    }
}
