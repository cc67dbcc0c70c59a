//! End-to-end tests of the in-process emulator over real HTTPS on
//! loopback, with the blocking client trusting the emulator's `ca.pem`.

use std::time::Duration;

use serde_json::{json, Value};

use super::http_client::{BlockingClient, BlockingResponse};
use super::*;

/// An emulator on its own runtime, driven from the test's thread with the
/// blocking client. The emulator is declared first so it is dropped before
/// the runtime its tasks live on.
struct Harness {
    emulator: Emulator,
    client: BlockingClient,
    runtime: tokio::runtime::Runtime,
}

mod faults;
mod variants;

impl Harness {
    fn start(config: EmulatorConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let emulator = runtime.block_on(start(config)).expect("emulator");
        let client =
            BlockingClient::for_ca(emulator.ca_file()).expect("client");
        Self { emulator, client, runtime }
    }

    fn auth(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.auth_url())
    }

    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.api_url())
    }

    fn login(&self, username: &str, password: &str) -> BlockingResponse {
        let body = json!({ "username": username, "password": password });
        self.client.post_json(&self.auth("login"), &body).expect("login")
    }

    fn login_ok(&self) -> Value {
        let response = self.login(DEFAULT_USERNAME, DEFAULT_PASSWORD);
        assert_eq!(response.status, 200, "{}", response.body);
        response.json().expect("JSON")["AuthenticationResult"].clone()
    }

    fn sites(&self, authorization: Option<&str>) -> BlockingResponse {
        self.client.get(&self.api("sites"), authorization).expect("sites")
    }

    fn refresh(&self, refresh_token: &str) -> BlockingResponse {
        let body = json!({ "refreshToken": refresh_token });
        self.client
            .post_json(&self.auth("login/refresh"), &body)
            .expect("refresh")
    }
}

fn bearer(token: &Value) -> String {
    format!("Bearer {}", token.as_str().expect("token is a string"))
}

fn assert_reply(response: &BlockingResponse, status: u16, body: Value) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(response.json().expect("JSON body"), body);
}

#[test]
fn a_login_returns_cognito_shaped_tokens_whose_access_token_opens_sites() {
    let harness = Harness::start(EmulatorConfig::default());

    let result = harness.login_ok();
    for field in ["AccessToken", "IdToken", "RefreshToken"] {
        assert!(
            result[field].as_str().is_some_and(|t| !t.is_empty()),
            "{field}"
        );
    }
    assert_eq!(result["TokenType"], "Bearer");
    assert_eq!(result["ExpiresIn"], 3600);
    assert_eq!(result["RefreshToken"].as_str().map(str::len), Some(64));

    let sites = harness.sites(Some(&bearer(&result["AccessToken"])));
    assert_reply(
        &sites,
        200,
        json!({
            "username": DEFAULT_USERNAME,
            "roles": ["DEFAULT"],
            "sites": [{
                "siteId": "default",
                "permission": "READ_WRITE",
                "permissions": ["DELETE", "READ", "WRITE"],
            }],
        }),
    );
    let expected = Counters {
        login: 1,
        login_ok: 1,
        sites: 1,
        sites_ok: 1,
        ..Counters::default()
    };
    assert_eq!(harness.emulator.counters(), expected);
}

#[test]
fn sites_refuses_id_tokens_bare_tokens_garbage_and_no_header_with_401() {
    let harness = Harness::start(EmulatorConfig::default());
    let result = harness.login_ok();
    let access = result["AccessToken"].as_str().expect("access").to_owned();

    let id_token = bearer(&result["IdToken"]);
    let refused = [
        Some(id_token.as_str()),
        Some(access.as_str()),
        Some("Bearer not-a-token"),
        Some("Bearer "),
        Some("Basic YWxpY2U6cHc="),
        None,
    ];
    for authorization in refused {
        let response = harness.sites(authorization);
        assert_reply(&response, 401, json!({ "message": "Unauthorized" }));
    }

    let counters = harness.emulator.counters();
    assert_eq!((counters.sites, counters.sites_ok), (6, 0));
}

