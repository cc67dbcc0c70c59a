//! Bad days, end to end: the real daemon and client against the emulator
//! while its `/login/refresh` fails (503s, dropped connections, 30 s
//! stalls) or refuses the refresh token.
//!
//! The daemon's wall clock is moved forward ([`shifted`]) to bring a
//! refresh due at once instead of waiting out a token's life.

use std::time::{Duration, Instant};

use fkq_cred_proto::exit;
use fkq_cred_tests::emulator::process::EmulatorProcess;
use fkq_cred_tests::emulator::DEFAULT_PASSWORD;
use fkq_cred_tests::harness::{
    code, stderr, stdout, DaemonProcess, Sandbox, PROFILE,
};
use fkq_cred_tests::shifted::{
    login, start_daemon, status, wait_for_status, ClockOffset,
};
use serde_json::json;

/// The emulator's tokens live an hour; this puts the daemon's clock 5
/// minutes before expiry: past the refresh point, still valid to hand out.
const NEAR_EXPIRY: i64 = 3600 - 300;

/// Past the expiry of the first token.
const PAST_EXPIRY: i64 = 3600 + 100;

/// A stall much longer than the profile's `timeout`.
const STALL_MS: u64 = 30_000;

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

/// A sandbox with an emulator and a logged-in daemon whose profile has
/// `extra` settings and whose clock follows the returned offset.
fn setup(
    extra: &str,
) -> (Sandbox, EmulatorProcess, ClockOffset, DaemonProcess) {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    sandbox.write_config(&Sandbox::profile_toml(PROFILE, &emulator, extra));
    let offset = ClockOffset::new(&sandbox, 0);
    let daemon = start_daemon(&sandbox, &offset);
    login(&sandbox);
    (sandbox, emulator, offset, daemon)
}

