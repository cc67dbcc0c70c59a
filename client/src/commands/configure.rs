//! `fkq-cred configure`: writes one profile to `config.toml` from flags,
//! CloudFormation stack outputs, and (on a terminal) answers to prompts;
//! has the daemon check the URLs before anything is saved, then has a
//! running daemon reread the file.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use fkq_cred_proto::{exit, paths, ProbeTarget, Request, Response};

use super::config_file::ConfigFile;
use super::stack_outputs::{self, StackValues};
use super::{unexpected, Context};
use crate::cli::ConfigureArgs;
use crate::error::CliError;
use crate::output::note;

/// The profile written when neither `--profile` nor the file names one.
const DEFAULT_PROFILE: &str = "default";

/// What a prompt's answer `-` means: "none".
const CLEAR: &str = "-";

/// The values of one profile as they will be saved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Answers {
    auth_url: Option<String>,
    api_url: Option<String>,
    username: Option<String>,
    password_command: Option<Vec<String>>,
}

/// Runs `fkq-cred configure`.
pub fn run(ctx: &Context, args: ConfigureArgs) -> Result<(), CliError> {
    let path = paths::config_path(args.config.as_deref()).ok_or_else(|| {
        CliError::new(exit::CONFIG, "cannot find a config directory (no home directory); pass --config PATH")
    })?;
    ctx.detail(&format!("config file {}", path.display()));
    let mut file = ConfigFile::load(&path)?;
    let stack = match &args.stack_outputs {
        Some(source) => read_stack_outputs(source)?,
        None => StackValues::default(),
    };
    let name = ctx
        .profile
        .clone()
        .or_else(|| file.default_profile().map(str::to_owned))
        .unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
    check_profile_name(&name)?;

    // Flags win over stack outputs, which win over what the file has.
    let current = Answers {
        auth_url: stack
            .auth_url
            .clone()
            .or_else(|| file.get(&name, "auth_url")),
        api_url: stack.api_url.clone().or_else(|| file.get(&name, "api_url")),
        username: file.get(&name, "username"),
        password_command: file.password_command(&name),
    };
    let given = Answers {
        auth_url: args.auth_url.clone(),
        api_url: args.api_url.clone(),
        username: args.username.clone(),
        password_command: match &args.password_command {
            Some(text) => Some(split_command(text)?),
            None => None,
        },
    };
    let from_stdin = args.stack_outputs.as_deref() == Some(Path::new("-"));
    let mut answers = if io::stdin().is_terminal() && !from_stdin {
        note(
            ctx.quiet,
            &format!("Configuring profile {name} in {}", path.display()),
        );
        let mut prompter =
            Prompter { input: io::stdin().lock(), output: io::stderr() };
        prompter.ask_all(&given, &current)?
    } else {
        merge(&given, &current)
    };
    answers.auth_url = Some(required(
        answers.auth_url,
        "--auth-url",
        "UserAuthApiUrl or CognitoApiEndpoint",
    )?);
    answers.api_url =
        Some(required(answers.api_url, "--api-url", "HttpApiUrl")?);
    let ca_file = match &args.ca_file {
        Some(ca) => Some(absolute_file(ca)?),
        None => file.get(&name, "ca_file").map(PathBuf::from),
    };

    if args.no_verify {
        ctx.detail("not checking the URLs (--no-verify)");
    } else {
        verify(ctx, &answers, ca_file.clone())?;
    }

    let before = file.profile_names();
    apply(
        &mut file,
        &name,
        &answers,
        args.ca_file.as_ref().and(ca_file.as_deref()),
        &stack,
    )?;
    if let Some(default) = new_default(&file, &before, &name, args.default) {
        file.set_default_profile(&default);
        ctx.detail(&format!("default_profile = {default:?}"));
    }
    file.save()?;
    note(ctx.quiet, &format!("Saved profile {name} in {}", path.display()));
    reload(ctx)?;
    note(ctx.quiet, &format!("Next: fkq-cred login --profile {name}"));
    Ok(())
}

