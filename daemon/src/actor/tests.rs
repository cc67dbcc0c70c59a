//! The session under controlled time: tokio's paused clock drives every
//! timer, a [`TestClock`] that follows it is the wall clock (and can jump
//! alone, as after a suspend), and a scripted server from
//! [`crate::testing`] answers logins and refreshes.
//!
//! A `sleep` in these tests costs no real time: the runtime jumps to the
//! next timer whenever every task waits, so the session's own timers fire
//! in order on the way.

use std::sync::Arc;
use std::time::Duration;

use fkq_cred_proto::{
    ErrorKind, ProfileState, TokenKind, TokenReply, WireError,
};
use tokio::time::{sleep, Instant};

use super::MAX_TIMER_SLEEP;
use crate::clock::{Clock as _, TestClock};
use crate::config::Profile;
use crate::schedule::MIN_REFRESH_INTERVAL;
use crate::session::SessionHandle;
use crate::testing::{profile, FakeServer, Fault, RefreshField, PASSWORD};
use crate::tokens::unix_seconds;

const HOUR: u64 = 3600;

struct Fixture {
    clock: Arc<TestClock>,
    server: Arc<FakeServer>,
    session: SessionHandle,
}

impl Fixture {
    /// A session of a profile with `extra` settings against a server whose
    /// tokens live `lifetime` seconds, logged in once.
    /// A stall lasts the profile's `timeout`, as with the real client.
    async fn logged_in(lifetime: u64, extra: &str) -> Self {
        let clock = TestClock::new();
        let profile = profile(extra);
        let server = FakeServer::new(clock.clone(), lifetime, profile.timeout);
        Self::start(clock, server, profile).await
    }

    async fn start(
        clock: Arc<TestClock>,
        server: Arc<FakeServer>,
        profile: Profile,
    ) -> Self {
        let session = SessionHandle::spawn_with_backend(
            profile,
            clock.clone(),
            server.clone(),
        );
        let fixture = Self { clock, server, session };
        fixture.login().await.expect("the first login succeeds");
        fixture
    }

    async fn login(&self) -> Result<(), WireError> {
        let password = PASSWORD.into();
        self.session.login(None, password, None).await.map(|_| ())
    }

    async fn get(&self) -> Result<TokenReply, WireError> {
        self.session.get(TokenKind::Access, None).await
    }

    async fn token(&self) -> String {
        match self.get().await {
            Ok(reply) => reply.token.expose().to_owned(),
            Err(e) => panic!("get failed: {e}"),
        }
    }

    fn logins(&self) -> u32 {
        self.server.state().logins
    }

