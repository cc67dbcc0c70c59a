//! Many scripts at once: K workers, each running `fkq-cred get` N times in
//! a row as separate processes, all K starting together. Afterwards the
//! emulator's counters say what all of that cost the auth server.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::emulator::http_client::BlockingClient;
use crate::emulator::{Counters, COUNTERS_PATH, RESET_PATH};

/// A worker thread runs one child at a time; it needs little stack.
const WORKER_STACK: usize = 64 * 1024;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `fkq-cred` binary.
    pub client: PathBuf,
    /// Its arguments, `get` by default.
    pub args: Vec<String>,
    /// Workers running at once: processes in flight at any moment.
    pub workers: usize,
    /// Processes each worker runs, one after the other.
    pub calls: usize,
}

/// What came out.
#[derive(Debug, Clone)]
pub struct Report {
    /// Processes run.
    pub processes: usize,
    /// Processes that printed a token and exited 0.
    pub ok: usize,
    /// The first failure: exit status and stderr.
    pub first_failure: Option<String>,
    /// Distinct tokens printed (one, unless a refresh fell in the run).
    pub distinct_tokens: usize,
    /// From the first start to the last exit.
    pub elapsed: Duration,
}

impl Report {
    /// The report as text.
    pub fn text(&self) -> String {
        let mut text = format!(
            "processes:     {} ({} ok, {} failed) in {:.2} s = {:.0} gets/s\n\
             tokens seen:   {} distinct\n",
            self.processes,
            self.ok,
            self.processes - self.ok,
            self.elapsed.as_secs_f64(),
            self.ok as f64 / self.elapsed.as_secs_f64(),
            self.distinct_tokens,
        );
        if let Some(failure) = &self.first_failure {
            text.push_str(&format!("first failure: {failure}\n"));
        }
        text
    }
}

/// Runs the workers and waits for all of them.
pub fn run(options: &Options) -> anyhow::Result<Report> {
    let start_line = Arc::new(Barrier::new(options.workers + 1));
    let mut handles = Vec::with_capacity(options.workers);
    for _ in 0..options.workers {
        let options = options.clone();
        let start_line = start_line.clone();
        let handle = std::thread::Builder::new()
            .stack_size(WORKER_STACK)
            .spawn(move || {
                start_line.wait();
                worker(&options)
            })
            .context("start a worker thread")?;
        handles.push(handle);
    }
    start_line.wait();
    let start = Instant::now();
    let mut outcomes = Vec::with_capacity(options.workers * options.calls);
    for handle in handles {
        let worker = handle.join().map_err(|_| {
            anyhow::anyhow!("a worker thread panicked; see its message above")
        })?;
        outcomes.extend(worker);
    }
    let elapsed = start.elapsed();
    let mut tokens: Vec<&String> =
        outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    tokens.sort();
    tokens.dedup();
    Ok(Report {
        processes: outcomes.len(),
        ok: outcomes.iter().filter(|o| o.is_ok()).count(),
        first_failure: outcomes.iter().find_map(|o| o.clone().err()),
        distinct_tokens: tokens.len(),
        elapsed,
    })
}

/// Runs one worker's processes; each yields its token or its failure.
fn worker(options: &Options) -> Vec<Result<String, String>> {
    let mut command = Command::new(&options.client);
    command
        .args(&options.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    (0..options.calls)
        .map(|_| {
            let out = command.output().map_err(|e| {
                format!("cannot run {}: {e}", options.client.display())
            })?;
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && text.lines().count() == 1 {
                Ok(text.trim_end().to_owned())
            } else {
                Err(format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim_end()
                ))
            }
        })
        .collect()
}

/// An emulator's counters, read (and zeroed first, when asked) through
/// its auth URL.
pub struct EmulatorCounters {
    auth_url: String,
    client: BlockingClient,
}

impl EmulatorCounters {
    /// Talks to the emulator whose auth URL (ending in `/`) is `auth_url`.
    pub fn new(auth_url: &str, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let auth_url = if auth_url.ends_with('/') {
            auth_url.to_owned()
        } else {
            format!("{auth_url}/")
        };
        Ok(Self { auth_url, client: BlockingClient::for_ca(ca_file)? })
    }

    /// Zeroes the counters.
    pub fn reset(&self) -> anyhow::Result<()> {
        let url = format!("{}{RESET_PATH}", self.auth_url);
        let response = self.client.post_raw(&url, "")?;
        anyhow::ensure!(
            response.status == 200,
            "{url} answered {}",
            response.status
        );
        Ok(())
    }

    /// Reads the counters.
    pub fn read(&self) -> anyhow::Result<Counters> {
        let url = format!("{}{COUNTERS_PATH}", self.auth_url);
        let response = self.client.get(&url, None)?;
        serde_json::from_str(&response.body)
            .with_context(|| format!("counters from {url}"))
    }
}
