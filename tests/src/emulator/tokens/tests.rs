//! Unit tests of token signing, verification and refresh grants.

use std::time::Duration;

use super::*;
use crate::emulator::clock::ManualClock;

const ISSUER: &str = "https://127.0.0.1:1/";
const LIFETIME: Duration = Duration::from_secs(60);
const REFRESH_LIFETIME: Duration = Duration::from_secs(600);

fn issuer_with(clock: &ManualClock) -> TokenIssuer {
    TokenIssuer::new(
        ISSUER.to_owned(),
        LIFETIME,
        REFRESH_LIFETIME,
        Clock::from(clock.clone()),
        ClaimStyle::Cognito,
    )
    .expect("issuer")
}

#[test]
fn an_issued_access_token_verifies_with_cognito_shaped_claims() {
    let clock = ManualClock::starting_at(1_700_000_000);
    let issuer = issuer_with(&clock);

    let (pair, _refresh) = issuer.login("alice@example.com").expect("login");
    let claims = issuer.verify_access(&pair.access).expect("valid token");

    assert_eq!(claims.username, "alice@example.com");
    assert_eq!(claims.token_use, "access");
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.scope, ACCESS_SCOPE);
    assert_eq!(claims.groups, vec!["default".to_owned()]);
    assert_eq!(claims.iat, 1_700_000_000);
    assert_eq!(claims.exp, 1_700_000_060);
    assert_eq!(claims.auth_time, claims.iat);
}

#[test]
fn the_id_token_is_refused_where_an_access_token_is_needed() {
    let clock = ManualClock::starting_now();
    let issuer = issuer_with(&clock);
    let (pair, _refresh) = issuer.login("alice@example.com").expect("login");

    let refused = issuer.verify_access(&pair.id);

    assert!(
        matches!(
            &refused,
            Err(TokenError::NotAnAccessToken { token_use }) if token_use == "id"
        ),
        "{refused:?}"
    );
}

#[test]
fn an_access_token_is_refused_once_the_clock_reaches_exp() {
    let clock = ManualClock::starting_at(1_000);
    let issuer = issuer_with(&clock);
    let (pair, _refresh) = issuer.login("alice@example.com").expect("login");

    clock.advance(LIFETIME - Duration::from_secs(1));
    assert!(issuer.verify_access(&pair.access).is_ok());

    clock.advance(Duration::from_secs(1));
    let refused = issuer.verify_access(&pair.access);
    assert!(
        matches!(refused, Err(TokenError::Expired { exp: 1_060, now: 1_060 })),
        "{refused:?}"
    );
}

#[test]
fn a_tampered_or_foreign_token_is_refused() {
    let clock = ManualClock::starting_now();
    let issuer = issuer_with(&clock);
    let other_run = issuer_with(&clock);
    let (pair, _refresh) = other_run.login("alice@example.com").expect("login");

    let foreign = issuer.verify_access(&pair.access);
    assert!(matches!(foreign, Err(TokenError::BadSignature)), "{foreign:?}");

    let mut tampered = pair.access.clone();
    tampered.push('A');
    assert!(other_run.verify_access(&tampered).is_err());

    for garbage in ["", "abc", "a.b", "a.b.c.d", "!!.??.**"] {
        let refused = issuer.verify_access(garbage);
        assert!(matches!(refused, Err(TokenError::Malformed)), "{garbage}");
    }
}

#[test]
fn tokens_issued_in_the_same_second_are_distinct() {
    let clock = ManualClock::starting_at(5_000);
    let issuer = issuer_with(&clock);

    let (first, first_refresh) = issuer.login("bob").expect("login");
    let (second, second_refresh) = issuer.login("bob").expect("login");

    assert_ne!(first.access, second.access);
    assert_ne!(first.id, second.id);
    assert_ne!(first_refresh, second_refresh);
    assert_eq!(first_refresh.len(), 64);
}

#[test]
fn a_refresh_token_stays_valid_until_its_own_expiry() {
    let clock = ManualClock::starting_at(10_000);
    let issuer = issuer_with(&clock);
    let (_pair, refresh) = issuer.login("carol").expect("login");

    clock.advance(Duration::from_secs(100));
    let (first, none) =
        issuer.refresh(&refresh, false).expect("refresh").expect("live");
    assert!(none.is_none(), "no rotation asked for");
    let (second, _) =
        issuer.refresh(&refresh, false).expect("refresh").expect("live");
    let claims = issuer.verify_access(&first.access).expect("valid");
    assert_eq!(claims.auth_time, 10_000);
    assert_eq!(claims.iat, 10_100);
    assert_ne!(first.access, second.access);

    clock.advance(REFRESH_LIFETIME);
    assert!(issuer.refresh(&refresh, false).expect("refresh").is_none());
    assert!(issuer.refresh("unknown", false).expect("refresh").is_none());
}

#[test]
fn a_rotated_refresh_token_is_single_use_and_its_successor_works() {
    let clock = ManualClock::starting_at(20_000);
    let issuer = issuer_with(&clock);
    let (_pair, first) = issuer.login("dora").expect("login");

    let (_pair, second) =
        issuer.refresh(&first, true).expect("refresh").expect("live");
    let second = second.expect("a rotated token");
    assert_ne!(second, first);
    assert!(issuer.refresh(&first, true).expect("refresh").is_none());

    let (pair, third) =
        issuer.refresh(&second, true).expect("refresh").expect("live");
    let third = third.expect("a rotated token");
    assert_ne!(third, second);
    assert!(issuer.verify_access(&pair.access).is_ok());

    // The successor lives as long as the login's grant, not longer.
    clock.advance(REFRESH_LIFETIME - Duration::from_secs(1));
    assert!(issuer.refresh(&third, false).expect("refresh").is_some());
    clock.advance(Duration::from_secs(1));
    assert!(issuer.refresh(&third, false).expect("refresh").is_none());
}

#[test]
fn the_subject_is_stable_per_user_and_the_email_falls_back() {
    let clock = ManualClock::starting_now();
    let issuer = issuer_with(&clock);

    assert_eq!(issuer.subject_of("dave"), issuer.subject_of("dave"));
    assert_ne!(issuer.subject_of("dave"), issuer.subject_of("erin"));
    assert_eq!(email_of("dave"), "dave@emulator.invalid");
    assert_eq!(email_of("a@b.example"), "a@b.example");
}

#[test]
fn keycloak_tokens_carry_only_expiry_and_identity_and_still_verify() {
    let clock = ManualClock::starting_at(30_000);
    let issuer = TokenIssuer::new(
        ISSUER.to_owned(),
        LIFETIME,
        REFRESH_LIFETIME,
        Clock::from(clock.clone()),
        ClaimStyle::Keycloak,
    )
    .expect("issuer");
    let (pair, _refresh) = issuer.login("erin").expect("login");

    let payload = pair.access.split('.').nth(1).expect("a payload");
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(payload).expect("base64url"),
    )
    .expect("JSON");
    let mut names: Vec<_> =
        claims.as_object().expect("an object").keys().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        ["exp", "iat", "iss", "jti", "preferred_username", "sub", "typ"]
    );
    assert_eq!(claims["exp"], 30_060);
    assert_eq!(issuer.verify_user(&pair.access).expect("valid"), "erin");
    assert!(matches!(
        issuer.verify_user(&pair.id),
        Err(TokenError::NotAnAccessToken { .. })
    ));
}
