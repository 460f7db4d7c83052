//! The circuit breaker: stop waiting on a server that keeps failing.
//!
//! `threshold` failures in a row (lookups that timed out or failed, connection attempts that
//! failed) open it for `cooldown`: lookups are then answered at once as misses (`take`: `None`)
//! without being sent. After the cooldown it is half open: lookups go out again, the first
//! success closes it, and one more failure opens it for another cooldown. Any round trip
//! answered within the read budget closes it, including the I/O thread's batches of writes. Writes and removals
//! are queued whatever its state (the I/O thread sends them when it can).

use std::time::{Duration, Instant};

use crate::loom::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

pub(crate) struct Breaker {
    epoch: Instant,
    threshold: u32,
    cooldown: Duration,
    /// Failures in a row (saturates at `threshold` while open or half open).
    failures: AtomicU32,
    /// Nanoseconds since `epoch` until which it is open.
    open_until: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            threshold: threshold.max(1),
            cooldown,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether a lookup may be sent now.
    pub(crate) fn allows(&self) -> bool {
        // Relaxed: an advisory flag; a lookup sent or refused a moment late is harmless.
        self.now() >= self.open_until.load(Relaxed)
    }

    pub(crate) fn is_open(&self) -> bool {
        !self.allows()
    }

    /// A round trip answered within the read budget: closes it.
    pub(crate) fn success(&self) {
        // Relaxed: as in `allows`.
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
        if self.open_until.load(Relaxed) != 0 {
            self.open_until.store(0, Relaxed);
        }
    }

    pub(crate) fn failure(&self) {
        // Relaxed: as in `allows`.
        let n = self.failures.fetch_add(1, Relaxed).saturating_add(1);
        if n >= self.threshold {
            self.failures.store(self.threshold, Relaxed);
            let until = self
                .now()
                .saturating_add(u64::try_from(self.cooldown.as_nanos()).unwrap_or(u64::MAX));
            self.open_until.fetch_max(until, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Breaker;
    use std::time::Duration;

    #[test]
    fn opens_after_threshold_and_half_opens_after_cooldown() {
        let b = Breaker::new(3, Duration::from_millis(30));
        b.failure();
        b.failure();
        assert!(b.allows());
        b.failure();
        assert!(b.is_open());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allows());
        // half open: one more failure reopens
        b.failure();
        assert!(b.is_open());
        std::thread::sleep(Duration::from_millis(40));
        b.success();
        b.failure();
        assert!(b.allows());
        // a success closes an open breaker at once
        b.failure();
        b.failure();
        assert!(b.is_open());
        b.success();
        assert!(b.allows());
    }
}
