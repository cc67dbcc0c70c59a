//! Many connections at once, each asking for tokens.
//!
//! Every connection opens with the greeting and a first `get`, exactly as
//! `fkq-cred get` does; once all are open, each sends a `get`, waits for
//! the reply and sends the next, until the time is up. Latency is measured
//! per request, from just before the write to the last byte of the reply.
//!
//! Without a rate the connections go as fast as the daemon answers: the
//! figures at saturation. With `--rate`, a pacer releases that many gets
//! per second in small batches (every 100 µs or so) and a connection sends
//! only with a permit from it: the figures at an offered load.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use fkq_cred_proto::frame::{self, MAX_RESPONSE_LEN};
use fkq_cred_proto::handshake::{self, Hello, HELLO_LEN};
use fkq_cred_proto::PROTOCOL_VERSION;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;

use super::{
    cpu_time, daemon_pid, describe, get_frame, hello_and_get, mib, nanos,
    quantile, rss_kib, token_tag,
};

/// How often the pacer of `--rate` releases the gets that fell due.
const PACE: Duration = Duration::from_micros(100);

/// How often the daemon's memory is sampled during the run.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The daemon's socket.
    pub socket: PathBuf,
    /// Connections held open at once.
    pub connections: usize,
    /// How long the gets go on.
    pub duration: Duration,
    /// The profile asked for; `None` is the daemon's default.
    pub profile: Option<String>,
    /// Threads of the load generator's own runtime.
    pub threads: usize,
    /// Gets per second offered in total; `None` for as fast as answered.
    pub rate: Option<u64>,
}

/// What came out.
#[derive(Debug, Clone)]
pub struct Report {
    /// The daemon's pid.
    pub pid: u32,
    /// Connections open during the run.
    pub connections: usize,
    /// The offered rate, if one was set.
    pub rate: Option<u64>,
    /// Gets answered with a token.
    pub gets: u64,
    /// Gets answered with anything else.
    pub errors: u64,
    /// The first error reply, described.
    pub first_error: Option<String>,
    /// How long the gets went on.
    pub elapsed: Duration,
    /// Latency percentiles in nanoseconds: p50, p99, p99.9, max.
    pub latency: [u64; 4],
    /// Daemon RSS in KiB: before connecting, with every connection open
    /// and idle, the peak during the run, and after they closed.
    pub rss: [Option<u64>; 4],
    /// CPU time the daemon used during the gets.
    pub daemon_cpu: Option<Duration>,
    /// CPU time this load generator used during the gets.
    pub own_cpu: Option<Duration>,
}

impl Report {
    /// Gets per second.
    pub fn rate(&self) -> f64 {
        self.gets as f64 / self.elapsed.as_secs_f64()
    }

    /// The report as text, one figure per line.
    pub fn text(&self) -> String {
        let [p50, p99, p999, max] = self.latency;
        let [before, open, peak, after] = self.rss;
        let offered = self.rate.map_or_else(
            || "as fast as answered".into(),
            |r| format!("{r} gets/s"),
        );
        let mut text = format!(
            "connections:   {} (offered: {offered})\n\
             gets:          {} in {:.2} s = {:.0} gets/s\n\
             errors:        {}\n\
             latency:       p50 {}  p99 {}  p99.9 {}  max {}\n\
             daemon RSS:    before {}  all connected {}  peak {}  after {} (pid {})\n",
            self.connections,
            self.gets,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.errors,
            nanos(p50),
            nanos(p99),
            nanos(p999),
            nanos(max),
            mib(before),
            mib(open),
            mib(peak),
            mib(after),
            self.pid,
        );
        let per_get = |cpu: Option<Duration>| {
            cpu.map_or_else(
                || "-".into(),
                |t| {
                    format!(
                        "{:.2} µs/get ({:.0}% of a core)",
                        t.as_secs_f64() * 1e6 / self.gets.max(1) as f64,
                        t.as_secs_f64() * 100.0 / self.elapsed.as_secs_f64()
                    )
                },
            )
        };
        text.push_str(&format!(
            "cpu:           daemon {}, load generator {}\n",
            per_get(self.daemon_cpu),
            per_get(self.own_cpu)
        ));
        if let Some(error) = &self.first_error {
            text.push_str(&format!("first error:   {error}\n"));
        }
        text
    }
}

/// Runs the load and reports.
pub fn run(options: &Options) -> anyhow::Result<Report> {
    let pid = daemon_pid(&options.socket)?;
    let before = rss_kib(pid);
    let runtime = if options.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()
    }
    .context("start the load generator's runtime")?;
    let mut report = runtime.block_on(drive(options, pid))?;
    report.rss[0] = before;
    // The daemon frees a connection's memory when it reads the close;
    // give it a moment before the last reading.
    std::thread::sleep(Duration::from_millis(200));
    report.rss[3] = rss_kib(pid);
    Ok(report)
}

