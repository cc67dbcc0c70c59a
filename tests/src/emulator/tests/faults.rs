//! Tests of the fault controls and refresh token rotation.

use std::time::Duration;

use serde_json::{json, Value};

use super::{assert_reply, bearer, Harness};
use crate::emulator::http_client::BlockingResponse;
use crate::emulator::*;

impl Harness {
    fn fault(&self, fault: Value) -> BlockingResponse {
        self.client.post_json(&self.auth(FAULTS_PATH), &fault).expect("fault")
    }
}

#[test]
fn a_status_fault_answers_for_its_times_then_the_endpoint_is_itself_again() {
    let harness = Harness::start(EmulatorConfig::default());
    let queued = harness
        .fault(json!({ "endpoint": "login", "status": 503, "times": 2 }));
    assert_eq!(queued.status, 200, "{}", queued.body);

    for _ in 0..2 {
        let refused = harness.login(DEFAULT_USERNAME, DEFAULT_PASSWORD);
        assert_reply(
            &refused,
            503,
            json!({ "message": "Service Unavailable" }),
        );
    }
    harness.login_ok();

    let counters = harness.emulator.counters();
    assert_eq!((counters.login, counters.login_ok), (3, 1));
}

#[test]
fn a_body_fault_sends_its_raw_body_with_200_or_with_its_status() {
    let harness = Harness::start(EmulatorConfig::default());
    harness.fault(json!({
        "endpoint": "login", "body": "<html>proxy</html>", "times": 1
    }));
    harness.fault(json!({
        "endpoint": "login", "status": 400, "times": 1,
        "body": r#"{"code":"NotAuthorizedException","message":"no"}"#,
    }));

    let html = harness.login(DEFAULT_USERNAME, DEFAULT_PASSWORD);
    assert_eq!((html.status, html.body.as_str()), (200, "<html>proxy</html>"));
    let coded = harness.login(DEFAULT_USERNAME, DEFAULT_PASSWORD);
    assert_reply(
        &coded,
        400,
        json!({ "code": "NotAuthorizedException", "message": "no" }),
    );
    // Replies made up by a fault issued no tokens, so none counts as ok.
    let counters = harness.emulator.counters();
    assert_eq!((counters.login, counters.login_ok), (2, 0));
}

#[test]
fn field_faults_omit_null_and_empty_fields_of_the_authentication_result() {
    let harness = Harness::start(EmulatorConfig::default());
    harness.fault(json!({
        "endpoint": "login",
        "omit": ["ExpiresIn", "TokenType"],
        "null_fields": ["RefreshToken"],
        "empty_fields": ["IdToken"],
    }));

    let result = harness.login_ok();
    let fields = result.as_object().expect("an object");
    assert!(!fields.contains_key("ExpiresIn"), "{result}");
    assert!(!fields.contains_key("TokenType"), "{result}");
    assert_eq!(result["RefreshToken"], Value::Null);
    assert_eq!(result["IdToken"], "");
    assert_eq!(
        harness.sites(Some(&bearer(&result["AccessToken"]))).status,
        200,
        "the access token itself is untouched"
    );
}

#[test]
fn a_delay_fault_stalls_the_reply_and_a_drop_fault_never_answers() {
    let harness = Harness::start(EmulatorConfig::default());
    let token = harness.login_ok()["AccessToken"].clone();
    harness.fault(json!({ "endpoint": "sites", "delay_ms": 300, "times": 1 }));
    harness.fault(json!({ "endpoint": "sites", "drop": true, "times": 1 }));

    let started = std::time::Instant::now();
    assert_eq!(harness.sites(Some(&bearer(&token))).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let dropped =
        harness.client.get(&harness.api("sites"), Some(&bearer(&token)));
    assert!(dropped.is_err(), "a dropped request got a reply: {dropped:?}");
    assert_eq!(harness.sites(Some(&bearer(&token))).status, 200);

    let counters = harness.emulator.counters();
    assert_eq!((counters.sites, counters.sites_ok), (3, 2));
}

#[test]
fn faults_are_listed_cleared_and_nonsense_is_refused_with_the_reason() {
    let harness = Harness::start(EmulatorConfig::default());
    harness.fault(json!({ "endpoint": "refresh", "status": 500 }));
    let listed =
        harness.client.get(&harness.auth(FAULTS_PATH), None).expect("get");
    let listed = listed.json().expect("JSON");
    assert_eq!(listed["faults"][0]["endpoint"], "refresh");
    assert_eq!(listed["faults"][0]["times"], Value::Null);

    let cleared = harness
        .client
        .request("DELETE", &harness.auth(FAULTS_PATH), &[], None)
        .expect("delete");
    assert_reply(&cleared, 200, json!({ "faults": [] }));

    for nonsense in [
        json!({ "endpoint": "logout" }),
        json!({ "endpoint": "login", "status": 42 }),
        json!({ "endpoint": "login", "times": 0 }),
        json!({ "endpoint": "login", "stauts": 500 }),
    ] {
        let refused = harness.fault(nonsense.clone());
        assert_eq!(refused.status, 400, "{nonsense} was accepted");
    }
    harness.login_ok();
}

#[test]
fn with_rotation_each_refresh_hands_out_a_new_single_use_refresh_token() {
    let harness = Harness::start(EmulatorConfig {
        rotate_refresh_tokens: true,
        ..EmulatorConfig::default()
    });
    let first = harness.login_ok()["RefreshToken"].clone();
    let first = first.as_str().expect("refresh token");

    let reply = harness.refresh(first);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let result = reply.json().expect("JSON")["AuthenticationResult"].clone();
    let second = result["RefreshToken"].as_str().expect("rotated").to_owned();
    assert_ne!(second, first);
    assert_eq!(harness.refresh(first).status, 400, "the old one is used up");

    // Switched off at run time, refreshes stop rotating.
    let url = harness.auth(SETTINGS_PATH);
    let off = json!({ "rotate_refresh_tokens": false });
    let changed = harness.client.post_json(&url, &off).expect("settings");
    assert_reply(&changed, 200, json!({ "rotate_refresh_tokens": false }));
    for _ in 0..2 {
        let reply = harness.refresh(&second);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let result = &reply.json().expect("JSON")["AuthenticationResult"];
        assert!(result.get("RefreshToken").is_none(), "{result}");
    }
}
