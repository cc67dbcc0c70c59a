//! What scripts reach for, end to end on the real binaries: `env` evaluated
//! by real shells, `exec` with its exit status and signals, git's
//! credential protocol through the real git, `get --json`, and a stdout
//! closed early.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use fkq_cred_proto::exit;
use fkq_cred_tests::emulator::process::EmulatorProcess;
use fkq_cred_tests::harness::{
    code, stderr, stdout, DaemonProcess, Sandbox, PROFILE,
};

/// An API URL holding characters that need quoting in every shell; the
/// daemon never calls it in these tests, it only hands it out.
const QUOTY_API_URL: &str = "http://127.0.0.1:9/it's/$HOME/a;b&c(d)!/";

fn sites_status(emulator: &EmulatorProcess, token: &str) -> u16 {
    let url = format!("{}sites", emulator.api_url());
    emulator
        .client()
        .get(&url, Some(&format!("Bearer {token}")))
        .expect("GET /sites")
        .status
}

/// A daemon logged in to profile `emu`, whose api_url is [`QUOTY_API_URL`].
fn quoty_sandbox(
    sandbox: &Sandbox,
    emulator: &EmulatorProcess,
) -> DaemonProcess {
    let toml = Sandbox::profile_toml(PROFILE, emulator, "").replace(
        &format!("{:?}", emulator.api_url()),
        &format!("{QUOTY_API_URL:?}"),
    );
    assert!(toml.contains("it's"), "{toml}");
    sandbox.write_config(&toml);
    let daemon = sandbox.start_daemon();
    let out = sandbox.cli_with_stdin(
        &["login", "--password-stdin"],
        &format!("{}\n", fkq_cred_tests::emulator::DEFAULT_PASSWORD),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    daemon
}

fn run_ok(command: &mut Command) -> String {
    let out = command.output().expect("run");
    assert!(out.status.success(), "{:?} failed: {}", command, stderr(&out));
    assert_eq!(stderr(&out), "", "nothing on stderr");
    stdout(&out)
}

#[test]
fn eval_of_env_in_bash_and_fish_yields_the_token_and_the_url() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = quoty_sandbox(&sandbox, &emulator);
    let expected_url = QUOTY_API_URL.trim_end_matches('/');

    let script = r#"eval "$(fkq-cred env)"; printf '%s\n%s\n%s\n' "$AUTHORIZATION_TOKEN" "$HTTP_API_URL" "$FKQ_TOKEN_EXPIRES_AT""#;
    let bash = run_ok(sandbox.program("bash").args(["-c", script]));
    let lines: Vec<&str> = bash.lines().collect();
    assert_eq!(sites_status(&emulator, lines[0]), 200, "the token works");
    assert_eq!(lines[1], expected_url);
    assert!(lines[2].ends_with('Z') && lines[2].contains('T'), "{}", lines[2]);

    let script = r#"fkq-cred env --shell fish | source; printf '%s\n%s\n%s\n' "$AUTHORIZATION_TOKEN" "$HTTP_API_URL" "$FKQ_TOKEN_EXPIRES_AT""#;
    let fish = run_ok(sandbox.program("fish").args(["-c", script]));
    let fish_lines: Vec<&str> = fish.lines().collect();
    assert_eq!(fish_lines[1], expected_url);
    assert_eq!(sites_status(&emulator, fish_lines[0]), 200);
}

