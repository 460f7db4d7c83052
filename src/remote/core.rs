//! The tier as the callers see it: [`RedisTier`] and the calls the cache makes, each bounded.

use std::fmt;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::breaker::Breaker;
use super::config::{Config, RedisTierBuilder, RemoteError};
use super::invalidate::{self, Invalidations};
use super::keys::session_key;
use super::seal::{fill_random, Sealer};
use super::stats::{Counters, RemoteStats};
use super::worker::{self, Op, PendingDel, Reply};
use crate::loom::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

/// A fleet-wide second tier on Redis, for one [`SessionCache`](crate::SessionCache).
///
/// Built with [`RedisTier::builder`] and handed to [`Builder::remote`](crate::Builder::remote).
/// It runs two threads of its own (commands; removal announcements) and is called
/// synchronously from any thread: no async runtime is needed, which is what TLS session
/// callbacks (rustls's `StoresServerSessions`, OpenSSL's `get_session_cb`) require. The threads
/// stop when the cache (or an unused tier) is dropped. One tier serves one cache: give each
/// cache its own (with its own namespace when they hold different kinds of sessions).
///
/// See the [module documentation](crate::remote) for what each operation does.
pub struct RedisTier {
    pub(crate) core: Arc<Core>,
    pub(crate) sender: SyncSender<Op>,
}

/// The state shared by the callers and the I/O threads.
pub(crate) struct Core {
    pub(crate) cfg: Config,
    pub(crate) sealer: Sealer,
    pub(crate) stats: Counters,
    pub(crate) breaker: Breaker,
    pub(crate) inval: Invalidations,
    /// This node's token, to recognise its own announcements.
    pub(crate) token: [u8; 8],
    pub(crate) stop: AtomicBool,
    pub(crate) connected: AtomicBool,
    /// The longest lifetime written or read, in ms: how long an unconfirmed removal is retried
    /// when the session's own remaining lifetime is not known.
    pub(crate) max_lifetime_ms: AtomicU64,
    /// Operations accepted by the queue so far.
    pub(crate) enqueued: AtomicU64,
    /// Removals that found the queue full, for the I/O thread to retry in order.
    pub(crate) overflow: Mutex<Vec<PendingDel>>,
}

impl fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTier")
            .field("config", &self.core.cfg)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for RedisTier {
    fn drop(&mut self) {
        // Release: the I/O threads' Acquire loads see everything this tier did before.
        self.core.stop.store(true, Release);
    }
}

