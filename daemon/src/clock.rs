//! The wall clock, behind a trait so tests can move it.
//!
//! Timers run on tokio's monotonic clock, which stops while a laptop
//! sleeps; token expiry is wall-clock time. Every decision about validity
//! therefore asks this clock, never the timer.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The system clock shifted by an adjustable offset: tests use it to jump
/// past an expiry (a simulated suspend) or to skew the clock by hours.
#[derive(Debug, Default, Clone)]
pub struct OffsetClock {
    offset_ms: Arc<AtomicI64>,
}

impl OffsetClock {
    /// Moves the clock forward (or back, for negative values).
    pub fn shift(&self, by: Duration, forward: bool) {
        let ms = by.as_millis() as i64;
        self.offset_ms
            .fetch_add(if forward { ms } else { -ms }, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> SystemTime {
        let offset = self.offset_ms.load(Ordering::SeqCst);
        let now = SystemTime::now();
        if offset >= 0 {
            now + Duration::from_millis(offset as u64)
        } else {
            now - Duration::from_millis(offset.unsigned_abs())
        }
    }
}
