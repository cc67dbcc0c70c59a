//! When to refresh, and how long to wait after a failure.
//!
//! Pure functions of the token's timing and the profile, so the policy can
//! be tested without clocks or servers.

use std::time::{Duration, SystemTime};

use crate::config::Profile;
use crate::tokens::TokenSet;

/// The default refresh margin's floor: refresh at least this long before
/// expiry, so a slow auth server or a short outage has room to recover.
pub const REFRESH_MARGIN_FLOOR: Duration = Duration::from_secs(5 * 60);

/// The shortest time between two refreshes of one profile, whatever the
/// lifetime: nothing can make the daemon spin against the auth server.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The first pause after a failure; it doubles up to the profile's
/// `retry_max`.
pub const RETRY_MIN: Duration = Duration::from_secs(1);

/// The refresh margin for a token: the profile's `refresh_margin`, else the
/// larger of five minutes and a tenth of the lifetime, and never more than
/// half the lifetime, so a five-minute token is not refreshed on receipt.
pub fn refresh_margin(profile: &Profile, lifetime: Duration) -> Duration {
    let default = REFRESH_MARGIN_FLOOR.max(lifetime / 10);
    profile.refresh_margin.unwrap_or(default).min(lifetime / 2)
}

/// When to refresh `tokens`, or `None` for tokens that never expire.
///
/// `jitter` is a fraction in `0.0..1.0`; up to a tenth of the margin is
/// taken off, so many daemons started together do not refresh in lockstep.
pub fn refresh_at(
    profile: &Profile,
    tokens: &TokenSet,
    jitter: f64,
) -> Option<SystemTime> {
    let expires_at = tokens.expires_at?;
    let margin = refresh_margin(profile, tokens.lifetime);
    let spread = (margin / 10).mul_f64(jitter.clamp(0.0, 1.0));
    let planned =
        expires_at.checked_sub(margin + spread).unwrap_or(tokens.received_at);
    Some(planned.max(tokens.received_at + MIN_REFRESH_INTERVAL))
}

/// The pauses between retries: doubling from [`RETRY_MIN`], each with up
/// to as much again of random jitter, never longer than `retry_max`, and
/// without end.
pub fn retry_delays(
    profile: &Profile,
) -> impl Iterator<Item = Duration> + Send {
    use backon::BackoffBuilder;
    let max = profile.retry_max;
    // backon's jitter adds up to one more delay on top, even at the cap;
    // the cap is clamped again so `retry_max` holds.
    backon::ExponentialBuilder::default()
        .with_min_delay(RETRY_MIN.min(max))
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .map(move |delay| delay.min(max))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::config::Config;
    use crate::tokens::AuthResult;

    fn profile(extra: &str) -> Profile {
        let text = format!("[profiles.p]\nauth_url = \"https://a\"\napi_url = \"https://b\"\n{extra}");
        Config::parse(&text, std::path::Path::new("c.toml"))
            .unwrap()
            .profiles
            .remove("p")
            .unwrap()
    }

    fn tokens(lifetime: u64) -> TokenSet {
        let result = AuthResult {
            access_token: Some("a".into()),
            expires_in: Some(lifetime as i64),
            ..Default::default()
        };
        TokenSet::from_reply(
            result,
            UNIX_EPOCH,
            Duration::from_secs(3600),
            None,
        )
        .unwrap()
    }

    fn secs_after_epoch(t: SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn a_day_long_token_refreshes_a_tenth_before_expiry() {
        let at = refresh_at(&profile(""), &tokens(86_400), 0.0).unwrap();
        assert_eq!(secs_after_epoch(at), 86_400 - 8_640);
    }

    #[test]
    fn a_half_hour_token_refreshes_five_minutes_before_expiry() {
        let at = refresh_at(&profile(""), &tokens(1_800), 0.0).unwrap();
        assert_eq!(secs_after_epoch(at), 1_500);
    }

    #[test]
    fn a_token_shorter_than_the_margin_refreshes_at_half_life() {
        let at = refresh_at(&profile(""), &tokens(300), 0.0).unwrap();
        assert_eq!(secs_after_epoch(at), 150);
        let at = refresh_at(&profile(""), &tokens(4), 0.99).unwrap();
        let at = at.duration_since(UNIX_EPOCH).unwrap();
        // Half of 4 s, less at most a tenth of that margin as jitter.
        assert!(at > Duration::from_millis(1_790), "{at:?}");
        assert!(at <= Duration::from_secs(2), "{at:?}");
    }

    #[test]
    fn refreshes_never_come_closer_than_the_floor() {
        let at = refresh_at(&profile(""), &tokens(1), 0.0).unwrap();
        assert_eq!(at, UNIX_EPOCH + MIN_REFRESH_INTERVAL);
    }

    #[test]
    fn jitter_only_moves_the_refresh_earlier_and_by_at_most_a_tenth() {
        let p = profile("");
        let early = refresh_at(&p, &tokens(1_800), 0.999).unwrap();
        let late = refresh_at(&p, &tokens(1_800), 0.0).unwrap();
        let moved = late.duration_since(early).unwrap();
        assert!(
            moved <= Duration::from_secs(30) && moved > Duration::ZERO,
            "{moved:?}"
        );
    }

    #[test]
    fn retry_delays_grow_and_stay_capped() {
        let p = profile("retry_max = \"8s\"");
        let delays: Vec<_> = retry_delays(&p).take(10).collect();
        assert!(
            delays[0] >= RETRY_MIN
                && delays[0] < RETRY_MIN * 2 + Duration::from_millis(1)
        );
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(8)),
            "{delays:?}"
        );
        assert_eq!(delays[9], Duration::from_secs(8), "{delays:?}");
    }
}
