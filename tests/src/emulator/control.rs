//! The emulator's control routes under `{auth}/_emulator/`: counters,
//! faults and runtime settings. A real deployment has none of these; tests
//! use them to look inside and to make the emulator misbehave on purpose.
//!
//! | method and path | what it does |
//! |---|---|
//! | `GET _emulator/counters` | the [`Counters`](super::Counters) |
//! | `POST _emulator/reset` | zeroes the counters |
//! | `GET _emulator/faults` | the pending faults |
//! | `POST _emulator/faults` | queues one [`Fault`] |
//! | `DELETE _emulator/faults` | clears every fault |
//! | `GET _emulator/settings` | the [`Settings`] |
//! | `POST _emulator/settings` | changes the settings named in the body |

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::faults::Fault;
use super::routes::{not_found, Answer, AppState, BodyError};

/// The path on the auth server where settings are read and changed.
pub const SETTINGS_PATH: &str = "_emulator/settings";

/// The switches a test may flip while the emulator runs, as
/// `GET _emulator/settings` reports them.
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize,
)]
#[serde(default)]
pub struct Settings {
    /// Each refresh returns a new refresh token and invalidates the one it
    /// was given (single use), as Cognito does with rotation enabled.
    pub rotate_refresh_tokens: bool,
}

/// A `POST _emulator/settings` body: only the named settings change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    rotate_refresh_tokens: Option<bool>,
}

/// The settings as the handlers read them.
#[derive(Debug, Default)]
pub(crate) struct LiveSettings {
    rotate_refresh_tokens: AtomicBool,
}

impl LiveSettings {
    /// Settings starting as `settings`.
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            rotate_refresh_tokens: AtomicBool::new(
                settings.rotate_refresh_tokens,
            ),
        }
    }

    /// Whether refreshes rotate the refresh token.
    pub(crate) fn rotates_refresh_tokens(&self) -> bool {
        self.rotate_refresh_tokens.load(Ordering::SeqCst)
    }

    /// Turns refresh token rotation on or off.
    pub(crate) fn set_rotate_refresh_tokens(&self, rotate: bool) {
        self.rotate_refresh_tokens.store(rotate, Ordering::SeqCst);
    }

    /// The settings as they are now.
    pub(crate) fn snapshot(&self) -> Settings {
        Settings { rotate_refresh_tokens: self.rotates_refresh_tokens() }
    }
}

/// Answers a request under `/_emulator/`.
pub(crate) fn handle(
    state: &AppState,
    method: &Method,
    path: &str,
    body: Result<Bytes, BodyError>,
) -> Answer {
    let path = path.trim_start_matches('/');
    match (method, path) {
        (&Method::GET, super::COUNTERS_PATH) => {
            Answer::json(StatusCode::OK, &state.counters.snapshot())
        }
        (&Method::POST, super::RESET_PATH) => {
            state.counters.reset();
            Answer::json(StatusCode::OK, &state.counters.snapshot())
        }
        (&Method::GET, super::FAULTS_PATH) => pending_faults(state),
        (&Method::POST, super::FAULTS_PATH) => {
            match body_as::<Fault>(body).and_then(|f| {
                f.check().map_err(|why| bad_request(&why))?;
                Ok(f)
            }) {
                Ok(fault) => {
                    state.faults.push(fault);
                    pending_faults(state)
                }
                Err(refused) => refused,
            }
        }
        (&Method::DELETE, super::FAULTS_PATH) => {
            state.faults.clear();
            pending_faults(state)
        }
        (&Method::GET, SETTINGS_PATH) => {
            Answer::json(StatusCode::OK, &state.settings.snapshot())
        }
        (&Method::POST, SETTINGS_PATH) => {
            match body_as::<SettingsChange>(body) {
                Ok(change) => {
                    if let Some(rotate) = change.rotate_refresh_tokens {
                        state.settings.set_rotate_refresh_tokens(rotate);
                    }
                    Answer::json(StatusCode::OK, &state.settings.snapshot())
                }
                Err(refused) => refused,
            }
        }
        _ => not_found(),
    }
}

fn pending_faults(state: &AppState) -> Answer {
    Answer::json(StatusCode::OK, &json!({ "faults": state.faults.pending() }))
}

/// Reads a control body, saying exactly what is wrong with it: these
/// routes are for test authors, who need the parser's words.
fn body_as<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BodyError>,
) -> Result<T, Answer> {
    let bytes = body.map_err(BodyError::answer)?;
    serde_json::from_slice(&bytes)
        .map_err(|cause| bad_request(&format!("bad control body: {cause}")))
}

fn bad_request(why: &str) -> Answer {
    Answer::message(StatusCode::BAD_REQUEST, why)
}
