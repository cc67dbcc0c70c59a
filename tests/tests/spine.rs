//! The main job, end to end: the real daemon and client against the
//! emulator, each test in its own sandbox.

use std::process::Stdio;
use std::time::{Duration, Instant};

use fkq_cred_proto::exit;
use fkq_cred_tests::emulator::process::EmulatorProcess;
use fkq_cred_tests::harness::{code, stderr, stdout, Sandbox, PROFILE};

/// Asks the emulator's `/sites` whether it accepts `token`.
fn sites_status(emulator: &EmulatorProcess, token: &str) -> u16 {
    let url = format!("{}sites", emulator.api_url());
    emulator
        .client()
        .get(&url, Some(&format!("Bearer {token}")))
        .expect("GET /sites")
        .status
}

fn get_token(sandbox: &Sandbox) -> String {
    let out = sandbox.cli(&["get"]);
    assert!(
        out.status.success(),
        "get failed ({}): {}",
        code(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.ends_with('\n') && text.matches('\n').count() == 1,
        "stdout is one line: {text:?}"
    );
    text.trim_end().to_owned()
}

#[test]
fn a_short_lived_token_is_refreshed_on_a_timer_and_each_one_is_accepted() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&["--token-lifetime", "4"]);
    let _daemon = sandbox.logged_in(&emulator, "");

    let first = get_token(&sandbox);
    assert_eq!(sites_status(&emulator, &first), 200);

    // The behaviour under test is the passage of real time past expiry.
    std::thread::sleep(Duration::from_secs(6));
    let second = get_token(&sandbox);
    assert_ne!(first, second, "the token must have been renewed");
    assert_eq!(sites_status(&emulator, &second), 200);

    let counters = emulator.counters().unwrap();
    assert_eq!(counters.login, 1, "{counters:?}");
    assert!(counters.refresh_ok >= 1, "{counters:?}");
}

#[test]
fn a_hundred_simultaneous_gets_share_one_login() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    // No interactive login: the first gets must log in through the
    // password command, and all of them together may do it only once.
    let command = format!(
        "password_command = [\"printf\", \"{}\\\\n\"]",
        fkq_cred_tests::emulator::DEFAULT_PASSWORD
    );
    sandbox.write_config(&Sandbox::profile_toml(PROFILE, &emulator, &command));
    let _daemon = sandbox.start_daemon();

    let children: Vec<_> = (0..100)
        .map(|_| {
            sandbox
                .command("fkq-cred")
                .arg("get")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn get")
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait get"))
        .collect();

    for out in &outputs {
        assert!(
            out.status.success(),
            "get failed ({}): {}",
            code(out),
            stderr(out)
        );
    }
    let first = stdout(&outputs[0]);
    assert!(
        outputs.iter().all(|o| stdout(o) == first),
        "every caller got the same token"
    );
    assert_eq!(emulator.counters().unwrap().login, 1);
}

#[test]
fn get_before_login_says_to_log_in_and_never_prompts() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    sandbox.write_config(&Sandbox::profile_toml(PROFILE, &emulator, ""));
    let _daemon = sandbox.start_daemon();

    let out = sandbox.cli(&["get"]);
    assert_eq!(code(&out), i32::from(exit::LOGIN_REQUIRED));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("fkq-cred: ") && err.contains("fkq-cred login"),
        "{err}"
    );
    assert_eq!(emulator.counters().unwrap().login, 0);
}

#[test]
fn a_wrong_password_names_the_auth_url_and_other_profiles_keep_working() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let config = format!(
        "default_profile = \"{PROFILE}\"\n{}{}",
        Sandbox::profile_toml(PROFILE, &emulator, ""),
        Sandbox::profile_toml("other", &emulator, "")
    );
    sandbox.write_config(&config);
    let mut daemon = sandbox.start_daemon();
    let good = format!("{}\n", fkq_cred_tests::emulator::DEFAULT_PASSWORD);
    let out = sandbox.cli_with_stdin(
        &["--profile", "other", "login", "--password-stdin"],
        &good,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = sandbox
        .cli_with_stdin(&["login", "--password-stdin"], "not-the-password\n");
    assert_eq!(code(&out), i32::from(exit::REJECTED));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}login", emulator.auth_url())), "{err}");
    assert!(err.contains("incorrect username or password"), "{err}");

    assert!(daemon.is_running());
    let out = sandbox.cli(&["--profile", "other", "get"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sites_status(&emulator, stdout(&out).trim_end()), 200);
}

