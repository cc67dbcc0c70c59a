//! `fkq-cred completions SHELL` and `fkq-cred man`: both generated from
//! the same clap definition as `--help`, so they cannot drift apart.

use std::path::Path;

use clap_complete::Shell;

use crate::cli;
use crate::error::CliError;
use crate::output;

/// The program name completions and pages are written for.
const BIN: &str = "fkq-cred";

/// Prints the completion script for `shell`.
pub fn completions(shell: Shell) -> Result<(), CliError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cli::command(), BIN, &mut script);
    output::stdout(&String::from_utf8_lossy(&script))
}

/// Prints `fkq-cred.1`, or writes it and one page per command into `dir`.
pub fn man(dir: Option<&Path>) -> Result<(), CliError> {
    let mut command = cli::command();
    command.build();
    let Some(dir) = dir else {
        return output::stdout(&render(command)?);
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        CliError::failure(format!("cannot create {}: {e}", dir.display()))
    })?;
    let mut pages = vec![(BIN.to_owned(), command.clone())];
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("{BIN}-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, render(page)?).map_err(|e| {
            CliError::failure(format!("cannot write {}: {e}", path.display()))
        })?;
    }
    Ok(())
}

/// Renders one page. clap_mangen writes the standard sections; the text
/// after the options is written here, unfilled, because it is laid out
/// in columns and example lines that man must not reflow: the exit code
/// table as EXIT STATUS, a command's examples as EXAMPLES.
fn render(command: clap::Command) -> Result<String, CliError> {
    let failed = |e: std::io::Error| {
        CliError::failure(format!("cannot render the man page: {e}"))
    };
    let man = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    man.render_title(&mut page).map_err(failed)?;
    man.render_name_section(&mut page).map_err(failed)?;
    man.render_synopsis_section(&mut page).map_err(failed)?;
    man.render_description_section(&mut page).map_err(failed)?;
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page).map_err(failed)?;
    }
    if command.has_subcommands() {
        man.render_subcommands_section(&mut page).map_err(failed)?;
    }
    let mut text = String::from_utf8(page).map_err(|e| {
        CliError::failure(format!("the man page is not UTF-8: {e}"))
    })?;
    if let Some(examples) = command.get_after_help() {
        text.push_str(&verbatim_section("EXAMPLES", &examples.to_string()));
    }
    if let Some(codes) = command.get_after_long_help() {
        text.push_str(&verbatim_section("EXIT STATUS", &codes.to_string()));
    }
    Ok(text)
}

/// A section whose lines man shows as they are.
fn verbatim_section(title: &str, body: &str) -> String {
    let mut lines = body.lines().peekable();
    // The heading already says it.
    if lines.peek().is_some_and(|l| l.ends_with(':') && !l.starts_with(' ')) {
        lines.next();
    }
    let mut roff = format!(".SH \"{title}\"\n.nf\n");
    for line in lines {
        let line = line.replace('\\', "\\e").replace('-', "\\-");
        if line.starts_with(['.', '\'']) {
            roff.push_str("\\&");
        }
        roff.push_str(&line);
        roff.push('\n');
    }
    roff.push_str(".fi\n");
    roff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_shows_a_realistic_example_in_its_help() {
        let command = cli::command();
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help")
        {
            let after = sub.get_after_help().map(|h| h.to_string());
            let after = after.unwrap_or_default();
            assert!(
                after.contains("Example") && after.contains("fkq-cred "),
                "`fkq-cred {} --help` shows no example",
                sub.get_name()
            );
        }
    }

    #[test]
    fn the_man_page_documents_every_command_and_the_exit_codes() {
        let mut command = cli::command();
        command.build();
        let page = render(command.clone()).unwrap().replace('\\', "");
        for name in ["get", "env", "exec", "configure", "git-credential"] {
            assert!(page.contains(&format!("fkq-cred-{name}(1)")), "{name}");
        }
        assert!(page.contains(".SH \"EXIT STATUS\""), "{page}");
        assert!(page.contains("  3  login-required"), "{page}");

        let exec = command.find_subcommand("exec").unwrap().clone();
        let page = render(exec).unwrap();
        assert!(
            page.contains(".SH \"EXAMPLES\"\n.nf\n  fkq\\-cred exec"),
            "{page}"
        );
    }
}
