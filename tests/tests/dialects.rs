//! Every response shape of `FORMKIQ-AUTH.md`, through the real daemon and
//! client: each login reply below must yield a token the API accepts, an
//! expiry from the right source, and a working refresh.

use std::time::{Duration, SystemTime};

use fkq_cred_proto::exit;
use fkq_cred_tests::emulator::process::EmulatorProcess;
use fkq_cred_tests::emulator::DEFAULT_PASSWORD;
use fkq_cred_tests::harness::{
    assert_all, check_failure, code, stderr, stdout, Sandbox, PROFILE,
};
use serde_json::{json, Value};

/// Slack for the expiry check: the time between the reply and the check,
/// on a loaded machine.
const SLACK: u64 = 15;

/// One login reply shape and what the daemon must make of it.
struct Shape {
    name: &'static str,
    emulator: &'static [&'static str],
    /// A fault on the login reply, shaping it.
    fault: Option<Value>,
    /// Extra profile lines.
    profile: &'static str,
    /// The lifetime the daemon must take from the reply, in seconds.
    lifetime: u64,
    /// Whether the access token is a JWT.
    is_jwt: bool,
}

fn shapes() -> Vec<Shape> {
    // The emulator's tokens live 1800 s and default_lifetime is 2 h, so
    // each source of the lifetime gives a different answer.
    const JWT: &[&str] = &["--token-lifetime", "1800"];
    const LIFETIME: &str = "default_lifetime = \"2h\"\n";
    let login = |fault: Value| {
        let mut fault = fault;
        fault["endpoint"] = json!("login");
        Some(fault)
    };
    vec![
        Shape {
            name: "aws: ExpiresIn states the lifetime",
            emulator: JWT,
            fault: None,
            profile: LIFETIME,
            lifetime: 1800,
            is_jwt: true,
        },
        Shape {
            name: "older stack: ChallengeParameters {} beside the tokens",
            emulator: JWT,
            fault: login(json!({"extra_fields": {"ChallengeParameters": {}}})),
            profile: LIFETIME,
            lifetime: 1800,
            is_jwt: true,
        },
        Shape {
            name: "ExpiresIn and TokenType absent: the JWT's exp - iat",
            emulator: JWT,
            fault: login(json!({"omit": ["ExpiresIn", "TokenType"]})),
            profile: LIFETIME,
            lifetime: 1800,
            is_jwt: true,
        },
        Shape {
            name: "ExpiresIn, TokenType and RefreshToken null",
            emulator: JWT,
            fault: login(json!({
                "null_fields": ["ExpiresIn", "TokenType", "RefreshToken"]
            })),
            profile: LIFETIME,
            lifetime: 1800,
            is_jwt: true,
        },
        Shape {
            name: "ExpiresIn, TokenType and IdToken empty",
            emulator: JWT,
            fault: login(json!({
                "empty_fields": ["ExpiresIn", "TokenType", "IdToken"]
            })),
            profile: LIFETIME,
            lifetime: 1800,
            is_jwt: true,
        },
        Shape {
            name: "ExpiresIn absent, server clock 2 h ahead: exp - iat",
            emulator: &["--token-lifetime", "1800", "--clock-offset", "7200"],
            fault: login(json!({"omit": ["ExpiresIn"]})),
            profile: LIFETIME,
            lifetime: 1800,
            is_jwt: true,
        },
        Shape {
            name: "keycloak, server clock 2 h behind: exp - iat",
            emulator: &[
                "--variant",
                "keycloak",
                "--token-lifetime",
                "1800",
                "--clock-offset",
                "-7200",
            ],
            fault: None,
            profile: LIFETIME,
            lifetime: 1800,
            is_jwt: true,
        },
        Shape {
            name: "keycloak: JWTs with only exp and iat",
            emulator: &["--variant", "keycloak", "--token-lifetime", "1800"],
            fault: None,
            profile: LIFETIME,
            lifetime: 1800,
            is_jwt: true,
        },
        Shape {
            name: "self-hosted: an API key, no expiry, empty refresh token",
            emulator: &["--variant", "self-hosted"],
            fault: None,
            profile: LIFETIME,
            lifetime: 7200,
            is_jwt: false,
        },
    ]
}

