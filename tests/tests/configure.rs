//! `fkq-cred configure` end to end: stack outputs in every shape the AWS CLI
//! prints, the user's comments kept, URLs checked through the daemon
//! before anything is saved, prompts on a terminal, and a daemon that
//! rereads the file.

use std::time::Duration;

use fkq_cred_proto::exit;
use fkq_cred_tests::emulator::process::EmulatorProcess;
use fkq_cred_tests::emulator::{DEFAULT_PASSWORD, DEFAULT_USERNAME};
use fkq_cred_tests::harness::{code, stderr, stdout, Sandbox, PROFILE};

/// A config a user wrote by hand, comments and all.
fn hand_written(emulator: &EmulatorProcess) -> String {
    format!(
        "# my deployments; keep this comment\ndefault_profile = \"{PROFILE}\"  # scripts use it\n\n# the emulator, added by hand\n{}",
        Sandbox::profile_toml(PROFILE, emulator, "min_valid = \"2m\" # slow scripts")
    )
}

fn outputs_list(auth_key: &str, emulator: &EmulatorProcess) -> String {
    format!(
        r#"[
  {{"OutputKey": "AppEnvironment", "OutputValue": "prod", "Description": "env"}},
  {{"OutputKey": "{auth_key}", "OutputValue": "{}"}},
  {{"OutputKey": "HttpApiUrl", "OutputValue": "{}"}},
  {{"OutputKey": "IamApiUrl", "OutputValue": "https://iam.invalid/"}},
  {{"OutputKey": "CognitoClientId", "OutputValue": "4example"}},
  {{"OutputKey": "CognitoUserPoolId", "OutputValue": "eu-west-1_AbC123"}}
]"#,
        emulator.auth_url(),
        emulator.api_url()
    )
}

fn login(sandbox: &Sandbox, profile: &str) -> std::process::Output {
    sandbox.cli_with_stdin(
        &["--profile", profile, "login", "--password-stdin"],
        &format!("{DEFAULT_PASSWORD}\n"),
    )
}

#[test]
fn stack_outputs_old_new_and_whole_document_each_make_a_working_profile() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let original = hand_written(&emulator);
    sandbox.write_config(&original);
    let _daemon = sandbox.start_daemon();
    let ca = emulator.ca_file().unwrap().display().to_string();

    let new_names = sandbox.path().join("outputs-new.json");
    std::fs::write(&new_names, outputs_list("UserAuthApiUrl", &emulator))
        .unwrap();
    let whole = sandbox.path().join("describe-stacks.json");
    std::fs::write(
        &whole,
        format!(
            r#"{{"Stacks": [{{"StackName": "formkiq-core-prod", "Outputs": {}}}]}}"#,
            outputs_list("UserAuthApiUrl", &emulator)
        ),
    )
    .unwrap();
    let cases = [
        ("new", new_names.to_str().unwrap().to_owned(), None),
        (
            "old",
            "-".into(),
            Some(outputs_list("CognitoApiEndpoint", &emulator)),
        ),
        ("whole", whole.to_str().unwrap().to_owned(), None),
    ];
    for (profile, source, stdin) in &cases {
        let args = [
            "--profile",
            profile,
            "configure",
            "--stack-outputs",
            source,
            "--username",
            DEFAULT_USERNAME,
            "--ca-file",
            &ca,
        ];
        let out = match stdin {
            Some(text) => sandbox.cli_with_stdin(&args, text),
            None => sandbox.cli(&args),
        };
        assert!(out.status.success(), "{profile}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "configure prints nothing on stdout");
        assert!(stderr(&out).contains("reread its config"), "{}", stderr(&out));

        // The daemon knows the profile at once, and it logs in.
        let out = login(&sandbox, profile);
        assert!(out.status.success(), "{profile}: {}", stderr(&out));
        let out = sandbox.cli(&["--profile", profile, "sites"]);
        assert!(out.status.success(), "{profile}: {}", stderr(&out));
    }

    let text = std::fs::read_to_string(sandbox.config_file()).unwrap();
    assert!(
        text.starts_with(&original),
        "the hand-written part is byte for byte the same:\n{text}"
    );
    assert!(text.contains("region = \"eu-west-1\""), "{text}");
    assert!(text.contains("auth_url is CognitoApiEndpoint"), "{text}");
    assert!(!text.contains("iam.invalid"), "{text}");
    let out = sandbox.cli(&["get"]);
    assert!(
        code(&out) == i32::from(exit::LOGIN_REQUIRED),
        "the default profile is still {PROFILE}"
    );
}