    fn refreshes(&self) -> u32 {
        self.server.state().refreshes
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn the_timer_refreshes_a_tenth_before_expiry_of_a_day_long_token() {
    let f = Fixture::logged_in(24 * HOUR, "").await;
    // The margin is 8640 s, and jitter moves it up to 864 s earlier.
    sleep(secs(24 * HOUR - 8640 - 864 - 1)).await;
    assert_eq!(f.refreshes(), 0, "too early");
    sleep(secs(864 + 2)).await;
    assert_eq!(f.refreshes(), 1);
    assert_eq!(f.token().await, "access-2");
    assert_eq!(f.logins(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_shorter_than_the_margin_is_refreshed_at_half_life() {
    let f = Fixture::logged_in(120, "").await;
    // Half of 120 s is the margin; jitter takes up to 6 s more.
    sleep(secs(60 - 6 - 1)).await;
    assert_eq!(f.refreshes(), 0);
    sleep(secs(8)).await;
    assert_eq!(f.refreshes(), 1);
    // And so on, every half-life or so, never more often.
    sleep(secs(10 * 60)).await;
    let n = f.refreshes();
    assert!((11..=12).contains(&n), "{n} refreshes in 11 minutes");
}

#[tokio::test(start_paused = true)]
async fn fifty_gets_at_expiry_cause_one_refresh_even_with_rotation() {
    let f = Fixture::logged_in(HOUR, "").await;
    f.server.state().refresh_field = RefreshField::Rotated;
    // A suspend: the wall clock passes expiry, the timer has not fired.
    f.clock.jump(HOUR as i64 + 60);

    let gets: Vec<_> = (0..50)
        .map(|_| {
            let session = f.session.clone();
            tokio::spawn(
                async move { session.get(TokenKind::Access, None).await },
            )
        })
        .collect();
    let mut tokens = Vec::new();
    for get in gets {
        let reply = get.await.unwrap().expect("every get succeeds");
        tokens.push(reply.token.expose().to_owned());
    }

    assert!(tokens.iter().all(|t| t == "access-2"), "{tokens:?}");
    assert_eq!(f.refreshes(), 1);
    assert_eq!(f.server.state().presented, ["refresh-1"]);
    // The rotated token is the one sent next time.
    f.clock.jump(HOUR as i64 + 60);
    assert_eq!(f.token().await, "access-3");
    assert_eq!(f.server.state().presented, ["refresh-1", "refresh-2"]);
    assert_eq!(f.logins(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_suspend_past_expiry_gets_a_fresh_token_at_once() {
    let f = Fixture::logged_in(HOUR, "").await;
    assert_eq!(f.token().await, "access-1");
    sleep(secs(5)).await;
    f.clock.jump(2 * HOUR as i64);
    let started = Instant::now();
    let reply = f.get().await.unwrap();
    assert_eq!(reply.token.expose(), "access-2");
    let expires = reply.expires_at.unwrap();
    let now = unix_seconds(f.clock.now());
    assert!(expires >= now + HOUR as i64 - 1, "fresh for an hour");
    assert_eq!(Instant::now(), started, "no timer was waited for");
}

#[tokio::test(start_paused = true)]
async fn after_a_suspend_the_timer_refreshes_within_a_minute_unasked() {
    let f = Fixture::logged_in(HOUR, "").await;
    // Past the refresh point by wall clock; the monotonic timer still
    // thinks the refresh is most of an hour away.
    f.clock.jump(HOUR as i64 - 200);
    assert_eq!(f.refreshes(), 0);
    sleep(MAX_TIMER_SLEEP + secs(1)).await;
    assert_eq!(f.refreshes(), 1);
}

/// An outage while the token is still good, for each way a server fails.
async fn outage_while_valid(fault: Fault) {
    let f =
        Fixture::logged_in(HOUR, "retry_max = \"30s\"\ntimeout = \"2s\"").await;
    f.server.state().refresh_fault = Some((fault, u32::MAX));
    // From just before the refresh point through five minutes of outage.
    sleep(secs(HOUR - 400)).await;
    for _ in 0..30 {
        sleep(secs(10)).await;
        assert_eq!(f.token().await, "access-1", "{fault:?}");
    }
    let attempts = f.refreshes();
    assert!(
        (5..=20).contains(&attempts),
        "{fault:?}: {attempts} attempts in 5 minutes of backoff"
    );

    let status = f.session.status().await.unwrap();
    assert_eq!(status.state, ProfileState::Failing, "{fault:?}");
    assert!(status.failing_since.is_some() && status.next_retry.is_some());
    assert!(status.last_error.as_ref().is_some_and(|e| !e.is_empty()));
    // Every attempt failed, but for one that may still be stalling.
    let failed = u64::from(attempts);
    assert!((failed - 1..=failed).contains(&status.failures), "{status:?}");

    // The next retry is at most 30 s away, plus a stall in progress.
    f.server.state().refresh_fault = None;
    sleep(secs(35)).await;
    assert_eq!(f.token().await, "access-2", "{fault:?}");
    assert_eq!(f.logins(), 1, "{fault:?}: no new login");
    let status = f.session.status().await.unwrap();
    assert_eq!(status.state, ProfileState::Active);
    assert_eq!((status.next_retry, status.last_error), (None, None));
}

#[tokio::test(start_paused = true)]
async fn a_503_outage_while_valid_keeps_serving_the_token() {
    outage_while_valid(Fault::Unavailable).await;
}

#[tokio::test(start_paused = true)]
async fn dropped_connections_while_valid_keep_serving_the_token() {
    outage_while_valid(Fault::Dropped).await;
}

#[tokio::test(start_paused = true)]
async fn stalls_while_valid_keep_serving_the_token() {
    outage_while_valid(Fault::Stalled).await;
}

/// An outage that outlasts the token: `get` answers at once with the
/// cause, and the session recovers by itself once the server is back.
async fn outage_past_expiry(fault: Fault) {
    let f =
        Fixture::logged_in(600, "retry_max = \"10s\"\ntimeout = \"2s\"").await;
    f.server.state().refresh_fault = Some((fault, u32::MAX));
    sleep(secs(700)).await;
    for _ in 0..5 {
        let started = Instant::now();
        let error = f.get().await.unwrap_err();
        assert_eq!(Instant::now(), started, "{fault:?}: get did not wait");
        assert_eq!(error.kind, ErrorKind::ServerUnreachable, "{error}");
        assert!(error.message.contains("renewing it failed"), "{error}");
        sleep(secs(3)).await;
    }

    f.server.state().refresh_fault = None;
    sleep(secs(15)).await;
    assert_eq!(f.token().await, "access-2", "{fault:?}");
    assert_eq!(f.logins(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_503_outage_past_expiry_fails_fast_then_recovers_alone() {
    outage_past_expiry(Fault::Unavailable).await;
}

#[tokio::test(start_paused = true)]
async fn a_stalled_server_past_expiry_fails_fast_then_recovers_alone() {
    outage_past_expiry(Fault::Stalled).await;
}

#[tokio::test(start_paused = true)]
async fn replies_without_a_refresh_token_keep_the_original() {
    for field in [RefreshField::Missing, RefreshField::Empty] {
        let f = Fixture::logged_in(HOUR, "").await;
        f.server.state().refresh_field = field;
        for expected in ["access-2", "access-3", "access-4"] {
            f.clock.jump(HOUR as i64);
            assert_eq!(f.token().await, expected, "{field:?}");
        }
        let presented = f.server.state().presented.clone();
        assert_eq!(presented, ["refresh-1"; 3], "{field:?}");
        assert_eq!(f.logins(), 1, "{field:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_refresh_token_logs_in_again_exactly_once() {
    let f = Fixture::logged_in(HOUR, "remember_password = true").await;
    f.server.state().refresh_fault = Some((Fault::Refused, 1));
    f.clock.jump(HOUR as i64);
    assert_eq!(f.token().await, "access-2");
    assert_eq!((f.logins(), f.refreshes()), (2, 1));
    // The new session refreshes as usual.
    f.clock.jump(HOUR as i64);
    assert_eq!(f.token().await, "access-3");
    assert_eq!((f.logins(), f.refreshes()), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn without_a_password_source_a_refused_refresh_means_login_required() {
    let f = Fixture::logged_in(HOUR, "").await;
    f.server.state().refresh_fault = Some((Fault::Refused, u32::MAX));
    sleep(secs(5)).await;
    f.clock.jump(HOUR as i64);
    for _ in 0..3 {
        let started = Instant::now();
        let error = f.get().await.unwrap_err();
        assert_eq!(Instant::now(), started, "get did not wait");
        assert_eq!(error.kind, ErrorKind::NotLoggedIn, "{error}");
        assert!(
            error.message.contains("fkq-cred login --profile p"),
            "{error}"
        );
        sleep(secs(30)).await;
    }
    assert_eq!((f.logins(), f.refreshes()), (1, 1), "nothing was retried");
    let status = f.session.status().await.unwrap();
    assert_eq!(status.state, ProfileState::LoginRequired);

    f.server.state().refresh_fault = None;
    f.login().await.unwrap();
    assert_eq!(f.token().await, "access-2");
}

#[tokio::test(start_paused = true)]
async fn a_wrong_stored_password_stops_automatic_logins() {
    let f = Fixture::logged_in(HOUR, "remember_password = true").await;
    f.server.state().password = "changed".into();
    f.server.state().refresh_fault = Some((Fault::Refused, u32::MAX));
    f.clock.jump(HOUR as i64);
    let error = f.get().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotLoggedIn);
    assert!(error.message.contains("automatic logins are paused"), "{error}");
    for _ in 0..10 {
        f.clock.jump(HOUR as i64);
        sleep(secs(60)).await;
        assert!(f.get().await.is_err());
    }
    assert_eq!(f.logins(), 2, "one automatic login, never another");

    // The user's own login lifts the pause.
    f.server.state().password = PASSWORD.into();
    f.server.state().refresh_fault = None;
    f.login().await.unwrap();
    f.server.state().refresh_fault = Some((Fault::Refused, 1));
    f.clock.jump(HOUR as i64);
    assert!(f.get().await.is_ok());
    assert_eq!(f.logins(), 4, "the user's login, then one automatic");
}

#[tokio::test(start_paused = true)]
async fn renewals_are_never_closer_together_than_the_floor() {
    let f = Fixture::logged_in(HOUR, "").await;
    // Callers who each find the token expired, one after another, as a
    // clock that keeps jumping would make them.
    for _ in 0..10 {
        f.clock.jump(2 * HOUR as i64);
        f.get().await.unwrap();
    }
    let times = f.server.state().refresh_times.clone();
    assert_eq!(times.len(), 10);
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= MIN_REFRESH_INTERVAL, "{times:?}");
    }
}

/// A server whose clock is `skew` seconds behind ours dates its JWTs: the
/// session must plan by the lifetime, not by the server's `exp`.
async fn skewed_server(skew: i64) {
    let clock = TestClock::new();
    let server = FakeServer::with_jwt_skew(clock.clone(), 1200, skew);
    let f = Fixture::start(clock, server, profile("")).await;
    let status = f.session.status().await.unwrap();
    let (last, expires) = (status.last_refresh.unwrap(), status.expires_at);
    assert_eq!(expires, Some(last + 1200), "skew {skew}");

    // Many gets: no refresh while the token is fresh by our clock.
    for _ in 0..20 {
        f.get().await.unwrap();
        sleep(secs(10)).await;
    }
    assert_eq!(f.refreshes(), 0, "skew {skew}: refreshed in a loop");
    // The margin of a 20-minute token is 5 minutes (plus jitter).
    sleep(secs(1200 - 300 - 30 - 200 - 1)).await;
    assert_eq!(f.refreshes(), 0, "skew {skew}: too early");
    sleep(secs(32)).await;
    assert_eq!(f.refreshes(), 1, "skew {skew}: refreshed near the margin");
}

#[tokio::test(start_paused = true)]
async fn a_server_clock_two_hours_behind_neither_loops_nor_serves_late() {
    skewed_server(7200).await;
}

#[tokio::test(start_paused = true)]
async fn a_server_clock_two_hours_ahead_neither_loops_nor_serves_late() {
    skewed_server(-7200).await;
}

#[tokio::test(start_paused = true)]
async fn min_valid_per_call_and_per_profile_trigger_an_early_refresh() {
    // 40 minutes asked of an hour-long token count as half of it, 30.
    let f = Fixture::logged_in(HOUR, "min_valid = \"40m\"").await;
    sleep(secs(30 * 60)).await;
    assert_eq!(f.refreshes(), 0);
    assert_eq!(f.token().await, "access-1", "exactly 30 minutes left");
    sleep(secs(60)).await;
    assert_eq!(f.token().await, "access-2", "29 minutes left");

    // Per call: with 29 minutes left, a caller who needs a minute keeps
    // the token, one who needs 45 (capped at 30) gets a fresh one.
    sleep(secs(31 * 60)).await;
    let reply = f.session.get(TokenKind::Access, Some(secs(60))).await;
    assert_eq!(reply.unwrap().token.expose(), "access-2");
    let reply = f.session.get(TokenKind::Access, Some(secs(45 * 60))).await;
    assert_eq!(reply.unwrap().token.expose(), "access-3");
}

#[tokio::test(start_paused = true)]
async fn after_a_refused_refresh_token_retries_log_in_instead_of_resending_it()
{
    let f = Fixture::logged_in(HOUR, "remember_password = true").await;
    f.server.state().refresh_fault = Some((Fault::Refused, u32::MAX));
    f.server.state().login_fault = Some((Fault::Unavailable, 2));
    f.clock.jump(HOUR as i64);
    let error = f.get().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::ServerUnreachable, "{error}");
    sleep(secs(10)).await;
    assert_eq!(f.token().await, "access-2");
    assert_eq!(f.refreshes(), 1, "the refused token was sent only once");
    assert_eq!(f.logins(), 4, "the user's, two failed, one that worked");
}
