//! The `formkiq-emulator` binary as a child process of a test: spawned,
//! awaited until its ready line, asked for counters, and stopped on drop.

use std::io::{self, BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::http_client::{BlockingClient, BlockingResponse};
use super::{
    Counters, ReadyLine, Settings, FAULTS_PATH, RESET_PATH, SETTINGS_PATH,
};

/// The name of the emulator binary in a cargo target directory.
pub const BINARY_NAME: &str = "formkiq-emulator";

/// The environment variable that points tests at another emulator binary.
pub const BINARY_ENV: &str = "FKQ_EMULATOR_BIN";

/// How long the binary may take to print its ready line. Generating a CA
/// takes milliseconds; the rest is slack for a loaded CI machine.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the child gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How often a stopping child is checked; std offers no wait with a
/// timeout, and a short poll costs nothing next to the grace period.
const STOP_POLL: Duration = Duration::from_millis(20);

/// How much of the child's stderr is kept for error messages: the tail,
/// where the reason it failed is.
const STDERR_KEPT: usize = 64 * 1024;

/// A running `formkiq-emulator` child process.
pub struct EmulatorProcess {
    child: Child,
    ready: ReadyLine,
    client: BlockingClient,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl EmulatorProcess {
    /// Starts `binary` with `args` and waits for its ready line. If the
    /// child exits or stays silent for 20 s, the error carries its stderr.
    pub fn spawn(binary: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stderr_reader = child.stderr.take().map(|pipe| {
            let kept = Arc::clone(&stderr);
            thread::spawn(move || keep_tail(pipe, &kept))
        });
        let mut process = Self {
            child,
            ready: ReadyLine::default(),
            client: BlockingClient::plain(),
            stderr,
            stderr_reader,
        };

        match process.await_ready() {
            Ok(()) => Ok(process),
            Err(failure) => {
                // The child is stopped first, so that its stderr has been
                // read to the end when it is quoted.
                let status = match process.stop() {
                    Ok(status) => status.to_string(),
                    Err(cause) => format!("unknown: {cause:#}"),
                };
                anyhow::bail!(
                    "{} {failure} (exit: {status}); its stderr:\n{}",
                    binary.display(),
                    process.stderr()
                )
            }
        }
    }

    /// Waits for the ready line and takes the URLs and CA from it, or
    /// says what went wrong instead.
    fn await_ready(&mut self) -> Result<(), String> {
        let Some(stdout) = self.child.stdout.take() else {
            return Err("has no stdout pipe".to_owned());
        };
        let line = match read_ready_line(stdout).recv_timeout(READY_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(cause)) => {
                return Err(format!(
                    "closed stdout before it was ready: {cause}"
                ))
            }
            Err(_) => {
                return Err(format!(
                    "printed no ready line within {READY_TIMEOUT:?}"
                ))
            }
        };
        self.ready = serde_json::from_str(&line).map_err(|cause| {
            format!("printed a bad ready line {line:?}: {cause}")
        })?;
        self.client = BlockingClient::for_ca(self.ready.ca_file.as_deref())
            .map_err(|cause| format!("wrote an unusable CA file: {cause:#}"))?;
        Ok(())
    }

    /// The auth endpoint, ending in `/`.
    pub fn auth_url(&self) -> &str {
        &self.ready.auth_url
    }

    /// The API endpoint, ending in `/`.
    pub fn api_url(&self) -> &str {
        &self.ready.api_url
    }

    /// The CA certificate to trust; `None` with `--plain-http`.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ready.ca_file.as_deref()
    }

    /// The URL of the counters on the auth server.
    pub fn counters_url(&self) -> &str {
        &self.ready.counters_url
    }

    /// The ready line as the binary printed it.
    pub fn ready_line(&self) -> &ReadyLine {
        &self.ready
    }

    /// A blocking client that trusts this emulator's CA.
    pub fn client(&self) -> &BlockingClient {
        &self.client
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What the child wrote to stderr so far (the last 64 KiB of it).
    pub fn stderr(&self) -> String {
        text_of(&self.stderr)
    }

    /// Fetches the counters over HTTP(S), blocking.
    pub fn counters(&self) -> anyhow::Result<Counters> {
        let response = self.client.get(&self.ready.counters_url, None)?;
        counters_from(response)
    }

    /// Zeroes the counters and returns them as they are after the reset.
    pub fn reset_counters(&self) -> anyhow::Result<Counters> {
        let url = format!("{}{RESET_PATH}", self.ready.auth_url);
        counters_from(self.client.post_raw(&url, "")?)
    }

    /// Queues a fault, given as the JSON body of `POST _emulator/faults`
    /// (see [`Fault`](super::Fault)): e.g. `{"endpoint": "login",
    /// "status": 503, "times": 1}`.
    pub fn set_fault(&self, fault: &serde_json::Value) -> anyhow::Result<()> {
        let url = format!("{}{FAULTS_PATH}", self.ready.auth_url);
        let response = self.client.post_json(&url, fault)?;
        expect_ok(&response, "queue the fault").map(drop)
    }

    /// Clears every pending fault.
    pub fn clear_faults(&self) -> anyhow::Result<()> {
        let url = format!("{}{FAULTS_PATH}", self.ready.auth_url);
        let response = self.client.request("DELETE", &url, &[], None)?;
        expect_ok(&response, "clear the faults").map(drop)
    }

    /// Turns refresh token rotation on or off, from the next refresh on.
    pub fn set_rotate_refresh_tokens(
        &self,
        rotate: bool,
    ) -> anyhow::Result<Settings> {
        let url = format!("{}{SETTINGS_PATH}", self.ready.auth_url);
        let body = serde_json::json!({ "rotate_refresh_tokens": rotate });
        let response = self.client.post_json(&url, &body)?;
        let body = expect_ok(&response, "change the settings")?;
        serde_json::from_str(body).context("parse the settings")
    }

    /// Stops the child as dropping it would: SIGTERM, then a kill after
    /// 3 s. Returns how it exited, so a test can check that SIGTERM ends
    /// it cleanly; afterwards [`stderr`](Self::stderr) is complete.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let status = stop_child(&mut self.child)?;
        if let Some(reader) = self.stderr_reader.take() {
            // The reader ends at the end of the pipe, which came with the
            // child's exit; a panic in it only loses log text.
            let _ = reader.join();
        }
        Ok(status)
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        // A child that cannot be stopped here is left to the OS; a panic in
        // drop would hide the test failure that led to it.
        let _ = self.stop();
    }
}