/// The answer to a `take`.
pub(crate) enum Taken<T> {
    /// Redis answered: the session (if it held a valid one), now deleted fleet-wide.
    Confirmed(Option<T>),
    /// Redis could not be asked or did not answer in time.
    Unconfirmed,
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisTier {
    /// Starts configuring a tier on the server at `url`: `redis://host:port/db`,
    /// `rediss://` for TLS (see [`RedisTierBuilder::tls_root_certificate`]),
    /// `redis+unix:///path` or `unix:///path`. A password goes in the URL
    /// (`redis://user:password@host/`).
    ///
    /// ```no_run
    /// use session_cache::remote::RedisTier;
    /// use std::time::Duration;
    ///
    /// let tier = RedisTier::builder("redis://127.0.0.1:6379/")
    ///     .namespace("edge")
    ///     .encryption_key([7; 32])
    ///     .read_budget(Duration::from_millis(5))
    ///     .build()
    ///     .expect("valid settings");
    /// # let _ = tier;
    /// ```
    pub fn builder(url: &str) -> RedisTierBuilder {
        RedisTierBuilder::new(url)
    }

    pub(crate) fn start(cfg: Config) -> Result<Self, RemoteError> {
        if let Some(pem) = &cfg.tls_root_pem {
            use rustls::pki_types::{pem::PemObject, CertificateDer};
            let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
            match certs {
                Ok(c) if !c.is_empty() => {}
                Ok(_) => return Err(RemoteError::Tls("no certificate in the root PEM".into())),
                Err(e) => return Err(RemoteError::Tls(format!("root PEM: {e}"))),
            }
        }
        let client = match &cfg.tls_root_pem {
            Some(pem) => redis::Client::build_with_tls(
                cfg.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )
            .map_err(|e| {
                if e.kind() == redis::ErrorKind::InvalidClientConfig {
                    RemoteError::InvalidUrl(e.to_string())
                } else {
                    RemoteError::Tls(e.to_string())
                }
            })?,
            None => redis::Client::open(cfg.url.as_str())
                .map_err(|e| RemoteError::InvalidUrl(e.to_string()))?,
        };
        let key = cfg.key.ok_or(RemoteError::MissingKey)?;
        let mut token = [0u8; 8];
        fill_random(&mut token);
        let core = Arc::new(Core {
            sealer: Sealer::new(&key, &cfg.previous_keys),
            stats: Counters::default(),
            breaker: Breaker::new(cfg.breaker_threshold, cfg.breaker_cooldown),
            inval: Invalidations::default(),
            token,
            stop: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            max_lifetime_ms: AtomicU64::new(0),
            enqueued: AtomicU64::new(0),
            overflow: Mutex::new(Vec::new()),
            cfg,
        });
        let (sender, receiver) = mpsc::sync_channel(core.cfg.queue_capacity);
        let spawn_err = |e: std::io::Error| RemoteError::Spawn(e.to_string());
        {
            let core = Arc::clone(&core);
            let client = client.clone();
            std::thread::Builder::new()
                .name("session-cache-redis".into())
                .spawn(move || worker::run(core, client, receiver))
                .map_err(spawn_err)?;
        }
        {
            let core = Arc::clone(&core);
            std::thread::Builder::new()
                .name("session-cache-redis-inval".into())
                .spawn(move || invalidate::run(core, client))
                .map_err(spawn_err)?;
        }
        Ok(Self { core, sender })
    }

    /// A snapshot of the tier's counters.
    ///
    /// ```no_run
    /// use session_cache::remote::RedisTier;
    ///
    /// let tier = RedisTier::builder("redis://127.0.0.1:6379/").encryption_key([7; 32]).build()?;
    /// println!("{} remote hits, {} errors", tier.stats().hits, tier.stats().errors);
    /// # Ok::<(), session_cache::remote::RemoteError>(())
    /// ```
    pub fn stats(&self) -> RemoteStats {
        self.core.snapshot()
    }

    fn send(&self, op: Op) -> Result<(), Op> {
        match self.sender.try_send(op) {
            Ok(()) => {
                // Release: pairs with the I/O thread's Acquire load when it orders retried
                // removals after the operations queued before them.
                self.core.enqueued.fetch_add(1, Release);
                Ok(())
            }
            Err(TrySendError::Full(op) | TrySendError::Disconnected(op)) => Err(op),
        }
    }

    fn note_lifetime(&self, lifetime_ms: u64) {
        // Relaxed: a bound used only to size retry windows.
        self.core.max_lifetime_ms.fetch_max(lifetime_ms, Relaxed);
    }

    /// Queues the sealed `plain` for `id`, living `lifetime` from now. Never waits.
    pub(crate) fn write(&self, id: &[u8], plain: &[u8], lifetime: Duration) {
        if lifetime.is_zero() {
            return; // already expired: not written
        }
        let key = session_key(&self.core.cfg.namespace, id);
        let lifetime_ms = ms(lifetime);
        self.note_lifetime(lifetime_ms);
        let value = self
            .core
            .sealer
            .seal(&key, unix_ms().saturating_add(lifetime_ms), plain);
        let op = Op::Set {
            key,
            value,
            expires: Instant::now() + lifetime,
        };
        if self.send(op).is_err() {
            Counters::bump(&self.core.stats.dropped_writes);
        }
    }

    /// Queues the fleet-wide removal of `id`: retried until it succeeds or the session's
    /// lifetime (at most `bound`, or the longest lifetime seen) has passed. Never waits.
    pub(crate) fn delete(&self, id: &[u8], bound: Option<Duration>) {
        // Relaxed: as in `note_lifetime`.
        let seen = Duration::from_millis(self.core.max_lifetime_ms.load(Relaxed));
        let window = bound.map_or(seen, |b| b.max(seen));
        let del = PendingDel {
            key: session_key(&self.core.cfg.namespace, id),
            id: id.to_vec(),
            until: Instant::now() + window,
            not_before: 0,
        };
        if let Err(Op::Del(mut del)) = self.send(Op::Del(del)) {
            // Acquire: pairs with `send`'s Release; every operation queued before this one
            // counts, so the retry is sent after them.
            del.not_before = self.core.enqueued.load(Acquire);
            self.core.queue_overflow(del);
        }
    }

    /// Asks Redis for `id` within the read budget and opens the value with `decode`: the
    /// session and the lifetime it has left.
    pub(crate) fn fetch<T>(
        &self,
        id: &[u8],
        decode: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Option<(T, Duration)> {
        let key = session_key(&self.core.cfg.namespace, id);
        let reply = self.ask(|deadline, reply| Op::Get {
            key: key.clone(),
            deadline,
            reply,
        })?;
        let (value, pttl) = self.answered(reply)?;
        self.open(&key, &value, pttl, decode)
    }

    /// Deletes `id` in Redis and returns what it held (`GETDEL`), within the read budget.
    pub(crate) fn take<T>(&self, id: &[u8], decode: impl FnOnce(&[u8]) -> Option<T>) -> Taken<T> {
        let key = session_key(&self.core.cfg.namespace, id);
        let Some(reply) = self.ask(|deadline, reply| Op::Take {
            key: key.clone(),
            deadline,
            reply,
        }) else {
            return Taken::Unconfirmed;
        };
        match reply {
            Err(()) => {
                self.failed();
                Taken::Unconfirmed
            }
            Ok(None) => {
                self.core.breaker.success();
                Counters::bump(&self.core.stats.misses);
                Taken::Confirmed(None)
            }
            Ok(Some((value, _))) => {
                self.core.breaker.success();
                Taken::Confirmed(self.open(&key, &value, -1, decode).map(|(s, _)| s))
            }
        }
    }

    /// Sends a lookup and waits for its reply, at most the read budget; `None` (counted) when
    /// it could not be sent or timed out.
    fn ask(&self, op: impl FnOnce(Instant, SyncSender<Reply>) -> Op) -> Option<Reply> {
        let stats = &self.core.stats;
        if !self.core.breaker.allows() {
            Counters::bump(&stats.rejected);
            return None;
        }
        let budget = self.core.cfg.read_budget;
        let start = Instant::now();
        let (tx, rx) = mpsc::sync_channel(1);
        if self.send(op(start + budget, tx)).is_err() {
            Counters::bump(&stats.rejected);
            return None;
        }
        match rx.recv_timeout(budget) {
            Ok(reply) => Some(reply),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                Counters::bump(&stats.timeouts);
                self.core.breaker.failure();
                None
            }
        }
    }

    fn failed(&self) {
        Counters::bump(&self.core.stats.errors);
        self.core.breaker.failure();
    }

    fn answered(&self, reply: Reply) -> Option<(Vec<u8>, i64)> {
        match reply {
            Err(()) => {
                self.failed();
                None
            }
            Ok(found) => {
                self.core.breaker.success();
                if found.is_none() {
                    Counters::bump(&self.core.stats.misses);
                }
                found
            }
        }
    }

    /// Opens a value: a miss when its lifetime has passed, a decrypt failure when it does not
    /// open or decode. `pttl` is Redis's remaining TTL in ms (-1: none, -2: gone).
    fn open<T>(
        &self,
        key: &[u8],
        value: &[u8],
        pttl: i64,
        decode: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Option<(T, Duration)> {
        let stats = &self.core.stats;
        let Ok((expiry, mut plain)) = self.core.sealer.open(key, value) else {
            Counters::bump(&stats.decrypt_failures);
            return None;
        };
        let by_value = expiry.saturating_sub(unix_ms());
        let left = match pttl {
            -1 => by_value,
            p if p > 0 => by_value.min(p as u64),
            _ => 0,
        };
        if left == 0 {
            super::seal::zero(&mut plain);
            Counters::bump(&stats.misses);
            return None;
        }
        let session = decode(&plain);
        super::seal::zero(&mut plain);
        match session {
            Some(s) => {
                Counters::bump(&stats.hits);
                self.note_lifetime(left);
                Some((s, Duration::from_millis(left)))
            }
            None => {
                Counters::bump(&stats.decrypt_failures);
                None
            }
        }
    }

    /// Waits until every operation queued before this call has been answered by Redis (or
    /// failed), at most the sync timeout (default 1 s). `true` when all of them were sent on a
    /// working connection in time; `false` on timeout or when the connection failed (the
    /// failures are in the stats; removals stay queued for retry).
    pub(crate) fn sync(&self) -> bool {
        let deadline = Instant::now() + self.core.cfg.sync_timeout;
        let (tx, rx) = mpsc::sync_channel(1);
        let mut op = Op::Sync(tx);
        loop {
            match self.send(op) {
                Ok(()) => break,
                Err(back) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    op = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or(false)
    }

    pub(crate) fn take_best_effort(&self) -> bool {
        self.core.cfg.take_best_effort
    }
}

impl Core {
    pub(crate) fn snapshot(&self) -> RemoteStats {
        // Relaxed: a status flag for statistics.
        self.stats.snapshot(
            self.connected.load(Relaxed),
            self.breaker.is_open(),
            self.inval.subscribed.load(Relaxed),
        )
    }

    pub(crate) fn stopping(&self) -> bool {
        // Acquire: pairs with the Release store in `RedisTier::drop`.
        self.stop.load(Acquire)
    }

    /// Keeps a removal for the I/O thread to retry (bounded by the retry capacity).
    pub(crate) fn queue_overflow(&self, del: PendingDel) {
        let mut list = self.overflow.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() >= self.cfg.retry_capacity {
            Counters::bump(&self.stats.abandoned_removals);
            return;
        }
        list.push(del);
        Counters::bump(&self.stats.pending_removals);
    }
}