/// Every way `/login/refresh` can fail while the token is still valid.
fn outage_while_valid(fault: serde_json::Value) {
    let (sandbox, emulator, offset, _daemon) =
        setup("timeout = \"2s\"\nretry_max = \"1s\"");
    let first = token(&sandbox);
    emulator.set_fault(&fault).unwrap();

    // The refresh is due now; a status request wakes the session's timer.
    offset.set(NEAR_EXPIRY);
    status(&sandbox);
    // Real time passes so the daemon retries; every caller is served.
    for _ in 0..14 {
        assert_eq!(token(&sandbox), first, "{fault}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let attempts = emulator.counters().unwrap().refresh;
    assert!((2..=15).contains(&attempts), "{fault}: {attempts} attempts");

    let report = status(&sandbox);
    assert_eq!(report["state"], "failing", "{report}");
    for key in [
        "state",
        "expires_at",
        "refresh_at",
        "last_refresh",
        "logins",
        "refreshes",
        "failures",
        "last_error",
        "next_retry",
        "failing_since",
    ] {
        assert!(report.get(key).is_some(), "no {key:?} in {report}");
    }
    for key in ["failing_since", "next_retry", "last_error"] {
        assert!(!report[key].is_null(), "{key} missing: {report}");
    }
    assert!(report["failures"].as_u64().unwrap() >= 1, "{report}");

    emulator.clear_faults().unwrap();
    wait_for_status(&sandbox, "the refresh after the outage", |s| {
        s["refreshes"] == 1
    });
    let fresh = token(&sandbox);
    assert_ne!(fresh, first, "{fault}");
    assert_eq!(sites_status(&emulator, &fresh), 200);
    let counters = emulator.counters().unwrap();
    assert_eq!((counters.login, counters.refresh_ok), (1, 1), "{fault}");
    let report = status(&sandbox);
    assert_eq!(report["state"], "active", "{report}");
    assert!(report["next_retry"].is_null(), "{report}");
}

#[test]
fn a_503_outage_while_the_token_is_valid_keeps_every_get_working() {
    outage_while_valid(json!({"endpoint": "refresh", "status": 503}));
}

#[test]
fn dropped_connections_while_the_token_is_valid_keep_every_get_working() {
    outage_while_valid(json!({"endpoint": "refresh", "drop": true}));
}

#[test]
fn thirty_second_stalls_while_the_token_is_valid_keep_every_get_working() {
    outage_while_valid(json!({"endpoint": "refresh", "delay_ms": STALL_MS}));
}

#[test]
fn malformed_refresh_replies_while_the_token_is_valid_keep_every_get_working() {
    let body = "<html><body>502 Bad Gateway</body></html>";
    outage_while_valid(
        json!({"endpoint": "refresh", "status": 200, "body": body}),
    );
}

#[test]
fn an_outage_longer_than_the_token_fails_fast_then_heals_by_itself() {
    let (sandbox, emulator, offset, _daemon) =
        setup("timeout = \"4s\"\nretry_max = \"1s\"");
    emulator
        .set_fault(&json!({"endpoint": "refresh", "delay_ms": STALL_MS}))
        .unwrap();
    offset.set(PAST_EXPIRY);

    // The first caller waits for the attempt under way to time out.
    let out = sandbox.cli(&["get"]);
    assert_eq!(
        code(&out),
        i32::from(exit::SERVER_UNREACHABLE),
        "{}",
        stderr(&out)
    );
    // Then callers are told at once, with the cause.
    for _ in 0..3 {
        let started = Instant::now();
        let out = sandbox.cli(&["get"]);
        let took = started.elapsed();
        assert_eq!(code(&out), i32::from(exit::SERVER_UNREACHABLE));
        assert_eq!(stdout(&out), "");
        let err = stderr(&out);
        assert!(
            err.contains("login/refresh") && err.contains("no answer"),
            "{err}"
        );
        // A deadline, not a benchmark: waiting for the 4 s timeout fails.
        assert!(took < Duration::from_secs(2), "get took {took:?}: {err}");
    }

    emulator.clear_faults().unwrap();
    wait_for_status(&sandbox, "recovery", |s| s["state"] == "active");
    let fresh = token(&sandbox);
    assert_eq!(sites_status(&emulator, &fresh), 200);
    assert_eq!(emulator.counters().unwrap().login, 1, "no user action");
}

/// The refresh token is refused as Cognito refuses an expired or revoked
/// one, `times` times.
fn refuse_refresh(emulator: &EmulatorProcess, times: Option<u64>) {
    let body = json!({"message": "Incorrect refresh token"}).to_string();
    let fault = json!({"endpoint": "refresh", "status": 400, "body": body, "times": times});
    emulator.set_fault(&fault).unwrap();
}

fn password_command(password: &str) -> String {
    format!("password_command = [\"printf\", \"{password}\\\\n\"]")
}

#[test]
fn a_refused_refresh_token_with_a_password_command_logs_in_once() {
    let (sandbox, emulator, offset, _daemon) =
        setup(&password_command(DEFAULT_PASSWORD));
    refuse_refresh(&emulator, Some(1));
    offset.set(PAST_EXPIRY);
    let fresh = token(&sandbox);
    assert_eq!(sites_status(&emulator, &fresh), 200);
    let counters = emulator.counters().unwrap();
    assert_eq!((counters.login, counters.refresh), (2, 1), "{counters:?}");

    // The new session refreshes as usual, without another login.
    offset.set(2 * PAST_EXPIRY);
    token(&sandbox);
    let counters = emulator.counters().unwrap();
    assert_eq!((counters.login, counters.refresh_ok), (2, 1), "{counters:?}");
}

#[test]
fn a_refused_refresh_token_without_a_password_source_says_login_required() {
    let (sandbox, emulator, offset, _daemon) = setup("");
    refuse_refresh(&emulator, None);
    offset.set(PAST_EXPIRY);
    for _ in 0..3 {
        let started = Instant::now();
        let out = sandbox.cli(&["get"]);
        let took = started.elapsed();
        assert_eq!(
            code(&out),
            i32::from(exit::LOGIN_REQUIRED),
            "{}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), "");
        assert!(
            stderr(&out).contains("fkq-cred login --profile emu"),
            "{}",
            stderr(&out)
        );
        // A deadline, not a benchmark: the issue promises under 2 s.
        assert!(took < Duration::from_secs(2), "get took {took:?}");
    }
    let counters = emulator.counters().unwrap();
    assert_eq!((counters.login, counters.refresh), (1, 1), "{counters:?}");
    assert_eq!(status(&sandbox)["state"], "login_required");
}

#[test]
fn a_wrong_password_from_the_command_stops_automatic_logins() {
    let (sandbox, emulator, offset, _daemon) =
        setup(&password_command("not-the-password"));
    refuse_refresh(&emulator, None);
    offset.set(PAST_EXPIRY);
    let out = sandbox.cli(&["get"]);
    assert_eq!(code(&out), i32::from(exit::LOGIN_REQUIRED), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("automatic logins are paused"),
        "{}",
        stderr(&out)
    );

    for step in 2..5 {
        offset.set(step * PAST_EXPIRY);
        let out = sandbox.cli(&["get"]);
        assert_eq!(code(&out), i32::from(exit::LOGIN_REQUIRED));
    }
    assert_eq!(emulator.counters().unwrap().login, 2, "one automatic login");

    // The user's own login revives the profile.
    emulator.clear_faults().unwrap();
    login(&sandbox);
    assert_eq!(sites_status(&emulator, &token(&sandbox)), 200);
}
