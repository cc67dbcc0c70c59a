//! The wall clock, behind a trait so tests can move it.
//!
//! Two clocks run in the daemon. Timers (the refresh timer, retry pauses,
//! HTTP timeouts) run on tokio's monotonic clock, which stops while a
//! laptop sleeps. Token expiry is wall-clock time: every decision about
//! whether a token is still valid asks a [`Clock`], never a timer, and a
//! timer never sleeps longer than a minute before the session looks at
//! the wall clock again.
//!
//! Tests need both clocks under control, and moving together:
//! - Unit tests run on tokio's paused time, which does not move
//!   `SystemTime`. Their clock (`TestClock`, test builds only) reads the
//!   wall time as a fixed start plus how far tokio's paused clock has
//!   moved, so sleeping on a timer moves the wall clock by the same amount.
//!   A test can also jump the wall clock alone, which is what a suspend
//!   looks like from inside the daemon.
//! - End-to-end tests run the real binary, whose wall clock they cannot set
//!   without root. A debug build of `fkq-credd` honours
//!   [`TEST_CLOCK_OFFSET_ENV`]: it names a file holding signed seconds that
//!   are added to the system clock at every reading. Release builds do not
//!   contain that code at all (`cfg(debug_assertions)`), so the variable
//!   cannot shift a production daemon's clock.

use std::time::SystemTime;

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

/// Debug builds only: the environment variable naming a file of signed
/// seconds (`7200`, `-7200`) added to the system clock at every reading.
/// A missing or unreadable file counts as no offset.
#[cfg(debug_assertions)]
pub const TEST_CLOCK_OFFSET_ENV: &str = "FKQ_CREDD_TEST_CLOCK_OFFSET_FILE";

/// The clock the daemon runs on: the system clock, or in a debug build
/// started with [`TEST_CLOCK_OFFSET_ENV`], the system clock shifted by the
/// file's offset. The second value names that file, so the daemon can log
/// that its clock is not the system's.
pub fn daemon_clock() -> (std::sync::Arc<dyn Clock>, Option<String>) {
    #[cfg(debug_assertions)]
    if let Some(path) =
        std::env::var_os(TEST_CLOCK_OFFSET_ENV).filter(|p| !p.is_empty())
    {
        let shown = std::path::Path::new(&path).display().to_string();
        return (
            std::sync::Arc::new(OffsetFileClock { path: path.into() }),
            Some(shown),
        );
    }
    (std::sync::Arc::new(SystemClock), None)
}

/// The system clock plus the offset in a file, read at every call so a
/// test can move the clock of a running daemon (debug builds only).
#[cfg(debug_assertions)]
#[derive(Debug)]
pub struct OffsetFileClock {
    path: std::path::PathBuf,
}

#[cfg(debug_assertions)]
impl Clock for OffsetFileClock {
    fn now(&self) -> SystemTime {
        let secs = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .unwrap_or(0);
        shift(SystemTime::now(), secs.saturating_mul(1000))
    }
}

/// `t` moved by `ms` milliseconds, forward for positive values. Only the
/// test clocks use it, and they exist in debug and test builds only.
#[cfg(any(test, debug_assertions))]
fn shift(t: SystemTime, ms: i64) -> SystemTime {
    let by = std::time::Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        t + by
    } else {
        t - by
    }
}

/// A wall clock that moves with tokio's (paused) clock, and that a test can
/// jump on its own to simulate a suspend.
#[cfg(test)]
pub(crate) struct TestClock {
    start_wall: SystemTime,
    start: tokio::time::Instant,
    jumped_ms: std::sync::atomic::AtomicI64,
}

#[cfg(test)]
impl TestClock {
    /// A clock reading the current system time now; create it inside the
    /// runtime whose paused clock it follows.
    pub(crate) fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            start_wall: SystemTime::now(),
            start: tokio::time::Instant::now(),
            jumped_ms: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// Moves the wall clock by `secs` (backwards when negative) while the
    /// monotonic clock stands still: a suspend, or an NTP correction.
    pub(crate) fn jump(&self, secs: i64) {
        self.jumped_ms
            .fetch_add(secs * 1000, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        let moved = tokio::time::Instant::now() - self.start;
        let jumped = self.jumped_ms.load(std::sync::atomic::Ordering::SeqCst);
        shift(self.start_wall + moved, jumped)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_test_clock_follows_paused_time_and_jumps_alone() {
        let clock = TestClock::new();
        let t0 = clock.now();
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(clock.now().duration_since(t0).unwrap().as_secs(), 90);
        clock.jump(3600);
        assert_eq!(clock.now().duration_since(t0).unwrap().as_secs(), 3690);
        clock.jump(-7200);
        assert!(clock.now() < t0);
    }

    #[cfg(debug_assertions)]
    #[test]
    fn the_offset_file_shifts_the_clock_at_every_reading() {
        let dir = std::env::temp_dir()
            .join(format!("fkq-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("offset");
        let clock = OffsetFileClock { path: path.clone() };
        let near = |a: SystemTime, b: SystemTime| {
            let d = a.duration_since(b).unwrap_or_else(|e| e.duration());
            d < Duration::from_secs(5)
        };
        assert!(near(clock.now(), SystemTime::now()), "no file, no offset");
        std::fs::write(&path, "7200\n").unwrap();
        let ahead = SystemTime::now() + Duration::from_secs(7200);
        assert!(near(clock.now(), ahead));
        std::fs::write(&path, "-7200").unwrap();
        let behind = SystemTime::now() - Duration::from_secs(7200);
        assert!(near(clock.now(), behind));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
