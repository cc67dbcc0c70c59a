//! A daemon whose wall clock a test can move: simulated suspends and skewed
//! clocks for end-to-end tests, without root.
//!
//! A debug build of `fkq-credd` reads the file named by
//! [`CLOCK_OFFSET_ENV`] at every clock reading and adds the signed seconds
//! in it to the system clock. Only its wall clock moves: its timers (the
//! monotonic clock) do not, which is exactly what a laptop sees after a
//! suspend. Release builds of the daemon ignore the variable, so these
//! tests need the debug build that `cargo build --workspace` makes; the
//! daemon logs a line when it honours the file, and [`start_daemon`]
//! checks for that line.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::{stderr, DaemonProcess, Sandbox, PROFILE};

/// The daemon's variable naming the offset file (`fkq_credd::clock`).
pub const CLOCK_OFFSET_ENV: &str = "FKQ_CREDD_TEST_CLOCK_OFFSET_FILE";

/// What the daemon logs when its clock follows the offset file.
const OFFSET_LOG_LINE: &str = "the wall clock is shifted";

/// How long [`wait_for_status`] waits before it gives up: a deadline
/// against a hang, far above what any awaited change takes.
const STATUS_DEADLINE: Duration = Duration::from_secs(30);

/// The offset file of one sandbox.
pub struct ClockOffset {
    path: PathBuf,
}

impl ClockOffset {
    /// The offset file in `sandbox`, starting at `secs`.
    pub fn new(sandbox: &Sandbox, secs: i64) -> Self {
        let offset = Self { path: sandbox.path().join("clock-offset") };
        offset.set(secs);
        offset
    }

    /// Moves the daemon's wall clock to `secs` from the system clock.
    pub fn set(&self, secs: i64) {
        std::fs::write(&self.path, format!("{secs}\n"))
            .expect("write the clock offset file");
    }
}

/// Starts `fkq-credd` in `sandbox` with its wall clock following `offset`,
/// and checks that the daemon honours it.
pub fn start_daemon(sandbox: &Sandbox, offset: &ClockOffset) -> DaemonProcess {
    let path = offset.path.to_str().expect("sandbox path is UTF-8");
    let daemon = sandbox.start_daemon_with(&[], &[(CLOCK_OFFSET_ENV, path)]);
    assert!(
        daemon.log().contains(OFFSET_LOG_LINE),
        "fkq-credd ignores {CLOCK_OFFSET_ENV}: these tests need a debug \
         build (cargo build --workspace); its log:\n{}",
        daemon.log()
    );
    daemon
}

/// Logs profile [`PROFILE`] in with the emulator's password.
pub fn login(sandbox: &Sandbox) {
    let password = format!("{}\n", crate::emulator::DEFAULT_PASSWORD);
    let out = sandbox.cli_with_stdin(&["login", "--password-stdin"], &password);
    assert!(out.status.success(), "login failed: {}", stderr(&out));
}

/// `fkq-cred status --json` for profile [`PROFILE`].
pub fn status(sandbox: &Sandbox) -> serde_json::Value {
    let out = sandbox.cli(&["status", "--json"]);
    assert!(out.status.success(), "status failed: {}", stderr(&out));
    let list: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    let profile = list[0].clone();
    assert_eq!(profile["profile"], PROFILE, "{list}");
    profile
}

/// Asks for the status until `done` holds for it, and returns it; panics
/// naming `what` after [`STATUS_DEADLINE`].
pub fn wait_for_status(
    sandbox: &Sandbox,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let status = status(sandbox);
        if done(&status) {
            return status;
        }
        assert!(
            started.elapsed() < STATUS_DEADLINE,
            "waited {STATUS_DEADLINE:?} for {what}; status: {status}"
        );
        // The daemon offers no way to wait for a change of state; a short
        // pause between questions keeps this from spinning.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A status time (RFC 3339) as Unix seconds.
pub fn unix_time(value: &serde_json::Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a time: {value}"));
    let time = humantime::parse_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"));
    match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}
