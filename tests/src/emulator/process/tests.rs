//! Tests of the `formkiq-emulator` binary run as a child process.
//!
//! They need the binary built beside the test executable, which
//! `cargo test --lib` does not do, so they are ignored by default. Run them
//! with `cargo build -p fkq-cred-tests && cargo test -p fkq-cred-tests
//! --lib -- --ignored`.

use serde_json::json;

use super::*;
use crate::emulator::{DEFAULT_PASSWORD, DEFAULT_USERNAME};

fn spawn(args: &[&str]) -> EmulatorProcess {
    let binary = emulator_binary();
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p fkq-cred-tests` first",
        binary.display()
    );
    EmulatorProcess::spawn(&binary, args).expect("emulator starts")
}

#[test]
fn the_binary_serves_https_counts_requests_and_exits_0_on_sigterm() {
    let mut emulator = spawn(&[]);
    let ca_file = emulator.ca_file().expect("HTTPS has a CA").to_owned();
    assert!(ca_file.is_absolute() && ca_file.exists());
    assert!(emulator.auth_url().starts_with("https://127.0.0.1:"));
    assert!(emulator.api_url().starts_with("https://127.0.0.1:"));
    assert_eq!(
        emulator.counters_url(),
        format!("{}_emulator/counters", emulator.auth_url())
    );

    let body =
        json!({ "username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD });
    let login_url = format!("{}login", emulator.auth_url());
    let login = emulator.client().post_json(&login_url, &body).expect("login");
    assert_eq!(login.status, 200, "{}", login.body);
    let counters = emulator.counters().expect("counters");
    assert_eq!((counters.login, counters.login_ok), (1, 1));
    assert_eq!(emulator.reset_counters().expect("reset"), Counters::default());

    let status = emulator.stop().expect("stopped");
    assert!(status.success(), "{status}");
    assert!(!ca_file.exists(), "ca.pem outlived the emulator");
}

#[test]
fn plain_http_users_and_lifetimes_are_taken_from_the_flags() {
    let emulator = spawn(&[
        "--plain-http",
        "--user",
        "bob:secret",
        "--token-lifetime",
        "3",
    ]);
    assert!(emulator.auth_url().starts_with("http://127.0.0.1:"));
    assert_eq!(emulator.ca_file(), None);

    let body = json!({ "username": "bob", "password": "secret" });
    let login_url = format!("{}login", emulator.auth_url());
    let login = emulator.client().post_json(&login_url, &body).expect("login");
    let result = login.json().expect("JSON")["AuthenticationResult"].clone();
    assert_eq!(result["ExpiresIn"], 3);
}

#[test]
fn verbose_logs_name_requests_but_never_passwords_or_tokens() {
    let sentinel = "sentinel-password-3f9a";
    let user = format!("carol:{sentinel}");
    let mut emulator = spawn(&["--verbose", "--user", &user]);

    let body = json!({ "username": "carol", "password": sentinel });
    let login_url = format!("{}login", emulator.auth_url());
    let login = emulator.client().post_json(&login_url, &body).expect("login");
    let result = login.json().expect("JSON")["AuthenticationResult"].clone();
    let access = result["AccessToken"].as_str().expect("token").to_owned();
    let sites_url = format!("{}sites", emulator.api_url());
    let bearer = format!("Bearer {access}");
    let sites = emulator.client().get(&sites_url, Some(&bearer)).expect("get");
    assert_eq!(sites.status, 200);
    emulator.stop().expect("stopped");

    let log = emulator.stderr();
    assert!(log.contains("path=/login") && log.contains("status=200"), "{log}");
    assert!(log.contains("path=/sites"), "{log}");
    for secret in [sentinel, access.as_str()] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
}

#[test]
fn a_binary_that_fails_to_start_is_reported_with_its_stderr() {
    let binary = emulator_binary();
    let failed =
        EmulatorProcess::spawn(&binary, &["--token-lifetime", "0"]).err();

    let message = format!("{:#}", failed.expect("a lifetime of 0 is refused"));
    assert!(message.contains("--token-lifetime"), "{message}");
}

#[test]
fn the_binary_is_looked_up_beside_the_test_executables_target_dir() {
    let binary = emulator_binary();
    let dir = binary.parent().expect("a directory");

    assert_ne!(dir.file_name().and_then(|name| name.to_str()), Some("deps"));
    assert!(binary
        .ends_with(format!("{BINARY_NAME}{}", std::env::consts::EXE_SUFFIX)));
}

#[test]
fn faults_and_rotation_are_set_over_http_by_the_process_helpers() {
    let emulator = spawn(&["--rotate-refresh-tokens"]);
    let body =
        json!({ "username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD });
    let login_url = format!("{}login", emulator.auth_url());
    let login =
        || emulator.client().post_json(&login_url, &body).expect("post");

    emulator
        .set_fault(&json!({ "endpoint": "login", "status": 429 }))
        .expect("fault queued");
    assert_eq!(login().status, 429);
    assert_eq!(login().status, 429, "a fault without times stays");
    emulator.clear_faults().expect("cleared");
    let result = login().json().expect("JSON")["AuthenticationResult"].clone();
    let refresh = result["RefreshToken"].as_str().expect("token").to_owned();
    assert_eq!(emulator.counters().expect("counters").login, 3);

    let refresh_url = format!("{}login/refresh", emulator.auth_url());
    let refreshed = emulator
        .client()
        .post_json(&refresh_url, &json!({ "refreshToken": refresh }))
        .expect("refresh");
    let rotated = &refreshed.json().expect("JSON")["AuthenticationResult"];
    assert!(rotated["RefreshToken"].as_str().is_some_and(|t| t != refresh));

    let settings = emulator.set_rotate_refresh_tokens(false).expect("set");
    assert!(!settings.rotate_refresh_tokens);
    let refused = emulator.set_fault(&json!({ "endpoint": "nowhere" }));
    let message = format!("{:#}", refused.expect_err("an unknown endpoint"));
    assert!(message.contains("400"), "{message}");
}

#[test]
fn variant_forced_users_and_the_missing_refresh_endpoint_come_from_flags() {
    let emulator = spawn(&[
        "--variant",
        "self-hosted",
        "--no-refresh-endpoint",
        "--user",
        "root:initial-pw",
        "--user",
        "ops:ops-password",
        "--force-change-password",
        "ops",
    ]);
    let login = |name: &str, password: &str| {
        let url = format!("{}login", emulator.auth_url());
        let body = json!({ "username": name, "password": password });
        emulator.client().post_json(&url, &body).expect("login").json()
    };

    let admin = login("root", "initial-pw").expect("JSON");
    assert_eq!(admin["AuthenticationResult"]["RefreshToken"], "");
    let forced = login("ops", "ops-password").expect("JSON");
    assert_eq!(forced["ChallengeName"], "NEW_PASSWORD_REQUIRED");
    let refresh_url = format!("{}login/refresh", emulator.auth_url());
    let body = json!({ "refreshToken": "" });
    let refresh = emulator.client().post_json(&refresh_url, &body);
    assert_eq!(refresh.expect("refresh").status, 404);

    let failed = EmulatorProcess::spawn(
        &emulator_binary(),
        &["--force-change-password", "nobody"],
    );
    let message = format!("{:#}", failed.err().expect("an unknown user"));
    assert!(message.contains("nobody"), "{message}");
}
