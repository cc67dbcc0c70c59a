//! A small blocking HTTP/1.1 client over std sockets and rustls, so a test
//! can talk to the emulator without an async runtime or a second TLS stack.
//!
//! Every request is sent with `Connection: close` and read to the end; it
//! is meant for a handful of calls to a loopback server, not for load.

use std::io::{self, Read as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use serde_json::Value;

use super::tls::client_config_trusting;

/// How long to wait for a loopback server to accept a connection; one that
/// takes longer is hung, and the test should say so instead of waiting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one read or write may block before the request fails.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response read; the emulator's replies are a few KiB.
const MAX_RESPONSE_LEN: u64 = 1024 * 1024;

/// A blocking client for `http://` URLs and for `https://` URLs whose
/// server certificate chains to one given CA.
#[derive(Clone)]
pub struct BlockingClient {
    tls: Option<Arc<ClientConfig>>,
}

/// A response: its status and its body as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The body, decoded as UTF-8 (lossily, which JSON bodies never need).
    pub body: String,
}

impl BlockingResponse {
    /// Parses the body as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body).with_context(|| {
            format!("response body is not JSON: {:?}", self.body)
        })
    }
}

impl BlockingClient {
    /// A client for plain `http://` URLs only.
    pub fn plain() -> Self {
        Self { tls: None }
    }

    /// A client that trusts only the CA certificate in `ca_file`.
    pub fn trusting(ca_file: &Path) -> anyhow::Result<Self> {
        Ok(Self { tls: Some(client_config_trusting(ca_file)?) })
    }

    /// [`trusting`](Self::trusting) when a CA file is given, otherwise
    /// [`plain`](Self::plain): the shape of an emulator's `ca_file`.
    pub fn for_ca(ca_file: Option<&Path>) -> anyhow::Result<Self> {
        ca_file.map_or_else(|| Ok(Self::plain()), Self::trusting)
    }

    /// `GET url`, with `Authorization: <authorization>` if given.
    pub fn get(
        &self,
        url: &str,
        authorization: Option<&str>,
    ) -> anyhow::Result<BlockingResponse> {
        let headers: Vec<(&str, &str)> = authorization
            .map(|value| ("Authorization", value))
            .into_iter()
            .collect();
        self.request("GET", url, &headers, None)
    }

    /// `POST url` with a JSON body.
    pub fn post_json(
        &self,
        url: &str,
        body: &Value,
    ) -> anyhow::Result<BlockingResponse> {
        self.post_raw(url, &body.to_string())
    }

    /// `POST url` with `body` sent as is under a JSON content type, for
    /// tests of empty and malformed bodies.
    pub fn post_raw(
        &self,
        url: &str,
        body: &str,
    ) -> anyhow::Result<BlockingResponse> {
        let headers = [("Content-Type", "application/json")];
        self.request("POST", url, &headers, Some(body))
    }

    /// Sends one request and reads the whole response.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> anyhow::Result<BlockingResponse> {
        let target = Target::parse(url)?;
        let request = target.request_text(method, headers, body);
        let raw = self
            .exchange(&target, request.as_bytes())
            .with_context(|| format!("{method} {url}"))?;
        parse_response(&raw).with_context(|| format!("{method} {url}"))
    }

    fn exchange(
        &self,
        target: &Target,
        request: &[u8],
    ) -> anyhow::Result<Vec<u8>> {
        let tcp = connect(&target.host, target.port)?;
        if !target.is_https {
            return send_and_read(tcp, request);
        }
        let Some(config) = &self.tls else {
            anyhow::bail!("an https:// URL needs a client made with a CA file");
        };
        let name = ServerName::try_from(target.host.clone())
            .context("the URL's host is not a valid TLS server name")?;
        let connection = ClientConnection::new(Arc::clone(config), name)
            .context("start the TLS session")?;
        send_and_read(StreamOwned::new(connection, tcp), request)
    }
}

/// The parts of a URL a request needs.
struct Target {
    is_https: bool,
    host: String,
    port: u16,
    path: String,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let (is_https, rest) = if let Some(rest) = url.strip_prefix("https://")
        {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            anyhow::bail!("URL {url:?} is neither http:// nor https://");
        };
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/"),
        };
        let default_port = if is_https { 443 } else { 80 };
        let (host, port) = split_host_port(authority, default_port)
            .with_context(|| format!("URL {url:?} has no valid host"))?;
        Ok(Self { is_https, host, port, path: path.to_owned() })
    }

    fn request_text(
        &self,
        method: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let mut text = format!(
            "{method} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
            self.path
        );
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() || method == "POST" {
            text.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        text.push_str("\r\n");
        text.push_str(body);
        text
    }
}

/// Splits `host:port`, `[v6]:port` or a bare host.
fn split_host_port(
    authority: &str,
    default_port: u16,
) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (authority, default_port),
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

fn connect(host: &str, port: u16) -> anyhow::Result<TcpStream> {
    let addresses = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("resolve {host}"))?;
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream.set_read_timeout(Some(IO_TIMEOUT))?;
                stream.set_write_timeout(Some(IO_TIMEOUT))?;
                return Ok(stream);
            }
            Err(cause) => last_error = Some(cause),
        }
    }
    match last_error {
        Some(cause) => Err(cause).context(format!("connect to {host}:{port}")),
        None => anyhow::bail!("{host} resolves to no address"),
    }
}

fn send_and_read(
    mut stream: impl io::Read + io::Write,
    request: &[u8],
) -> anyhow::Result<Vec<u8>> {
    stream.write_all(request).context("send the request")?;
    stream.flush().context("send the request")?;

    let mut raw = Vec::new();
    match stream.take(MAX_RESPONSE_LEN).read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        // A server may close without a TLS close_notify; the response is
        // still whole if its Content-Length is met, which parsing checks.
        Err(cause) if cause.kind() == io::ErrorKind::UnexpectedEof => Ok(raw),
        Err(cause) => Err(cause).context("read the response"),
    }
}

fn parse_response(raw: &[u8]) -> anyhow::Result<BlockingResponse> {
    let head_end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("the response has no complete header")?;
    let head = std::str::from_utf8(&raw[..head_end])
        .context("the response header is not UTF-8")?;
    let body = &raw[head_end + 4..];

    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;

    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            anyhow::bail!("chunked bodies are not supported by this client");
        }
        if name.eq_ignore_ascii_case("content-length") {
            let expected: usize =
                value.parse().context("bad Content-Length header")?;
            anyhow::ensure!(
                body.len() == expected,
                "body is {} bytes, Content-Length says {expected}",
                body.len()
            );
        }
    }
    Ok(BlockingResponse { status, body: String::from_utf8_lossy(body).into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_host_port_and_path() {
        let target = Target::parse("https://127.0.0.1:8443/login").expect("ok");
        assert!(target.is_https);
        assert_eq!((target.host.as_str(), target.port), ("127.0.0.1", 8443));
        assert_eq!(target.path, "/login");

        let target = Target::parse("http://[::1]").expect("ok");
        assert_eq!((target.host.as_str(), target.port), ("::1", 80));
        assert_eq!(target.path, "/");

        assert!(Target::parse("ftp://127.0.0.1/").is_err());
        assert!(Target::parse("http://:80/").is_err());
    }

    #[test]
    fn a_response_with_a_short_body_is_refused() {
        let whole = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let parsed = parse_response(whole).expect("whole response");
        assert_eq!((parsed.status, parsed.body.as_str()), (200, "{}"));

        let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}";
        assert!(parse_response(cut).is_err());
    }
}
