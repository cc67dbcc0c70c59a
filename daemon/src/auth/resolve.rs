//! Host name resolution for the daemon's HTTP client: the system resolver
//! (`getaddrinfo`, as reqwest's default), except that names under the
//! reserved `.invalid` top-level domain fail at once without a query, as
//! RFC 6761 (section 6.4) asks of resolver libraries.
//!
//! Such a name can never resolve, so asking a DNS server about it only
//! leaks the name and waits for the inevitable "no such host".

use std::io;
use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The reserved top-level domain that never resolves.
const INVALID_TLD: &str = "invalid";

/// The resolver the daemon's HTTP clients use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resolver;

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if is_reserved_invalid(&host) {
                let error = io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host} is under the reserved .invalid domain"),
                );
                return Err(error.into());
            }
            // Port 0 is a placeholder: the connector sets the URL's port.
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// Whether `host` is `invalid` or a name under it, in any case and with
/// or without the root dot.
pub fn is_reserved_invalid(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let last = host.rsplit('.').next().unwrap_or(host);
    last.eq_ignore_ascii_case(INVALID_TLD)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::*;

    #[test]
    fn only_names_under_the_invalid_tld_are_reserved() {
        for reserved in ["invalid", "auth.invalid", "A.B.INVALID", "x.invalid."]
        {
            assert!(is_reserved_invalid(reserved), "{reserved}");
        }
        for ordinary in ["invalid.example.com", "example.com", "localhost"] {
            assert!(!is_reserved_invalid(ordinary), "{ordinary}");
        }
    }

    #[tokio::test]
    async fn a_reserved_name_fails_without_a_lookup_and_loopback_resolves() {
        let refused = Resolver
            .resolve(Name::from_str("no-such-host.invalid").unwrap())
            .await;
        let message = refused.err().expect("refused").to_string();
        assert!(message.contains(".invalid"), "{message}");

        let found: Vec<SocketAddr> = Resolver
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .expect("localhost resolves from /etc/hosts")
            .collect();
        assert!(found.iter().all(|a| a.ip().is_loopback()), "{found:?}");
    }
}
