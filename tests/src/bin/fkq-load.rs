//! `fkq-load`: load and latency figures for a running `fkq-credd`.
//! See [`fkq_cred_tests::load`] for what each mode does.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use fkq_cred_tests::load;

/// Load and latency tools for fkq-credd.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// C connections issuing gets back to back for S seconds: gets/s,
    /// latency percentiles and the daemon's RSS.
    Conns {
        /// The daemon's socket (default: where fkq-cred would look).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Connections held open at once.
        #[arg(short = 'c', long, default_value_t = 64)]
        connections: usize,
        /// How long to run, e.g. 5s or 500ms.
        #[arg(short = 'd', long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Profile to ask for (default: the daemon's default profile).
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// Threads of the load generator itself.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Offer this many gets per second in total, in 1 ms batches,
        /// instead of going as fast as the daemon answers.
        #[arg(long, value_name = "GETS_PER_SEC")]
        rate: Option<u64>,
    },
    /// K workers each running N `fkq-cred get` processes in a row, all at
    /// once; then the emulator's login and refresh counts.
    Procs {
        /// The fkq-cred binary.
        #[arg(long, value_name = "PATH")]
        client: PathBuf,
        /// Workers, i.e. processes in flight at once.
        #[arg(short = 'k', long, default_value_t = 1000)]
        workers: usize,
        /// Processes per worker.
        #[arg(short = 'n', long, default_value_t = 10)]
        calls: usize,
        /// The emulator's auth URL: its counters are zeroed before the
        /// run and printed after it.
        #[arg(long, value_name = "URL")]
        emulator: Option<String>,
        /// The emulator's CA file, for an https URL.
        #[arg(long, value_name = "PATH")]
        ca_file: Option<PathBuf>,
        /// Fail unless the emulator saw exactly this many logins.
        #[arg(long, value_name = "N", requires = "emulator")]
        expect_logins: Option<u64>,
    },
    /// Start fkq-credd from nothing, then time the first get (a login over
    /// loopback) and a warm one.
    Cold {
        /// The fkq-credd binary (not with --autostart: the client finds
        /// its own, beside itself or on PATH).
        #[arg(
            long,
            value_name = "PATH",
            required_unless_present = "autostart",
            conflicts_with = "autostart"
        )]
        daemon: Option<PathBuf>,
        /// The fkq-cred binary.
        #[arg(long, value_name = "PATH")]
        client: PathBuf,
        /// Fresh daemons to start.
        #[arg(short = 'r', long, default_value_t = 5)]
        rounds: usize,
        /// Start no daemon: the first get must auto-start one.
        #[arg(long)]
        autostart: bool,
    },
}

fn main() -> ExitCode {
    match run(Args::parse().mode) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fkq-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(mode: Mode) -> anyhow::Result<()> {
    match mode {
        Mode::Conns {
            socket,
            connections,
            duration,
            profile,
            threads,
            rate,
        } => conns(socket, connections, duration, profile, threads, rate),
        Mode::Procs {
            client,
            workers,
            calls,
            emulator,
            ca_file,
            expect_logins,
        } => {
            let options = load::procs::Options {
                client,
                args: vec!["get".into()],
                workers,
                calls,
            };
            let counters = emulator
                .map(|url| {
                    load::procs::EmulatorCounters::new(&url, ca_file.as_deref())
                })
                .transpose()?;
            if let Some(counters) = &counters {
                counters.reset()?;
            }
            let report = load::procs::run(&options)?;
            print!("{}", report.text());
            let Some(counters) = counters else {
                return check_all_ok(report.ok, report.processes);
            };
            let seen = counters.read()?;
            println!(
                "auth server:   {} logins ({} ok), {} refreshes ({} ok)",
                seen.login, seen.login_ok, seen.refresh, seen.refresh_ok
            );
            check_all_ok(report.ok, report.processes)?;
            match expect_logins {
                Some(n) if seen.login != n => {
                    bail!(
                        "expected {n} logins, the emulator saw {}",
                        seen.login
                    )
                }
                _ => Ok(()),
            }
        }
        Mode::Cold { daemon, client, rounds, autostart } => {
            let options =
                load::cold::Options { daemon, client, rounds, autostart };
            print!("{}", load::cold::run(&options)?.text());
            Ok(())
        }
    }
}

fn check_all_ok(ok: usize, all: usize) -> anyhow::Result<()> {
    if ok != all {
        bail!("{} of {all} processes failed", all - ok);
    }
    Ok(())
}

#[cfg(unix)]
fn conns(
    socket: Option<PathBuf>,
    connections: usize,
    duration: Duration,
    profile: Option<String>,
    threads: usize,
    rate: Option<u64>,
) -> anyhow::Result<()> {
    let socket = match socket {
        Some(path) => path,
        None => {
            fkq_cred_proto::location::socket_location(None)
                .context("find the daemon's socket")?
                .path
        }
    };
    let options = load::conns::Options {
        socket,
        connections,
        duration,
        profile,
        threads,
        rate,
    };
    let report = load::conns::run(&options)?;
    print!("{}", report.text());
    if report.errors > 0 {
        bail!("{} gets were answered with an error", report.errors);
    }
    Ok(())
}

#[cfg(not(unix))]
fn conns(
    _: Option<PathBuf>,
    _: usize,
    _: Duration,
    _: Option<String>,
    _: usize,
    _: Option<u64>,
) -> anyhow::Result<()> {
    bail!("the connection load mode speaks Unix sockets only")
}
