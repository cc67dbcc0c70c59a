//! The exit code table: every code produced by a real scenario on the real
//! binaries, and the same table in the code, `--help` and the README.
//! Also the plain-text promise: no colour without a terminal or with
//! NO_COLOR.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::process::Output;

use fkq_cred_proto::exit;
use fkq_cred_tests::emulator::process::{emulator_binary, EmulatorProcess};
use fkq_cred_tests::emulator::{DEFAULT_PASSWORD, DEFAULT_USERNAME};
use fkq_cred_tests::harness::{code, stderr, Sandbox, PROFILE};

/// A Unix socket that greets like a daemon of the next protocol version.
#[cfg(unix)]
fn future_daemon(path: &std::path::Path) {
    use std::os::unix::net::UnixListener;

    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let hello = fkq_cred_proto::handshake::encode_hello(
                fkq_cred_proto::PROTOCOL_VERSION + 1,
            );
            let _ = stream.write_all(&hello);
        }
    });
}

/// A loopback port where nothing listens.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn profile(name: &str, auth_url: &str, api_url: &str, ca: &str) -> String {
    format!(
        "[profiles.{name}]\nauth_url = {auth_url:?}\napi_url = {api_url:?}\nusername = {DEFAULT_USERNAME:?}\nca_file = {ca:?}\n"
    )
}

#[cfg(unix)]
#[test]
fn every_exit_code_in_the_table_comes_from_a_real_scenario() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    // Another deployment, with its own signing keys: its API refuses the
    // first one's tokens.
    let other = EmulatorProcess::spawn(&emulator_binary(), &["--plain-http"])
        .expect("start a second emulator");
    let ca = emulator.ca_file().unwrap().display().to_string();
    let (auth, api) = (emulator.auth_url(), emulator.api_url());
    let down = format!("http://127.0.0.1:{}/", closed_port());
    // A deployment where the user was created by an administrator and
    // must choose a password before any token is issued.
    let forced = EmulatorProcess::spawn(
        &emulator_binary(),
        &["--plain-http", "--force-change-password", DEFAULT_USERNAME],
    )
    .expect("start an emulator that demands a new password");
    let config = [
        format!("default_profile = \"{PROFILE}\"\n"),
        profile(PROFILE, auth, api, &ca),
        profile("fresh", auth, api, &ca),
        profile("down", &down, api, &ca),
        profile("swapped", api, api, &ca),
        profile("foreign-api", auth, other.api_url(), &ca),
        profile("new-user", forced.auth_url(), forced.api_url(), &ca),
    ]
    .join("\n");
    sandbox.write_config(&config);
    let _daemon = sandbox.start_daemon();
    let password = format!("{DEFAULT_PASSWORD}\n");
    let login = |profile: &str, password: &str| {
        sandbox.cli_with_stdin(
            &["--profile", profile, "login", "--password-stdin"],
            password,
        )
    };
    let future = sandbox.path().join("future.sock");
    future_daemon(&future);
    let future = future.display().to_string();
    let absent = sandbox.path().join("absent.sock").display().to_string();

    let mut produced: BTreeMap<u8, (&str, Output)> = BTreeMap::new();
    let mut record = |expected: u8, scenario: &'static str, out: Output| {
        assert_eq!(
            code(&out),
            i32::from(expected),
            "{scenario}: {}",
            stderr(&out)
        );
        produced.insert(expected, (scenario, out));
    };

    record(exit::OK, "login", login(PROFILE, &password));
    let full =
        std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    record(
        exit::FAILURE,
        "get > /dev/full",
        sandbox.command("fkq-cred").arg("get").stdout(full).output().unwrap(),
    );
    record(exit::USAGE, "unknown option", sandbox.cli(&["get", "--bogus"]));
    record(
        exit::LOGIN_REQUIRED,
        "get before login",
        sandbox.cli(&["--profile", "fresh", "get"]),
    );
    record(exit::REJECTED, "wrong password", login("fresh", "wrong\n"));
    record(
        exit::DAEMON_UNREACHABLE,
        "no daemon on the socket",
        sandbox.cli(&["--socket", &absent, "get"]),
    );
    record(
        exit::SERVER_UNREACHABLE,
        "auth server down",
        login("down", &password),
    );
    record(
        exit::BAD_SERVER_REPLY,
        "the API URL used as auth URL",
        login("swapped", &password),
    );
    record(
        exit::NEW_PASSWORD_REQUIRED,
        "a user who must choose a password",
        login("new-user", &password),
    );
    assert!(login("foreign-api", &password).status.success());
    record(
        exit::ACCESS_DENIED,
        "another deployment's API",
        sandbox.cli(&["--profile", "foreign-api", "sites"]),
    );
    record(
        exit::CONFIG,
        "unknown profile",
        sandbox.cli(&["--profile", "nope", "get"]),
    );
    record(
        exit::VERSION_MISMATCH,
        "a daemon of another version",
        sandbox.cli(&["--socket", &future, "get"]),
    );
    record(
        exit::ALREADY_RUNNING,
        "a second fkq-credd",
        sandbox.command("fkq-credd").output().unwrap(),
    );

    for (code, (scenario, out)) in &produced {
        let err = stderr(out);
        match *code {
            exit::OK => {}
            // clap words usage errors itself ("error: ...").
            exit::USAGE => assert!(err.contains("--bogus"), "{err}"),
            // The daemon logs too; its last word is the error line.
            exit::ALREADY_RUNNING => assert!(
                err.lines().any(|l| l.starts_with("fkq-credd: ")),
                "{scenario}: {err}"
            ),
            _ => {
                assert!(err.starts_with("fkq-cred: "), "{scenario}: {err}");
                assert_eq!(err.lines().count(), 1, "{scenario}: {err}");
            }
        }
    }
    let table: Vec<u8> = exit::TABLE.iter().map(|(code, _, _)| *code).collect();
    let seen: Vec<u8> = produced.keys().copied().collect();
    assert_eq!(seen, table, "every code in the table, and no other");
}

