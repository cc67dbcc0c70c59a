//! `fkq-cred sites`, the guide's verification step, through the real
//! daemon and client: it prints the user and the sites, renews a refused
//! token once, and explains each way the API can refuse.

use fkq_cred_proto::exit;
use fkq_cred_tests::harness::{
    assert_all, check_failure, code, stderr, stdout, Sandbox, PROFILE,
};
use serde_json::{json, Value};

const SENTINEL: &str = "sentinel-sites-4b2d";

#[test]
fn sites_prints_the_user_and_each_site_with_its_permission() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");

    let out = sandbox.cli(&["sites"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out)
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        ["user: alice@example.com", "site: default READ_WRITE"],
        "{}",
        stdout(&out)
    );

    let out = sandbox.cli(&["sites", "--json"]);
    let body: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(body["username"], "alice@example.com");
    assert_eq!(body["sites"][0]["siteId"], "default");
    assert_eq!(emulator.counters().expect("counters").sites_ok, 2);
}

#[test]
fn a_401_renews_the_token_once_and_retries() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");
    let before = stdout(&sandbox.cli(&["get"]));
    emulator
        .set_fault(&json!({ "endpoint": "sites", "status": 401, "times": 1 }))
        .expect("fault");

    let out = sandbox.cli(&["sites"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let counters = emulator.counters().expect("counters");
    assert_eq!((counters.sites, counters.sites_ok), (2, 1));
    assert_eq!(counters.refresh_ok, 1);
    assert_ne!(stdout(&sandbox.cli(&["get"])), before, "a new token is served");
}

#[test]
fn self_hosted_and_keycloak_deployments_verify_too() {
    for variant in ["self-hosted", "keycloak"] {
        let sandbox = Sandbox::new();
        let emulator = sandbox.start_emulator(&["--variant", variant]);
        let _daemon = sandbox.logged_in(&emulator, "");
        let out = sandbox.cli(&["sites"]);
        assert!(out.status.success(), "{variant}: {}", stderr(&out));
        assert!(
            stdout(&out).starts_with("user: alice@example.com\n"),
            "{variant}: {}",
            stdout(&out)
        );
    }
}

/// One way `/sites` can fail.
struct Row {
    name: &'static str,
    emulator: &'static [&'static str],
    /// A fault on `/sites`.
    fault: Option<Value>,
    /// Point `api_url` at the auth endpoint: the classic mixup.
    swap_api_url: bool,
    /// Extra profile lines.
    profile: &'static str,
    code: u8,
    /// Words the message must have; `{api}` stands for the API URL.
    words: &'static [&'static str],
    /// (attempts at /sites, refreshes) afterwards; `None` to skip.
    counts: Option<(u64, u64)>,
}

fn rows() -> Vec<Row> {
    let html = format!("<html>{SENTINEL}</html>");
    let base = || Row {
        name: "",
        emulator: &[],
        fault: None,
        swap_api_url: false,
        profile: "",
        code: exit::OK,
        words: &[],
        counts: None,
    };
    vec![
        Row {
            name: "401 even after one renewal",
            fault: Some(json!({ "endpoint": "sites", "status": 401 })),
            code: exit::ACCESS_DENIED,
            words: &[
                "{api}sites",
                "401",
                "refused the access token",
                "HttpApiUrl",
            ],
            counts: Some((2, 1)),
            ..base()
        },
        Row {
            name: "403: authenticated, no permission",
            fault: Some(json!({ "endpoint": "sites", "status": 403 })),
            code: exit::ACCESS_DENIED,
            words: &[
                "{api}sites",
                "403",
                "alice@example.com",
                "[default]",
                "administrator",
            ],
            counts: Some((1, 0)),
            ..base()
        },
        Row {
            name: "403 on Keycloak: the user from preferred_username",
            emulator: &["--variant", "keycloak"],
            fault: Some(json!({ "endpoint": "sites", "status": 403 })),
            code: exit::ACCESS_DENIED,
            words: &["403", "alice@example.com"],
            ..base()
        },
        Row {
            name: "404: the auth URL used as the API URL",
            swap_api_url: true,
            code: exit::BAD_SERVER_REPLY,
            words: &["{api}sites", "404", "api_url looks wrong", "HttpApiUrl"],
            ..base()
        },
        Row {
            name: "200 with a proxy's HTML page",
            fault: Some(json!({ "endpoint": "sites", "body": html })),
            code: exit::BAD_SERVER_REPLY,
            words: &["{api}sites", "not JSON"],
            ..base()
        },
        Row {
            name: "503 Service Unavailable",
            fault: Some(json!({ "endpoint": "sites", "status": 503 })),
            code: exit::SERVER_UNREACHABLE,
            words: &["{api}sites", "503"],
            ..base()
        },
        Row {
            name: "no answer within the timeout",
            fault: Some(json!({ "endpoint": "sites", "delay_ms": 4000 })),
            profile: "timeout = \"1s\"\n",
            code: exit::SERVER_UNREACHABLE,
            words: &["{api}sites", "no answer", "within 1 s"],
            ..base()
        },
    ]
}

fn check_row(row: &Row) -> Result<(), String> {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(row.emulator);
    let api_url =
        if row.swap_api_url { emulator.auth_url() } else { emulator.api_url() };
    sandbox.write_config(&Sandbox::profile_at(
        PROFILE,
        emulator.auth_url(),
        api_url,
        emulator.ca_file(),
        row.profile,
    ));
    let daemon = sandbox.start_daemon();
    let out = sandbox.login_with(fkq_cred_tests::emulator::DEFAULT_PASSWORD);
    if !out.status.success() {
        return Err(format!("login exited {}: {}", code(&out), stderr(&out)));
    }
    if let Some(fault) = &row.fault {
        emulator.set_fault(fault).map_err(|e| format!("{e:#}"))?;
    }
    let baseline = emulator.counters().map_err(|e| format!("{e:#}"))?;

    let out = sandbox.cli(&["sites"]);
    let words: Vec<String> =
        row.words.iter().map(|w| w.replace("{api}", api_url)).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    check_failure(&out, row.code, &words, &[SENTINEL, "<html"])?;
    if daemon.log().contains(SENTINEL) {
        return Err("a reply body reached the daemon's log".into());
    }
    if let Some(expected) = row.counts {
        let now = emulator.counters().map_err(|e| format!("{e:#}"))?;
        let seen = (now.sites - baseline.sites, now.refresh - baseline.refresh);
        if seen != expected {
            return Err(format!(
                "(sites, refreshes) = {seen:?}, expected {expected:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn each_sites_failure_prints_its_own_explanation() {
    let failures: Vec<_> = rows()
        .iter()
        .filter_map(|row| {
            check_row(row).err().map(|why| (row.name.to_owned(), why))
        })
        .collect();
    assert_all(failures);
}