#[test]
fn swapped_urls_are_refused_and_the_file_is_left_alone() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let original = hand_written(&emulator);
    sandbox.write_config(&original);
    let _daemon = sandbox.start_daemon();
    let ca = emulator.ca_file().unwrap().display().to_string();

    let out = sandbox.cli(&[
        "--profile",
        "swapped",
        "configure",
        "--auth-url",
        emulator.api_url(),
        "--api-url",
        emulator.auth_url(),
        "--ca-file",
        &ca,
    ]);
    assert_eq!(
        code(&out),
        i32::from(exit::BAD_SERVER_REPLY),
        "{}",
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.starts_with("fkq-cred: ")
            && err.contains(&format!("{}login", emulator.api_url()))
            && err.contains("UserAuthApiUrl")
            && err.contains("nothing was saved"),
        "{err}"
    );
    assert_eq!(
        emulator.counters().unwrap().login,
        0,
        "the real auth server saw no login"
    );

    // The auth URL twice: the API check catches it.
    let out = sandbox.cli(&[
        "--profile",
        "twice",
        "configure",
        "--auth-url",
        emulator.auth_url(),
        "--api-url",
        emulator.auth_url(),
        "--ca-file",
        &ca,
    ]);
    assert_eq!(code(&out), i32::from(exit::BAD_SERVER_REPLY));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}sites", emulator.auth_url()))
            && err.contains("HttpApiUrl"),
        "{err}"
    );

    assert_eq!(
        std::fs::read_to_string(sandbox.config_file()).unwrap(),
        original
    );
}

#[test]
fn without_a_terminal_a_missing_url_names_its_flag() {
    let sandbox = Sandbox::new();
    let out =
        sandbox.cli(&["configure", "--api-url", "https://api.example.com/"]);
    assert_eq!(code(&out), i32::from(exit::USAGE));
    assert!(stderr(&out).contains("--auth-url"), "{}", stderr(&out));
    assert!(!sandbox.config_file().exists());
}

#[test]
fn no_verify_saves_without_a_daemon_and_a_later_daemon_reads_it() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let ca = emulator.ca_file().unwrap().display().to_string();
    let out = sandbox.cli(&[
        "configure",
        "--no-verify",
        "--auth-url",
        emulator.auth_url(),
        "--api-url",
        emulator.api_url(),
        "--username",
        DEFAULT_USERNAME,
        "--ca-file",
        &ca,
        "--password-command",
        &format!("printf '%s\\n' '{DEFAULT_PASSWORD}'"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(sandbox.config_file()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    // The only profile became the default, and its password command lets
    // the daemon log in by itself.
    let _daemon = sandbox.start_daemon();
    let out = sandbox.cli(&["get"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[cfg(unix)]
#[test]
fn on_a_terminal_configure_asks_for_each_value_and_offers_the_current_one() {
    use fkq_cred_tests::pty::PtyChild;

    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    sandbox.write_config(&Sandbox::profile_toml(PROFILE, &emulator, ""));
    let _daemon = sandbox.start_daemon();
    let limit = Duration::from_secs(20);

    let mut command = sandbox.command("fkq-cred");
    command.args(["--profile", PROFILE, "configure"]);
    let mut tty = PtyChild::spawn(&mut command).unwrap();
    let seen = tty.expect("Auth URL", limit);
    assert!(seen.contains(&format!("[{}]", emulator.auth_url())), "{seen}");
    tty.send("\n");
    tty.expect("API URL", limit);
    tty.send("\n");
    tty.expect("Username", limit);
    tty.send("bob@example.com\n");
    tty.expect("Password command", limit);
    tty.send("pass show 'formkiq/emu'\n");
    let (status, seen) = tty.finish(limit);
    assert!(status.success(), "{seen}");
    assert!(seen.contains("Saved profile emu"), "{seen}");

    let text = std::fs::read_to_string(sandbox.config_file()).unwrap();
    assert!(text.contains("username = \"bob@example.com\""), "{text}");
    assert!(
        text.contains(r#"password_command = ["pass", "show", "formkiq/emu"]"#),
        "{text}"
    );
    assert!(text.contains(&format!("auth_url = {:?}", emulator.auth_url())));
    assert!(text.contains("ca_file"), "the CA kept: {text}");
}
