//! Time sources: the cache asks a [`Clock`] for "now" once per operation.

use std::sync::Arc;
use std::time::Duration;

use crate::loom::sync::atomic::{AtomicU64, Ordering};

/// A source of monotonic time, measured from any fixed origin.
///
/// The cache reads it once per operation that needs the time. It must be cheap and safe to
/// call from many threads. A clock that goes backwards is tolerated: the cache treats it as
/// standing still until it passes the latest time it reported.
pub trait Clock: Send + Sync + 'static {
    /// The time elapsed since this clock's origin.
    fn now(&self) -> Duration;
}

/// The default clock: the system's monotonic clock.
///
/// On Linux it reads `CLOCK_MONOTONIC_COARSE`, which costs a few nanoseconds (a vDSO read of a
/// value the kernel updates every tick, 1 to 4 ms): session timeouts are seconds or more, so a
/// tick of slack does not matter, while a precise clock read would cost more than the lookup it
/// guards. Elsewhere it uses [`std::time::Instant`].
///
/// (In the crate's loom builds it stands still at zero: loom replays each execution and needs
/// every branch to repeat. Models that need time use [`ManualClock`].)
#[derive(Debug, Clone, Copy, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    #[cfg(session_cache_loom)]
    fn now(&self) -> Duration {
        Duration::ZERO
    }

    #[cfg(all(target_os = "linux", not(session_cache_loom)))]
    #[inline]
    fn now(&self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on every
        // Linux since 2.6.32 and cannot fail with a valid pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    #[cfg(not(any(target_os = "linux", session_cache_loom)))]
    fn now(&self) -> Duration {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        ORIGIN.get_or_init(std::time::Instant::now).elapsed()
    }
}

/// A clock that moves only when told to: for tests, simulations and fuzzing.
///
/// Clones share the same time, so a test keeps one handle and gives a clone to the cache.
///
/// ```
/// use session_cache::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let cache_side = clock.clone();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(cache_side.now(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock at time zero.
    ///
    /// ```
    /// use session_cache::{Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// assert_eq!(ManualClock::new().now(), Duration::ZERO);
    /// ```
    pub fn new() -> Self {
        ManualClock {
            nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves the clock forward by `by` (saturating). Clones share one time: a test keeps one
    /// and gives the cache another.
    ///
    /// ```
    /// use session_cache::{Clock, ManualClock, Session, SessionCache};
    /// use std::{sync::Arc, time::Duration};
    ///
    /// struct S([u8; 4]);
    /// impl Session for S {
    ///     fn id(&self) -> &[u8] { &self.0 }
    /// }
    ///
    /// let clock = ManualClock::new();
    /// let cache = SessionCache::builder()
    ///     .timeout(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build();
    /// cache.add(Arc::new(S(*b"abcd")));
    /// clock.advance(Duration::from_secs(61));
    /// assert_eq!(clock.now(), Duration::from_secs(61));
    /// assert!(cache.get(b"abcd").is_none(), "expired");
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = duration_to_nanos(by);
        // Relaxed: the clock publishes nothing but its own value.
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(by))
            });
    }

    /// Sets the clock to `to`, which may be earlier than now (a clock that jumps back; the
    /// cache then treats time as standing still until it passes the latest time it saw).
    ///
    /// ```
    /// use session_cache::{Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// clock.set(Duration::from_secs(10));
    /// clock.set(Duration::from_secs(5));
    /// assert_eq!(clock.now(), Duration::from_secs(5));
    /// ```
    pub fn set(&self, to: Duration) {
        // Relaxed: as in `advance`.
        self.nanos.store(duration_to_nanos(to), Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        // Relaxed: as in `advance`.
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

/// Nanoseconds, saturating at `u64::MAX` (about 584 years: "never").
/// The clock as the cache reads it: the default clock called directly, in `u64` nanoseconds
/// (no virtual call, no `Duration` arithmetic on the hot path), or any other [`Clock`].
pub(crate) enum TimeSource {
    Monotonic,
    Custom(Box<dyn Clock>),
}

impl TimeSource {
    pub(crate) fn of<C: Clock>(clock: C) -> Self {
        if core::any::TypeId::of::<C>() == core::any::TypeId::of::<MonotonicClock>() {
            TimeSource::Monotonic
        } else {
            TimeSource::Custom(Box::new(clock))
        }
    }

    /// Now, in nanoseconds, saturating.
    #[inline]
    pub(crate) fn now_nanos(&self) -> u64 {
        match self {
            TimeSource::Monotonic => MonotonicClock::nanos(),
            TimeSource::Custom(clock) => duration_to_nanos(clock.now()),
        }
    }
}

impl MonotonicClock {
    /// [`Clock::now`] in nanoseconds.
    #[cfg(all(target_os = "linux", not(session_cache_loom)))]
    #[inline]
    fn nanos() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: as in `Clock::now`.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64)
    }

    #[cfg(not(all(target_os = "linux", not(session_cache_loom))))]
    #[inline]
    fn nanos() -> u64 {
        duration_to_nanos(MonotonicClock.now())
    }
}

#[inline]
pub(crate) fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