/// The `default_profile` to write, if it must change: `name` with
/// `--default` or when it is the only profile; and when a second profile
/// joins a file whose single profile was the default only by being alone,
/// that one, so that commands without `--profile` keep using it.
fn new_default(
    file: &ConfigFile,
    before: &[String],
    name: &str,
    make_default: bool,
) -> Option<String> {
    if make_default {
        return Some(name.to_owned());
    }
    if file.default_profile().is_some() {
        return None;
    }
    match before {
        [] => Some(name.to_owned()),
        [only] if only != name => Some(only.clone()),
        _ => None,
    }
}

fn read_stack_outputs(source: &Path) -> Result<StackValues, CliError> {
    let (shown, text) = if source == Path::new("-") {
        let mut text = String::new();
        io::stdin().read_to_string(&mut text).map_err(|e| {
            CliError::failure(format!(
                "cannot read stack outputs from stdin: {e}"
            ))
        })?;
        ("stdin".to_owned(), text)
    } else {
        let text = std::fs::read_to_string(source).map_err(|e| {
            CliError::usage(format!(
                "cannot read --stack-outputs {}: {e}",
                source.display()
            ))
        })?;
        (source.display().to_string(), text)
    };
    stack_outputs::parse(&text).map_err(|e| {
        CliError::usage(format!("the stack outputs in {shown} {e}"))
    })
}

fn check_profile_name(name: &str) -> Result<(), CliError> {
    let fine = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if fine {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "profile name {name:?}: use letters, digits, '-', '_', '.' or '@'"
        )))
    }
}

fn split_command(text: &str) -> Result<Vec<String>, CliError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    shlex::split(text).filter(|w| !w.is_empty()).ok_or_else(|| {
        CliError::usage(format!(
            "--password-command {text:?} has an unclosed quote"
        ))
    })
}

fn merge(given: &Answers, current: &Answers) -> Answers {
    Answers {
        auth_url: given.auth_url.clone().or_else(|| current.auth_url.clone()),
        api_url: given.api_url.clone().or_else(|| current.api_url.clone()),
        username: given.username.clone().or_else(|| current.username.clone()),
        password_command: given
            .password_command
            .clone()
            .or_else(|| current.password_command.clone()),
    }
}

/// A URL that must be there and look like one; the daemon checks the rest.
fn required(
    value: Option<String>,
    flag: &str,
    output: &str,
) -> Result<String, CliError> {
    let Some(url) =
        value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    else {
        return Err(CliError::usage(format!(
            "no {} given: pass {flag} (the stack output {output}) or --stack-outputs",
            &flag[2..]
        )));
    };
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .and_then(|rest| rest.split('/').next())
        .filter(|host| !host.is_empty());
    if host.is_none() || url.contains(char::is_whitespace) {
        return Err(CliError::usage(format!(
            "{flag} {url:?} is not an https:// URL; use the stack output {output}"
        )));
    }
    Ok(url)
}

fn absolute_file(path: &Path) -> Result<PathBuf, CliError> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    std::fs::File::open(&path).map_err(|e| {
        CliError::usage(format!("--ca-file {}: {e}", path.display()))
    })?;
    Ok(path)
}

fn verify(
    ctx: &Context,
    answers: &Answers,
    ca_file: Option<PathBuf>,
) -> Result<(), CliError> {
    let target = ProbeTarget {
        auth_url: answers.auth_url.clone().unwrap_or_default(),
        api_url: answers.api_url.clone().unwrap_or_default(),
        ca_file,
    };
    let nothing_saved = |mut e: CliError, hint: &str| {
        e.message = format!("{}; nothing was saved ({hint})", e.message);
        e
    };
    match ctx.ask(&Request::Probe(target)) {
        Ok(Response::Done) => {
            note(
                ctx.quiet,
                "Checked: the auth URL and the API URL answer like FormKiQ",
            );
            Ok(())
        }
        Ok(other) => Err(unexpected(&other)),
        Err(e) if e.code == exit::DAEMON_UNREACHABLE => Err(nothing_saved(
            e,
            "fkq-credd checks the URLs: start it, or pass --no-verify",
        )),
        Err(e) => Err(nothing_saved(
            e,
            "fix the URL, or pass --no-verify to save it anyway",
        )),
    }
}

