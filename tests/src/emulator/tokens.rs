//! Tokens shaped like Cognito's (or, for the Keycloak-backed variant,
//! like Keycloak's): JWTs signed with HMAC-SHA256 under a key drawn fresh
//! for each run, and opaque refresh tokens kept in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::clock::Clock;
use super::jwks::TrustedKeys;

/// The JOSE header of every token; `kid` names the emulator so a token
/// pasted into a JWT viewer says where it came from.
const JWT_HEADER: &str = r#"{"alg":"HS256","kid":"fkq-emulator","typ":"JWT"}"#;

/// The scope Cognito puts in access tokens of a password login.
const ACCESS_SCOPE: &str = "aws.cognito.signin.user.admin";

/// The Cognito group FormKiQ maps to the `default` site.
const DEFAULT_GROUP: &str = "default";

/// Bytes of randomness in a refresh token: 48 bytes are 64 base64url
/// characters, about the strength of a real opaque refresh token.
const REFRESH_TOKEN_BYTES: usize = 48;

/// Length of the random app-client id, as long as Cognito's.
const CLIENT_ID_LEN: usize = 26;

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is not three base64url parts with JSON inside.
    #[error("token is not a well-formed JWT")]
    Malformed,
    /// The signature does not match this emulator's key.
    #[error("token signature does not verify")]
    BadSignature,
    /// The token verifies but is not an access token (the id token mixup).
    #[error("token is an {token_use:?} token, not an access token")]
    NotAnAccessToken {
        /// The `token_use` claim that was found.
        token_use: String,
    },
    /// The token's `exp` is not in the future.
    #[error("token expired at {exp}, now is {now}")]
    Expired {
        /// The token's `exp` claim, in Unix seconds.
        exp: u64,
        /// The emulator's clock when the token was checked.
        now: u64,
    },
    /// The operating system gave no random bytes.
    #[error("the system random source failed")]
    Random,
}

/// The claims of an access token, named as Cognito names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// A stable id of the user, the same in access and id tokens.
    pub sub: String,
    /// The auth URL of the emulator that issued the token.
    pub iss: String,
    /// The app-client id of this emulator run.
    pub client_id: String,
    /// Always `access`.
    pub token_use: String,
    /// The OAuth scope of a password login.
    pub scope: String,
    /// When the user last gave their password, in Unix seconds.
    pub auth_time: u64,
    /// When this token was issued, in Unix seconds.
    pub iat: u64,
    /// When this token expires, in Unix seconds.
    pub exp: u64,
    /// A random id that makes every token distinct.
    pub jti: String,
    /// The user name the token was issued to.
    pub username: String,
    /// The user's Cognito groups.
    #[serde(rename = "cognito:groups")]
    pub groups: Vec<String>,
}

/// The claims of an id token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    /// The same stable user id as in the access token.
    pub sub: String,
    /// The auth URL of the emulator that issued the token.
    pub iss: String,
    /// The app-client id the token is meant for.
    pub aud: String,
    /// Always `id`.
    pub token_use: String,
    /// When the user last gave their password, in Unix seconds.
    pub auth_time: u64,
    /// When this token was issued, in Unix seconds.
    pub iat: u64,
    /// When this token expires, in Unix seconds.
    pub exp: u64,
    /// A random id that makes every token distinct.
    pub jti: String,
    /// The user's e-mail address.
    pub email: String,
    /// The user name, under Cognito's claim name.
    #[serde(rename = "cognito:username")]
    pub cognito_username: String,
}

/// The claims of a Keycloak token: expiry and identity only, none of
/// Cognito's names. `typ` tells an access token (`Bearer`) from an id
/// token (`ID`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeycloakClaims {
    /// When this token expires, in Unix seconds.
    pub exp: u64,
    /// When this token was issued, in Unix seconds.
    pub iat: u64,
    /// A random id that makes every token distinct.
    pub jti: String,
    /// The auth URL of the emulator that issued the token.
    pub iss: String,
    /// A stable id of the user.
    pub sub: String,
    /// `Bearer` for an access token, `ID` for an id token.
    pub typ: String,
    /// The user name, under Keycloak's claim name.
    pub preferred_username: String,
}

/// Whose claim names the JWTs of a run carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimStyle {
    /// Cognito's: `token_use`, `username`, `cognito:groups`, `auth_time`.
    Cognito,
    /// Keycloak's: `typ` and `preferred_username`, nothing else.
    Keycloak,
}

/// The two JWTs of one login or refresh.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// The token the FormKiQ API accepts.
    pub access: String,
    /// The token describing the user, which the API refuses.
    pub id: String,
}

/// What a refresh token stands for.
#[derive(Debug, Clone)]
struct RefreshGrant {
    username: String,
    auth_time: u64,
    expires_at: u64,
}

/// Issues and checks the tokens of one emulator run.
pub(crate) struct TokenIssuer {
    key: hmac::Key,
    issuer: String,
    client_id: String,
    lifetime: Duration,
    refresh_lifetime: Duration,
    clock: Clock,
    style: ClaimStyle,
    rng: SystemRandom,
    grants: Mutex<HashMap<String, RefreshGrant>>,
    trusted: TrustedKeys,
}

