//! `provider = "cognito"` against a real third-party Cognito peer, moto's
//! server on loopback: the daemon logs in with USER_PASSWORD_AUTH, answers
//! NEW_PASSWORD_REQUIRED, refreshes with REFRESH_TOKEN_AUTH (moto does not
//! rotate refresh tokens), and maps Cognito's exceptions to the same
//! messages and exit codes as the FormKiQ endpoint's replies.
//!
//! The API side is the emulator, trusting the pool's JWKS as API Gateway's
//! authorizer trusts the stack's pool, so `/sites` checks moto's RS256
//! signatures and expiry for real.

use fkq_cred_proto::exit;
use fkq_cred_tests::emulator::process::EmulatorProcess;
use fkq_cred_tests::harness::{
    assert_all, check_failure, code, stderr, stdout, Sandbox, PROFILE,
};
use fkq_cred_tests::moto::{MotoServer, UserPool};
use serde_json::{json, Value};

const TEMPORARY: &str = "Temporary-Pass-1";
/// Meets moto's default policy: upper, lower, digit and symbol.
const NEW: &str = "New-Passw0rd!";

/// A profile for `username` in `pool`, with the emulator as the API.
fn cognito_profile(
    moto: &MotoServer,
    pool: &UserPool,
    emulator: &EmulatorProcess,
    username: &str,
    endpoint: Option<&str>,
) -> String {
    let ca = emulator.ca_file().expect("the emulator serves HTTPS");
    format!(
        "[profiles.{PROFILE}]\nprovider = \"cognito\"\nregion = \"us-east-1\"\n\
         client_id = {:?}\ncognito_endpoint = {:?}\napi_url = {:?}\n\
         username = {username:?}\nca_file = {:?}\n",
        pool.client_id,
        endpoint.unwrap_or(moto.url()),
        emulator.api_url(),
        ca.display().to_string(),
    )
}

/// An emulator whose API trusts the pool's keys.
fn api_trusting(
    sandbox: &Sandbox,
    moto: &MotoServer,
    pool: &UserPool,
) -> EmulatorProcess {
    let jwks = sandbox.path().join("jwks.json");
    std::fs::write(&jwks, moto.jwks(pool).expect("JWKS")).expect("write JWKS");
    let jwks = jwks.to_str().expect("UTF-8 path").to_owned();
    sandbox.start_emulator(&["--trust-jwks", &jwks])
}