#[test]
fn a_refresh_answers_without_a_refresh_token_and_the_old_one_stays_valid() {
    let harness = Harness::start(EmulatorConfig::default());
    let login = harness.login_ok();
    let refresh_token = login["RefreshToken"].as_str().expect("refresh");

    for _ in 0..2 {
        let response = harness.refresh(refresh_token);
        assert_eq!(response.status, 200, "{}", response.body);
        let result =
            response.json().expect("JSON")["AuthenticationResult"].clone();
        assert!(result.get("RefreshToken").is_none(), "{result}");
        assert_eq!(result["TokenType"], "Bearer");
        assert_eq!(result["ExpiresIn"], 3600);
        assert_ne!(result["AccessToken"], login["AccessToken"]);
        assert_eq!(
            harness.sites(Some(&bearer(&result["AccessToken"]))).status,
            200
        );
    }

    let unknown = harness.refresh("no-such-token");
    assert_reply(
        &unknown,
        400,
        json!({ "message": "Incorrect refresh token" }),
    );
    let counters = harness.emulator.counters();
    assert_eq!((counters.refresh, counters.refresh_ok), (3, 2));
}

#[test]
fn each_login_error_has_the_status_and_body_formkiq_sends() {
    let harness = Harness::start(EmulatorConfig::default());
    let login_url = harness.auth("login");
    let wrong = json!({ "message": "Incorrect username or password" });
    let missing = json!({
        "errors": [{ "error": "'username' and 'password' are required" }]
    });

    assert_reply(&harness.login(DEFAULT_USERNAME, "wrong"), 400, wrong.clone());
    assert_reply(
        &harness.login("mallory@example.com", DEFAULT_PASSWORD),
        400,
        wrong,
    );
    let only_user = json!({ "username": DEFAULT_USERNAME });
    let response =
        harness.client.post_json(&login_url, &only_user).expect("post");
    assert_reply(&response, 400, missing);
    let response = harness.client.post_raw(&login_url, "").expect("post");
    assert_reply(
        &response,
        400,
        json!({ "message": "request body is required" }),
    );
    let response =
        harness.client.post_raw(&login_url, "{not json").expect("post");
    assert_reply(&response, 400, json!({ "message": "invalid JSON body" }));

    let counters = harness.emulator.counters();
    assert_eq!((counters.login, counters.login_ok), (5, 0));
}

#[test]
fn an_access_token_is_refused_after_its_lifetime_and_a_refresh_recovers() {
    let clock = ManualClock::starting_now();
    let harness = Harness::start(EmulatorConfig {
        token_lifetime: Duration::from_secs(2),
        clock: Clock::from(clock.clone()),
        ..EmulatorConfig::default()
    });
    let login = harness.login_ok();
    assert_eq!(login["ExpiresIn"], 2);
    let access = bearer(&login["AccessToken"]);
    assert_eq!(harness.sites(Some(&access)).status, 200);

    clock.advance(Duration::from_secs(2));
    assert_eq!(harness.sites(Some(&access)).status, 401);

    let refreshed =
        harness.refresh(login["RefreshToken"].as_str().expect("refresh"));
    let result =
        refreshed.json().expect("JSON")["AuthenticationResult"].clone();
    assert_eq!(
        harness.sites(Some(&bearer(&result["AccessToken"]))).status,
        200
    );
}

