//! The tokens a login or refresh yields, and when they expire.
//!
//! Expiry is anchored to the moment the reply arrived, never to the server's
//! clock: `ExpiresIn` when the reply has it, else the JWT's `exp - iat`
//! lifetime, else `exp` itself compared with the local clock, else the
//! profile's `default_lifetime`. A client clock that is hours off therefore
//! neither refreshes in a loop nor serves stale tokens.
//!
//! Replies are read leniently: every field may be absent, null or empty,
//! `ExpiresIn` may come as a number or a numeric string, and tokens need
//! not be JWTs (a self-hosted server's API key is not).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use fkq_cred_proto::{Secret, TokenKind};
use serde::{Deserialize, Deserializer};

/// The `AuthenticationResult` object of a FormKiQ or Cognito reply. Every
/// field may be absent, null or empty on some deployment.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct AuthResult {
    /// The token the FormKiQ API wants.
    pub access_token: Option<Secret>,
    /// The OpenID token.
    pub id_token: Option<Secret>,
    /// The opaque token that renews the other two.
    pub refresh_token: Option<Secret>,
    /// `Bearer`, when stated.
    pub token_type: Option<String>,
    /// Lifetime of the access token in seconds, from receipt.
    #[serde(default, deserialize_with = "lenient_seconds")]
    pub expires_in: Option<i64>,
}

/// Reads `ExpiresIn` as a number, a whole-valued float or a numeric
/// string; anything else counts as absent, so the JWT's own expiry is
/// used instead of failing the whole reply.
fn lenient_seconds<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(match value {
        Some(serde_json::Value::Number(n)) => {
            n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))
        }
        Some(serde_json::Value::String(text)) => text.trim().parse().ok(),
        _ => None,
    })
}

/// Where a token set's expiry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpirySource {
    /// The reply's `ExpiresIn`.
    ExpiresIn,
    /// The JWT's `exp - iat`, anchored at receipt.
    JwtLifetime,
    /// The JWT's `exp` against the local clock (no `iat`).
    JwtExp,
    /// Nothing stated it: the profile's `default_lifetime`, after which
    /// the token is checked again with a refresh.
    Assumed,
}

/// The tokens of one session and their timing.
pub struct TokenSet {
    /// The access token.
    pub access: Secret,
    /// The id token; empty when the server sent none.
    pub id: Secret,
    /// The refresh token; empty when the server uses none.
    pub refresh: Secret,
    /// The `Authorization` scheme.
    pub token_type: String,
    /// When the reply arrived.
    pub received_at: SystemTime,
    /// How long the access token lives, from `received_at`.
    pub lifetime: Duration,
    /// `received_at + lifetime`; `None` only for a token set made without
    /// one (the profile's `default_lifetime` is used when none is stated).
    pub expires_at: Option<SystemTime>,
    /// Where `lifetime` came from.
    pub expiry_source: ExpirySource,
    /// Claims that help explain a 403: the user and their groups.
    pub identity: Identity,
}

/// Who a token says its holder is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    /// `username`, `cognito:username` or Keycloak's `preferred_username`.
    pub username: Option<String>,
    /// `cognito:groups`, or Keycloak's `groups`.
    pub groups: Vec<String>,
}

/// The claims fkq-cred reads from a JWT; everything else is ignored, and
/// a claim of an unexpected type counts as absent.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Claims {
    #[serde(deserialize_with = "lenient_seconds")]
    exp: Option<i64>,
    #[serde(deserialize_with = "lenient_seconds")]
    iat: Option<i64>,
    #[serde(deserialize_with = "lenient_text")]
    username: Option<String>,
    #[serde(rename = "cognito:username", deserialize_with = "lenient_text")]
    cognito_username: Option<String>,
    #[serde(deserialize_with = "lenient_text")]
    preferred_username: Option<String>,
    #[serde(rename = "cognito:groups", deserialize_with = "lenient_list")]
    cognito_groups: Vec<String>,
    #[serde(deserialize_with = "lenient_list")]
    groups: Vec<String>,
}

impl Claims {
    fn identity(self) -> Identity {
        let groups = if self.cognito_groups.is_empty() {
            self.groups
        } else {
            self.cognito_groups
        };
        Identity {
            username: self
                .username
                .or(self.cognito_username)
                .or(self.preferred_username),
            groups,
        }
    }
}

fn lenient_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(value.and_then(|v| v.as_str().map(str::to_owned)))
}