/// Logs in through the daemon and checks what `get` and `header` give.
fn check_shape(shape: &Shape) -> Result<(), String> {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(shape.emulator);
    sandbox.write_config(&Sandbox::profile_toml(
        PROFILE,
        &emulator,
        shape.profile,
    ));
    let _daemon = sandbox.start_daemon();
    if let Some(fault) = &shape.fault {
        emulator.set_fault(fault).map_err(|e| format!("{e:#}"))?;
    }

    let out = sandbox.login_with(DEFAULT_PASSWORD);
    if !out.status.success() {
        return Err(format!("login exited {}: {}", code(&out), stderr(&out)));
    }
    let out = sandbox.cli(&["get", "--json"]);
    let reply: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("get --json: {e}: {}", stderr(&out)))?;
    let token = reply["token"].as_str().unwrap_or_default().to_owned();

    let left = seconds_until(&reply["expires_at"])?;
    if left > shape.lifetime || left + SLACK < shape.lifetime {
        return Err(format!("expires in {left} s, not {} s", shape.lifetime));
    }
    if (token.split('.').count() == 3) != shape.is_jwt {
        return Err(format!("JWT-ness of the token is not {}", shape.is_jwt));
    }
    let status = sites_status(&emulator, &token);
    if status != 200 {
        return Err(format!("the API answered {status} to the token"));
    }
    let header = stdout(&sandbox.cli(&["header"]));
    if header != format!("Authorization: Bearer {token}\n") {
        return Err(format!("header printed {header:?}"));
    }
    Ok(())
}

#[test]
fn every_login_reply_shape_yields_an_accepted_token_and_the_right_expiry() {
    let failures: Vec<_> = shapes()
        .iter()
        .filter_map(|shape| {
            check_shape(shape).err().map(|why| (shape.name.to_owned(), why))
        })
        .collect();
    assert_all(failures);
}

/// One refresh situation: how the renewal is forced twice through the
/// `/sites` 401 retry, and what the counters must show afterwards.
struct Renewal {
    name: &'static str,
    emulator: &'static [&'static str],
    /// A fault on every refresh reply.
    refresh_fault: Option<Value>,
    /// Extra profile lines.
    profile: &'static str,
    /// Expected (refresh attempts, logins) after two forced renewals.
    counts: (u64, u64),
}

fn renewals() -> Vec<Renewal> {
    let command = concat!(
        "password_command = [\"printf\", \"",
        "correct-horse-battery-staple",
        "\\\\n\"]\n"
    );
    let refresh = |fault: Value| {
        let mut fault = fault;
        fault["endpoint"] = json!("refresh");
        Some(fault)
    };
    vec![
        Renewal {
            name: "no rotation: the refresh reply has no RefreshToken",
            emulator: &[],
            refresh_fault: None,
            profile: "",
            counts: (2, 1),
        },
        Renewal {
            name: "no rotation: the refresh reply's RefreshToken is null",
            emulator: &[],
            refresh_fault: refresh(json!({"null_fields": ["RefreshToken"]})),
            profile: "",
            counts: (2, 1),
        },
        Renewal {
            name: "no rotation: the refresh reply's RefreshToken is empty",
            emulator: &[],
            refresh_fault: refresh(json!({"empty_fields": ["RefreshToken"]})),
            profile: "",
            counts: (2, 1),
        },
        Renewal {
            name: "rotation: each refresh token is single use",
            emulator: &["--rotate-refresh-tokens"],
            refresh_fault: None,
            profile: "",
            counts: (2, 1),
        },
        Renewal {
            name: "keycloak: refresh without ExpiresIn",
            emulator: &["--variant", "keycloak"],
            refresh_fault: None,
            profile: "",
            counts: (2, 1),
        },
        Renewal {
            name: "self-hosted: the empty refresh token renews the API key",
            emulator: &["--variant", "self-hosted"],
            refresh_fault: None,
            profile: "",
            counts: (2, 1),
        },
        Renewal {
            name: "no /login/refresh: one 404, then logins only",
            emulator: &["--no-refresh-endpoint"],
            refresh_fault: None,
            profile: command,
            counts: (1, 3),
        },
    ]
}

