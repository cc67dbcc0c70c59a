//! TLS is always verified: a server whose certificate nothing trusts never
//! sees the password, and extra trust comes only from `ca_file`, the OS
//! store, or `SSL_CERT_FILE`.

use fkq_cred_proto::exit;
use fkq_cred_tests::emulator::DEFAULT_PASSWORD;
use fkq_cred_tests::harness::{code, stderr, Sandbox, PROFILE};

fn login(sandbox: &Sandbox) -> std::process::Output {
    sandbox.cli_with_stdin(
        &["login", "--password-stdin"],
        &format!("{DEFAULT_PASSWORD}\n"),
    )
}

#[test]
fn an_untrusted_certificate_gets_no_password_and_ssl_cert_file_adds_trust() {
    let sandbox = Sandbox::new();
    let emulator = sandbox.start_emulator(&[]);
    let ca_file = emulator.ca_file().expect("the emulator serves HTTPS");
    // The profile names no ca_file: only the OS store is trusted.
    let profile = Sandbox::profile_toml(PROFILE, &emulator, "");
    let profile: String = profile
        .lines()
        .filter(|line| !line.starts_with("ca_file"))
        .map(|line| format!("{line}\n"))
        .collect();
    sandbox.write_config(&profile);

    let daemon = sandbox.start_daemon();
    let out = login(&sandbox);
    assert_eq!(code(&out), i32::from(exit::SERVER_UNREACHABLE));
    let err = stderr(&out);
    assert!(
        err.contains("ca_file") && err.contains(emulator.auth_url()),
        "{err}"
    );
    let counters = emulator.counters().unwrap();
    assert_eq!(counters.login, 0, "the password reached an untrusted server");
    drop(daemon);

    let ca = ca_file.to_str().expect("the CA path is UTF-8");
    let _daemon = sandbox.start_daemon_with(&[], &[("SSL_CERT_FILE", ca)]);
    let out = login(&sandbox);
    assert!(out.status.success(), "login with SSL_CERT_FILE: {}", stderr(&out));
}