#[test]
fn help_readme_and_code_show_the_same_exit_code_table() {
    let sandbox = Sandbox::new();
    let help = sandbox.cli(&["--help"]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout).into_owned();

    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .unwrap();
    let section = readme
        .split("### Exit codes")
        .nth(1)
        .expect("README has an Exit codes section");
    let readme_rows: Vec<(u8, String)> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((cells[1].parse().ok()?, cells[2].to_owned()))
        })
        .collect();

    let code_rows: Vec<(u8, String)> = exit::TABLE
        .iter()
        .map(|(code, name, _)| (*code, (*name).to_owned()))
        .collect();
    assert_eq!(readme_rows, code_rows, "README and proto/src/exit.rs");
    for (code, name, meaning) in exit::TABLE {
        let row = format!("{code:>2}  {name:<22} {meaning}");
        assert!(help.contains(&row), "--help lacks {row:?}");
    }
}

#[cfg(unix)]
#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    use fkq_cred_tests::pty::PtyChild;

    let sandbox = Sandbox::new();
    let limit = std::time::Duration::from_secs(20);
    let on_terminal = |no_color: Option<&str>| {
        let mut command = sandbox.command("fkq-cred");
        command
            .arg("--help")
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR");
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        let (status, text) =
            PtyChild::spawn(&mut command).unwrap().finish(limit);
        assert!(status.success());
        text
    };
    // The baseline shows the test can see colour at all.
    assert!(
        on_terminal(None).contains("\x1b["),
        "help is styled on a terminal"
    );
    assert!(!on_terminal(Some("1")).contains("\x1b["), "NO_COLOR=1");
    let piped = sandbox
        .command("fkq-cred")
        .arg("--help")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&piped.stdout).contains('\x1b'));
}
