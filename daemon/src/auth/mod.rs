//! The HTTP side: logging in, refreshing and answering a new-password
//! challenge through the profile's provider, calling `/sites`, and turning
//! every way that can fail into an [`AuthError`] that names the URL and
//! the next step.
//!
//! - [`error`]: the errors, and [`Refusal`], what an error reply says.
//! - [`http`]: the shared client, size caps and transport failures.
//! - [`resolve`]: name resolution that never queries `.invalid` names.
//! - [`formkiq`]: the FormKiQ auth endpoint, every dialect.
//! - [`cognito`]: the Cognito user-pool API, spoken directly.
//! - [`probe`]: checking two URLs for `fkq-cred configure`, without
//!   credentials.
//!
//! [`AuthClient`] hides which provider a profile uses: the session code
//! calls the same four methods and gets the same errors either way.
//!
//! Bodies are parsed, never shown: no reply body reaches a log line or a
//! message, because an error body may echo the token it refused.

// Errors carry their URL so every message can name it. They are built
// once per failed HTTP exchange, never on a hot path, so their size does
// not matter.
#![allow(clippy::result_large_err)]

pub mod cognito;
pub mod error;
pub mod formkiq;
pub mod http;
pub mod probe;
pub mod resolve;

use std::sync::Arc;

use fkq_cred_proto::{Secret, Site};
use reqwest::Url;
use serde::Deserialize;

pub use error::{AuthError, Refusal};

use crate::clock::Clock;
use crate::config::{Profile, Provider};
use crate::tokens::{identity_of, TokenSet};
use cognito::Cognito;
use formkiq::{status_error, Formkiq};
use http::{parse_json, Http, Reply};

/// The answer of `GET /sites`.
pub struct SitesAnswer {
    /// The user the server recognised.
    pub username: String,
    /// The sites.
    pub sites: Vec<Site>,
    /// The body, for `--json`.
    pub json: String,
}

/// Who hands out the tokens.
enum Login {
    Formkiq(Formkiq),
    Cognito(Cognito),
}

/// Talks to one profile's deployment: its login provider and its API.
pub struct AuthClient {
    http: Http,
    login: Login,
    api_url: Url,
}

#[derive(Deserialize)]
struct SitesBody {
    username: Option<String>,
    #[serde(default)]
    sites: Vec<SiteBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SiteBody {
    site_id: String,
    permission: Option<String>,
}

/// Joins `path` onto a base URL without doubling or dropping the slash,
/// keeping any stage prefix the base has.
pub fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url.set_query(None);
    url
}

impl AuthClient {
    /// Builds the client for a profile.
    pub fn new(profile: &Profile) -> Result<Self, AuthError> {
        let http = Http::new(profile)?;
        let lifetime = profile.default_lifetime;
        let login = match &profile.provider {
            Provider::Formkiq => Login::Formkiq(Formkiq::new(
                profile.auth_url.clone(),
                profile.api_url.clone(),
                lifetime,
            )),
            Provider::Cognito { client_id, .. } => {
                Login::Cognito(Cognito::new(
                    profile.auth_url.clone(),
                    client_id.clone(),
                    lifetime,
                ))
            }
        };
        Ok(Self { http, login, api_url: profile.api_url.clone() })
    }

    /// Dates replies with `clock` instead of the system clock, so a token's
    /// expiry and the session's idea of "now" come from the same clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.http.set_clock(clock);
        self
    }

    /// Logs in with a password. A user who must first choose a new
    /// password gets [`AuthError::ChallengeRequired`], whose session
    /// [`answer_new_password`](Self::answer_new_password) takes.
    pub async fn login(
        &self,
        username: &str,
        password: &Secret,
    ) -> Result<TokenSet, AuthError> {
        match &self.login {
            Login::Formkiq(p) => p.login(&self.http, username, password).await,
            Login::Cognito(p) => p.login(&self.http, username, password).await,
        }
    }

    /// Renews the tokens of `previous`, keeping its refresh token unless
    /// the reply brings a new one.
    pub async fn refresh(
        &self,
        previous: &TokenSet,
    ) -> Result<TokenSet, AuthError> {
        match &self.login {
            Login::Formkiq(p) => p.refresh(&self.http, previous).await,
            Login::Cognito(p) => p.refresh(&self.http, previous).await,
        }
    }

    /// Sets the first password of a user with the challenge's session, and
    /// returns the tokens of the login that follows.
    pub async fn answer_new_password(
        &self,
        username: &str,
        session: &Secret,
        new_password: &Secret,
    ) -> Result<TokenSet, AuthError> {
        match &self.login {
            Login::Formkiq(p) => {
                p.answer_new_password(
                    &self.http,
                    username,
                    session,
                    new_password,
                )
                .await
            }
            Login::Cognito(p) => {
                p.answer_new_password(
                    &self.http,
                    username,
                    session,
                    new_password,
                )
                .await
            }
        }
    }

    /// `GET {api}/sites` with the access token.
    pub async fn sites(
        &self,
        access: &Secret,
    ) -> Result<SitesAnswer, AuthError> {
        let url = endpoint(&self.api_url, "sites");
        let request =
            self.http.client().get(url.clone()).bearer_auth(access.expose());
        let Reply { status, body, .. } = self.http.send(request, &url).await?;
        match status.as_u16() {
            200..=299 => {}
            401 => return Err(AuthError::Unauthorized { url }),
            403 => {
                return Err(AuthError::Forbidden {
                    url,
                    identity: identity_of(access.expose()),
                })
            }
            404 => return Err(AuthError::ApiNotFound { url }),
            _ => return Err(status_error(url, status)),
        }
        let parsed: SitesBody = parse_json(&url, status, &body)?;
        let sites = parsed
            .sites
            .into_iter()
            .map(|s| Site {
                site_id: s.site_id,
                permission: s.permission.unwrap_or_default(),
            })
            .collect();
        let json = String::from_utf8_lossy(&body).into_owned();
        Ok(SitesAnswer {
            username: parsed.username.unwrap_or_default(),
            sites,
            json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_join_without_doubling_slashes_and_keep_stage_paths() {
        let join = |base: &str, path: &str| {
            endpoint(&Url::parse(base).unwrap(), path).to_string()
        };
        assert_eq!(
            join("https://a.example.com", "login"),
            "https://a.example.com/login"
        );
        assert_eq!(
            join("https://a.example.com/", "login"),
            "https://a.example.com/login"
        );
        assert_eq!(
            join("https://a.example.com/prod/", "login/refresh"),
            "https://a.example.com/prod/login/refresh"
        );
        assert_eq!(
            join("https://a.example.com/prod", "/sites"),
            "https://a.example.com/prod/sites"
        );
    }
}
