//! `fkq-calltime`: the per-call cost of short-lived commands, side by side.
//!
//! Each command is run `--calls` times in a row, one process after the
//! other, and the rounds alternate between the commands, so a burst of
//! load on the machine hits every command alike. The report gives each
//! command's median wall time and CPU time per call over the rounds, and
//! its ratio to the first command (normally `/bin/true`, the cost of
//! starting any process at all). Ratios are the figure to read; absolute
//! times say as much about the machine as about the command.
//!
//! ```text
//! fkq-calltime --calls 1000 --rounds 7 \
//!     --cmd true /bin/true \; \
//!     --cmd fkq-cred target/release/fkq-cred get \; \
//!     --cmd git-cache --stdin req.txt git credential-cache get \;
//! ```

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Arg, ArgAction, ArgMatches};

/// One command under test.
struct Subject {
    name: String,
    argv: Vec<String>,
    stdin: Option<PathBuf>,
    /// Wall time per call, one entry per round.
    wall: Vec<Duration>,
    /// User plus system CPU time per call, one entry per round.
    cpu: Vec<Duration>,
}

fn cli() -> clap::Command {
    clap::Command::new("fkq-calltime")
        .about("Times short-lived commands in alternating rounds and prints per-call medians and ratios")
        .arg(
            Arg::new("calls")
                .long("calls")
                .short('n')
                .value_parser(clap::value_parser!(u32).range(1..))
                .default_value("1000")
                .help("Calls of each command per round"),
        )
        .arg(
            Arg::new("rounds")
                .long("rounds")
                .short('r')
                .value_parser(clap::value_parser!(u32).range(1..))
                .default_value("7")
                .help("Rounds; each round runs every command --calls times"),
        )
        .arg(
            Arg::new("cmd")
                .long("cmd")
                .action(ArgAction::Append)
                .num_args(2..)
                .value_terminator(";")
                .allow_hyphen_values(true)
                .required(true)
                .value_names(["NAME", "PROGRAM"])
                .help(
                    "A command: NAME [--stdin FILE] PROGRAM ARGS... ';' \
                     (the first one is the baseline of the ratios)",
                ),
        )
}

fn main() -> ExitCode {
    match run(&cli().get_matches()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fkq-calltime: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(matches: &ArgMatches) -> anyhow::Result<()> {
    let calls = *matches.get_one::<u32>("calls").expect("has a default");
    let rounds = *matches.get_one::<u32>("rounds").expect("has a default");
    let mut subjects = Vec::new();
    for values in matches.get_occurrences::<String>("cmd").into_iter().flatten()
    {
        subjects.push(subject(values.cloned().collect())?);
    }
    for subject in &subjects {
        check_once(subject)?;
    }
    for _ in 0..rounds {
        for subject in &mut subjects {
            let (wall, cpu) = time_round(subject, calls)?;
            subject.wall.push(wall);
            subject.cpu.push(cpu);
        }
    }
    report(&subjects, calls, rounds);
    Ok(())
}

/// Parses `NAME [--stdin FILE] PROGRAM ARGS...`.
fn subject(mut values: Vec<String>) -> anyhow::Result<Subject> {
    let name = values.remove(0);
    let mut stdin = None;
    if values.first().map(String::as_str) == Some("--stdin") {
        if values.len() < 3 {
            bail!("--cmd {name}: --stdin needs a FILE and then the PROGRAM");
        }
        values.remove(0);
        stdin = Some(PathBuf::from(values.remove(0)));
    }
    if values.is_empty() {
        bail!("--cmd {name}: no PROGRAM given");
    }
    Ok(Subject { name, argv: values, stdin, wall: vec![], cpu: vec![] })
}

/// Every command gets a freshly opened stdin (its input file, or
/// /dev/null), so each pays the same set-up cost.
fn command(subject: &Subject) -> anyhow::Result<Command> {
    let input = subject.stdin.clone().unwrap_or_else(|| {
        PathBuf::from(if cfg!(windows) { "NUL" } else { "/dev/null" })
    });
    let file = File::open(&input).with_context(|| {
        format!("open {} for {}", input.display(), subject.name)
    })?;
    let mut command = Command::new(&subject.argv[0]);
    command.args(&subject.argv[1..]).stdin(file).stdout(Stdio::null());
    Ok(command)
}

/// Runs the command once with its output kept, so a broken set-up is
/// reported instead of timed.
fn check_once(subject: &Subject) -> anyhow::Result<()> {
    let out = command(subject)?
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("run {:?}", subject.argv))?;
    if !out.status.success() {
        bail!(
            "{} ({:?}) failed with {}: {}",
            subject.name,
            subject.argv,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(())
}

/// Runs one round; returns the wall and CPU time per call.
fn time_round(
    subject: &Subject,
    calls: u32,
) -> anyhow::Result<(Duration, Duration)> {
    let cpu_before = children_cpu();
    let start = Instant::now();
    for _ in 0..calls {
        let status = command(subject)?
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("run {:?}", subject.argv))?;
        if !status.success() {
            bail!("{} failed during timing with {status}", subject.name);
        }
    }
    let wall = start.elapsed() / calls;
    let cpu = children_cpu().saturating_sub(cpu_before) / calls;
    Ok((wall, cpu))
}

/// User plus system time of all waited-for children so far.
#[cfg(unix)]
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given; zeroes are a valid
    // starting value for it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64)
            + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

#[cfg(not(unix))]
fn children_cpu() -> Duration {
    Duration::ZERO
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(subjects: &[Subject], calls: u32, rounds: u32) {
    println!(
        "{calls} calls per command per round, {rounds} alternating rounds; \
         medians of the rounds"
    );
    println!(
        "{:<22} {:>11} {:>8} {:>11} {:>8}   wall per round (µs)",
        "command", "wall/call", "ratio", "cpu/call", "ratio",
    );
    let base_wall = micros(median(&subjects[0].wall));
    let base_cpu = micros(median(&subjects[0].cpu));
    for s in subjects {
        let wall = micros(median(&s.wall));
        let cpu = micros(median(&s.cpu));
        let rounds: Vec<String> =
            s.wall.iter().map(|d| format!("{:.0}", micros(*d))).collect();
        println!(
            "{:<22} {:>8.1} µs {:>7.2}x {:>8.1} µs {:>7.2}x   {}",
            s.name,
            wall,
            wall / base_wall,
            cpu,
            if base_cpu > 0.0 { cpu / base_cpu } else { f64::NAN },
            rounds.join(" ")
        );
    }
}
