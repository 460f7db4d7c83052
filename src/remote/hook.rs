//! How a [`SessionCache`] reaches its tier: the slot it holds, filled by
//! [`Builder::remote`] (only for sessions that are [`RemoteSession`]s) and called once per
//! operation from `src/cache.rs`.
//!
//! The slot stores the tier with the session type's `encode` and `decode` as plain function
//! pointers, so the cache stays generic over any [`Session`] while only remote-capable types
//! can be given a tier. With no tier, every hook is one branch on a `None`.

use std::sync::Arc;
use std::time::Duration;

use super::core::{RedisTier, Taken};
use super::seal::zero;
use super::{RemoteSession, RemoteStats};
use crate::builder::Builder;
use crate::loom::sync::atomic::Ordering::Acquire;
use crate::policy::Policy;
use crate::{AddError, Added, CacheMode, Session, SessionCache};

type Encode<S> = fn(&S) -> Vec<u8>;
type Decode<S> = fn(&[u8], &[u8]) -> Option<S>;

struct Bound<S> {
    tier: RedisTier,
    encode: Encode<S>,
    decode: Decode<S>,
}

/// The cache's tier, if it has one.
pub(crate) struct TierSlot<S> {
    bound: Option<Box<Bound<S>>>,
}

impl<S> Default for TierSlot<S> {
    fn default() -> Self {
        Self { bound: None }
    }
}

impl<S: Session> TierSlot<S> {
    /// `add`: the local insert, then (if it changed something) the write to Redis with a TTL
    /// of the session's lifetime. Never waits for Redis.
    #[inline]
    pub(crate) fn add(
        &self,
        policy: &Policy<S>,
        session: Arc<S>,
        refresh: bool,
    ) -> Result<Added, AddError> {
        let Some(b) = &self.bound else {
            return policy.insert(session, refresh);
        };
        let kept = Arc::clone(&session);
        let added = policy.insert(session, refresh);
        let write = match added {
            Ok(Added::Inserted | Added::Replaced) => true,
            Ok(Added::AlreadyCached) => refresh,
            Err(_) => false,
        };
        if write {
            let lifetime = kept.timeout().unwrap_or_else(|| policy.timeout());
            let mut plain = (b.encode)(&kept);
            b.tier.write(kept.id(), &plain, lifetime);
            zero(&mut plain);
            b.tier.core.inval.track(kept.id(), lifetime);
        }
        added
    }

    /// Before a local lookup: applies the removals other nodes announced. One load and a
    /// branch when there are none.
    #[inline]
    pub(crate) fn apply_invalidations(&self, policy: &Policy<S>) {
        if let Some(b) = &self.bound {
            // Acquire: pairs with the Release in `Invalidations::push`.
            if b.tier.core.inval.pending.load(Acquire) != 0 {
                for id in b.tier.core.inval.take_all() {
                    policy.remove(&id);
                }
            }
        }
    }

    /// After a local miss: asks Redis within the read budget; a valid session is cached
    /// locally (unless `NO_INTERNAL_STORE`) for the lifetime it has left, and returned.
    pub(crate) fn fetch(&self, policy: &Policy<S>, id: &[u8], mode: CacheMode) -> Option<Arc<S>> {
        let b = self.bound.as_ref()?;
        if id.is_empty() || id.len() > policy.max_id_len() {
            return None;
        }
        let inval = &b.tier.core.inval;
        let generation = inval.generation();
        let (session, left) = b.tier.fetch(id, |plain| {
            (b.decode)(id, plain).filter(|s: &S| s.id() == id)
        })?;
        let session = Arc::new(session);
        if !mode.contains(CacheMode::NO_INTERNAL_STORE) {
            let _ = policy.insert_for(Arc::clone(&session), left);
            inval.track(id, left);
            if inval.generation() != generation {
                // An announcement arrived during the round trip: perhaps this id's removal.
                policy.remove(id);
            }
        }
        Some(session)
    }

    /// `take`, after the local take gave `local`: single use decided by Redis (`GETDEL`).
    #[inline]
    pub(crate) fn take(
        &self,
        policy: &Policy<S>,
        id: &[u8],
        local: Option<Arc<S>>,
    ) -> Option<Arc<S>> {
        let Some(b) = &self.bound else {
            return local;
        };
        if id.is_empty() || id.len() > policy.max_id_len() {
            return None;
        }
        let have_local = local.is_some();
        let taken = b.tier.take(id, |plain| {
            if have_local {
                Some(None) // valid; the local object is returned
            } else {
                (b.decode)(id, plain).filter(|s: &S| s.id() == id).map(Some)
            }
        });
        match taken {
            Taken::Confirmed(Some(decoded)) => local.or_else(|| decoded.map(Arc::new)),
            Taken::Confirmed(None) => None,
            Taken::Unconfirmed if b.tier.take_best_effort() => local,
            Taken::Unconfirmed => None,
        }
    }

    /// `remove` / `remove_id`: the fleet-wide delete, retried up to `lifetime` (the longest
    /// the session could still live) when Redis cannot be reached now.
    #[inline]
    pub(crate) fn removed(&self, policy: &Policy<S>, id: &[u8], lifetime: Option<Duration>) {
        if let Some(b) = &self.bound {
            if !id.is_empty() && id.len() <= policy.max_id_len() {
                let bound = lifetime.map_or(policy.timeout(), |l| l.max(policy.timeout()));
                b.tier.delete(id, Some(bound));
            }
        }
    }
}