fn status_of(sandbox: &Sandbox) -> Value {
    let out = sandbox.cli(&["status", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    list[0].clone()
}

fn sites_status(emulator: &EmulatorProcess, token: &str) -> u16 {
    let url = format!("{}sites", emulator.api_url());
    let bearer = format!("Bearer {token}");
    emulator.client().get(&url, Some(&bearer)).expect("GET /sites").status
}

#[test]
fn a_cognito_profile_sets_a_new_password_refreshes_twice_and_get_keeps_working()
{
    let moto = MotoServer::start().expect("moto_server starts");
    let pool = moto.user_pool().expect("a user pool");
    moto.admin_create_user(&pool, "dana", TEMPORARY).expect("a user");
    let sandbox = Sandbox::new();
    let emulator = api_trusting(&sandbox, &moto, &pool);
    sandbox
        .write_config(&cognito_profile(&moto, &pool, &emulator, "dana", None));
    let _daemon = sandbox.start_daemon();

    // The administrator-created user answers NEW_PASSWORD_REQUIRED.
    let out = sandbox.cli_with_stdin(
        &["login", "--password-stdin", "--new-password-stdin"],
        &format!("{TEMPORARY}\n{NEW}\n"),
    );
    assert!(out.status.success(), "login: {}", stderr(&out));
    let first = stdout(&sandbox.cli(&["get"]));
    assert_eq!(sites_status(&emulator, first.trim_end()), 200);
    let out = sandbox.cli(&["sites"]);
    assert!(stdout(&out).starts_with("user: dana\n"), "{}", stdout(&out));

    // moto's tokens live an hour; each 401 from the API makes the daemon
    // renew the token at once (REFRESH_TOKEN_AUTH) and retry. The second
    // refresh works only if the refresh token was kept from the login,
    // since moto's refresh replies carry none.
    let mut seen = vec![first];
    for round in 1..=2 {
        let unauthorized =
            json!({ "endpoint": "sites", "status": 401, "times": 1 });
        emulator.set_fault(&unauthorized).expect("fault");
        let out = sandbox.cli(&["sites"]);
        assert!(out.status.success(), "round {round}: {}", stderr(&out));
        let token = stdout(&sandbox.cli(&["get"]));
        assert_eq!(
            sites_status(&emulator, token.trim_end()),
            200,
            "round {round}"
        );
        assert!(!seen.contains(&token), "round {round} renewed the token");
        seen.push(token);
    }
    let status = status_of(&sandbox);
    assert_eq!(
        (status["logins"].as_u64(), status["refreshes"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(status["state"], "active");
    assert_eq!(status["auth_url"], moto.url());

    // The new password is the password now.
    assert!(sandbox.login_with(NEW).status.success());
    let out = sandbox.cli(&["get"]);
    assert_eq!(sites_status(&emulator, stdout(&out).trim_end()), 200);
}

/// One way a Cognito login can fail.
struct Row {
    name: &'static str,
    /// Log in as this user; `None` for a user that does not exist.
    create_user: bool,
    client_id: Option<&'static str>,
    /// Point cognito_endpoint at the emulator's auth URL instead.
    not_cognito: bool,
    args: &'static [&'static str],
    stdin: &'static str,
    code: u8,
    /// Words; `{cognito}` stands for the endpoint.
    words: &'static [&'static str],
}

fn rows() -> Vec<Row> {
    let base = || Row {
        name: "",
        create_user: true,
        client_id: None,
        not_cognito: false,
        args: &["login", "--password-stdin"],
        stdin: "",
        code: exit::OK,
        words: &[],
    };
    vec![
        Row {
            name: "NotAuthorizedException: a wrong password",
            stdin: "Wrong-Pass-1\n",
            code: exit::REJECTED,
            words: &["{cognito}", "incorrect username or password"],
            ..base()
        },
        Row {
            name: "UserNotFoundException: no such user",
            create_user: false,
            stdin: "Whatever-Pass-1\n",
            code: exit::REJECTED,
            words: &["{cognito}", "incorrect username or password"],
            ..base()
        },
        Row {
            name: "NEW_PASSWORD_REQUIRED without a new password",
            stdin: "Temporary-Pass-1\n",
            code: exit::NEW_PASSWORD_REQUIRED,
            words: &["requires a new password", "--new-password-stdin"],
            ..base()
        },
        Row {
            name:
                "InvalidPasswordException: the new password breaks the policy",
            args: &["login", "--password-stdin", "--new-password-stdin"],
            stdin: "Temporary-Pass-1\nshort\n",
            code: exit::NEW_PASSWORD_REQUIRED,
            words: &["refused the new password", "policy"],
            ..base()
        },
        Row {
            name: "ResourceNotFoundException: a wrong client_id",
            client_id: Some("nosuchclient"),
            stdin: "Temporary-Pass-1\n",
            code: exit::CONFIG,
            words: &[
                "{cognito}",
                "ResourceNotFoundException",
                "CognitoClientId",
            ],
            ..base()
        },
        Row {
            name: "cognito_endpoint that is not Cognito",
            not_cognito: true,
            stdin: "Temporary-Pass-1\n",
            code: exit::BAD_SERVER_REPLY,
            words: &[
                "404",
                "does not look like the Cognito user-pool API",
                "cognito_endpoint",
            ],
            ..base()
        },
    ]
}

fn check_row(
    moto: &MotoServer,
    pool: &UserPool,
    index: usize,
    row: &Row,
) -> Result<(), String> {
    let username = format!("user{index}");
    if row.create_user {
        moto.admin_create_user(pool, &username, TEMPORARY)
            .map_err(|e| format!("{e:#}"))?;
    }
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let endpoint =
        if row.not_cognito { emulator.auth_url() } else { moto.url() };
    let pool = UserPool {
        pool_id: pool.pool_id.clone(),
        client_id: row.client_id.unwrap_or(&pool.client_id).to_owned(),
    };
    sandbox.write_config(&cognito_profile(
        moto,
        &pool,
        &emulator,
        &username,
        Some(endpoint),
    ));
    let _daemon = sandbox.start_daemon();

    let out = sandbox.cli_with_stdin(row.args, row.stdin);
    let words: Vec<String> =
        row.words.iter().map(|w| w.replace("{cognito}", endpoint)).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    check_failure(&out, row.code, &words, &["__type", "line 1"])
        .map_err(|why| format!("{why} (exit {})", code(&out)))
}

#[test]
fn cognitos_exceptions_end_in_the_same_messages_and_exit_codes() {
    let moto = MotoServer::start().expect("moto_server starts");
    let pool = moto.user_pool().expect("a user pool");
    let failures: Vec<_> = rows()
        .iter()
        .enumerate()
        .filter_map(|(index, row)| {
            check_row(&moto, &pool, index, row)
                .err()
                .map(|why| (row.name.to_owned(), why))
        })
        .collect();
    assert_all(failures);
}
