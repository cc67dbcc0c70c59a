//! The HTTP plumbing every provider shares: one reqwest client per
//! profile, sending with a size cap, and turning transport failures and
//! unreadable bodies into [`AuthError`]s that never quote a body.

// Errors carry their URL so every message can name it. They are built
// once per failed HTTP exchange, never on a hot path.
#![allow(clippy::result_large_err)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::resolve::Resolver;
use super::AuthError;
use crate::clock::{Clock, SystemClock};
use crate::config::Profile;

/// The most of a reply body the daemon reads. FormKiQ's replies are a few
/// kilobytes; anything larger is not FormKiQ talking.
const MAX_BODY: usize = 1024 * 1024;

/// A reply: its status and its body, read whole.
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body, at most 1 MiB, zeroed when dropped: a login or refresh
    /// reply holds every token.
    pub body: Zeroizing<Vec<u8>>,
    /// When the body was read, by the client's clock: the time the
    /// tokens' lifetimes count from.
    pub received_at: SystemTime,
}

/// The fields an error reply of any dialect may have: FormKiQ's
/// `message`, the documented `error`, the self-hosted server's `code`,
/// Cognito's `__type`.
#[derive(Deserialize, Default)]
pub struct ErrorBody {
    /// The error text.
    pub message: Option<String>,
    /// The OpenAPI file's field for the error text.
    pub error: Option<String>,
    /// The self-hosted server's exception name.
    pub code: Option<String>,
    /// Cognito's exception name.
    #[serde(rename = "__type")]
    pub error_type: Option<String>,
}

impl ErrorBody {
    /// The exception name, from whichever field has it.
    pub fn error_type(&self) -> Option<&str> {
        self.error_type.as_deref().or(self.code.as_deref())
    }

    /// The error text, from whichever field has it.
    pub fn text(&self) -> Option<&str> {
        self.message.as_deref().or(self.error.as_deref())
    }
}

/// One profile's HTTP client.
pub struct Http {
    client: reqwest::Client,
    timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl Http {
    /// Builds the client for a profile: TLS through rustls with the system
    /// roots plus the profile's `ca_file`, no redirects (a password must
    /// not follow a redirect), and the profile's timeout.
    pub fn new(profile: &Profile) -> Result<Self, AuthError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(profile.timeout)
            .connect_timeout(profile.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(Resolver))
            .user_agent(concat!("fkq-cred/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &profile.ca_file {
            for cert in read_ca_file(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| AuthError::Connect {
            url: profile.auth_url.clone(),
            detail: format!("cannot set up HTTPS: {e}"),
        })?;
        Ok(Self {
            client,
            timeout: profile.timeout,
            clock: Arc::new(SystemClock),
        })
    }

    /// Dates replies with `clock` instead of the system clock, so a
    /// token's expiry and the session's idea of "now" come from the same
    /// clock.
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = clock;
    }

    /// The underlying client, to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a request and reads the whole reply. Only the status is
    /// logged, never the body.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<Reply, AuthError> {
        let mut response =
            request.send().await.map_err(|e| self.transport_error(url, &e))?;
        let status = response.status();
        tracing::debug!(url = %url, status = status.as_u16(), "http reply");
        // Sized up front where the length is known, so that growing the
        // buffer leaves no unzeroed copy of a token behind.
        let capacity = response
            .content_length()
            .map_or(0, |n| n.min(MAX_BODY as u64) as usize);
        let mut body = Zeroizing::new(Vec::with_capacity(capacity));
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_BODY => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => {
                    return Err(bad_body(url, status, "more than 1 MiB"))
                }
                Ok(None) => break,
                Err(e) => return Err(self.transport_error(url, &e)),
            }
        }
        Ok(Reply { status, body, received_at: self.clock.now() })
    }

    fn transport_error(&self, url: &Url, error: &reqwest::Error) -> AuthError {
        let url = url.clone();
        let secs = self.timeout.as_secs().max(1);
        if error.is_timeout() {
            return AuthError::Timeout { url, secs };
        }
        let chain = error_chain(error);
        match io_error_kind(error) {
            Some(std::io::ErrorKind::ConnectionRefused) => {
                return AuthError::Refused { url }
            }
            Some(std::io::ErrorKind::TimedOut) => {
                return AuthError::Timeout { url, secs }
            }
            _ => {}
        }
        if chain.contains("dns error")
            || chain.contains("failed to lookup address")
        {
            return AuthError::Dns { url };
        }
        if let Some(tls) =
            rustls_error(error as &(dyn std::error::Error + 'static))
        {
            return match tls {
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer,
                ) => AuthError::UnknownIssuer { url },
                other => AuthError::Tls { url, detail: other.to_string() },
            };
        }
        let is_cut_off = matches!(
            io_error_kind(error),
            Some(
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::BrokenPipe
            )
        );
        if is_cut_off
            || chain.contains("connection closed before message completed")
            || chain.contains("close_notify")
        {
            return AuthError::ConnectionClosed { url };
        }
        if chain.contains("certificate")
            || chain.contains("tls")
            || chain.contains("TLS")
        {
            return AuthError::Tls { url, detail: last_cause(error) };
        }
        AuthError::Connect { url, detail: last_cause(error) }
    }
}