impl<S: RemoteSession> Builder<S> {
    /// A fleet-wide second tier: sessions added here are written to Redis (sealed), local
    /// misses are looked up there, `take` is single use across the fleet and `remove` deletes
    /// everywhere. See [`crate::remote`].
    ///
    /// ```no_run
    /// use session_cache::remote::{RedisTier, RemoteSession};
    /// use session_cache::{Session, SessionCache};
    ///
    /// struct Ticket { id: Vec<u8>, state: Vec<u8> }
    /// impl Session for Ticket {
    ///     fn id(&self) -> &[u8] { &self.id }
    /// }
    /// impl RemoteSession for Ticket {
    ///     fn encode(&self) -> Vec<u8> { self.state.clone() }
    ///     fn decode(id: &[u8], bytes: &[u8]) -> Option<Self> {
    ///         Some(Ticket { id: id.to_vec(), state: bytes.to_vec() })
    ///     }
    /// }
    ///
    /// let tier = RedisTier::builder("redis://127.0.0.1:6379/").encryption_key([7; 32]).build()?;
    /// let cache: SessionCache<Ticket> =
    ///     SessionCache::builder().capacity(20_480).remote(tier).build();
    /// cache.sync_remote();
    /// let stats = cache.remote_stats().expect("a tier");
    /// println!("{} writes, {} dropped", stats.writes, stats.dropped_writes);
    /// # Ok::<(), session_cache::remote::RemoteError>(())
    /// ```
    pub fn remote(mut self, tier: RedisTier) -> Self {
        self.remote = TierSlot {
            bound: Some(Box::new(Bound {
                tier,
                encode: <S as RemoteSession>::encode,
                decode: <S as RemoteSession>::decode,
            })),
        };
        self
    }
}

impl<S: Session> SessionCache<S> {
    /// The fleet tier's counters, or `None` when the cache has no tier.
    ///
    /// ```no_run
    /// use session_cache::remote::{RedisTier, RemoteSession};
    /// use session_cache::{Session, SessionCache};
    ///
    /// struct Ticket { id: Vec<u8>, state: Vec<u8> }
    /// impl Session for Ticket {
    ///     fn id(&self) -> &[u8] { &self.id }
    /// }
    /// impl RemoteSession for Ticket {
    ///     fn encode(&self) -> Vec<u8> { self.state.clone() }
    ///     fn decode(id: &[u8], bytes: &[u8]) -> Option<Self> {
    ///         Some(Ticket { id: id.to_vec(), state: bytes.to_vec() })
    ///     }
    /// }
    ///
    /// let tier = RedisTier::builder("redis://127.0.0.1:6379/").encryption_key([7; 32]).build()?;
    /// let cache: SessionCache<Ticket> =
    ///     SessionCache::builder().capacity(20_480).remote(tier).build();
    /// cache.sync_remote();
    /// let stats = cache.remote_stats().expect("a tier");
    /// println!("{} writes, {} dropped", stats.writes, stats.dropped_writes);
    /// # Ok::<(), session_cache::remote::RemoteError>(())
    /// ```
    pub fn remote_stats(&self) -> Option<RemoteStats> {
        self.remote.bound.as_ref().map(|b| b.tier.stats())
    }

    /// Waits until the operations this cache queued for Redis so far were answered (or
    /// failed), at most the tier's sync timeout (default 1 s; a removal that failed stays
    /// queued for retry). `true` when all were carried out on a working connection in time, or
    /// when the cache has no tier; `false` otherwise. Not needed for correctness (a node's
    /// operations reach Redis in order anyway); for tests, and before a planned shutdown.
    ///
    /// ```no_run
    /// use session_cache::remote::{RedisTier, RemoteSession};
    /// use session_cache::{Session, SessionCache};
    ///
    /// struct Ticket { id: Vec<u8>, state: Vec<u8> }
    /// impl Session for Ticket {
    ///     fn id(&self) -> &[u8] { &self.id }
    /// }
    /// impl RemoteSession for Ticket {
    ///     fn encode(&self) -> Vec<u8> { self.state.clone() }
    ///     fn decode(id: &[u8], bytes: &[u8]) -> Option<Self> {
    ///         Some(Ticket { id: id.to_vec(), state: bytes.to_vec() })
    ///     }
    /// }
    ///
    /// let tier = RedisTier::builder("redis://127.0.0.1:6379/").encryption_key([7; 32]).build()?;
    /// let cache: SessionCache<Ticket> =
    ///     SessionCache::builder().capacity(20_480).remote(tier).build();
    /// cache.sync_remote();
    /// let stats = cache.remote_stats().expect("a tier");
    /// println!("{} writes, {} dropped", stats.writes, stats.dropped_writes);
    /// # Ok::<(), session_cache::remote::RemoteError>(())
    /// ```
    pub fn sync_remote(&self) -> bool {
        self.remote.bound.as_ref().map_or(true, |b| b.tier.sync())
    }
}
