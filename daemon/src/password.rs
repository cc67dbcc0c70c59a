//! Running a profile's `password_command` for unattended logins.
//!
//! The command runs without a shell (the config gives argv directly), with
//! stdin closed and stderr discarded, under a timeout. Only the first line
//! of its stdout is used. Its output never appears in errors or logs.

use std::process::Stdio;
use std::time::Duration;

use fkq_cred_proto::Secret;
use tokio::io::AsyncReadExt;
use zeroize::Zeroize;

/// How long a password command may take. Long enough for a hardware token
/// or a pinentry that is already unlocked, short enough that a hung one
/// does not hold a session forever.
pub const PASSWORD_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of the command's output that is read.
const MAX_OUTPUT: u64 = 64 * 1024;

/// Runs `argv` and returns the first line of its stdout, or a message that
/// says what failed without quoting the output.
pub async fn run(argv: &[String]) -> Result<Secret, String> {
    let program = argv.first().ok_or("password_command is empty")?;
    let mut child = tokio::process::Command::new(program)
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            format!("password_command {program:?} could not start: {e}")
        })?;
    let mut stdout =
        child.stdout.take().ok_or("password_command has no stdout")?;
    let work = async {
        let mut output = Vec::new();
        (&mut stdout)
            .take(MAX_OUTPUT)
            .read_to_end(&mut output)
            .await
            .map_err(|e| e.to_string())?;
        let status = child.wait().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, output))
    };
    let (status, mut output) =
        tokio::time::timeout(PASSWORD_COMMAND_TIMEOUT, work)
            .await
            .map_err(|_| {
                format!(
                    "password_command {program:?} did not finish within {} s",
                    PASSWORD_COMMAND_TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| format!("password_command {program:?} failed: {e}"))?;
    if !status.success() {
        output.zeroize();
        return Err(format!(
            "password_command {program:?} exited with {status}"
        ));
    }
    let line = output.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let password = std::str::from_utf8(line).map(str::to_owned);
    output.zeroize();
    match password {
        Ok(p) if !p.is_empty() => Ok(Secret::new(p)),
        Ok(_) => Err(format!(
            "password_command {program:?} printed an empty first line"
        )),
        Err(_) => Err(format!(
            "password_command {program:?} printed something that is not UTF-8"
        )),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn argv(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn first_line_of_stdout_is_the_password() {
        let secret = run(&argv("printf 'pw-1\\nsecond\\n'")).await.unwrap();
        assert_eq!(secret.expose(), "pw-1");
    }

    #[tokio::test]
    async fn failures_are_reported_without_the_output() {
        let err = run(&argv("echo leaked-sentinel; exit 3")).await.unwrap_err();
        assert!(
            err.contains("exit status: 3") && !err.contains("leaked-sentinel"),
            "{err}"
        );
        let err = run(&["/nonexistent/pw".into()]).await.unwrap_err();
        assert!(err.contains("could not start"), "{err}");
    }

    #[tokio::test]
    async fn stdin_is_closed_so_a_prompting_command_fails_instead_of_hanging() {
        let err =
            run(&argv("read line || exit 9; echo $line")).await.unwrap_err();
        assert!(err.contains("exit status: 9"), "{err}");
    }
}
