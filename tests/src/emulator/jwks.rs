//! Public keys of another issuer that the emulator's API trusts, read from
//! a JWKS document (`{"keys": [{"kty": "RSA", "n", "e", ...}]}`), as API
//! Gateway's JWT authorizer trusts the user pool it is configured with.
//! This lets the API check access tokens that a real Cognito peer (moto)
//! signed with RS256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use serde::Deserialize;

/// RSA public keys that verify RS256 signatures.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedKeys {
    keys: Vec<RsaKey>,
}

#[derive(Debug, Clone)]
struct RsaKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    n: Option<String>,
    e: Option<String>,
}

impl TrustedKeys {
    /// Reads the RSA keys of a JWKS document; keys of other types are
    /// skipped, and a document without any RSA key is refused.
    pub(crate) fn from_jwks(text: &str) -> anyhow::Result<Self> {
        let jwks: Jwks = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for jwk in jwks.keys.into_iter().filter(|k| k.kty == "RSA") {
            let (Some(n), Some(e)) = (jwk.n, jwk.e) else {
                anyhow::bail!("an RSA key of the JWKS lacks n or e");
            };
            keys.push(RsaKey {
                n: URL_SAFE_NO_PAD.decode(n.trim_end_matches('='))?,
                e: URL_SAFE_NO_PAD.decode(e.trim_end_matches('='))?,
            });
        }
        anyhow::ensure!(!keys.is_empty(), "the JWKS has no RSA key");
        Ok(Self { keys })
    }

    /// Whether any key verifies `signature` over `signed` (RS256).
    pub(crate) fn verify(&self, signed: &[u8], signature: &[u8]) -> bool {
        self.keys.iter().any(|key| {
            RsaPublicKeyComponents { n: &key.n, e: &key.e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, signed, signature)
                .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_without_rsa_keys_or_with_broken_ones_is_refused() {
        assert!(TrustedKeys::from_jwks(r#"{"keys": []}"#).is_err());
        assert!(TrustedKeys::from_jwks(r#"{"keys": [{"kty": "EC"}]}"#).is_err());
        assert!(
            TrustedKeys::from_jwks(r#"{"keys": [{"kty": "RSA"}]}"#).is_err()
        );
        assert!(TrustedKeys::from_jwks("not json").is_err());
        let keys = TrustedKeys::from_jwks(
            r#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#,
        )
        .expect("a key");
        assert!(!keys.verify(b"signed", b"not a signature"));
    }
}
