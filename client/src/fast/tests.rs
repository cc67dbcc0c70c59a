//! The fast path must give the very result clap gives, for every form it
//! accepts, under every value of the two environment variables involved.

use std::ffi::{OsStr, OsString};

use clap::{CommandFactory, Parser};

use super::*;

/// The fields a `get` or `header` runs with, as one comparable line.
fn summary(cli: &Cli) -> String {
    let (name, token, json) = match &cli.command {
        Command::Get(args) => ("get", &args.token, args.json),
        Command::Header(token) => ("header", token, false),
        _ => return "another command".into(),
    };
    let g = &cli.global;
    format!(
        "{name} profile={:?} socket={:?} quiet={} verbose={} \
         min_valid={:?} id_token={} json={json}",
        g.profile,
        g.socket,
        g.quiet,
        g.verbose,
        token.min_valid,
        token.id_token
    )
}

fn os(args: &[&str]) -> Vec<OsString> {
    std::iter::once("fkq-cred")
        .chain(args.iter().copied())
        .map(Into::into)
        .collect()
}

/// Environments to try: unset, set, empty, and a value clap would take
/// but the fast path leaves alone.
const ENVS: &[(Option<&str>, Option<&str>)] = &[
    (None, None),
    (Some("from-env"), None),
    (None, Some("/tmp/from-env.sock")),
    (Some("from-env"), Some("/tmp/from-env.sock")),
    (Some(""), None),
    (None, Some("")),
    (Some("-dash"), None),
];

fn set_env(name: &str, value: Option<&str>) {
    // The only test in this crate that touches the environment; std
    // serialises its own readers and writers of it.
    match value {
        Some(value) => std::env::set_var(name, value),
        None => std::env::remove_var(name),
    }
}

/// Parses `args` both ways under `env`; returns whether the fast path
/// accepted them, after checking that clap then agrees.
fn agree(args: &[OsString], env: (Option<&str>, Option<&str>)) -> bool {
    let fast = parse(args, env.0.map(OsStr::new), env.1.map(OsStr::new));
    set_env(PROFILE_ENV, env.0);
    set_env(SOCKET_ENV, env.1);
    let clap = Cli::try_parse_from(args);
    let Some(fast) = fast else { return false };
    let clap = clap.unwrap_or_else(|e| {
        panic!(
            "the fast path accepts {args:?} with {env:?}, clap refuses it: {e}"
        )
    });
    assert_eq!(summary(&fast), summary(&clap), "{args:?} with {env:?}");
    true
}

#[test]
fn the_fast_path_and_clap_agree_on_every_form_the_fast_path_accepts() {
    let before: &[&[&str]] = &[
        &[],
        &["-q"],
        &["--quiet"],
        &["--profile", "prod"],
        &["--profile=prod"],
        &["-p", "prod"],
        &["--socket", "/tmp/s.sock"],
        &["--socket=/tmp/s.sock"],
        &["-q", "-p", "prod"],
        &["--profile", "get"],
        &["-v"],
        &["--verbose", "--socket=/tmp/s.sock"],
    ];
    let after: &[&[&str]] = &[
        &[],
        &["--json"],
        &["--id-token"],
        &["--min-valid", "90"],
        &["--min-valid=10m"],
        &["--min-valid", "1h", "--id-token"],
        &["-q"],
        &["--profile", "x"],
        &["--socket", "/tmp/o.sock"],
        &["--json", "--id-token", "--min-valid", "5m"],
        &["-v"],
    ];
    let odd: &[&[&str]] = &[
        &[],
        &["get", "--profile="],
        &["get", "--profile", "-x"],
        &["get", "--profile=-x"],
        &["get", "-p"],
        &["get", "--min-valid", "soon"],
        &["get", "--min-valid", "-5"],
        &["get", "get"],
        &["get", "header"],
        &["--json", "get"],
        &["--id-token", "get"],
        &["header", "--json"],
        &["get", "--json", "--json"],
        &["-q", "-q", "get"],
        &["get", "--quiet=true"],
        &["get", "--id-token=yes"],
        &["get", "--"],
        &["-pprod", "get"],
        &["-p=prod", "get"],
        &["get", "-qp", "x"],
        &["-q", "get", "-v"],
        &["-v", "-v", "get"],
        &["get", "-qv"],
        &["get", "--profile", "a", "--profile", "b"],
        &["--socket=", "get"],
        &["get", "--socket", ""],
        &["--help"],
        &["get", "--help"],
        &["-h", "get"],
        &["--version"],
        &["status"],
        &["daemon", "status"],
        &["GET"],
    ];

    let mut accepted = 0;
    for &env in ENVS {
        for command in ["get", "header"] {
            for b in before {
                for a in after {
                    let mut args = b.to_vec();
                    args.push(command);
                    args.extend_from_slice(a);
                    accepted += usize::from(agree(&os(&args), env));
                }
            }
        }
        for args in odd {
            agree(&os(args), env);
        }
    }
    set_env(PROFILE_ENV, None);
    set_env(SOCKET_ENV, None);
    // Most of the grid is valid; a parser that gave up on everything
    // would agree with clap trivially.
    assert!(accepted >= 600, "the fast path accepted only {accepted} forms");
}