/// The error for a body that is not what the dialect sends.
pub fn bad_body(url: &Url, status: StatusCode, what: &str) -> AuthError {
    AuthError::BadBody { url: url.clone(), status, what: what.into() }
}

/// Parses a JSON body, reporting only the category of a failure: serde's
/// own message can quote the input, which may hold a token.
pub fn parse_json<T: for<'de> Deserialize<'de>>(
    url: &Url,
    status: StatusCode,
    bytes: &[u8],
) -> Result<T, AuthError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_body(url, status, "empty body"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof => "not JSON",
            serde_json::error::Category::Data => "unexpected JSON shape",
            serde_json::error::Category::Io => "unreadable",
        };
        bad_body(url, status, what)
    })
}

/// The causes below `error`, joined; the top level is left out because
/// reqwest puts the URL there, whose host could contain any word.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = String::new();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn last_cause(error: &dyn std::error::Error) -> String {
    let mut last = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        last = e.to_string();
        source = e.source();
    }
    last
}

/// The TLS library's error in the chain, if TLS failed. An `io::Error`
/// hides what it wraps from `source()` (and may wrap another `io::Error`),
/// so what it wraps is looked into as well.
fn rustls_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let wrapped = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .map(|inner| inner as &(dyn std::error::Error + 'static));
    wrapped
        .and_then(rustls_error)
        .or_else(|| error.source().and_then(rustls_error))
}

fn io_error_kind(error: &dyn std::error::Error) -> Option<std::io::ErrorKind> {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

/// The largest `ca_file` read: the whole Mozilla root bundle is ~250 KiB.
const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, AuthError> {
    let ca_error =
        |detail: String| AuthError::CaFile { path: path.into(), detail };
    // Only a regular file of sane size: a FIFO or a device would block
    // the runtime thread or never end.
    let meta = std::fs::metadata(path).map_err(|e| ca_error(e.to_string()))?;
    if !meta.is_file() {
        return Err(ca_error("not a regular file".into()));
    }
    if meta.len() > MAX_CA_FILE {
        return Err(ca_error(format!(
            "larger than {} KiB; a CA bundle is far smaller",
            MAX_CA_FILE / 1024
        )));
    }
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| ca_error(format!("not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(ca_error("no PEM certificate in it".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_never_quote_the_body() {
        let url = Url::parse("https://a.example.com/login").unwrap();
        let err = parse_json::<ErrorBody>(
            &url,
            StatusCode::OK,
            b"<html>secret-token</html>",
        )
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(
            text.contains("not JSON") && !text.contains("secret-token"),
            "{text}"
        );
        let err = parse_json::<ErrorBody>(&url, StatusCode::OK, b"  \n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("empty body"), "{err}");
    }

    #[test]
    fn error_bodies_of_every_dialect_name_their_type_and_text() {
        let read = |json: &str| -> ErrorBody {
            serde_json::from_str(json).expect("an error body")
        };
        let cognito =
            read(r#"{"__type":"NotAuthorizedException","message":"m"}"#);
        assert_eq!(cognito.error_type(), Some("NotAuthorizedException"));
        assert_eq!(cognito.text(), Some("m"));
        let self_hosted = read(r#"{"code":"X","message":"m"}"#);
        assert_eq!(self_hosted.error_type(), Some("X"));
        let openapi = read(r#"{"error":"Invalid username or password."}"#);
        assert_eq!(openapi.text(), Some("Invalid username or password."));
    }
}