#[test]
fn without_a_daemon_get_fails_fast_naming_the_socket() {
    let sandbox = Sandbox::new();
    let started = Instant::now();
    let mut child = sandbox
        .command("fkq-cred")
        .arg("get")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A deadline, not a benchmark: a hang here is the failure.
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(2) {
            let _ = child.kill();
            panic!("get without a daemon did not return within 2 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), i32::from(exit::DAEMON_UNREACHABLE));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(err.contains(&sandbox.socket().display().to_string()), "{err}");
}

#[test]
fn header_prints_a_bearer_line_that_the_api_accepts() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");
    let out = sandbox.cli(&["header"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    let token = line
        .strip_prefix("Authorization: Bearer ")
        .expect("header format")
        .trim_end();
    assert_eq!(sites_status(&emulator, token), 200);
}

#[test]
fn sites_and_status_report_the_session() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");

    let out = sandbox.cli(&["sites"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("alice@example.com")
            && text.contains("default")
            && text.contains("READ_WRITE"),
        "{text}"
    );

    let out = sandbox.cli(&["status", "--json"]);
    let status: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    let profile = &status[0];
    assert_eq!(profile["profile"], PROFILE);
    assert_eq!(profile["state"], "active");
    assert_eq!(profile["username"], "alice@example.com");
    assert_eq!(profile["logins"], 1);
    assert!(
        profile["expires_at"].is_string()
            && profile["last_refresh"].is_string(),
        "{profile}"
    );
}

#[test]
fn logout_forgets_the_token() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");
    assert!(sandbox.cli(&["logout"]).status.success());
    let out = sandbox.cli(&["get"]);
    assert_eq!(code(&out), i32::from(exit::LOGIN_REQUIRED), "{}", stderr(&out));
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_daemon_cleanly_and_removes_the_socket() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let mut daemon = sandbox.logged_in(&emulator, "");
    assert!(sandbox.socket().exists());
    daemon.signal(libc::SIGTERM);
    let status = daemon
        .wait_timeout(Duration::from_secs(10))
        .expect("daemon exits after SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(!sandbox.socket().exists(), "socket removed");
}

#[test]
fn a_second_daemon_exits_with_already_running() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");
    let out = sandbox.command("fkq-credd").output().unwrap();
    assert_eq!(
        code(&out),
        i32::from(exit::ALREADY_RUNNING),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("already running"));
    // The first daemon still serves.
    assert!(sandbox.cli(&["get"]).status.success());
}

#[test]
fn a_regular_file_at_the_socket_path_is_left_untouched() {
    let sandbox = Sandbox::new();
    let path = sandbox.path().join("not-a-socket");
    std::fs::write(&path, "precious").unwrap();
    let out = sandbox
        .command("fkq-credd")
        .arg("--socket")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(code(&out), i32::from(exit::FAILURE), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a socket"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn a_missing_config_is_explained_by_the_daemon() {
    let sandbox = Sandbox::new();
    let _daemon = sandbox.start_daemon();
    let out = sandbox.cli(&["get"]);
    assert_eq!(code(&out), i32::from(exit::CONFIG));
    let err = stderr(&out);
    assert!(
        err.contains("no profiles are configured")
            && err.contains("FKQ_AUTH_URL"),
        "{err}"
    );
}

#[test]
fn the_environment_profile_uses_the_guides_variables() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let ca = emulator.ca_file().unwrap().display().to_string();
    let env = [
        ("COGNITO_API_ENDPOINT_URL", emulator.auth_url()),
        ("HTTP_API_URL", emulator.api_url()),
        ("USERNAME", fkq_cred_tests::emulator::DEFAULT_USERNAME),
        ("FKQ_CA_FILE", ca.as_str()),
    ];
    let _daemon = sandbox.start_daemon_with(&[], &env);
    let password = format!("{}\n", fkq_cred_tests::emulator::DEFAULT_PASSWORD);
    let out = sandbox.cli_with_stdin(&["login", "--password-stdin"], &password);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sandbox.cli(&["get"]);
    assert_eq!(sites_status(&emulator, stdout(&out).trim_end()), 200);
}
