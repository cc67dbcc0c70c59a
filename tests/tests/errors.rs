//! Every way a login can fail, through the real daemon and client: each row
//! must end in its documented exit code and a one-line message that names
//! the cause, the URL and the next step, without a raw body or a parser's
//! words, and the daemon must log no body either.

use fkq_cred_proto::exit;
use fkq_cred_tests::emulator::process::EmulatorProcess;
use fkq_cred_tests::emulator::DEFAULT_PASSWORD;
use fkq_cred_tests::harness::{
    assert_all, check_failure, closed_port, stderr, Sandbox, PROFILE,
};
use serde_json::{json, Value};

/// A word planted in bodies the emulator sends, which must never reach the
/// user or the log.
const SENTINEL: &str = "sentinel-body-7c1e";

/// Words of serde's own messages, which must never reach the user.
const PARSER_WORDS: &[&str] = &["line 1", "column", "expected value"];

/// Where the profile's `auth_url` points.
#[derive(Clone, Copy)]
enum AuthAt {
    /// The emulator's auth endpoint, trusting its CA.
    Emulator,
    /// The emulator's API endpoint: the classic mixup.
    ApiUrl,
    /// The emulator, without trusting its CA.
    Untrusted,
    /// A host under `.invalid`, which never resolves.
    NoSuchHost,
    /// A loopback port nothing listens on.
    ClosedPort,
    /// `https://` to a plain-HTTP server.
    PlainHttpServer,
}

struct Row {
    name: &'static str,
    emulator: &'static [&'static str],
    auth_at: AuthAt,
    /// A fault on `/login`.
    fault: Option<Value>,
    /// Extra profile lines.
    profile: &'static str,
    password: &'static str,
    code: u8,
    /// Words the message must have; `{auth}` stands for the auth URL.
    words: &'static [&'static str],
}

fn login_fault(status: Option<u16>, body: Option<&str>) -> Option<Value> {
    Some(json!({ "endpoint": "login", "status": status, "body": body }))
}

