//! The quoting of `fkq-cred env`, evaluated by the real bash, dash and fish
//! (CI installs fish), and by a PowerShell parser written from the
//! language specification's rules for verbatim strings, since pwsh is not
//! packaged for Debian.

use std::process::Command;

use super::*;

/// Values that break naive quoting in at least one of the shells.
const TRICKY: &[&str] = &[
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln-_",
    "https://api.example.com/it's/$HOME/`id`/$(id)",
    "a'b''c'",
    r"back\slash\ and \' and \\",
    "new\nline\n",
    "\"double\" $PATH ${x} !! #not-a-comment",
    "tab\tsemi;colon & pipe | star * ~",
    "typographic ‘single’ ‚low‛ and “double”",
    "' ; echo broke-out ; '",
    "",
];

fn pairs(value: &str) -> Vec<(&str, Option<&str>)> {
    vec![
        (TOKEN_VAR, Some(value)),
        (EXPIRES_VAR, None),
        (API_URL_VAR, Some("https://api.example.com")),
    ]
}

/// Runs `script` with the rendered commands as its first argument and
/// returns the NUL-separated values it printed.
fn run_shell(program: &str, script: &str, rendered: &str) -> Vec<String> {
    let mut command = Command::new(program);
    command.arg("-c").arg(script);
    if program != "fish" {
        // POSIX shells give the first argument after the script to $0.
        command.arg(program);
    }
    let out = command
        .arg(rendered)
        .env("FKQ_TOKEN_EXPIRES_AT", "stale value from an earlier eval")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}); install it, e.g. apt-get install {program}")
        });
    assert!(
        out.status.success(),
        "{program} failed on:\n{rendered}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let mut values: Vec<String> = text.split('\0').map(str::to_owned).collect();
    assert_eq!(values.pop().as_deref(), Some(""), "output ends in NUL");
    values
}

const POSIX_SCRIPT: &str = r#"eval "$1"; printf '%s\0' "$AUTHORIZATION_TOKEN" "${FKQ_TOKEN_EXPIRES_AT-<unset>}" "$HTTP_API_URL"; env | grep -c '^AUTHORIZATION_TOKEN=' | tr -d '\n'; printf '\0'"#;

fn check_posix(shell: &str) {
    for value in TRICKY {
        let rendered = render(ShellKind::Sh, &pairs(value)).unwrap();
        let got = run_shell(shell, POSIX_SCRIPT, &rendered);
        assert_eq!(
            got,
            [*value, "<unset>", "https://api.example.com", "1"],
            "{shell} on {rendered:?}"
        );
    }
}

#[test]
fn bash_eval_yields_every_value_exactly_and_exported() {
    check_posix("bash");
}

#[test]
fn dash_eval_yields_every_value_exactly() {
    check_posix("dash");
}

#[test]
fn fish_source_yields_every_value_exactly_and_exported() {
    let script = r#"printf '%s' $argv[1] | source
if set -q FKQ_TOKEN_EXPIRES_AT; set expires $FKQ_TOKEN_EXPIRES_AT; else; set expires '<unset>'; end
printf '%s\0' "$AUTHORIZATION_TOKEN" $expires "$HTTP_API_URL"
env | grep -c '^AUTHORIZATION_TOKEN=' | tr -d '\n'; printf '\0'"#;
    for value in TRICKY {
        let rendered = render(ShellKind::Fish, &pairs(value)).unwrap();
        let got = run_shell("fish", script, &rendered);
        assert_eq!(
            got,
            [*value, "<unset>", "https://api.example.com", "1"],
            "fish on {rendered:?}"
        );
    }
}

/// Evaluates lines of `$env:NAME = '...';` and `$env:NAME = $null;` the
/// way PowerShell's tokenizer reads them: a verbatim string opens with any
/// single-quote character (' ‘ ’ ‚ ‛), two of them in a row stand for one,
/// and a lone one ends the string; everything else, newlines included, is
/// literal.
fn powershell_eval(text: &str) -> Vec<(String, Option<String>)> {
    let is_quote = |c: char| POWERSHELL_QUOTES.contains(&c);
    let mut vars = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let body = rest.strip_prefix("$env:").expect("statement starts $env:");
        let eq = body.find(" = ").expect("assignment");
        let name = &body[..eq];
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let mut chars = body[eq + 3..].char_indices().peekable();
        let value = match chars.next() {
            Some((_, '$')) => {
                let tail = &body[eq + 3..];
                assert!(tail.starts_with("$null;"), "{tail:?}");
                rest = &tail["$null;".len()..];
                None
            }
            Some((_, c)) if is_quote(c) => {
                let mut value = String::new();
                let end = loop {
                    let (i, c) = chars.next().expect("string is closed");
                    if is_quote(c) {
                        match chars.peek() {
                            Some(&(_, next)) if is_quote(next) => {
                                chars.next();
                                value.push(next);
                                continue;
                            }
                            _ => break i + c.len_utf8(),
                        }
                    }
                    value.push(c);
                };
                let tail = &body[eq + 3 + end..];
                rest = tail.strip_prefix(';').unwrap_or_else(|| {
                    panic!("statement ends after the string: {tail:?}")
                });
                Some(value)
            }
            other => panic!("unexpected value start {other:?}"),
        };
        rest = rest.strip_prefix('\n').expect("one statement per line");
        vars.push((name.to_owned(), value));
    }
    vars
}

#[test]
fn powershell_verbatim_strings_yield_every_value_exactly() {
    for value in TRICKY {
        let rendered = render(ShellKind::Powershell, &pairs(value)).unwrap();
        let got = powershell_eval(&rendered);
        let expected = vec![
            (TOKEN_VAR.to_owned(), Some((*value).to_owned())),
            (EXPIRES_VAR.to_owned(), None),
            (API_URL_VAR.to_owned(), Some("https://api.example.com".into())),
        ];
        assert_eq!(got, expected, "on {rendered:?}");
    }
}

#[test]
fn the_powershell_parser_would_catch_an_undoubled_typographic_quote() {
    // Guards the guard: a quoter that doubled only the ASCII quote would
    // let ’ end the string early, and the parser must notice.
    let naive = "$env:X = 'it’s';\n";
    let result = std::panic::catch_unwind(|| powershell_eval(naive));
    assert!(result.is_err(), "the parser accepted {naive:?}");
}

#[test]
fn a_nul_byte_is_refused_rather_than_cut_short() {
    let err = render(ShellKind::Sh, &[(TOKEN_VAR, Some("a\0b"))]).unwrap_err();
    assert!(err.message.contains("NUL"), "{err}");
}