fn lenient_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    let items = value.as_ref().and_then(serde_json::Value::as_array);
    Ok(items
        .map(|items| {
            items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
        })
        .unwrap_or_default())
}

/// Why a reply could not become a token set.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// No non-empty `AccessToken`.
    MissingAccessToken,
    /// A lifetime beyond [`MAX_LIFETIME`]: no FormKiQ deployment issues
    /// one, and taking it at its word would overflow the clock arithmetic.
    ImplausibleLifetime,
    /// A token or token type with characters a header cannot carry (line
    /// breaks would smuggle extra headers into `fkq-cred header`).
    UnsafeCharacters,
}

impl TokenError {
    /// What was wrong, for a "not FormKiQ's JSON" message.
    pub fn what(&self) -> &'static str {
        match self {
            Self::MissingAccessToken => "no AccessToken",
            Self::ImplausibleLifetime => {
                "a token lifetime of more than ten years"
            }
            Self::UnsafeCharacters => {
                "a token with control characters or spaces"
            }
        }
    }
}

/// The longest token lifetime taken at its word. Cognito allows a day and
/// self-hosted keys state none; ten years is far beyond any honest server
/// and far below what the clock arithmetic can hold.
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Whether `value` can go into an HTTP header as a token: visible ASCII
/// only, as JWTs, API keys and opaque refresh tokens are.
fn is_header_safe(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_graphic())
}

impl TokenSet {
    /// Builds a token set from a reply received at `received_at`.
    ///
    /// `previous_refresh` is kept when the reply carries no new refresh
    /// token (Cognito does not rotate them by default).
    pub fn from_reply(
        result: AuthResult,
        received_at: SystemTime,
        default_lifetime: Duration,
        previous_refresh: Option<&Secret>,
    ) -> Result<Self, TokenError> {
        let access = result
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::MissingAccessToken)?;
        let claims = decode_claims(access.expose()).unwrap_or_default();
        let stated = match (result.expires_in, claims.exp, claims.iat) {
            (Some(secs), _, _) if secs > 0 => Some((
                Duration::from_secs(secs as u64),
                ExpirySource::ExpiresIn,
            )),
            (_, Some(exp), Some(iat)) if exp > iat => Some((
                Duration::from_secs((exp - iat) as u64),
                ExpirySource::JwtLifetime,
            )),
            (_, Some(exp), _) => {
                // Without iat the server's clock cannot be factored out:
                // compare exp with ours and hope they agree.
                let exp = UNIX_EPOCH + Duration::from_secs(exp.max(0) as u64);
                let left = exp.duration_since(received_at).unwrap_or_default();
                Some((left, ExpirySource::JwtExp))
            }
            _ => None,
        };
        let (lifetime, expiry_source) =
            stated.unwrap_or((default_lifetime, ExpirySource::Assumed));
        if lifetime > MAX_LIFETIME {
            return Err(TokenError::ImplausibleLifetime);
        }
        let expires_at = received_at
            .checked_add(lifetime)
            .ok_or(TokenError::ImplausibleLifetime)?;
        let token_type = result
            .token_type
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "Bearer".into());
        let tokens = [Some(&access), result.id_token.as_ref()];
        let unsafe_token = tokens
            .into_iter()
            .flatten()
            .chain(result.refresh_token.as_ref())
            .any(|t| !is_header_safe(t.expose()));
        if unsafe_token || !is_header_safe(&token_type) {
            return Err(TokenError::UnsafeCharacters);
        }
        let refresh = match result.refresh_token.filter(|t| !t.is_empty()) {
            Some(new) => new,
            None => previous_refresh.cloned().unwrap_or_default(),
        };
        Ok(Self {
            access,
            id: result.id_token.unwrap_or_default(),
            refresh,
            token_type,
            received_at,
            lifetime,
            expires_at: Some(expires_at),
            expiry_source,
            identity: claims.identity(),
        })
    }

    /// Whether a refresh can renew this set: it has a refresh token, or it
    /// states no expiry and came with an empty one, which is how the
    /// self-hosted server asks to be sent `""` to re-issue its API key.
    pub fn can_refresh(&self) -> bool {
        !self.refresh.is_empty() || self.expiry_source == ExpirySource::Assumed
    }

    /// The token of the given kind.
    pub fn token(&self, kind: TokenKind) -> &Secret {
        match kind {
            TokenKind::Access => &self.access,
            TokenKind::Id => &self.id,
        }
    }

    /// Whether the token stays valid for `needed` past `now`, where `needed`
    /// never exceeds half the lifetime: a five-minute token would otherwise
    /// never satisfy a caller who asks for ten.
    pub fn is_valid_for(&self, now: SystemTime, needed: Duration) -> bool {
        let Some(expires_at) = self.expires_at else { return true };
        let needed = needed.min(self.lifetime / 2);
        expires_at.duration_since(now).is_ok_and(|left| left >= needed)
    }

    /// Whether the token has not yet expired at `now`.
    pub fn is_unexpired(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    /// `expires_at` as Unix seconds.
    pub fn expires_at_unix(&self) -> Option<i64> {
        self.expires_at.map(unix_seconds)
    }
}