fn apply(
    file: &mut ConfigFile,
    name: &str,
    answers: &Answers,
    new_ca_file: Option<&Path>,
    stack: &StackValues,
) -> Result<(), CliError> {
    let fields = [
        ("auth_url", &answers.auth_url),
        ("api_url", &answers.api_url),
        ("username", &answers.username),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            file.set(name, key, value)?;
        }
    }
    let command = answers.password_command.as_deref().filter(|c| !c.is_empty());
    file.set_password_command(name, command)?;
    if let Some(ca) = new_ca_file {
        let ca = ca.to_str().ok_or_else(|| {
            CliError::usage(format!("--ca-file {ca:?} is not valid UTF-8"))
        })?;
        file.set(name, "ca_file", ca)?;
    }
    if stack.client_id.is_some() || stack.region.is_some() {
        let mut comment = String::from("From the CloudFormation stack outputs");
        if let Some(key) = stack.auth_key {
            comment.push_str(&format!(" (auth_url is {key})"));
        }
        comment.push_str(":\nfor direct Cognito logins,");
        if let Some(region) = &stack.region {
            comment.push_str(&format!(" region = \"{region}\""));
        }
        if let Some(client_id) = &stack.client_id {
            comment.push_str(&format!(" client_id = \"{client_id}\""));
        }
        file.set_profile_comment(name, &comment)?;
    }
    Ok(())
}

fn reload(ctx: &Context) -> Result<(), CliError> {
    match ctx.ask(&Request::Reload) {
        Ok(Response::Done) => {
            note(ctx.quiet, "fkq-credd reread its config");
            Ok(())
        }
        Ok(other) => Err(unexpected(&other)),
        Err(e) if e.code == exit::DAEMON_UNREACHABLE => {
            note(
                ctx.quiet,
                "fkq-credd is not running; it reads the file when it starts",
            );
            Ok(())
        }
        Err(mut e) => {
            e.message = format!(
                "the file was saved, but fkq-credd refused it: {}",
                e.message
            );
            Err(e)
        }
    }
}

/// Asks for each value not given as a flag, showing the current one.
struct Prompter<R, W> {
    input: R,
    output: W,
}

impl<R: BufRead, W: Write> Prompter<R, W> {
    fn ask_all(
        &mut self,
        given: &Answers,
        current: &Answers,
    ) -> Result<Answers, CliError> {
        let mut answers = merge(given, current);
        if given.auth_url.is_none() {
            answers.auth_url = self.ask(
                "Auth URL (stack output UserAuthApiUrl or CognitoApiEndpoint)",
                current.auth_url.as_deref(),
            )?;
        }
        if given.api_url.is_none() {
            answers.api_url = self.ask(
                "API URL (stack output HttpApiUrl)",
                current.api_url.as_deref(),
            )?;
        }
        if given.username.is_none() {
            answers.username =
                self.ask("Username", current.username.as_deref())?;
        }
        if given.password_command.is_none() {
            let shown = current.password_command.as_ref().map(|words| {
                shlex::try_join(words.iter().map(String::as_str))
                    .unwrap_or_else(|_| words.join(" "))
            });
            let answer = self.ask("Password command, for unattended logins (optional; - for none)", shown.as_deref())?;
            answers.password_command = match answer {
                Some(text) if text == CLEAR => None,
                Some(text) if Some(&text) == shown.as_ref() => {
                    current.password_command.clone()
                }
                Some(text) => Some(split_command(&text)?),
                None => None,
            };
        }
        Ok(answers)
    }

