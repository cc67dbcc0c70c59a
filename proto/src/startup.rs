//! The readiness report of a daemon that a client started.
//!
//! The client passes the daemon one end of a socket pair
//! (`fkq-credd --ready-fd N`) and reads the other. The daemon writes one
//! line once its socket listens, or once it knows it cannot start, and
//! closes its end: the client waits for exactly that moment instead of
//! sleeping and polling. A daemon that dies before writing closes the
//! pair by dying, which the client sees as end of file.

/// The daemon argument naming the descriptor to report on.
pub const READY_FD_ARG: &str = "--ready-fd";

/// The daemon argument saying a client started it only because a command
/// needed it, so the config's `autostart = false` forbids the start.
pub const AUTOSTART_ARG: &str = "--autostart";

/// What a starting daemon reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The socket listens; connections are served.
    Ready,
    /// The daemon will not run; `code` is its exit code from
    /// [`crate::exit`] and `message` says why, for the person at the
    /// terminal.
    Failed {
        /// The exit code.
        code: u8,
        /// One line: what happened and what to do.
        message: String,
    },
}

impl Report {
    /// The report as one line of text.
    pub fn encode(&self) -> String {
        match self {
            Self::Ready => "ready\n".into(),
            Self::Failed { code, message } => {
                let one_line = message.replace(['\n', '\r'], " ");
                format!("failed {code} {one_line}\n")
            }
        }
    }

    /// Parses a report; `None` for anything else, such as the empty text
    /// of a daemon that died before reporting.
    pub fn parse(text: &str) -> Option<Self> {
        let line = text.lines().next()?;
        if line == "ready" {
            return Some(Self::Ready);
        }
        let rest = line.strip_prefix("failed ")?;
        let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
        Some(Self::Failed { code: code.parse().ok()?, message: message.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_as_one_line() {
        let failed =
            Report::Failed { code: 10, message: "bad\nconfig: fix it".into() };
        let text = failed.encode();
        assert_eq!(text.lines().count(), 1);
        assert_eq!(
            Report::parse(&text),
            Some(Report::Failed {
                code: 10,
                message: "bad config: fix it".into()
            })
        );
        assert_eq!(Report::parse(&Report::Ready.encode()), Some(Report::Ready));
        assert_eq!(Report::parse(""), None);
        assert_eq!(Report::parse("failed x y"), None);
    }
}