/// A time as whole Unix seconds.
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Reads the claims of a JWT without verifying it: the daemon is not the
/// audience, it only wants to know when the token expires and whose it is.
/// Anything that is not a JWT yields `None`.
fn decode_claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) =
        (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Reads who a token belongs to, for messages about 403 replies.
pub fn identity_of(token: &str) -> Identity {
    decode_claims(token).unwrap_or_default().identity()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let b64 = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
        };
        format!("{}.{}.sig", b64(r#"{"alg":"none"}"#), b64(claims))
    }

    fn reply(
        access: &str,
        expires_in: Option<i64>,
        refresh: Option<&str>,
    ) -> AuthResult {
        AuthResult {
            access_token: Some(access.into()),
            id_token: None,
            refresh_token: refresh.map(Secret::from),
            token_type: None,
            expires_in,
        }
    }

    const DEFAULT: Duration = Duration::from_secs(3600);

    #[test]
    fn expires_in_is_anchored_at_receipt() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        // The JWT claims an expiry in 1970; ExpiresIn wins regardless.
        let set = TokenSet::from_reply(
            reply(&jwt(r#"{"exp":5,"iat":1}"#), Some(300), Some("r")),
            now,
            DEFAULT,
            None,
        )
        .unwrap();
        assert_eq!(set.expires_at, Some(now + Duration::from_secs(300)));
        assert_eq!(set.token_type, "Bearer");
    }

    #[test]
    fn jwt_lifetime_ignores_a_skewed_server_clock() {
        // The server's clock is two hours ahead of ours.
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let claims = format!(
            r#"{{"iat":{},"exp":{}}}"#,
            1_000_000 + 7200,
            1_000_000 + 7200 + 600
        );
        let set = TokenSet::from_reply(
            reply(&jwt(&claims), None, None),
            now,
            DEFAULT,
            None,
        )
        .unwrap();
        assert_eq!(set.expires_at, Some(now + Duration::from_secs(600)));
    }

    #[test]
    fn tokens_without_expiry_live_the_default_lifetime_and_stay_renewable() {
        let now = SystemTime::now();
        let set = TokenSet::from_reply(
            reply("api-key-not-a-jwt", None, Some("")),
            now,
            DEFAULT,
            None,
        )
        .unwrap();
        assert_eq!(set.expires_at, Some(now + DEFAULT));
        assert_eq!(set.expiry_source, ExpirySource::Assumed);
        assert!(set.can_refresh(), "the empty refresh token is sent as is");
        assert!(!set.is_valid_for(now + DEFAULT, Duration::from_secs(60)));

        // A token with a stated expiry and no refresh token cannot be
        // renewed by a refresh.
        let stated = TokenSet::from_reply(
            reply("a", Some(60), Some("")),
            now,
            DEFAULT,
            None,
        )
        .unwrap();
        assert!(!stated.can_refresh());
    }

    #[test]
    fn expires_in_is_read_from_numbers_and_strings_and_odd_values_are_absent() {
        let read = |json: &str| -> Option<i64> {
            serde_json::from_str::<AuthResult>(json).unwrap().expires_in
        };
        assert_eq!(read(r#"{"ExpiresIn": 300}"#), Some(300));
        assert_eq!(read(r#"{"ExpiresIn": 300.0}"#), Some(300));
        assert_eq!(read(r#"{"ExpiresIn": "300"}"#), Some(300));
        assert_eq!(read(r#"{"ExpiresIn": null}"#), None);
        assert_eq!(read(r#"{"ExpiresIn": "soon"}"#), None);
        assert_eq!(read(r#"{}"#), None);
        let all_null: AuthResult = serde_json::from_str(
            r#"{"AccessToken":null,"IdToken":null,"RefreshToken":null,
                "TokenType":null,"ExpiresIn":null,"NewDeviceMetadata":null}"#,
        )
        .unwrap();
        assert!(all_null.access_token.is_none());
    }

    #[test]
    fn a_keycloak_token_without_expires_in_lives_exp_minus_iat() {
        let now = UNIX_EPOCH + Duration::from_secs(2_000_000);
        let token = jwt(
            r#"{"exp":1000900,"iat":1000000,"preferred_username":"kc","groups":["ops"]}"#,
        );
        let set = TokenSet::from_reply(
            reply(&token, None, Some("r")),
            now,
            DEFAULT,
            None,
        )
        .unwrap();
        assert_eq!(set.lifetime, Duration::from_secs(900));
        assert_eq!(set.expiry_source, ExpirySource::JwtLifetime);
        assert_eq!(set.identity.username.as_deref(), Some("kc"));
        assert_eq!(set.identity.groups, ["ops"]);
    }

    #[test]
    fn missing_refresh_token_keeps_the_previous_one_and_rotation_replaces_it() {
        let now = SystemTime::now();
        let old = Secret::from("old-refresh");
        for missing in [None, Some("")] {
            let set = TokenSet::from_reply(
                reply("a", Some(60), missing),
                now,
                DEFAULT,
                Some(&old),
            )
            .unwrap();
            assert_eq!(set.refresh.expose(), "old-refresh");
        }
        let set = TokenSet::from_reply(
            reply("a", Some(60), Some("new")),
            now,
            DEFAULT,
            Some(&old),
        )
        .unwrap();
        assert_eq!(set.refresh.expose(), "new");
    }

    #[test]
    fn empty_access_token_is_refused() {
        let result = TokenSet::from_reply(
            reply("", Some(60), None),
            SystemTime::now(),
            DEFAULT,
            None,
        );
        assert!(matches!(result, Err(TokenError::MissingAccessToken)));
    }

    #[test]
    fn minimum_validity_is_capped_at_half_the_lifetime() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let set =
            TokenSet::from_reply(reply("a", Some(4), None), now, DEFAULT, None)
                .unwrap();
        // A 60 s minimum on a 4 s token means "at least 2 s left".
        assert!(set.is_valid_for(
            now + Duration::from_secs(1),
            Duration::from_secs(60)
        ));
        assert!(!set.is_valid_for(
            now + Duration::from_secs(3),
            Duration::from_secs(60)
        ));
    }

    #[test]
    fn identity_comes_from_cognito_claims() {
        let token = jwt(
            r#"{"username":"alice","cognito:groups":["admins","default"]}"#,
        );
        let id = identity_of(&token);
        assert_eq!(id.username.as_deref(), Some("alice"));
        assert_eq!(id.groups, ["admins", "default"]);
    }

    #[test]
    fn absurd_lifetimes_are_refused_instead_of_overflowing() {
        let now = SystemTime::now();
        let huge = reply("a", Some(i64::MAX), None);
        let err = TokenSet::from_reply(huge, now, DEFAULT, None).err();
        assert_eq!(err, Some(TokenError::ImplausibleLifetime));

        let claims = format!(r#"{{"iat":0,"exp":{}}}"#, i64::MAX);
        let jwt_reply = reply(&jwt(&claims), None, None);
        let err = TokenSet::from_reply(jwt_reply, now, DEFAULT, None).err();
        assert_eq!(err, Some(TokenError::ImplausibleLifetime));
    }

    #[test]
    fn tokens_that_would_inject_header_lines_are_refused() {
        let now = SystemTime::now();
        let bad = reply("abc\r\nX-Injected: yes", Some(60), None);
        let err = TokenSet::from_reply(bad, now, DEFAULT, None).err();
        assert_eq!(err, Some(TokenError::UnsafeCharacters));

        let mut bad_type = reply("abc", Some(60), None);
        bad_type.token_type = Some("Bearer\nX-Type: 1".into());
        let err = TokenSet::from_reply(bad_type, now, DEFAULT, None).err();
        assert_eq!(err, Some(TokenError::UnsafeCharacters));

        let fine = reply("eyJ.a-b_c.d~e+f/g=", Some(60), Some("r-1"));
        assert!(TokenSet::from_reply(fine, now, DEFAULT, None).is_ok());
    }
}