/// Finds `formkiq-emulator` in the cargo target directory the running test
/// was built into (`target/debug/deps/x` → `target/debug/`), unless
/// `FKQ_EMULATOR_BIN` names one. The binary must have been built, e.g.
/// by `cargo build -p fkq-cred-tests`.
pub fn emulator_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        return PathBuf::from(path);
    }
    let file_name = format!("{BINARY_NAME}{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.pop();
    }
    dir.join(file_name)
}

/// Reads the first stdout line on a thread, so the caller can wait for it
/// with a timeout, then drains the rest so the child never blocks on a
/// full pipe.
fn read_ready_line(
    stdout: std::process::ChildStdout,
) -> mpsc::Receiver<io::Result<String>> {
    let (line_tx, line_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = match reader.read_line(&mut line) {
            Ok(0) => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(_) => Ok(line.trim_end().to_owned()),
            Err(cause) => Err(cause),
        };
        let _ = line_tx.send(read);
        let _ = io::copy(&mut reader, &mut io::sink());
    });
    line_rx
}

fn keep_tail(mut pipe: ChildStderr, kept: &Mutex<Vec<u8>>) {
    let mut chunk = [0u8; 4096];
    while let Ok(read @ 1..) = pipe.read(&mut chunk) {
        let mut text = lock(kept);
        text.extend_from_slice(&chunk[..read]);
        let excess = text.len().saturating_sub(STDERR_KEPT);
        text.drain(..excess);
    }
}

fn text_of(kept: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&lock(kept)).into_owned()
}

/// The stderr buffer holds plain bytes, always whole, so a lock poisoned
/// by a panicking reader is still safe to read.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn counters_from(response: BlockingResponse) -> anyhow::Result<Counters> {
    let body = expect_ok(&response, "read the counters")?;
    serde_json::from_str(body).context("parse the counters")
}

/// The body of a 200 reply to a control request, or an error quoting the
/// emulator's explanation (control replies carry no secrets).
fn expect_ok<'a>(
    response: &'a BlockingResponse,
    what: &str,
) -> anyhow::Result<&'a str> {
    anyhow::ensure!(
        response.status == 200,
        "{what}: the emulator answered {}: {}",
        response.status,
        response.body
    );
    Ok(&response.body)
}

/// Sends SIGTERM, waits up to [`STOP_GRACE`], then kills. A child that has
/// already exited is only reaped.
fn stop_child(child: &mut Child) -> anyhow::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    terminate(child);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        thread::sleep(STOP_POLL);
    }
    // Killing can only fail if the child exited meanwhile; wait says how.
    let _ = child.kill();
    Ok(child.wait()?)
}

#[cfg(unix)]
fn terminate(child: &mut Child) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) touches no memory of ours. The child has not been
    // reaped (try_wait said it runs), so its pid cannot have been reused.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

#[cfg(not(unix))]
fn terminate(child: &mut Child) {
    // Without signals the polite stop is not available; kill at once.
    let _ = child.kill();
}

#[cfg(test)]
mod tests;