#[test]
fn the_plain_forms_take_the_fast_path() {
    for args in [
        &["get"][..],
        &["header"],
        &["get", "--profile", "prod"],
        &["-p", "prod", "header"],
        &["get", "--json"],
        &["-q", "get", "--min-valid", "10m", "--id-token"],
    ] {
        assert!(parse(&os(args), None, None).is_some(), "{args:?}");
    }
}

#[test]
fn errors_help_and_other_commands_are_left_to_clap() {
    for args in [
        &[][..],
        &["get", "--json", "--json"],
        &["get", "--profile="],
        &["get", "--min-valid", "soon"],
        &["header", "--json"],
        &["--help"],
        &["get", "-h"],
        &["--version"],
        &["status"],
        &["get", "extra"],
    ] {
        assert!(parse(&os(args), None, None).is_none(), "{args:?}");
    }
    assert!(parse(&os(&["get"]), Some(OsStr::new("")), None).is_none());
    assert!(parse(&os(&["get"]), None, Some(OsStr::new(""))).is_none());
}

#[cfg(unix)]
#[test]
fn arguments_that_are_not_utf8_are_left_to_clap() {
    use std::os::unix::ffi::OsStringExt;
    let mut args = os(&["get", "--profile"]);
    args.push(OsString::from_vec(vec![0xff, 0xfe]));
    assert!(parse(&args, None, None).is_none());
    let env = OsString::from_vec(vec![0xff]);
    assert!(parse(&os(&["get"]), Some(&env), None).is_none());
}

/// If an argument is added to `get`, `header` or the global options, this
/// fails until the fast path knows it: an unknown option on the command
/// line already sends the call to clap, but a new environment variable or
/// default value would not.
#[test]
fn every_argument_of_get_and_header_is_known_to_the_fast_path() {
    let mut command = Cli::command();
    command.build();
    let describe = |cmd: &clap::Command| -> Vec<String> {
        cmd.get_arguments()
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .map(|a| {
                format!(
                    "{} env={:?} default={:?}",
                    a.get_id(),
                    a.get_env(),
                    a.get_default_values()
                )
            })
            .collect()
    };
    let sub = |name: &str| {
        command.find_subcommand(name).map(describe).unwrap_or_default()
    };
    let global = [
        format!("profile env={:?} default=[]", Some(OsStr::new(PROFILE_ENV))),
        format!("socket env={:?} default=[]", Some(OsStr::new(SOCKET_ENV))),
        "quiet env=None default=[\"false\"]".to_owned(),
        "verbose env=None default=[\"false\"]".to_owned(),
    ];
    let token = [
        "min_valid env=None default=[]".to_owned(),
        "id_token env=None default=[\"false\"]".to_owned(),
    ];
    let mut get: Vec<String> = token.to_vec();
    get.push("json env=None default=[\"false\"]".into());
    get.extend(global.iter().cloned());
    let mut header: Vec<String> = token.to_vec();
    header.extend(global.iter().cloned());

    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(describe(&command)), sorted(global.to_vec()));
    assert_eq!(sorted(sub("get")), sorted(get));
    assert_eq!(sorted(sub("header")), sorted(header));
}