    /// One question; an empty answer keeps `current`.
    fn ask(
        &mut self,
        label: &str,
        current: Option<&str>,
    ) -> Result<Option<String>, CliError> {
        let shown = match current {
            Some(value) => format!("{label} [{value}]: "),
            None => format!("{label}: "),
        };
        let fail =
            |e: io::Error| CliError::failure(format!("cannot prompt: {e}"));
        self.output
            .write_all(shown.as_bytes())
            .and_then(|()| self.output.flush())
            .map_err(fail)?;
        let mut line = String::new();
        if self.input.read_line(&mut line).map_err(fail)? == 0 {
            return Err(CliError::usage("input ended before every question was answered; nothing was saved"));
        }
        let answer = line.trim();
        if answer.is_empty() {
            return Ok(current.map(str::to_owned));
        }
        Ok(Some(answer.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(
        input: &str,
        given: &Answers,
        current: &Answers,
    ) -> (Result<Answers, CliError>, String) {
        let mut output = Vec::new();
        let result = Prompter { input: input.as_bytes(), output: &mut output }
            .ask_all(given, current);
        (result, String::from_utf8(output).unwrap())
    }

    #[test]
    fn prompts_show_current_values_and_enter_keeps_them() {
        let current = Answers {
            auth_url: Some("https://auth.example.com/".into()),
            api_url: Some("https://api.example.com/".into()),
            username: Some("me@example.com".into()),
            password_command: Some(vec![
                "pass".into(),
                "show".into(),
                "fkq prod".into(),
            ]),
        };
        let (got, shown) =
            prompt("\n\nyou@example.com\n\n", &Answers::default(), &current);
        let got = got.unwrap();
        assert_eq!(got.username.as_deref(), Some("you@example.com"));
        assert_eq!(got.auth_url, current.auth_url);
        assert_eq!(got.password_command, current.password_command);
        assert!(
            shown.contains("[https://auth.example.com/]")
                && shown.contains("[pass show 'fkq prod']"),
            "{shown}"
        );
    }

    #[test]
    fn flags_skip_their_prompt_and_a_dash_clears_the_password_command() {
        let given = Answers {
            api_url: Some("https://given.example.com/".into()),
            ..Answers::default()
        };
        let current = Answers {
            password_command: Some(vec!["x".into()]),
            ..Answers::default()
        };
        let (got, shown) =
            prompt("https://a.example.com/\nme\n-\n", &given, &current);
        let got = got.unwrap();
        assert!(!shown.contains("API URL"), "{shown}");
        assert_eq!(got.api_url.as_deref(), Some("https://given.example.com/"));
        assert_eq!(got.auth_url.as_deref(), Some("https://a.example.com/"));
        assert_eq!(got.password_command, None);
    }

    #[test]
    fn input_that_ends_early_saves_nothing() {
        let (got, _) = prompt(
            "https://a.example.com/\n",
            &Answers::default(),
            &Answers::default(),
        );
        assert_eq!(got.unwrap_err().code, exit::USAGE);
    }

    #[test]
    fn a_second_profile_keeps_the_first_as_the_default() {
        let file = |text: &str| ConfigFile::parse(text).unwrap();
        let one = file("[profiles.a]\nauth_url = \"https://a/\"\n");
        let before = vec!["a".to_owned()];
        assert_eq!(
            new_default(&one, &before, "b", false).as_deref(),
            Some("a")
        );
        assert_eq!(new_default(&one, &before, "b", true).as_deref(), Some("b"));
        assert_eq!(new_default(&one, &before, "a", false), None);
        let empty = file("");
        assert_eq!(new_default(&empty, &[], "b", false).as_deref(), Some("b"));
        let chosen = file("default_profile = \"a\"\n");
        assert_eq!(new_default(&chosen, &before, "b", false), None);
    }

    #[test]
    fn urls_must_be_there_and_look_like_urls() {
        assert!(required(None, "--api-url", "HttpApiUrl")
            .unwrap_err()
            .message
            .contains("--api-url"));
        assert!(required(
            Some("api.example.com".into()),
            "--api-url",
            "HttpApiUrl"
        )
        .is_err());
        assert!(required(Some("https://".into()), "--api-url", "HttpApiUrl")
            .is_err());
        assert_eq!(
            required(Some(" https://a.b/ ".into()), "--api-url", "x").unwrap(),
            "https://a.b/"
        );
    }
}
