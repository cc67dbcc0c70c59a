//! Time, end to end: suspends (the daemon's wall clock jumps past expiry
//! while its timers do not), clocks hours off the server's, fifty callers
//! at expiry, and refresh replies that carry no refresh token.
//!
//! The daemon's wall clock is moved through [`shifted`]; the emulator keeps
//! the system's.

use std::process::Stdio;
use std::time::Duration;

use fkq_cred_tests::emulator::process::EmulatorProcess;
use fkq_cred_tests::harness::{
    code, stderr, stdout, DaemonProcess, Sandbox, PROFILE,
};
use fkq_cred_tests::shifted::{
    login, start_daemon, status, unix_time, ClockOffset,
};
use serde_json::json;

/// An hour and a bit: past the expiry of an hour-long token.
const PAST_EXPIRY: i64 = 3600 + 100;

/// `fkq-cred get`, which must succeed; returns the token.
fn token(sandbox: &Sandbox) -> String {
    let out = sandbox.cli(&["get"]);
    assert!(
        out.status.success(),
        "get failed ({}): {}",
        code(&out),
        stderr(&out)
    );
    stdout(&out).trim_end().to_owned()
}

fn sites_status(emulator: &EmulatorProcess, token: &str) -> u16 {
    let url = format!("{}sites", emulator.api_url());
    let bearer = format!("Bearer {token}");
    emulator.client().get(&url, Some(&bearer)).expect("GET /sites").status
}

/// An emulator started with `args`, and a logged-in daemon whose clock
/// starts `offset` seconds off the system's.
fn setup(
    args: &[&str],
    offset: i64,
) -> (Sandbox, EmulatorProcess, ClockOffset, DaemonProcess) {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(args);
    sandbox.write_config(&Sandbox::profile_toml(PROFILE, &emulator, ""));
    let offset = ClockOffset::new(&sandbox, offset);
    let daemon = start_daemon(&sandbox, &offset);
    login(&sandbox);
    (sandbox, emulator, offset, daemon)
}

#[test]
fn after_a_simulated_suspend_past_expiry_get_returns_a_fresh_token() {
    let (sandbox, emulator, offset, _daemon) = setup(&[], 0);
    let before = token(&sandbox);

    offset.set(PAST_EXPIRY);
    let after = token(&sandbox);
    assert_ne!(after, before, "the expired token was served");
    assert_eq!(sites_status(&emulator, &after), 200);
    let counters = emulator.counters().unwrap();
    assert_eq!((counters.login, counters.refresh_ok), (1, 1), "{counters:?}");
}

/// Fifty `get`s at once, each finding the token expired.
fn fifty_gets_at_expiry(rotate: bool) {
    let args: &[&str] = if rotate { &["--rotate-refresh-tokens"] } else { &[] };
    let (sandbox, emulator, offset, _daemon) = setup(args, 0);

    for round in 1..=2 {
        offset.set(round * PAST_EXPIRY);
        let children: Vec<_> = (0..50)
            .map(|_| {
                sandbox
                    .command("fkq-cred")
                    .arg("get")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn get")
            })
            .collect();
        let outputs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().expect("wait for get"))
            .collect();
        for out in &outputs {
            assert!(out.status.success(), "rotate {rotate}: {}", stderr(out));
        }
        let first = stdout(&outputs[0]);
        assert!(outputs.iter().all(|o| stdout(o) == first), "one token");
        assert_eq!(sites_status(&emulator, first.trim_end()), 200);
        let counters = emulator.counters().unwrap();
        // Round two proves the daemon kept the rotated refresh token.
        assert_eq!(
            (counters.refresh, counters.refresh_ok, counters.login),
            (round as u64, round as u64, 1),
            "rotate {rotate}, round {round}"
        );
    }
}

#[test]
fn fifty_gets_at_expiry_cause_exactly_one_refresh() {
    fifty_gets_at_expiry(false);
}

#[test]
fn fifty_gets_at_expiry_cause_one_refresh_with_single_use_refresh_tokens() {
    fifty_gets_at_expiry(true);
}