async fn drive(options: &Options, pid: u32) -> anyhow::Result<Report> {
    let profile = options.profile.as_deref();
    let mut streams = Vec::with_capacity(options.connections);
    for i in 0..options.connections {
        let stream = open(options, profile)
            .await
            .with_context(|| format!("open connection {}", i + 1))?;
        streams.push(stream);
    }
    let open_rss = rss_kib(pid);

    let running = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(open_rss.unwrap_or(0)));
    let sampler = tokio::spawn(sample_rss(pid, running.clone(), peak.clone()));
    let request: Arc<[u8]> = get_frame(profile).into();
    let cpu_before = (cpu_time(pid), cpu_time(std::process::id()));
    let start = Instant::now();
    let deadline = start + options.duration;
    let permits = options.rate.map(|rate| {
        let permits = Arc::new(Semaphore::new(0));
        let pacer = permits.clone();
        std::thread::spawn(move || release(&pacer, rate, start, deadline));
        permits
    });
    let workers: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            tokio::spawn(gets(
                stream,
                request.clone(),
                deadline,
                permits.clone(),
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    for worker in workers {
        let outcome = worker.await.context("a connection task panicked")??;
        latencies.extend(outcome.latencies);
        errors += outcome.errors;
        first_error = first_error.or(outcome.first_error);
    }
    let elapsed = start.elapsed();
    let used = |before: Option<Duration>, now: Option<Duration>| {
        Some(now?.saturating_sub(before?))
    };
    let daemon_cpu = used(cpu_before.0, cpu_time(pid));
    let own_cpu = used(cpu_before.1, cpu_time(std::process::id()));
    running.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    latencies.sort_unstable();
    let peak = peak.load(Ordering::Relaxed);
    Ok(Report {
        pid,
        connections: options.connections,
        rate: options.rate,
        gets: latencies.len() as u64,
        errors,
        first_error,
        elapsed,
        latency: [
            quantile(&latencies, 0.5),
            quantile(&latencies, 0.99),
            quantile(&latencies, 0.999),
            latencies.last().copied().unwrap_or(0),
        ],
        rss: [None, open_rss, (peak > 0).then_some(peak), None],
        daemon_cpu,
        own_cpu,
    })
}

/// Opens one connection: greeting plus a first get in one write, like the
/// client, and checks that a token comes back.
async fn open(
    options: &Options,
    profile: Option<&str>,
) -> anyhow::Result<BufReader<UnixStream>> {
    let stream = UnixStream::connect(&options.socket)
        .await
        .with_context(|| format!("connect to {:?}", options.socket))?;
    let mut stream = BufReader::with_capacity(4096, stream);
    stream.get_mut().write_all(&hello_and_get(profile)).await?;
    let mut hello = [0u8; HELLO_LEN];
    stream.read_exact(&mut hello).await?;
    if handshake::decode_hello(&hello) != Hello::Version(PROTOCOL_VERSION) {
        bail!("the daemon does not speak protocol {PROTOCOL_VERSION}");
    }
    let mut buffer = Vec::new();
    let body = read_frame(&mut stream, &mut buffer).await?;
    if body.first() != Some(&token_tag()) {
        bail!("the first get failed: {}", describe(body));
    }
    Ok(stream)
}

async fn read_frame<'a>(
    stream: &mut BufReader<UnixStream>,
    body: &'a mut Vec<u8>,
) -> anyhow::Result<&'a [u8]> {
    let mut header = [0u8; frame::HEADER_LEN];
    stream.read_exact(&mut header).await?;
    let len = frame::body_len(header, MAX_RESPONSE_LEN)?;
    body.resize(len, 0);
    stream.read_exact(body).await?;
    Ok(body)
}

struct Outcome {
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// Adds permits every [`PACE`] or so, from a thread of its own (tokio's
/// timers tick in whole milliseconds), so that `rate` per second are out
/// in total; at the deadline it closes the semaphore, which stops the
/// waiting connections.
fn release(permits: &Semaphore, rate: u64, start: Instant, deadline: Instant) {
    let mut released = 0u64;
    while Instant::now() < deadline {
        std::thread::sleep(PACE);
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        let batch = usize::try_from(due.saturating_sub(released))
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS - permits.available_permits());
        permits.add_permits(batch);
        released += batch as u64;
    }
    permits.close();
}

async fn gets(
    mut stream: BufReader<UnixStream>,
    request: Arc<[u8]>,
    deadline: Instant,
    permits: Option<Arc<Semaphore>>,
) -> anyhow::Result<Outcome> {
    let tag = token_tag();
    let mut outcome =
        Outcome { latencies: Vec::new(), errors: 0, first_error: None };
    let mut body = Vec::new();
    loop {
        if let Some(permits) = &permits {
            match permits.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => return Ok(outcome),
            }
        }
        let start = Instant::now();
        if start >= deadline {
            return Ok(outcome);
        }
        stream.get_mut().write_all(&request).await?;
        let reply = read_frame(&mut stream, &mut body).await?;
        let took = start.elapsed().as_nanos() as u64;
        if reply.first() == Some(&tag) {
            outcome.latencies.push(took);
        } else {
            outcome.errors += 1;
            if outcome.first_error.is_none() {
                outcome.first_error = Some(describe(reply));
            }
        }
    }
}

async fn sample_rss(pid: u32, running: Arc<AtomicBool>, peak: Arc<AtomicU64>) {
    while running.load(Ordering::Relaxed) {
        if let Some(kib) = rss_kib(pid) {
            peak.fetch_max(kib, Ordering::Relaxed);
        }
        tokio::time::sleep(RSS_SAMPLE_EVERY).await;
    }
}