#[test]
fn unknown_paths_and_the_wrong_server_answer_404_not_found() {
    let harness = Harness::start(EmulatorConfig::default());
    let not_found = json!({ "message": "Not Found" });

    // The classic mixup: the API URL where the auth URL belongs, and back.
    let body =
        json!({ "username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD });
    let on_api =
        harness.client.post_json(&harness.api("login"), &body).expect("post");
    assert_reply(&on_api, 404, not_found.clone());
    let on_auth =
        harness.client.get(&harness.auth("sites"), None).expect("get");
    assert_reply(&on_auth, 404, not_found.clone());
    let wrong_method =
        harness.client.get(&harness.auth("login"), None).expect("get");
    assert_reply(&wrong_method, 404, not_found.clone());
    let counters_on_api =
        harness.client.get(&harness.api(COUNTERS_PATH), None).expect("get");
    assert_reply(&counters_on_api, 404, not_found);

    assert_eq!(harness.emulator.counters(), Counters::default());
}

#[test]
fn the_counters_are_served_as_json_and_reset_over_http() {
    let harness = Harness::start(EmulatorConfig::default());
    harness.login_ok();
    harness.login(DEFAULT_USERNAME, "wrong");

    let served =
        harness.client.get(harness.emulator.counters_url(), None).expect("get");
    assert_eq!(served.status, 200);
    let served: Counters =
        serde_json::from_str(&served.body).expect("counters");
    assert_eq!(
        served,
        Counters { login: 2, login_ok: 1, ..Counters::default() }
    );
    assert_eq!(served, harness.emulator.counters());

    let reset =
        harness.client.post_raw(&harness.auth(RESET_PATH), "").expect("post");
    assert_eq!(reset.status, 200);
    assert_eq!(harness.emulator.counters(), Counters::default());
}

#[test]
fn configured_users_replace_the_default_one() {
    let harness = Harness::start(EmulatorConfig {
        users: vec!["bob:pa:ss".parse().expect("user")],
        ..EmulatorConfig::default()
    });

    assert_eq!(harness.login("bob", "pa:ss").status, 200);
    assert_eq!(harness.login(DEFAULT_USERNAME, DEFAULT_PASSWORD).status, 400);
    assert!("nopassword".parse::<User>().is_err());
    assert!(":pw".parse::<User>().is_err());
    assert!(!format!("{:?}", User::new("bob", "pa:ss")).contains("pa:ss"));
}

#[test]
fn the_certificate_covers_localhost_and_only_the_emulators_ca_is_trusted() {
    let first = Harness::start(EmulatorConfig::default());
    let second = Harness::start(EmulatorConfig::default());

    let by_name = first.emulator.auth_url().replace("127.0.0.1", "localhost");
    let response =
        first.client.get(&format!("{by_name}login"), None).expect("get");
    assert_eq!(response.status, 404);

    let foreign = first.client.get(&second.auth("login"), None);
    assert!(foreign.is_err(), "a certificate of another CA was accepted");
}

#[test]
fn the_ca_file_lives_in_the_state_dir_and_goes_away_with_the_emulator() {
    let config = EmulatorConfig::default();
    let state_dir = config.state_dir.clone();
    let harness = Harness::start(config);

    let ca_file =
        harness.emulator.ca_file().expect("HTTPS has a CA").to_owned();
    assert!(ca_file.is_absolute());
    assert_eq!(
        ca_file.file_name().and_then(|n| n.to_str()),
        Some(CA_FILE_NAME)
    );
    assert!(std::fs::read_to_string(&ca_file)
        .expect("ca.pem")
        .contains("BEGIN CERTIFICATE"));

    drop(harness);
    assert!(!ca_file.exists());
    assert!(!state_dir.exists());
}

#[test]
fn plain_http_serves_http_urls_without_a_ca_file() {
    let harness = Harness::start(EmulatorConfig {
        plain_http: true,
        ..EmulatorConfig::default()
    });

    assert!(harness.emulator.auth_url().starts_with("http://127.0.0.1:"));
    assert!(harness.emulator.api_url().starts_with("http://127.0.0.1:"));
    assert!(harness.emulator.ca_file().is_none());
    let result = harness.login_ok();
    assert_eq!(
        harness.sites(Some(&bearer(&result["AccessToken"]))).status,
        200
    );
}

#[test]
fn a_start_that_cannot_bind_fails_and_leaves_no_state_dir_behind() {
    let first = Harness::start(EmulatorConfig::default());
    let taken: u16 = first
        .emulator
        .auth_url()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("a port in the URL");
    let config =
        EmulatorConfig { auth_port: taken, ..EmulatorConfig::default() };
    let state_dir = config.state_dir.clone();

    let failed = first.runtime.block_on(start(config));

    let message = format!("{:#}", failed.err().expect("the port is taken"));
    assert!(message.contains("bind the auth server"), "{message}");
    assert!(!state_dir.exists());
}