/// Three refreshes in a row whose replies lack a refresh token in the
/// way `edit` says. The emulator does not rotate, so the token from the
/// login is the only one it accepts: three successful refreshes mean it
/// was sent all three times, and an emptied token would have cost a new
/// login.
fn three_refreshes_without_a_refresh_token(edit: &str) {
    let (sandbox, emulator, offset, _daemon) = setup(&[], 0);
    let fault = json!({"endpoint": "refresh", edit: ["RefreshToken"]});
    emulator.set_fault(&fault).unwrap();
    let mut seen = vec![token(&sandbox)];
    for round in 1..=3 {
        offset.set(round * PAST_EXPIRY);
        seen.push(token(&sandbox));
    }
    seen.dedup();
    assert_eq!(seen.len(), 4, "{edit}: a fresh token each time");
    let counters = emulator.counters().unwrap();
    assert_eq!(
        (counters.refresh, counters.refresh_ok, counters.login),
        (3, 3, 1),
        "{edit}"
    );
}

#[test]
fn refresh_replies_without_a_refresh_token_keep_the_original() {
    three_refreshes_without_a_refresh_token("omit");
}

#[test]
fn refresh_replies_with_a_null_refresh_token_keep_the_original() {
    three_refreshes_without_a_refresh_token("null_fields");
}

#[test]
fn refresh_replies_with_an_empty_refresh_token_keep_the_original() {
    three_refreshes_without_a_refresh_token("empty_fields");
}

/// The emulator's tokens live 20 s, so their refresh margin is half of
/// that, less up to a second of jitter. The daemon's clock is `skew`
/// seconds off the emulator's for the whole run; with `jwt_only`, replies
/// carry no `ExpiresIn` and the lifetime comes from the JWT's `exp - iat`.
fn skewed_clock(skew: i64, jwt_only: bool) {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&["--token-lifetime", "20"]);
    if jwt_only {
        for endpoint in ["login", "refresh"] {
            let fault = json!({"endpoint": endpoint, "omit": ["ExpiresIn"]});
            emulator.set_fault(&fault).unwrap();
        }
    }
    sandbox.write_config(&Sandbox::profile_toml(PROFILE, &emulator, ""));
    let offset = ClockOffset::new(&sandbox, skew);
    let _daemon = start_daemon(&sandbox, &offset);
    login(&sandbox);
    let what = format!("skew {skew} s, jwt_only {jwt_only}");

    // No refresh loop: callers get the token from the login.
    let first = token(&sandbox);
    for _ in 0..5 {
        assert_eq!(token(&sandbox), first, "{what}");
    }
    assert_eq!(emulator.counters().unwrap().refresh, 0, "{what}");

    // The plan, by the daemon's own clock: expiry 20 s after the reply,
    // the refresh 9 to 10 s after it (whole seconds, so one more either
    // way).
    let report = status(&sandbox);
    let last = unix_time(&report["last_refresh"]);
    let expires = unix_time(&report["expires_at"]) - last;
    let refresh = unix_time(&report["refresh_at"]) - last;
    assert!((19..=21).contains(&expires), "{what}: {report}");
    assert!((8..=11).contains(&refresh), "{what}: {report}");

    // Real time passes beyond the refresh point: one refresh, no login.
    std::thread::sleep(Duration::from_secs(13));
    let counters = emulator.counters().unwrap();
    assert!((1..=2).contains(&counters.refresh_ok), "{what}: {counters:?}");
    assert_eq!(counters.login, 1, "{what}");
    let fresh = token(&sandbox);
    assert_ne!(fresh, first, "{what}");
    assert_eq!(sites_status(&emulator, &fresh), 200, "{what}");
}

#[test]
fn a_clock_two_hours_ahead_neither_loops_nor_misses_the_margin() {
    skewed_clock(2 * 3600, false);
}

#[test]
fn a_clock_two_hours_behind_neither_loops_nor_misses_the_margin() {
    skewed_clock(-2 * 3600, false);
}

#[test]
fn a_clock_ahead_with_jwt_lifetimes_only_still_refreshes_on_time() {
    skewed_clock(2 * 3600, true);
}

#[test]
fn a_clock_behind_with_jwt_lifetimes_only_still_refreshes_on_time() {
    skewed_clock(-2 * 3600, true);
}
