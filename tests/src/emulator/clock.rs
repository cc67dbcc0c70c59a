//! The emulator's notion of "now", injectable so tests of expiry need not
//! wait for the wall clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the emulator reads the time from when it issues and checks tokens.
///
/// Cloning a clock shares it: a [`ManualClock`] advanced by a test moves
/// every emulator that was given a clone of it.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<ManualClock>,
    offset_secs: i64,
}

impl Clock {
    /// A clock that follows the system's wall clock.
    pub fn system() -> Self {
        Self { manual: None, offset_secs: 0 }
    }

    /// The system's wall clock moved by `offset_secs` (ahead when
    /// positive): a server whose clock is off from the client's.
    pub fn system_offset(offset_secs: i64) -> Self {
        Self { manual: None, offset_secs }
    }

    /// Seconds since the Unix epoch, the unit of the `iat` and `exp` claims.
    pub fn now_unix(&self) -> u64 {
        let now = match &self.manual {
            Some(manual) => manual.now_unix(),
            None => system_now_unix(),
        };
        now.saturating_add_signed(self.offset_secs)
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        Self { manual: Some(manual), offset_secs: 0 }
    }
}

/// A clock that only moves when told to, for tests of token expiry.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock that starts at the current wall-clock time and then stands
    /// still, so the tokens it dates still look plausible to a client.
    pub fn starting_now() -> Self {
        Self::starting_at(system_now_unix())
    }

    /// A clock that starts at `unix_secs` seconds since the epoch.
    pub fn starting_at(unix_secs: u64) -> Self {
        Self { now: Arc::new(AtomicU64::new(unix_secs)) }
    }

    /// Moves the clock forward by `by`, rounded down to whole seconds.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    /// Seconds since the Unix epoch as this clock sees them.
    pub fn now_unix(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// Reads the wall clock; a clock set before 1970 reads as the epoch, which
/// only makes every token look expired.
fn system_now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let manual = ManualClock::starting_at(1_000);
        let clock = Clock::from(manual.clone());
        assert_eq!(clock.now_unix(), 1_000);

        manual.advance(Duration::from_secs(5));

        assert_eq!(clock.clone().now_unix(), 1_005);
    }

    #[test]
    fn an_offset_clock_runs_ahead_or_behind_the_system_clock() {
        let ahead = Clock::system_offset(7_200).now_unix();
        let behind = Clock::system_offset(-7_200).now_unix();
        let gap = ahead - behind;
        assert!((14_400..=14_402).contains(&gap), "{gap}");
    }
}
