//! NEW_PASSWORD_REQUIRED, through the real daemon and client: a user an
//! administrator created sets a new password on a terminal or from stdin,
//! and a script without one is told what to run.

use fkq_cred_proto::exit;
use fkq_cred_tests::emulator::process::EmulatorProcess;
use fkq_cred_tests::emulator::DEFAULT_USERNAME;
use fkq_cred_tests::harness::{
    check_failure, code, stderr, stdout, Sandbox, PROFILE,
};

const TEMPORARY: &str = "temporary-password-1";
const NEW: &str = "a-new-and-long-password";

/// An emulator whose default user must set a new password first, and a
/// daemon configured for it.
fn forced(sandbox: &Sandbox, extra: &str) -> EmulatorProcess {
    let user = format!("{DEFAULT_USERNAME}:{TEMPORARY}");
    let emulator = sandbox.start_emulator(&[
        "--user",
        &user,
        "--force-change-password",
        DEFAULT_USERNAME,
    ]);
    sandbox.write_config(&Sandbox::profile_toml(PROFILE, &emulator, extra));
    emulator
}

fn sites_status(emulator: &EmulatorProcess, token: &str) -> u16 {
    let url = format!("{}sites", emulator.api_url());
    let bearer = format!("Bearer {token}");
    emulator.client().get(&url, Some(&bearer)).expect("GET /sites").status
}

#[test]
fn the_new_password_from_a_second_stdin_line_is_set_and_the_login_completes() {
    let sandbox = Sandbox::new();
    let emulator = forced(&sandbox, "");
    let _daemon = sandbox.start_daemon();

    let out = sandbox.cli_with_stdin(
        &["login", "--password-stdin", "--new-password-stdin"],
        &format!("{TEMPORARY}\n{NEW}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&sandbox.cli(&["get"]));
    assert_eq!(sites_status(&emulator, token.trim_end()), 200);
    let counters = emulator.counters().expect("counters");
    assert_eq!((counters.challenge, counters.challenge_ok), (1, 1));

    // The new password is the password now; the temporary one is gone.
    assert!(sandbox.login_with(NEW).status.success());
    let out = sandbox.login_with(TEMPORARY);
    assert_eq!(code(&out), i32::from(exit::REJECTED), "{}", stderr(&out));
}

#[test]
fn without_new_password_stdin_a_second_line_is_not_taken_as_the_new_password() {
    let sandbox = Sandbox::new();
    let emulator = forced(&sandbox, "");
    let _daemon = sandbox.start_daemon();

    let out = sandbox.cli_with_stdin(
        &["login", "--password-stdin"],
        &format!("{TEMPORARY}\n{NEW}\n"),
    );
    check_failure(
        &out,
        exit::NEW_PASSWORD_REQUIRED,
        &["requires a new password", "--new-password-stdin"],
        &[NEW],
    )
    .unwrap_or_else(|why| panic!("{why}"));
    assert_eq!(emulator.counters().expect("counters").challenge, 0);
}

#[test]
fn a_new_password_the_policy_refuses_is_explained_and_can_be_retried() {
    let sandbox = Sandbox::new();
    let emulator = forced(&sandbox, "");
    let _daemon = sandbox.start_daemon();

    let out = sandbox.cli_with_stdin(
        &["login", "--password-stdin", "--new-password-stdin"],
        &format!("{TEMPORARY}\nshort\n"),
    );
    check_failure(
        &out,
        exit::NEW_PASSWORD_REQUIRED,
        &["respondToAuthChallenge", "refused the new password", "policy"],
        &[],
    )
    .unwrap_or_else(|why| panic!("{why}"));

    let out = sandbox.cli_with_stdin(
        &["login", "--password-stdin", "--new-password-stdin"],
        &format!("{TEMPORARY}\n{NEW}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(emulator.counters().expect("counters").challenge_ok, 1);
}

#[test]
fn an_automatic_login_that_meets_the_challenge_stops_and_says_what_to_run() {
    let sandbox = Sandbox::new();
    let command = format!("password_command = [\"printf\", \"{TEMPORARY}\"]");
    let emulator = forced(&sandbox, &command);
    let _daemon = sandbox.start_daemon();

    for _ in 0..2 {
        let out = sandbox.cli(&["get"]);
        check_failure(
            &out,
            exit::LOGIN_REQUIRED,
            &["requires a new password", "fkq-cred login"],
            &[],
        )
        .unwrap_or_else(|why| panic!("{why}"));
    }
    // The second `get` did not try the stored password again.
    assert_eq!(emulator.counters().expect("counters").login, 1);
}

#[cfg(unix)]
mod terminal {
    use std::process::Stdio;

    use rexpect::process::wait::WaitStatus;
    use rexpect::session::{spawn_command, PtySession};

    use super::*;

    /// How long one prompt may take to appear: a deadline against a hang.
    const PROMPT_TIMEOUT_MS: u64 = 20_000;

    fn login_on_a_terminal(sandbox: &Sandbox) -> PtySession {
        let mut command = sandbox.command("fkq-cred");
        command.arg("login").stdin(Stdio::inherit());
        spawn_command(command, Some(PROMPT_TIMEOUT_MS)).expect("spawn on a pty")
    }

    fn exit_code(session: &PtySession) -> i32 {
        match session.process.wait().expect("wait for fkq-cred") {
            WaitStatus::Exited(_, code) => code,
            other => panic!("fkq-cred ended with {other:?}"),
        }
    }

    #[test]
    fn on_a_terminal_login_explains_and_asks_for_the_new_password_twice() {
        let sandbox = Sandbox::new();
        let emulator = forced(&sandbox, "");
        let _daemon = sandbox.start_daemon();

        let mut session = login_on_a_terminal(&sandbox);
        session.exp_string("Password for alice@example.com").expect("prompt");
        session.send_line(TEMPORARY).expect("type");
        session.exp_string("requires a new password").expect("explained");
        session.exp_string("New password: ").expect("first prompt");
        session.send_line(NEW).expect("type");
        session.exp_string("Repeat new password: ").expect("second prompt");
        session.send_line(NEW).expect("type");
        let rest = session.exp_eof().expect("the end");
        assert!(rest.contains("Logged in"), "{rest}");
        assert_eq!(exit_code(&session), 0);

        let token = stdout(&sandbox.cli(&["get"]));
        assert_eq!(sites_status(&emulator, token.trim_end()), 200);
    }

    #[test]
    fn two_different_new_passwords_change_nothing() {
        let sandbox = Sandbox::new();
        let emulator = forced(&sandbox, "");
        let _daemon = sandbox.start_daemon();

        let mut session = login_on_a_terminal(&sandbox);
        session.exp_string("Password for").expect("prompt");
        session.send_line(TEMPORARY).expect("type");
        session.exp_string("New password: ").expect("first prompt");
        session.send_line(NEW).expect("type");
        session.exp_string("Repeat new password: ").expect("second prompt");
        session.send_line("something-else-entirely").expect("type");
        let rest = session.exp_eof().expect("the end");
        assert!(rest.contains("differ"), "{rest}");
        assert_eq!(exit_code(&session), i32::from(exit::USAGE));
        assert_eq!(emulator.counters().expect("counters").challenge, 0);
    }
}
