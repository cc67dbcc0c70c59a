//! From nothing to a token: start `fkq-credd`, wait for its ready line,
//! then time the first `fkq-cred get`, which logs in over loopback through
//! the profile's `password_command`, and a second, warm one.
//!
//! The environment (XDG directories, config) is inherited: the caller sets
//! up the sandbox. Each round starts a fresh daemon and stops it with
//! SIGTERM afterwards.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::median;

/// How long a daemon may take to become ready before the round fails.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `fkq-credd` binary; `None` with `autostart`.
    pub daemon: Option<PathBuf>,
    /// The `fkq-cred` binary.
    pub client: PathBuf,
    /// Fresh daemons to start, one after the other.
    pub rounds: usize,
    /// With `true`, no daemon is started: the first `fkq-cred get` must
    /// start one itself (auto-start), and `daemon stop` ends it.
    pub autostart: bool,
}

/// Medians over the rounds.
#[derive(Debug, Clone)]
pub struct Report {
    /// Rounds run.
    pub rounds: usize,
    /// Whether the client started the daemon itself.
    pub autostart: bool,
    /// Spawn to the ready line (zero with auto-start).
    pub ready: Duration,
    /// The first `get`: login over loopback included.
    pub first_get: Duration,
    /// Spawn to the first token in hand.
    pub total: Duration,
    /// A second `get`, served from memory, for comparison.
    pub warm_get: Duration,
}

impl Report {
    /// The report as text.
    pub fn text(&self) -> String {
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        if self.autostart {
            return format!(
                "rounds:        {} (medians)\n\
                 first get:     {} (auto-start of fkq-credd and login over \
                 loopback included)\n\
                 warm get:      {}\n",
                self.rounds,
                ms(self.first_get),
                ms(self.warm_get),
            );
        }
        format!(
            "rounds:        {} (medians)\n\
             start→ready:   {}\n\
             first get:     {} (login over loopback included)\n\
             total:         {}\n\
             warm get:      {}\n",
            self.rounds,
            ms(self.ready),
            ms(self.first_get),
            ms(self.total),
            ms(self.warm_get),
        )
    }
}

/// Runs the rounds.
pub fn run(options: &Options) -> anyhow::Result<Report> {
    let mut ready = Vec::new();
    let mut first = Vec::new();
    let mut total = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..options.rounds {
        let start = Instant::now();
        let daemon =
            if options.autostart { None } else { Some(start_daemon(options)?) };
        let is_ready = start.elapsed();
        let got = Instant::now();
        get(options)?;
        let first_get = got.elapsed();
        let done = start.elapsed();
        let again = Instant::now();
        get(options)?;
        warm.push(again.elapsed());
        ready.push(is_ready);
        first.push(first_get);
        total.push(done);
        stop(options, daemon)?;
    }
    Ok(Report {
        rounds: options.rounds,
        autostart: options.autostart,
        ready: median(&ready),
        first_get: median(&first),
        total: median(&total),
        warm_get: median(&warm),
    })
}

fn get(options: &Options) -> anyhow::Result<()> {
    let out = Command::new(&options.client)
        .arg("get")
        .stdin(Stdio::null())
        .output()
        .context("run fkq-cred get")?;
    if !out.status.success() || out.stdout.is_empty() {
        bail!(
            "fkq-cred get failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(())
}

/// Starts the daemon and returns once it has logged its ready line.
fn start_daemon(options: &Options) -> anyhow::Result<Child> {
    let daemon = options
        .daemon
        .as_ref()
        .context("no fkq-credd given to start (--daemon)")?;
    let mut child = Command::new(daemon)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", daemon.display()))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        // Keep reading to the end so the daemon never blocks on a full pipe.
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains(" ready ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    if rx.recv_timeout(READY_TIMEOUT).is_err() {
        let _ = child.kill();
        let status = child.wait().ok();
        bail!("fkq-credd did not log its ready line (exit: {status:?})");
    }
    Ok(child)
}

/// Stops a daemon this tool started (SIGTERM, then wait), or one the
/// client auto-started (`fkq-cred daemon stop`, then wait until that
/// process is gone, so the next round starts from nothing).
fn stop(options: &Options, daemon: Option<Child>) -> anyhow::Result<()> {
    let Some(mut child) = daemon else {
        let socket = fkq_cred_proto::location::socket_location(None)
            .context("find the daemon's socket")?
            .path;
        #[cfg(unix)]
        let pid = super::daemon_pid(&socket)?;
        let status = Command::new(&options.client)
            .args(["--quiet", "daemon", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .context("run fkq-cred daemon stop")?;
        if !status.success() {
            bail!("fkq-cred daemon stop failed ({status})");
        }
        #[cfg(unix)]
        wait_gone(pid)?;
        return Ok(());
    };
    #[cfg(unix)]
    {
        // SAFETY: kill with the pid of a child this process started and
        // has not yet waited for.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    #[cfg(not(unix))]
    child.kill()?;
    child.wait().context("wait for fkq-credd to stop")?;
    Ok(())
}

/// Waits until process `pid`, which is not our child, has exited.
#[cfg(unix)]
fn wait_gone(pid: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    // SAFETY: signal 0 only asks whether the process exists.
    while unsafe { libc::kill(pid as i32, 0) } == 0 {
        if Instant::now() > deadline {
            bail!("fkq-credd (pid {pid}) did not exit after daemon stop");
        }
        // Not our child, so there is nothing to wait on: poll.
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}
