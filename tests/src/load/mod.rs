//! Load and latency tools for a running `fkq-credd`, behind the `fkq-load`
//! binary:
//!
//! - [`conns`]: C connections speaking the wire protocol directly, each
//!   issuing `get`s back to back for S seconds; gets per second, latency
//!   percentiles, and the daemon's resident memory before, during, after.
//! - [`procs`]: K parallel workers each running `fkq-cred get` processes,
//!   then the emulator's counters: how many logins all of that cost.
//! - [`cold`]: a daemon started from nothing, then the first `get`, which
//!   logs in over loopback.
//!
//! These measure; they assert nothing about time. The numbers and how they
//! were taken are in `BENCHMARKS.md`.

pub mod cold;
#[cfg(unix)]
pub mod conns;
pub mod procs;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use fkq_cred_proto::frame::{self, MAX_RESPONSE_LEN};
use fkq_cred_proto::handshake::{self, Hello, HELLO_LEN};
use fkq_cred_proto::{codec, Request, Response, TokenKind, PROTOCOL_VERSION};

/// The bytes a client sends to open a connection and ask for a token:
/// the greeting followed by one `get` frame.
pub fn hello_and_get(profile: Option<&str>) -> Vec<u8> {
    let mut bytes = handshake::hello().to_vec();
    bytes.extend_from_slice(&get_frame(profile));
    bytes
}

/// One framed `get` request for the access token.
pub fn get_frame(profile: Option<&str>) -> Vec<u8> {
    let request = Request::Get {
        profile: profile.map(str::to_owned),
        kind: TokenKind::Access,
        min_valid_secs: None,
    };
    frame::encode(&codec::encode(&request).expect("a get request encodes"))
}

/// The first body byte of a `Response::Token`: bincode writes the variant
/// index first, so one byte tells a token from an error without decoding
/// the rest.
pub fn token_tag() -> u8 {
    let reply = Response::Token(fkq_cred_proto::TokenReply {
        profile: String::new(),
        kind: TokenKind::Access,
        token: fkq_cred_proto::Secret::default(),
        token_type: String::new(),
        expires_at: None,
    });
    codec::encode(&reply).expect("a token reply encodes")[0]
}

/// Describes a reply that is not a token, for error messages.
pub fn describe(body: &[u8]) -> String {
    match codec::decode::<Response>(body, MAX_RESPONSE_LEN) {
        Ok(Response::Error(e)) => format!("{:?}: {}", e.kind, e.message),
        Ok(other) => format!("unexpected reply {other:?}"),
        Err(e) => format!("undecodable reply: {e}"),
    }
}

/// Asks the daemon at `socket` for its pid with a blocking `ping`.
#[cfg(unix)]
pub fn daemon_pid(socket: &Path) -> anyhow::Result<u32> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .with_context(|| format!("connect to fkq-credd at {socket:?}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut out = handshake::hello().to_vec();
    out.extend_from_slice(&frame::encode(
        &codec::encode(&Request::Ping).expect("ping encodes"),
    ));
    stream.write_all(&out)?;
    let mut hello = [0u8; HELLO_LEN];
    stream.read_exact(&mut hello)?;
    if handshake::decode_hello(&hello) != Hello::Version(PROTOCOL_VERSION) {
        bail!("{socket:?} does not speak fkq-cred protocol {PROTOCOL_VERSION}");
    }
    let body = frame::read_blocking(&mut stream, MAX_RESPONSE_LEN)?;
    match codec::decode::<Response>(&body, MAX_RESPONSE_LEN)? {
        Response::Pong { pid, .. } => Ok(pid),
        _ => bail!("fkq-credd answered a ping with {}", describe(&body)),
    }
}

/// A process's resident set size in KiB (`VmRSS` in `/proc/PID/status`),
/// or `None` where that file does not exist.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The CPU time a process has used so far, all its threads, user and
/// system (`utime + stime` in `/proc/PID/stat`), or `None` where that
/// file does not exist.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it do not.
    let fields: Vec<&str> =
        stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()?
        + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()?))
}

#[cfg(unix)]
fn clock_ticks_per_second() -> Option<f64> {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then_some(ticks as f64)
}

#[cfg(not(unix))]
fn clock_ticks_per_second() -> Option<f64> {
    None
}

/// KiB as MiB with one decimal, or `-` when unknown.
pub fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// The value at quantile `q` (0..=1) of sorted `values`.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Nanoseconds as a short human figure: `850 ns`, `12.3 µs`, `4.56 ms`.
pub fn nanos(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        _ => format!("{:.2} ms", ns as f64 / 1e6),
    }
}

/// The median of `values`.
pub fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_tag_tells_a_token_reply_from_an_error_reply() {
        let error = Response::Error(fkq_cred_proto::WireError::new(
            fkq_cred_proto::ErrorKind::NotLoggedIn,
            "x",
        ));
        let error_tag = codec::encode(&error).unwrap()[0];
        assert_ne!(token_tag(), error_tag);
    }

    #[test]
    fn quantiles_pick_from_the_sorted_samples() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), 51);
        assert_eq!(quantile(&values, 0.99), 99);
        assert_eq!(quantile(&values, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn rss_and_cpu_time_of_this_process_are_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_millis(50) {
                std::hint::black_box(0);
            }
            let used = cpu_time(std::process::id()).unwrap();
            assert!(used >= Duration::from_millis(30), "{used:?}");
        }
    }
}