/// Forces two renewals: each `sites` meets one 401, which makes the
/// daemon renew the token once and retry.
fn check_renewal(case: &Renewal) -> Result<(), String> {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(case.emulator);
    let _daemon = sandbox.logged_in(&emulator, case.profile);
    if let Some(fault) = &case.refresh_fault {
        emulator.set_fault(fault).map_err(|e| format!("{e:#}"))?;
    }
    let first = stdout(&sandbox.cli(&["get"]));

    for round in 1..=2 {
        let unauthorized =
            json!({ "endpoint": "sites", "status": 401, "times": 1 });
        emulator.set_fault(&unauthorized).map_err(|e| format!("{e:#}"))?;
        let out = sandbox.cli(&["sites"]);
        if !out.status.success() {
            return Err(format!(
                "sites in round {round} exited {}: {}",
                code(&out),
                stderr(&out)
            ));
        }
    }

    let counters = emulator.counters().map_err(|e| format!("{e:#}"))?;
    if (counters.refresh, counters.login) != case.counts {
        return Err(format!(
            "(refreshes, logins) = ({}, {}), expected {:?}",
            counters.refresh, counters.login, case.counts
        ));
    }
    let out = sandbox.cli(&["get"]);
    let token = stdout(&out);
    if sites_status(&emulator, token.trim_end()) != 200 {
        return Err(format!("the renewed token is refused: {}", stderr(&out)));
    }
    let is_api_key = case.emulator.contains(&"self-hosted");
    if is_api_key != (token == first) {
        return Err("the token did not change as the dialect says".into());
    }
    Ok(())
}

#[test]
fn every_refresh_dialect_renews_twice_and_keeps_or_replaces_the_refresh_token()
{
    let failures: Vec<_> = renewals()
        .iter()
        .filter_map(|case| {
            check_renewal(case).err().map(|why| (case.name.to_owned(), why))
        })
        .collect();
    assert_all(failures);
}

#[test]
fn without_a_refresh_endpoint_or_password_source_the_user_is_told_to_log_in() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&["--no-refresh-endpoint"]);
    let _daemon = sandbox.logged_in(&emulator, "");
    emulator
        .set_fault(&json!({ "endpoint": "sites", "status": 401, "times": 1 }))
        .expect("fault");

    let out = sandbox.cli(&["sites"]);
    check_failure(
        &out,
        exit::LOGIN_REQUIRED,
        &["no refresh endpoint", "login/refresh", "fkq-cred login"],
        &[],
    )
    .unwrap_or_else(|why| panic!("{why}"));
    assert_eq!(emulator.counters().expect("counters").refresh, 1);
}

#[test]
fn get_id_token_hands_out_the_id_token_and_fails_clearly_without_one() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");
    let access = stdout(&sandbox.cli(&["get"]));
    let id = stdout(&sandbox.cli(&["get", "--id-token"]));
    assert_ne!(access, id);
    assert_eq!(sites_status(&emulator, access.trim_end()), 200);
    assert_eq!(sites_status(&emulator, id.trim_end()), 401, "an id token");
    let status = stdout(&sandbox.cli(&["status"]));
    assert!(
        status.contains("access token: expires")
            && status.contains("id token:")
            && status.contains("--id-token"),
        "{status}"
    );

    // A deployment that sends no id token: the access token still works,
    // and asking for the id token says there is none.
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    sandbox.write_config(&Sandbox::profile_toml(PROFILE, &emulator, ""));
    let _daemon = sandbox.start_daemon();
    emulator
        .set_fault(&json!({ "endpoint": "login", "omit": ["IdToken"] }))
        .expect("fault");
    assert!(sandbox.login_with(DEFAULT_PASSWORD).status.success());
    assert!(sandbox.cli(&["get"]).status.success());
    let out = sandbox.cli(&["get", "--id-token"]);
    check_failure(&out, exit::BAD_SERVER_REPLY, &["no id token"], &[])
        .unwrap_or_else(|why| panic!("{why}"));
}

/// Asks the emulator's `/sites` whether it accepts `token`.
fn sites_status(emulator: &EmulatorProcess, token: &str) -> u16 {
    let url = format!("{}sites", emulator.api_url());
    let bearer = format!("Bearer {token}");
    emulator.client().get(&url, Some(&bearer)).expect("GET /sites").status
}

/// Seconds from now until an RFC 3339 time given as a JSON string.
fn seconds_until(value: &Value) -> Result<u64, String> {
    let text = value.as_str().ok_or(format!("no expiry: {value}"))?;
    let at = humantime::parse_rfc3339(text).map_err(|e| e.to_string())?;
    Ok(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).as_secs())
}
