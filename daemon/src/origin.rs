//! Who started the daemon. That decides who may stop or replace it: a
//! client may replace a daemon a client started, systemd alone restarts
//! its own, and a daemon started by hand is left to the person who did.

use fkq_cred_proto::handshake::daemon_flags;

/// How this daemon came to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// Started by hand: a terminal, a script, a supervisor of the user's.
    #[default]
    Manual,
    /// Started by `fkq-cred`: an auto-start, or `fkq-cred daemon start`.
    Client,
    /// Started by systemd; `activated` when its socket unit passed the
    /// listening socket.
    Systemd {
        /// Whether the socket came from `fkq-cred.socket`.
        activated: bool,
    },
}

impl Origin {
    /// The bits this daemon sets in its greeting.
    pub fn greeting_flags(self) -> u8 {
        match self {
            Self::Manual => 0,
            Self::Client => daemon_flags::STARTED_BY_CLIENT,
            Self::Systemd { .. } => daemon_flags::UNDER_SYSTEMD,
        }
    }

    /// Whether the daemon runs only because something needed it and is
    /// started again on the next need (by a client, or by its socket
    /// unit), so exiting when idle costs nothing but a fresh login.
    pub fn is_on_demand(self) -> bool {
        matches!(self, Self::Client | Self::Systemd { activated: true })
    }

    /// Whether a newer client may stop this daemon to start its own.
    pub fn is_replaceable(self) -> bool {
        self == Self::Client
    }

    /// A word for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "by hand",
            Self::Client => "by fkq-cred",
            Self::Systemd { activated: false } => "by systemd",
            Self::Systemd { activated: true } => "by systemd socket activation",
        }
    }
}
