//! Checking two URLs before `fkq-cred configure` saves them: is the first
//! a FormKiQ auth endpoint and the second a FormKiQ API? Both checks go
//! without credentials, so a wrong URL never receives a password.
//!
//! - `POST {auth}/login` with an empty JSON object: FormKiQ's auth Lambda
//!   answers 400 with a JSON error (fields missing); the API answers 404.
//! - `GET {api}/sites` without a token: the API's authorizer answers 401
//!   with a JSON message; the auth endpoint answers 404.

use std::path::Path;

use fkq_cred_proto::{ErrorKind, ProbeTarget, WireError};
use reqwest::Url;
use serde_json::{Map, Value};

use super::http::{parse_json, Reply};
use super::{endpoint, status_error, AuthClient, AuthError, Login};
use crate::config::{Config, ConfigError};

/// The profile name used for the URLs while they are checked.
const PROBE_PROFILE: &str = "probe";

/// Checks `target` as a profile with these URLs would be used: the same
/// URL rules (https, or http on loopback) and the same TLS trust.
pub async fn check(target: &ProbeTarget) -> Result<(), WireError> {
    let config = Config::parse(&profile_toml(target)?, Path::new("configure"))
        .map_err(|e| {
            let message = match e {
                ConfigError::Profile { message, .. } => message,
                other => other.to_string(),
            };
            WireError::new(ErrorKind::Config, message)
        })?;
    let Some(profile) = config.profiles.get(PROBE_PROFILE) else {
        return Err(WireError::new(
            ErrorKind::Internal,
            "the probe profile vanished while it was parsed",
        ));
    };
    let client = AuthClient::new(profile).map_err(|e| e.to_wire())?;
    let result = client.probe().await;
    match &result {
        Ok(()) => tracing::info!(
            auth_url = %profile.auth_url,
            api_url = %profile.api_url,
            "endpoints look like FormKiQ"
        ),
        Err(e) => tracing::info!(error = %e, "endpoint check failed"),
    }
    result.map_err(|e| e.to_wire())
}

/// The URLs as the text of a config file, so they are read by exactly the
/// rules that will read them once saved.
fn profile_toml(target: &ProbeTarget) -> Result<String, WireError> {
    let mut profile = toml::Table::new();
    profile.insert("auth_url".into(), target.auth_url.clone().into());
    profile.insert("api_url".into(), target.api_url.clone().into());
    if let Some(ca) = &target.ca_file {
        let ca = ca.to_str().ok_or_else(|| {
            WireError::new(
                ErrorKind::Config,
                format!("ca_file {ca:?} is not valid UTF-8; move it"),
            )
        })?;
        profile.insert("ca_file".into(), ca.into());
    }
    let mut profiles = toml::Table::new();
    profiles.insert(PROBE_PROFILE.into(), profile.into());
    let mut root = toml::Table::new();
    root.insert("profiles".into(), profiles.into());
    toml::to_string(&root).map_err(|e| {
        WireError::new(ErrorKind::Internal, format!("cannot encode: {e}"))
    })
}

impl AuthClient {
    /// Checks both endpoints without credentials; the error names the URL
    /// that is wrong and what it probably is instead.
    pub async fn probe(&self) -> Result<(), AuthError> {
        // A Cognito user pool has no request that tells it apart without
        // credentials; `configure` writes FormKiQ profiles only, so there
        // the API alone is checked.
        if let Login::Formkiq(formkiq) = &self.login {
            self.probe_auth(formkiq.auth_url()).await?;
        }
        self.probe_api().await
    }

    async fn probe_auth(&self, auth_url: &Url) -> Result<(), AuthError> {
        let url = endpoint(auth_url, "login");
        let empty = Value::Object(Map::new());
        let request = self.http.client().post(url.clone()).json(&empty);
        let Reply { status, body, .. } = self.http.send(request, &url).await?;
        match status.as_u16() {
            400 | 401 => parse_json::<Map<String, Value>>(&url, status, &body)
                .map(|_| ()),
            403 | 404 => Err(AuthError::LoginNotFound {
                url,
                status,
                api_url: self.api_url.clone(),
            }),
            200..=299 => Err(AuthError::UnexpectedStatus { url, status }),
            _ => Err(status_error(url, status)),
        }
    }

    async fn probe_api(&self) -> Result<(), AuthError> {
        let url = endpoint(&self.api_url, "sites");
        let request = self.http.client().get(url.clone());
        let Reply { status, body, .. } = self.http.send(request, &url).await?;
        match status.as_u16() {
            401 => parse_json::<Map<String, Value>>(&url, status, &body)
                .map(|_| ()),
            404 => Err(AuthError::ApiNotFound { url }),
            200..=299 | 403 => Err(AuthError::UnexpectedStatus { url, status }),
            _ => Err(status_error(url, status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_held_to_the_config_files_rules() {
        let target = ProbeTarget {
            auth_url: "http://auth.example.com/".into(),
            api_url: "https://api.example.com/".into(),
            ca_file: None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = runtime.block_on(check(&target)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(
            err.message.contains("https://") && !err.message.contains("probe"),
            "{err}"
        );
    }
}
