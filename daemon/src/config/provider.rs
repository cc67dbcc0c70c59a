//! The `provider` key of a profile and the keys that go with it: the
//! FormKiQ auth endpoint (`auth_url`), or the Cognito user pool directly
//! (`region`, `client_id`, `cognito_endpoint`).

use reqwest::Url;

use super::{parse_url, FileProfile};

/// Who a profile logs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// The deployment's auth endpoint (`auth_url`): `/login` and friends.
    Formkiq,
    /// The deployment's Cognito user pool, through its app client.
    Cognito {
        /// The AWS region of the pool, e.g. `us-east-1`.
        region: String,
        /// The app client id: stack output `CognitoClientId`.
        client_id: String,
    },
}

/// Reads `provider` and the keys that go with it, returning the provider
/// and the URL logins go to.
pub(super) fn provider_of(
    raw: &FileProfile,
) -> Result<(Provider, Url), String> {
    match raw.provider.as_deref().unwrap_or("formkiq") {
        "formkiq" => {
            if raw.region.is_some()
                || raw.client_id.is_some()
                || raw.cognito_endpoint.is_some()
            {
                return Err("region, client_id and cognito_endpoint belong to \
                            provider = \"cognito\"; add that line or remove them"
                    .into());
            }
            let Some(auth_url) = &raw.auth_url else {
                return Err("auth_url is missing: set it to the stack output \
                            UserAuthApiUrl (or CognitoApiEndpoint), or use \
                            provider = \"cognito\" with region and client_id"
                    .into());
            };
            let url = parse_url(
                "auth_url",
                auth_url,
                "UserAuthApiUrl or CognitoApiEndpoint",
            )?;
            Ok((Provider::Formkiq, url))
        }
        "cognito" => {
            if raw.auth_url.is_some() {
                return Err(
                    "auth_url is not used with provider = \"cognito\", \
                            which talks to the user pool directly; remove it \
                            (cognito_endpoint overrides the pool's URL)"
                        .into(),
                );
            }
            let region = raw.region.as_deref().unwrap_or_default();
            let is_region = !region.is_empty()
                && region.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
                });
            if !is_region {
                return Err(format!(
                    "region = {region:?} is not an AWS region name; with \
                     provider = \"cognito\" set it to the pool's region, \
                     e.g. \"us-east-1\" (the first part of CognitoUserPoolId)"
                ));
            }
            let client_id = raw.client_id.as_deref().unwrap_or_default();
            if client_id.is_empty()
                || !client_id.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "client_id = {client_id:?} is not an app client id; with \
                     provider = \"cognito\" set it to the stack output \
                     CognitoClientId"
                ));
            }
            let endpoint = raw.cognito_endpoint.clone().unwrap_or_else(|| {
                crate::auth::cognito::regional_endpoint(region)
            });
            let url = parse_url(
                "cognito_endpoint",
                &endpoint,
                "the user pool's API",
            )?;
            let provider = Provider::Cognito {
                region: region.to_owned(),
                client_id: client_id.to_owned(),
            };
            Ok((provider, url))
        }
        other => Err(format!(
            "provider = {other:?} is unknown; use \"formkiq\" (the default) \
             or \"cognito\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/cfg/config.toml"))
    }

    #[test]
    fn a_cognito_profile_needs_region_and_client_id_and_no_auth_url() {
        let config = parse(
            r#"
            [profiles.direct]
            provider = "cognito"
            region = "eu-central-1"
            client_id = "4abc5def6ghi"
            api_url = "https://api.example.com/"
            "#,
        )
        .unwrap();
        let direct = &config.profiles["direct"];
        assert_eq!(
            direct.provider,
            Provider::Cognito {
                region: "eu-central-1".into(),
                client_id: "4abc5def6ghi".into()
            }
        );
        assert_eq!(
            direct.auth_url.as_str(),
            "https://cognito-idp.eu-central-1.amazonaws.com/"
        );

        let with = |lines: &str| {
            parse(&format!(
                "[profiles.p]\napi_url = \"https://api.example.com\"\n{lines}"
            ))
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        let cognito = "provider = \"cognito\"\n";
        let endpoint = "cognito_endpoint = \"http://127.0.0.1:5000/\"\n";
        assert!(with(&format!(
            "{cognito}region = \"us-east-1\"\nclient_id = \"abc\"\n{endpoint}"
        ))
        .is_ok());
        let err = with(&format!("{cognito}client_id = \"abc\"\n")).unwrap_err();
        assert!(err.contains("region"), "{err}");
        let err =
            with(&format!("{cognito}region = \"us-east-1\"\n")).unwrap_err();
        assert!(err.contains("CognitoClientId"), "{err}");
        let err = with(&format!(
            "{cognito}region = \"us-east-1\"\nclient_id = \"abc\"\nauth_url = \"https://a\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("auth_url is not used"), "{err}");
        let err = with("provider = \"okta\"\nauth_url = \"https://a\"\n")
            .unwrap_err();
        assert!(err.contains("okta"), "{err}");
        let err = with("region = \"us-east-1\"\nauth_url = \"https://a\"\n")
            .unwrap_err();
        assert!(err.contains("provider = \"cognito\""), "{err}");
        let err = with("").unwrap_err();
        assert!(err.contains("auth_url is missing"), "{err}");
    }
}
