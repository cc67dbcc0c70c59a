//! Writing results: stdout carries only what was asked for, a closed
//! stdout (`| head`) is not an error, and times read the same everywhere.

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::CliError;

/// Writes `text` to stdout. A reader that went away (EPIPE) is treated as
/// success: the script got what it wanted, or chose not to read it.
pub fn stdout(text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => {
            Err(CliError::failure(format!("cannot write to stdout: {e}")))
        }
    }
}

/// Writes a line to stderr unless `quiet`.
pub fn note(quiet: bool, text: &str) {
    if !quiet {
        let _ = writeln!(io::stderr(), "{text}");
    }
}

/// Unix seconds as RFC 3339 in UTC, e.g. `2026-12-04T16:40:00Z`.
pub fn rfc3339(unix: i64) -> String {
    // RFC 3339 has four-digit years: clamp rather than fail on a daemon
    // that reports an absurd expiry.
    const LAST_SECOND: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let t = UNIX_EPOCH + Duration::from_secs(unix.clamp(0, LAST_SECOND) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Unix seconds as RFC 3339 plus how far away that is, for people.
pub fn when(unix: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let delta = unix - now;
    let span =
        humantime::format_duration(Duration::from_secs(delta.unsigned_abs()));
    if delta >= 0 {
        format!("{} (in {span})", rfc3339(unix))
    } else {
        format!("{} ({span} ago)", rfc3339(unix))
    }
}

/// An optional time as a JSON value: an RFC 3339 string or null.
pub fn json_time(unix: Option<i64>) -> serde_json::Value {
    unix.map_or(serde_json::Value::Null, |t| {
        serde_json::Value::String(rfc3339(t))
    })
}
