//! Secrets stay where they belong. A whole session runs with every log
//! switched to trace (the HTTP and TLS crates included): a login whose
//! client is held mid-request, refreshes, a refresh refused with a body
//! that quotes the token, an automatic login, `/sites`, gets and a logout.
//! Then the sentinel password and every token the server issued are looked
//! for in the daemon's log, in the command lines and environments of every
//! fkq-cred process, and in every file under the sandbox's XDG, home and
//! temp directories. None may be there.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fkq_cred_tests::harness::{code, stderr, stdout, Sandbox, PROFILE};
use fkq_cred_tests::stub_auth::{StubAuth, USERNAME};

/// Every crate at trace, and the HTTP stack's own targets named again, at
/// their most specific, in case a broad cap could be outranked.
const TRACE_EVERYTHING: &str = "trace,fkq_credd=trace,hyper=trace,\
    hyper_util=trace,hyper::proto::h1::io=trace,reqwest=trace,\
    reqwest::connect::verbose=trace,rustls=trace,h2=trace,tower=trace";

/// A deadline against a hang, far above any honest wait.
const HANG: Duration = Duration::from_secs(30);

/// The text of `/proc/<pid>/cmdline` and `environ` of every process whose
/// name is `fkq-cred` or `fkq-credd`, with a label saying whose it is.
fn fkq_process_texts() -> Vec<(String, Vec<u8>)> {
    let mut texts = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return texts };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if !matches!(comm.trim(), "fkq-cred" | "fkq-credd") {
            continue;
        }
        for file in ["cmdline", "environ"] {
            // A process may end between listing and reading: skip it.
            if let Ok(bytes) = std::fs::read(dir.join(file)) {
                let label =
                    format!("{}/{file} ({})", dir.display(), comm.trim());
                texts.push((label, bytes));
            }
        }
    }
    texts
}

/// Every regular file under `dir`, with its contents.
fn files_under(dir: &Path, found: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            files_under(&path, found);
        } else if meta.is_file() {
            let bytes = std::fs::read(&path).unwrap_or_default();
            found.push((path.display().to_string(), bytes));
        }
    }
}

/// The distinctive part of a secret: its random tail, so that a copy with
/// a prefix cut off or reworded is caught as well.
fn needle(secret: &str) -> &str {
    secret.rsplit('-').next().unwrap_or(secret)
}

fn assert_nowhere(secrets: &[String], places: &[(String, Vec<u8>)]) {
    for secret in secrets {
        let needle = needle(secret).as_bytes();
        assert!(needle.len() >= 12, "{secret:?} is too short to search for");
        for (place, bytes) in places {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "a secret ({}...) leaked into {place}",
                &secret[..secret.len().min(14)]
            );
        }
    }
}

fn get(sandbox: &Sandbox, args: &[&str]) -> String {
    let out = sandbox.cli(args);
    assert!(
        out.status.success(),
        "{args:?} ({}): {}",
        code(&out),
        stderr(&out)
    );
    stdout(&out).trim_end().to_owned()
}

/// Keeps asking for tokens until `done` says the server has seen enough,
/// collecting what was handed out. Real time must pass for tokens to age.
fn get_until(
    sandbox: &Sandbox,
    stub: &StubAuth,
    handed_out: &mut Vec<String>,
    done: impl Fn(&StubAuth) -> bool,
) {
    let deadline = Instant::now() + HANG;
    while !done(stub) {
        assert!(Instant::now() < deadline, "stuck at {:?}", stub.counts());
        handed_out.push(get(sandbox, &["get"]));
        handed_out.push(get(sandbox, &["get", "--id-token"]));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn no_secret_reaches_logs_argv_environment_or_disk() {
    let sandbox = Sandbox::new();
    let password = format!("sentinel-password-{}", fastrand::u128(..));
    let stub = StubAuth::start(
        &password,
        Duration::from_secs(4),
        &sandbox.path().join("emulator"),
    )
    .expect("start the stub auth server");
    sandbox.write_config(&format!(
        "[profiles.{PROFILE}]\nauth_url = {url:?}\napi_url = {url:?}\n\
         username = {USERNAME:?}\nca_file = {ca:?}\nremember_password = true\n",
        url = stub.url(),
        ca = stub.ca_file().display().to_string(),
    ));
    let mut daemon =
        sandbox.start_daemon_with(&[], &[("RUST_LOG", TRACE_EVERYTHING)]);
    let mut observed = Vec::new();

    // A login whose client waits while the server holds the request: its
    // command line and environment are read while the password is in it.
    let held = stub.hold_next_login();
    let mut client = sandbox
        .command("fkq-cred")
        .args(["login", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fkq-cred login");
    let mut stdin = client.stdin.take().expect("stdin is piped");
    writeln!(stdin, "{password}").expect("write the password");
    drop(stdin);
    held.arrived.recv_timeout(HANG).expect("the login reaches the server");
    observed.extend(fkq_process_texts());
    for pid in [client.id(), daemon.pid()] {
        let dir = format!("/proc/{pid}/");
        assert!(
            observed.iter().any(|(label, _)| label.starts_with(&dir)),
            "process {pid} was not observed"
        );
    }
    held.release();
    let out = client.wait_with_output().expect("wait for login");
    assert!(out.status.success(), "login: {}", stderr(&out));

    // Refreshes on the timer, then one refused with the token quoted back,
    // after which the remembered password logs in again.
    let mut handed_out = Vec::new();
    get_until(&sandbox, &stub, &mut handed_out, |s| s.counts().refreshes >= 2);
    stub.fail_next_refresh_echoing_the_token();
    get_until(&sandbox, &stub, &mut handed_out, |s| s.counts().logins >= 2);
    assert_eq!(stub.counts().echoed_failures, 1, "{:?}", stub.counts());
    let sites = get(&sandbox, &["sites"]);
    assert!(sites.contains("site: default"), "{sites}");
    observed.extend(fkq_process_texts());
    get(&sandbox, &["logout"]);

    let issued = stub.issued();
    for token in &handed_out {
        assert!(issued.contains(token), "handed out a token never issued");
    }
    let counts = stub.counts();
    assert!(counts.logins >= 2 && counts.refreshes >= 2, "{counts:?}");
    let expected = 3 * counts.logins + 2 * counts.refreshes;
    assert_eq!(issued.len() as u64, expected, "every token is collected");
    let mut secrets = issued;
    secrets.push(password);

    // The processes are looked at while the daemon lives; its log is read
    // to the end, after it stopped.
    observed.extend(fkq_process_texts());
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_timeout(HANG).is_some_and(|s| s.success()));
    let log = daemon.wait_for_log("stopped", 1, HANG);
    assert!(log.contains(" DEBUG ") || log.contains(" TRACE "), "{log}");
    assert!(log.contains("tokens renewed") && log.contains("failed"), "{log}");
    assert_nowhere(&secrets, &[("the daemon's log".into(), log.into_bytes())]);
    assert_nowhere(&secrets, &observed);

    let mut files = Vec::new();
    for dir in ["config", "runtime", "state", "home", "tmp"] {
        files_under(&sandbox.path().join(dir), &mut files);
    }
    let config: PathBuf = sandbox.config_file();
    assert!(
        files.iter().any(|(path, _)| Path::new(path) == config),
        "the walk missed the config file"
    );
    assert_nowhere(&secrets, &files);
}
