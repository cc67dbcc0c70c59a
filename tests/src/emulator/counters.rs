//! Request counters, so tests can assert how often a client really went to
//! the server (for example that a cached token caused no second login).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A snapshot of the emulator's counters: attempts and successes per
/// endpoint since start or the last reset.
///
/// This is also the JSON body of `GET /_emulator/counters`. New fields
/// default to zero when read, so a newer emulator stays readable.
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(default)]
pub struct Counters {
    /// Requests to `POST /login`, whatever their outcome.
    pub login: u64,
    /// Logins answered with tokens.
    pub login_ok: u64,
    /// Requests to `POST /login/refresh`, whatever their outcome.
    pub refresh: u64,
    /// Refreshes answered with tokens.
    pub refresh_ok: u64,
    /// Requests to `GET /sites`, whatever their outcome.
    pub sites: u64,
    /// `/sites` requests that carried a valid access token.
    pub sites_ok: u64,
    /// Requests to `POST /respondToAuthChallenge`, whatever their outcome.
    pub challenge: u64,
    /// Challenge answers the emulator accepted.
    pub challenge_ok: u64,
}

/// An endpoint of the emulator that is counted and can be given faults.
/// Its JSON name is the lowercase word: `"login"`, `"refresh"`,
/// `"challenge"`, `"sites"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `POST {auth}/login`.
    Login,
    /// `POST {auth}/login/refresh`.
    Refresh,
    /// `POST {auth}/respondToAuthChallenge`.
    Challenge,
    /// `GET {api}/sites`.
    Sites,
}

impl Endpoint {
    /// Every endpoint, in a fixed order.
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Login,
        Endpoint::Refresh,
        Endpoint::Challenge,
        Endpoint::Sites,
    ];
}

/// The live counters that the request handlers increment.
#[derive(Debug, Default)]
pub(crate) struct CounterSet {
    login: AtomicU64,
    login_ok: AtomicU64,
    refresh: AtomicU64,
    refresh_ok: AtomicU64,
    sites: AtomicU64,
    sites_ok: AtomicU64,
    challenge: AtomicU64,
    challenge_ok: AtomicU64,
}

impl CounterSet {
    /// Counts one request to `endpoint`, as soon as it arrives, so a
    /// request whose client gives up during a delay is still counted.
    pub(crate) fn attempt(&self, endpoint: Endpoint) {
        self.pair(endpoint).0.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one success of `endpoint`.
    pub(crate) fn success(&self, endpoint: Endpoint) {
        self.pair(endpoint).1.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads every counter. Requests in flight may be counted in one field
    /// and not yet in another; tests read after their requests completed.
    pub(crate) fn snapshot(&self) -> Counters {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counters {
            login: read(&self.login),
            login_ok: read(&self.login_ok),
            refresh: read(&self.refresh),
            refresh_ok: read(&self.refresh_ok),
            sites: read(&self.sites),
            sites_ok: read(&self.sites_ok),
            challenge: read(&self.challenge),
            challenge_ok: read(&self.challenge_ok),
        }
    }

    /// Sets every counter back to zero.
    pub(crate) fn reset(&self) {
        for endpoint in Endpoint::ALL {
            let (attempts, successes) = self.pair(endpoint);
            attempts.store(0, Ordering::Relaxed);
            successes.store(0, Ordering::Relaxed);
        }
    }

    fn pair(&self, endpoint: Endpoint) -> (&AtomicU64, &AtomicU64) {
        match endpoint {
            Endpoint::Login => (&self.login, &self.login_ok),
            Endpoint::Refresh => (&self.refresh, &self.refresh_ok),
            Endpoint::Sites => (&self.sites, &self.sites_ok),
            Endpoint::Challenge => (&self.challenge, &self.challenge_ok),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_and_successes_are_counted_apart_and_reset_zeroes_them() {
        let set = CounterSet::default();
        set.attempt(Endpoint::Login);
        set.attempt(Endpoint::Login);
        set.success(Endpoint::Login);
        set.attempt(Endpoint::Sites);
        set.success(Endpoint::Sites);
        set.attempt(Endpoint::Challenge);

        let seen = set.snapshot();
        assert_eq!((seen.login, seen.login_ok), (2, 1));
        assert_eq!((seen.sites, seen.sites_ok), (1, 1));
        assert_eq!((seen.challenge, seen.challenge_ok), (1, 0));

        set.reset();
        assert_eq!(set.snapshot(), Counters::default());
    }

    #[test]
    fn counters_read_missing_fields_as_zero() {
        let seen: Counters =
            serde_json::from_str(r#"{"login": 3}"#).expect("valid JSON");
        assert_eq!(seen, Counters { login: 3, ..Counters::default() });
    }
}