impl TokenIssuer {
    /// An issuer with a fresh random key, naming `issuer` in `iss`.
    pub(crate) fn new(
        issuer: String,
        lifetime: Duration,
        refresh_lifetime: Duration,
        clock: Clock,
        style: ClaimStyle,
    ) -> Result<Self, TokenError> {
        let rng = SystemRandom::new();
        let key_bytes: [u8; 32] = random_array(&rng)?;
        let id_bytes: [u8; CLIENT_ID_LEN] = random_array(&rng)?;
        let client_id = id_bytes
            .iter()
            .map(|byte| {
                let digit = u32::from(*byte) % 36;
                char::from_digit(digit, 36).unwrap_or('0')
            })
            .collect();
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key_bytes),
            issuer,
            client_id,
            lifetime,
            refresh_lifetime,
            clock,
            style,
            rng,
            grants: Mutex::new(HashMap::new()),
            trusted: TrustedKeys::default(),
        })
    }

    /// Also accepts RS256 tokens that one of `keys` signed, as tokens of
    /// the user pool the API is configured with.
    pub(crate) fn trust(&mut self, keys: TrustedKeys) {
        self.trusted = keys;
    }

    /// The access and id token lifetime, reported as `ExpiresIn`.
    pub(crate) fn lifetime_secs(&self) -> u64 {
        self.lifetime.as_secs()
    }

    /// Issues the tokens of a password login: a pair and a refresh token.
    pub(crate) fn login(
        &self,
        username: &str,
    ) -> Result<(TokenPair, String), TokenError> {
        let now = self.clock.now_unix();
        let pair = self.issue_pair(username, now, now)?;

        let refresh = self.new_refresh_token()?;
        let grant = RefreshGrant {
            username: username.to_owned(),
            auth_time: now,
            expires_at: now.saturating_add(self.refresh_lifetime.as_secs()),
        };
        let mut grants = lock(&self.grants);
        // Expired grants are dropped here so a long soak test does not grow
        // the map without bound.
        grants.retain(|_, kept| kept.expires_at > now);
        grants.insert(refresh.clone(), grant);
        Ok((pair, refresh))
    }

    /// Issues a new pair for a live refresh token, or `None` if the token
    /// is unknown or expired. Without `rotate` the refresh token stays
    /// valid, as Cognito does not rotate refresh tokens by default; with
    /// it, the token is used up and a new one, valid as long as the old
    /// one was, comes back beside the pair.
    pub(crate) fn refresh(
        &self,
        refresh_token: &str,
        rotate: bool,
    ) -> Result<Option<(TokenPair, Option<String>)>, TokenError> {
        let now = self.clock.now_unix();
        let mut grants = lock(&self.grants);
        let grant = grants
            .get(refresh_token)
            .filter(|grant| grant.expires_at > now)
            .cloned();
        let Some(grant) = grant else {
            return Ok(None);
        };
        let rotated = if rotate {
            let fresh = self.new_refresh_token()?;
            grants.remove(refresh_token);
            grants.insert(fresh.clone(), grant.clone());
            Some(fresh)
        } else {
            None
        };
        drop(grants);
        // A refresh keeps the time of the password login, as Cognito does.
        let pair = self.issue_pair(&grant.username, now, grant.auth_time)?;
        Ok(Some((pair, rotated)))
    }

    /// A fresh opaque refresh token.
    fn new_refresh_token(&self) -> Result<String, TokenError> {
        self.random_token()
    }

    /// A fresh random string of 64 base64url characters, for refresh
    /// tokens, challenge sessions and API keys.
    pub(crate) fn random_token(&self) -> Result<String, TokenError> {
        let bytes: [u8; REFRESH_TOKEN_BYTES] = random_array(&self.rng)?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Checks that `token` is an unexpired access token of this run, in
    /// either claim style, and returns the user it was issued to.
    pub(crate) fn verify_user(
        &self,
        token: &str,
    ) -> Result<String, TokenError> {
        let claims_json = self.verified_claims(token)?;
        #[derive(Deserialize)]
        struct Envelope {
            token_use: Option<String>,
            typ: Option<String>,
            exp: u64,
            username: Option<String>,
            preferred_username: Option<String>,
        }
        let envelope: Envelope = serde_json::from_slice(&claims_json)
            .map_err(|_| TokenError::Malformed)?;
        let token_use = envelope.token_use.or(envelope.typ).unwrap_or_default();
        if token_use != "access" && token_use != "Bearer" {
            return Err(TokenError::NotAnAccessToken { token_use });
        }
        let now = self.clock.now_unix();
        if envelope.exp <= now {
            return Err(TokenError::Expired { exp: envelope.exp, now });
        }
        envelope
            .username
            .or(envelope.preferred_username)
            .ok_or(TokenError::Malformed)
    }

    /// Checks that `token` is an unexpired Cognito-style access token of
    /// this run and returns all its claims.
    #[cfg(test)]
    pub(crate) fn verify_access(
        &self,
        token: &str,
    ) -> Result<AccessClaims, TokenError> {
        let claims_json = self.verified_claims(token)?;

        // The kind and expiry are read first so that an id token is
        // reported as such rather than as a token with missing claims.
        #[derive(Deserialize)]
        struct Envelope {
            token_use: String,
            exp: u64,
        }
        let envelope: Envelope = serde_json::from_slice(&claims_json)
            .map_err(|_| TokenError::Malformed)?;
        if envelope.token_use != "access" {
            return Err(TokenError::NotAnAccessToken {
                token_use: envelope.token_use,
            });
        }
        let now = self.clock.now_unix();
        if envelope.exp <= now {
            return Err(TokenError::Expired { exp: envelope.exp, now });
        }
        serde_json::from_slice(&claims_json).map_err(|_| TokenError::Malformed)
    }

    /// Issues access and id tokens dated `now` for a user who gave their
    /// password at `auth_time`.
    fn issue_pair(
        &self,
        username: &str,
        now: u64,
        auth_time: u64,
    ) -> Result<TokenPair, TokenError> {
        let sub = self.subject_of(username);
        let exp = now.saturating_add(self.lifetime.as_secs());
        if self.style == ClaimStyle::Keycloak {
            let claims = |typ: &str| -> Result<KeycloakClaims, TokenError> {
                Ok(KeycloakClaims {
                    exp,
                    iat: now,
                    jti: uuid_from(random_array(&self.rng)?),
                    iss: self.issuer.clone(),
                    sub: sub.clone(),
                    typ: typ.to_owned(),
                    preferred_username: username.to_owned(),
                })
            };
            return Ok(TokenPair {
                access: self.sign(&claims("Bearer")?)?,
                id: self.sign(&claims("ID")?)?,
            });
        }
        let access = AccessClaims {
            sub: sub.clone(),
            iss: self.issuer.clone(),
            client_id: self.client_id.clone(),
            token_use: "access".to_owned(),
            scope: ACCESS_SCOPE.to_owned(),
            auth_time,
            iat: now,
            exp,
            jti: uuid_from(random_array(&self.rng)?),
            username: username.to_owned(),
            groups: vec![DEFAULT_GROUP.to_owned()],
        };
        let id = IdClaims {
            sub,
            iss: self.issuer.clone(),
            aud: self.client_id.clone(),
            token_use: "id".to_owned(),
            auth_time,
            iat: now,
            exp,
            jti: uuid_from(random_array(&self.rng)?),
            email: email_of(username),
            cognito_username: username.to_owned(),
        };
        Ok(TokenPair { access: self.sign(&access)?, id: self.sign(&id)? })
    }

    fn sign(&self, claims: &impl Serialize) -> Result<String, TokenError> {
        // Claims are strings and numbers, which always serialise; the
        // error is mapped rather than unwrapped to keep a panic path out.
        let claims_json =
            serde_json::to_vec(claims).map_err(|_| TokenError::Malformed)?;
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(JWT_HEADER),
            URL_SAFE_NO_PAD.encode(claims_json)
        );
        let tag = hmac::sign(&self.key, signing_input.as_bytes());
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    /// Returns the claims JSON of a token whose signature verifies.
    fn verified_claims(&self, token: &str) -> Result<Vec<u8>, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let signing_input = &token[..header.len() + 1 + claims.len()];
        #[derive(Deserialize)]
        struct Header {
            alg: String,
        }
        let header: Header = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Malformed)?;
        if header.alg == "RS256" {
            if !self.trusted.verify(signing_input.as_bytes(), &signature) {
                return Err(TokenError::BadSignature);
            }
        } else {
            hmac::verify(&self.key, signing_input.as_bytes(), &signature)
                .map_err(|_| TokenError::BadSignature)?;
        }
        URL_SAFE_NO_PAD.decode(claims).map_err(|_| TokenError::Malformed)
    }

    /// A UUID-shaped user id that stays the same for a user through a run
    /// and differs between runs, like a `sub` of a freshly made user pool.
    fn subject_of(&self, username: &str) -> String {
        let tag = hmac::sign(&self.key, format!("sub:{username}").as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&tag.as_ref()[..16]);
        uuid_from(bytes)
    }
}

/// Cognito pools used by FormKiQ sign users in by e-mail; a user name that
/// is not an address gets a made-up one in a reserved domain.
fn email_of(username: &str) -> String {
    if username.contains('@') {
        username.to_owned()
    } else {
        format!("{username}@emulator.invalid")
    }
}

/// Formats 16 random bytes as a version 4 UUID.
fn uuid_from(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn random_array<const N: usize>(
    rng: &SystemRandom,
) -> Result<[u8; N], TokenError> {
    let mut bytes = [0u8; N];
    rng.fill(&mut bytes).map_err(|_| TokenError::Random)?;
    Ok(bytes)
}

/// Locks the grant map. A handler that panicked while holding the lock
/// cannot have left a half-written entry, so a poisoned lock is still used.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