#[test]
fn env_for_powershell_writes_verbatim_strings_with_quotes_doubled() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = quoty_sandbox(&sandbox, &emulator);
    let text = run_ok(sandbox.command("fkq-cred").args([
        "env",
        "--shell",
        "powershell",
    ]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let token = lines[0]
        .strip_prefix("$env:AUTHORIZATION_TOKEN = '")
        .and_then(|rest| rest.strip_suffix("';"))
        .expect("token line");
    assert_eq!(sites_status(&emulator, token), 200);
    assert!(lines[1].starts_with("$env:FKQ_TOKEN_EXPIRES_AT = '20"), "{text}");
    // PowerShell's rule: inside '...' everything is literal and a quote is
    // written twice; $, ; & ( ) and ! need nothing.
    assert_eq!(
        lines[2],
        "$env:HTTP_API_URL = 'http://127.0.0.1:9/it''s/$HOME/a;b&c(d)!';"
    );
}

#[test]
fn exec_passes_the_exit_status_and_the_signal_through() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");

    let out = sandbox.cli(&["exec", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "a child's status is not an error message");

    let out = sandbox.cli(&["exec", "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(code(&out), 128 + 9);

    let out = sandbox.cli(&["exec", "--", "no-such-command-fkq"]);
    assert_eq!(code(&out), 127);
    assert!(
        stderr(&out).starts_with("fkq-cred: cannot run"),
        "{}",
        stderr(&out)
    );

    let out = sandbox.cli(&["exec", "--", "sh", "-c", "exit 0"]);
    assert_eq!(code(&out), 0);
}

#[test]
fn a_child_of_exec_gets_fresh_tokens_through_the_injected_socket_and_profile() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    // Two profiles; only `other` is logged in, and the daemon listens on a
    // socket no default would find: the child can only succeed through
    // FKQ_CRED_SOCKET and FKQ_PROFILE.
    let config = format!(
        "default_profile = \"{PROFILE}\"\n{}{}",
        Sandbox::profile_toml(PROFILE, &emulator, ""),
        Sandbox::profile_toml("other", &emulator, "")
    );
    sandbox.write_config(&config);
    let socket = sandbox.path().join("elsewhere.sock");
    let socket = socket.to_str().unwrap();
    let _daemon = sandbox.start_daemon_with(&["--socket", socket], &[]);
    let out = sandbox.cli_with_stdin(
        &[
            "--socket",
            socket,
            "--profile",
            "other",
            "login",
            "--password-stdin",
        ],
        &format!("{}\n", fkq_cred_tests::emulator::DEFAULT_PASSWORD),
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let child_script = r#"test "$FKQ_PROFILE" = other || exit 90
unset XDG_RUNTIME_DIR
fresh=$(fkq-cred get) || exit 91
printf '%s\n%s\n%s\n' "$fresh" "$AUTHORIZATION_TOKEN" "$FKQ_CRED_SOCKET""#;
    let out = sandbox
        .program("fkq-cred")
        .args(["--socket", socket, "--profile", "other", "exec", "--"])
        .args(["sh", "-c", child_script])
        .output()
        .unwrap();
    assert!(out.status.success(), "exit {}: {}", code(&out), stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(sites_status(&emulator, lines[0]), 200, "the child's own get");
    assert_eq!(sites_status(&emulator, lines[1]), 200, "the injected token");
    assert_eq!(lines[2], socket);
}

#[cfg(unix)]
#[test]
fn sigterm_to_exec_reaches_the_child() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");
    let child_script = r#"trap 'kill $sleeper; echo got TERM; exit 42' TERM
sleep 30 & sleeper=$!
echo ready
wait $sleeper"#;
    let mut exec = sandbox
        .command("fkq-cred")
        .args(["exec", "--", "sh", "-c", child_script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(exec.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    // SAFETY: kill with the pid of our own child and a valid signal.
    assert_eq!(unsafe { libc::kill(exec.id() as i32, libc::SIGTERM) }, 0);
    assert_eq!(lines.next().unwrap().unwrap(), "got TERM");
    let status = exec.wait().unwrap();
    assert_eq!(status.code(), Some(42), "the child's trap decided the exit");
}

fn git_fill(sandbox: &Sandbox, host: &str) -> std::process::Output {
    let mut git = sandbox
        .program("git")
        .args(["-c", "credential.helper=!fkq-cred git-credential"])
        .args(["credential", "fill"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run git");
    let request = format!("protocol=https\nhost={host}\n\n");
    std::io::Write::write_all(
        &mut git.stdin.take().unwrap(),
        request.as_bytes(),
    )
    .unwrap();
    git.wait_with_output().unwrap()
}

#[test]
fn git_credential_fill_returns_the_access_token_for_the_api_host() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");
    let host = emulator
        .api_url()
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();

    let out = git_fill(&sandbox, &host);
    assert!(out.status.success(), "git: {}", stderr(&out));
    let text = stdout(&out);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_owned()
    };
    assert_eq!(field("host"), host);
    assert_eq!(field("username"), fkq_cred_tests::emulator::DEFAULT_USERNAME);
    assert_eq!(sites_status(&emulator, &field("password")), 200);

    // Another host gets no answer from fkq-cred; git then has nobody to
    // ask and fails, without a password.
    let out = git_fill(&sandbox, "github.com");
    assert!(!out.status.success());
    assert!(!stdout(&out).contains("password="), "{}", stdout(&out));

    // store and erase are accepted and change nothing.
    for operation in ["store", "erase"] {
        let out = sandbox.cli_with_stdin(
            &["git-credential", operation],
            &format!("protocol=https\nhost={host}\nusername=x\npassword=y\n\n"),
        );
        assert!(out.status.success(), "{operation}: {}", stderr(&out));
        assert_eq!(stdout(&out), "");
    }
    assert!(sandbox.cli(&["get"]).status.success(), "still logged in");
}

#[test]
fn get_json_has_exactly_the_documented_fields() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");
    let out = sandbox.cli(&["get", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let object = value.as_object().expect("an object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["expires_at", "profile", "token", "token_type"]);
    assert_eq!(object["profile"], PROFILE);
    assert_eq!(object["token_type"], "Bearer");
    assert_eq!(sites_status(&emulator, object["token"].as_str().unwrap()), 200);
}

#[test]
fn profiles_mark_the_default_and_the_logged_in_ones() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let config = format!(
        "default_profile = \"{PROFILE}\"\n{}{}",
        Sandbox::profile_toml(PROFILE, &emulator, ""),
        Sandbox::profile_toml("other", &emulator, "")
    );
    sandbox.write_config(&config);
    let _daemon = sandbox.start_daemon();
    let out = sandbox.cli_with_stdin(
        &["--profile", "other", "login", "--password-stdin"],
        &format!("{}\n", fkq_cred_tests::emulator::DEFAULT_PASSWORD),
    );
    assert!(out.status.success());
    let text = run_ok(sandbox.command("fkq-cred").arg("profiles"));
    let line = |name: &str| {
        text.lines()
            .find(|l| l[2..].starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {text}"))
            .to_owned()
    };
    assert!(
        line(PROFILE).starts_with("* ") && line(PROFILE).contains("logged out")
    );
    assert!(
        line("other").starts_with("  ") && line("other").contains("logged in")
    );
}

#[cfg(unix)]
#[test]
fn a_stdout_closed_before_the_token_is_written_is_not_an_error() {
    use std::os::fd::{FromRawFd, OwnedFd};

    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");

    // A pipe whose reader is gone before fkq-cred starts: its write fails
    // with EPIPE every time, not only when a race is lost.
    let mut fds = [0; 2];
    // SAFETY: pipe fills the two-element array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (reader, writer) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    let out = sandbox
        .command("fkq-cred")
        .arg("get")
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");

    // The same through a real shell pipeline.
    let out = sandbox
        .program("bash")
        .args(["-c", "set -o pipefail; fkq-cred get | head -c1"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).len(), 1);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn get_to_a_full_disk_fails_with_code_1_and_says_why() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");
    let full =
        std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = sandbox
        .command("fkq-cred")
        .arg("get")
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(code(&out), i32::from(exit::FAILURE));
    assert!(stderr(&out).starts_with("fkq-cred: cannot write to stdout"));
}

#[test]
fn verbose_names_the_socket_and_quiet_says_nothing() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let _daemon = sandbox.logged_in(&emulator, "");
    let out = sandbox.cli(&["-v", "get"]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&sandbox.socket().display().to_string()), "{err}");
    assert!(err.contains("reply after"), "{err}");
    assert_eq!(stdout(&out).lines().count(), 1, "stdout stays the token");

    let out = sandbox.cli(&["-q", "logout"]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
    let out = sandbox.cli(&["logout"]);
    assert!(!stderr(&out).is_empty(), "without -q, logout says what it did");
}
