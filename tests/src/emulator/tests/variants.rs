//! Tests of the deployment variants, forced password changes and the
//! missing refresh endpoint.

use serde_json::json;

use super::{assert_reply, Harness};
use crate::emulator::*;

fn with(config: EmulatorConfig) -> Harness {
    Harness::start(config)
}

#[test]
fn the_self_hosted_variant_hands_out_its_api_key_without_expiry() {
    let harness = with(EmulatorConfig {
        variant: Variant::SelfHosted,
        ..EmulatorConfig::default()
    });

    let result = harness.login_ok();
    let key = result["AccessToken"].as_str().expect("a key").to_owned();
    assert_eq!(key.split('.').count(), 1, "the API key is not a JWT");
    assert_eq!(
        result,
        json!({ "AccessToken": key, "IdToken": key, "RefreshToken": "" })
    );

    for refresh_with in ["", key.as_str()] {
        let again = harness.refresh(refresh_with);
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(again.json().expect("JSON")["AuthenticationResult"], result);
    }
    assert_reply(
        &harness.refresh("something-else"),
        400,
        json!({
            "code": "NotAuthorizedException",
            "message": "Incorrect refresh token.",
        }),
    );
    assert_reply(
        &harness.login(DEFAULT_USERNAME, "wrong"),
        400,
        json!({
            "code": "NotAuthorizedException",
            "message": "Incorrect username or password.",
        }),
    );

    for header in [format!("Bearer {key}"), key.clone()] {
        let sites = harness.sites(Some(&header));
        assert_eq!(sites.status, 200, "{}", sites.body);
        assert_eq!(sites.json().expect("JSON")["username"], DEFAULT_USERNAME);
    }
    assert_eq!(harness.sites(Some("Bearer not-the-key")).status, 401);
}

#[test]
fn the_keycloak_variant_states_no_expires_in_and_its_jwts_open_sites() {
    let harness = with(EmulatorConfig {
        variant: Variant::Keycloak,
        ..EmulatorConfig::default()
    });

    let result = harness.login_ok();
    let fields = result.as_object().expect("an object");
    assert!(!fields.contains_key("ExpiresIn"), "{result}");
    let access = result["AccessToken"].as_str().expect("a JWT");
    assert_eq!(access.split('.').count(), 3);
    let sites = harness.sites(Some(&format!("Bearer {access}")));
    assert_eq!(sites.status, 200, "{}", sites.body);
    let id = result["IdToken"].as_str().expect("a JWT");
    assert_eq!(harness.sites(Some(&format!("Bearer {id}"))).status, 401);

    let refresh = result["RefreshToken"].as_str().expect("a refresh token");
    let again = harness.refresh(refresh);
    let again = again.json().expect("JSON")["AuthenticationResult"].clone();
    assert!(again.get("ExpiresIn").is_none(), "{again}");
    assert!(again["AccessToken"].is_string());
}

#[test]
fn a_forced_user_gets_a_challenge_sets_a_new_password_then_logs_in() {
    let harness = with(EmulatorConfig {
        users: vec![User::new("newbie", "temporary-1")],
        force_change_password: vec!["newbie".into()],
        ..EmulatorConfig::default()
    });

    let challenged = harness.login("newbie", "temporary-1");
    assert_eq!(challenged.status, 200, "{}", challenged.body);
    let challenged = challenged.json().expect("JSON");
    assert_eq!(challenged["ChallengeName"], "NEW_PASSWORD_REQUIRED");
    assert!(challenged["AuthenticationResult"]["AccessToken"].is_null());
    let session = challenged["Session"].as_str().expect("a session");

    let answer = |session: &str, password: &str| {
        let body = json!({
            "username": "newbie",
            "userStatus": "NEW_PASSWORD_REQUIRED",
            "session": session,
            "password": password,
        });
        harness
            .client
            .post_json(&harness.auth("respondToAuthChallenge"), &body)
            .expect("post")
    };
    let short = answer(session, "short");
    assert_eq!(short.status, 400);
    assert!(short.body.contains("Password not long enough"), "{}", short.body);
    // The session was used up by the refused answer.
    let stale = answer(session, "a-long-new-password");
    assert_eq!(stale.status, 400);
    assert!(stale.body.contains("Invalid session"), "{}", stale.body);

    let fresh = harness.login("newbie", "temporary-1").json().expect("JSON");
    let session = fresh["Session"].as_str().expect("a session");
    assert_eq!(answer(session, "a-long-new-password").status, 200);

    assert_eq!(harness.login("newbie", "temporary-1").status, 400);
    let login = harness.login("newbie", "a-long-new-password");
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(login.json().expect("JSON")["AuthenticationResult"]["AccessToken"]
        .is_string());
    let counters = harness.emulator.counters();
    assert_eq!((counters.challenge, counters.challenge_ok), (3, 1));
}

#[test]
fn without_the_refresh_endpoint_refresh_answers_404_and_is_counted() {
    let harness = with(EmulatorConfig {
        no_refresh_endpoint: true,
        ..EmulatorConfig::default()
    });
    let result = harness.login_ok();
    let refresh = result["RefreshToken"].as_str().expect("refresh token");

    assert_reply(
        &harness.refresh(refresh),
        404,
        json!({ "message": "Not Found" }),
    );
    let counters = harness.emulator.counters();
    assert_eq!((counters.refresh, counters.refresh_ok), (1, 0));
}

#[test]
fn variants_parse_from_their_command_line_names() {
    for variant in [Variant::Aws, Variant::SelfHosted, Variant::Keycloak] {
        assert_eq!(variant.name().parse::<Variant>().expect("known"), variant);
    }
    let unknown = "cognito".parse::<Variant>().map_err(|e| e.to_string());
    assert!(unknown.is_err_and(|e| e.contains("self-hosted")));
}
