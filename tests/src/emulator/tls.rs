//! The emulator's own certificate authority and the TLS configurations of
//! its servers and of the blocking test client.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The file name of the CA certificate inside the state directory.
pub const CA_FILE_NAME: &str = "ca.pem";

/// The name clients see as the issuer, so a failed verification in a log
/// points at the emulator rather than at a real deployment.
const CA_COMMON_NAME: &str = "fkq-cred FormKiQ emulator CA";

/// The only protocol the servers speak; ALPN says so to clients that ask.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Base64 characters per PEM line, as RFC 7468 requires.
const PEM_LINE_LEN: usize = 64;

/// A CA and a server certificate signed by it, made fresh for one run.
pub(crate) struct Authority {
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivatePkcs8KeyDer<'static>,
}

impl Authority {
    /// Generates the CA and a server certificate for `127.0.0.1` and
    /// `localhost`, the names a loopback client may use.
    pub(crate) fn generate() -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate().context("generate the CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())
            .context("make the CA parameters")?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert =
            ca_params.self_signed(&ca_key).context("self-sign the CA")?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key =
            KeyPair::generate().context("generate the server key")?;
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned()])
                .context("make the server certificate parameters")?;
        server_params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        server_params.distinguished_name.push(DnType::CommonName, "localhost");
        server_params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .context("sign the server certificate")?;

        Ok(Self {
            ca_pem: certificate_pem(ca_cert.der()),
            server_chain: vec![
                server_cert.der().clone(),
                ca_cert.der().clone(),
            ],
            server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
        })
    }

    /// Writes the CA certificate as `ca.pem` in `dir` and returns its
    /// absolute path, the file clients are told to trust.
    pub(crate) fn write_ca(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let dir = dir.canonicalize().with_context(|| {
            format!("resolve the state directory {}", dir.display())
        })?;
        let path = dir.join(CA_FILE_NAME);
        fs::write(&path, &self.ca_pem)
            .with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }

    /// The rustls configuration the HTTPS listeners share.
    pub(crate) fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("pick TLS versions for the server")?
            .with_no_client_auth()
            .with_single_cert(
                self.server_chain.clone(),
                PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
            )
            .context("load the server certificate")?;
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(Arc::new(config))
    }
}

/// Encodes a DER certificate as PEM. Done here rather than by rcgen's
/// `pem` feature, which would build a second base64 crate for six lines.
fn certificate_pem(der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    // Base64 output is ASCII, so every chunk is valid UTF-8.
    for line in encoded.as_bytes().chunks(PEM_LINE_LEN) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// A client configuration that trusts only the CA in `ca_file`, as a test
/// that talks to the emulator should.
pub fn client_config_trusting(
    ca_file: &Path,
) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file)
        .with_context(|| format!("open {}", ca_file.display()))?
    {
        let cert =
            cert.with_context(|| format!("parse {}", ca_file.display()))?;
        roots.add(cert).with_context(|| {
            format!("trust the certificate in {}", ca_file.display())
        })?;
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "no certificate found in {}",
        ca_file.display()
    );

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("pick TLS versions for the client")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