fn rows() -> Vec<Row> {
    let html = format!("<html><body>{SENTINEL} bad gateway</body></html>");
    let html = html.as_str();
    let json_401 =
        json!({ "error": "Invalid username or password.", "x": SENTINEL })
            .to_string();
    let lockout =
        json!({ "message": "Password attempts exceeded", "x": SENTINEL })
            .to_string();
    let reset = r#"{"code":"PasswordResetRequiredException","message":"Password reset required for the user"}"#;
    let unconfirmed = r#"{"message":"User is not confirmed."}"#;
    let mfa = r#"{"ChallengeName":"SOFTWARE_TOKEN_MFA","Session":"s","ChallengeParameters":{}}"#;
    let base = || Row {
        name: "",
        emulator: &[],
        auth_at: AuthAt::Emulator,
        fault: None,
        profile: "",
        password: DEFAULT_PASSWORD,
        code: exit::OK,
        words: &[],
    };
    vec![
        Row {
            name: "wrong password: 400 {\"message\"} (AWS stack)",
            password: "not-the-password",
            code: exit::REJECTED,
            words: &[
                "{auth}login",
                "incorrect username or password",
                "fkq-cred login",
            ],
            ..base()
        },
        Row {
            name: "wrong password: 400 {\"code\", \"message\"} (self-hosted)",
            emulator: &["--variant", "self-hosted"],
            password: "not-the-password",
            code: exit::REJECTED,
            words: &["{auth}login", "incorrect username or password"],
            ..base()
        },
        Row {
            name: "wrong password: 401 {\"error\"} (the OpenAPI file's shape)",
            fault: login_fault(Some(401), Some(&json_401)),
            code: exit::REJECTED,
            words: &["{auth}login", "incorrect username or password"],
            ..base()
        },
        Row {
            name: "404 on /login: the API URL used as the auth URL",
            auth_at: AuthAt::ApiUrl,
            code: exit::BAD_SERVER_REPLY,
            words: &[
                "404",
                "this looks like the API URL",
                "UserAuthApiUrl",
                "HttpApiUrl",
            ],
            ..base()
        },
        Row {
            name:
                "401 {\"message\":\"Unauthorized\"}: an authorizer, not /login",
            fault: login_fault(Some(401), None),
            code: exit::BAD_SERVER_REPLY,
            words: &["401", "this looks like the API URL", "UserAuthApiUrl"],
            ..base()
        },
        Row {
            name: "403 on /login: an API Gateway REST API's unknown route",
            fault: login_fault(Some(403), None),
            code: exit::BAD_SERVER_REPLY,
            words: &["403", "this looks like the API URL"],
            ..base()
        },
        Row {
            name: "200 with a proxy's HTML page",
            fault: login_fault(None, Some(html)),
            code: exit::BAD_SERVER_REPLY,
            words: &["{auth}login", "not FormKiQ's JSON", "not JSON"],
            ..base()
        },
        Row {
            name: "400 with a proxy's HTML page",
            fault: login_fault(Some(400), Some(html)),
            code: exit::BAD_SERVER_REPLY,
            words: &["{auth}login", "400", "not JSON"],
            ..base()
        },
        Row {
            name: "200 JSON without AuthenticationResult",
            fault: login_fault(None, Some(r#"{"unexpected":true}"#)),
            code: exit::BAD_SERVER_REPLY,
            words: &["no AuthenticationResult"],
            ..base()
        },
        Row {
            name: "200 AuthenticationResult without AccessToken",
            fault: Some(
                json!({ "endpoint": "login", "omit": ["AccessToken"] }),
            ),
            code: exit::BAD_SERVER_REPLY,
            words: &["no AccessToken"],
            ..base()
        },
        Row {
            name: "200 JSON of the wrong shape",
            fault: login_fault(None, Some(r#"{"AuthenticationResult":"yes"}"#)),
            code: exit::BAD_SERVER_REPLY,
            words: &["unexpected JSON shape"],
            ..base()
        },
        Row {
            name: "429 Too Many Requests",
            fault: login_fault(Some(429), None),
            code: exit::SERVER_UNREACHABLE,
            words: &["{auth}login", "rate-limiting"],
            ..base()
        },
        Row {
            name: "500 Internal Server Error",
            fault: login_fault(Some(500), None),
            code: exit::SERVER_UNREACHABLE,
            words: &["{auth}login", "is failing", "500"],
            ..base()
        },
        Row {
            name: "502 with a proxy's HTML page",
            fault: login_fault(Some(502), Some(html)),
            code: exit::SERVER_UNREACHABLE,
            words: &["{auth}login", "502"],
            ..base()
        },
        Row {
            name: "no answer within the timeout",
            fault: Some(json!({ "endpoint": "login", "delay_ms": 4000 })),
            profile: "timeout = \"1s\"\n",
            code: exit::SERVER_UNREACHABLE,
            words: &["{auth}login", "no answer", "within 1 s", "timeout"],
            ..base()
        },
        Row {
            name: "connection dropped before the reply",
            fault: Some(json!({ "endpoint": "login", "drop": true })),
            code: exit::SERVER_UNREACHABLE,
            words: &["{auth}login", "closed the connection"],
            ..base()
        },
        Row {
            name: "DNS: the host does not resolve",
            auth_at: AuthAt::NoSuchHost,
            code: exit::SERVER_UNREACHABLE,
            words: &["{auth}login", "cannot resolve the host"],
            ..base()
        },
        Row {
            name: "connection refused",
            auth_at: AuthAt::ClosedPort,
            code: exit::SERVER_UNREACHABLE,
            words: &["{auth}login", "was refused"],
            ..base()
        },
        Row {
            name: "TLS: a certificate of an unknown issuer",
            auth_at: AuthAt::Untrusted,
            code: exit::SERVER_UNREACHABLE,
            words: &[
                "{auth}login",
                "not signed by a trusted authority",
                "ca_file",
            ],
            ..base()
        },
        Row {
            name: "TLS: https:// to a plain HTTP server",
            auth_at: AuthAt::PlainHttpServer,
            code: exit::SERVER_UNREACHABLE,
            words: &["TLS with {auth}login", "HTTPS endpoint"],
            ..base()
        },
        Row {
            name: "Cognito's lockout after too many failed logins",
            fault: login_fault(Some(400), Some(&lockout)),
            code: exit::REJECTED,
            words: &["{auth}login", "too many failed attempts", "wait"],
            ..base()
        },
        Row {
            name: "a password reset required by an administrator",
            fault: login_fault(Some(400), Some(reset)),
            code: exit::REJECTED,
            words: &["password reset", "forgot password"],
            ..base()
        },
        Row {
            name: "an unconfirmed user",
            fault: login_fault(Some(400), Some(unconfirmed)),
            code: exit::REJECTED,
            words: &["not confirmed"],
            ..base()
        },
        Row {
            name: "NEW_PASSWORD_REQUIRED without --new-password-stdin",
            emulator: &["--force-change-password", "alice@example.com"],
            code: exit::NEW_PASSWORD_REQUIRED,
            words: &[
                "requires a new password",
                "alice@example.com",
                "--new-password-stdin",
            ],
            ..base()
        },
        Row {
            name: "a challenge fkq-cred cannot answer (MFA)",
            fault: login_fault(None, Some(mfa)),
            code: exit::BAD_SERVER_REPLY,
            words: &["SOFTWARE_TOKEN_MFA", "cannot answer"],
            ..base()
        },
    ]
}

/// Runs one row in its own sandbox.
fn check_row(row: &Row) -> Result<(), String> {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(row.emulator);
    let plain;
    let ca = emulator.ca_file();
    let (auth_url, ca) = match row.auth_at {
        AuthAt::Emulator => (emulator.auth_url().to_owned(), ca),
        AuthAt::ApiUrl => (emulator.api_url().to_owned(), ca),
        AuthAt::Untrusted => (emulator.auth_url().to_owned(), None),
        AuthAt::NoSuchHost => ("https://no-such-host.invalid/".to_owned(), ca),
        AuthAt::ClosedPort => {
            (format!("http://127.0.0.1:{}/", closed_port()), ca)
        }
        AuthAt::PlainHttpServer => {
            plain = EmulatorProcess::spawn(
                &fkq_cred_tests::emulator::process::emulator_binary(),
                &["--plain-http"],
            )
            .map_err(|e| format!("{e:#}"))?;
            (plain.auth_url().replace("http://", "https://"), ca)
        }
    };
    sandbox.write_config(&Sandbox::profile_at(
        PROFILE,
        &auth_url,
        emulator.api_url(),
        ca,
        row.profile,
    ));
    let daemon = sandbox.start_daemon();
    if let Some(fault) = &row.fault {
        emulator.set_fault(fault).map_err(|e| format!("{e:#}"))?;
    }

    let out = sandbox.login_with(row.password);
    let words: Vec<String> =
        row.words.iter().map(|w| w.replace("{auth}", &auth_url)).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut forbidden = vec![SENTINEL, "<html"];
    forbidden.extend_from_slice(PARSER_WORDS);
    check_failure(&out, row.code, &words, &forbidden)?;
    if daemon.log().contains(SENTINEL) {
        return Err("a reply body reached the daemon's log".into());
    }
    Ok(())
}

#[test]
fn every_login_failure_names_its_cause_with_its_exit_code() {
    let failures: Vec<_> = rows()
        .iter()
        .filter_map(|row| {
            check_row(row).err().map(|why| (row.name.to_owned(), why))
        })
        .collect();
    assert_all(failures);
}

#[test]
fn the_daemon_keeps_serving_other_profiles_while_one_server_misbehaves() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let broken = Sandbox::profile_at(
        "broken",
        "https://no-such-host.invalid/",
        emulator.api_url(),
        emulator.ca_file(),
        "",
    );
    let config = format!(
        "default_profile = \"{PROFILE}\"\n{}{broken}",
        Sandbox::profile_toml(PROFILE, &emulator, "")
    );
    sandbox.write_config(&config);
    let _daemon = sandbox.start_daemon();

    let out = sandbox.cli_with_stdin(
        &["--profile", "broken", "login", "--password-stdin"],
        &format!("{DEFAULT_PASSWORD}\n"),
    );
    check_failure(&out, exit::SERVER_UNREACHABLE, &["cannot resolve"], &[])
        .unwrap_or_else(|why| panic!("{why}"));
    let out = sandbox.login_with(DEFAULT_PASSWORD);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sandbox.cli(&["get"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
