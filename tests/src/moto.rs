//! A real third-party Cognito peer for tests: `moto_server` (PyPI's
//! `moto[server,cognitoidp]`) on a loopback port, with helpers that set up
//! a user pool, an app client and users over its HTTP API.
//!
//! `scripts/test.sh` installs moto when it is missing and puts it on
//! `PATH`; `FKQ_MOTO_SERVER` may name another `moto_server`. A test that
//! needs moto fails when it cannot be found, rather than skipping.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::emulator::http_client::{BlockingClient, BlockingResponse};

/// The environment variable that names the `moto_server` to run.
pub const MOTO_ENV: &str = "FKQ_MOTO_SERVER";

/// How long moto may take to start: importing it takes seconds, and a
/// loaded CI machine more.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The content type of the AWS JSON 1.1 protocol.
const AMZ_JSON: &str = "application/x-amz-json-1.1";

/// A user pool and its app client.
#[derive(Debug, Clone)]
pub struct UserPool {
    /// The pool id, `<region>_<id>`.
    pub pool_id: String,
    /// The app client id (a stack's `CognitoClientId`).
    pub client_id: String,
}

/// A running `moto_server`, killed on drop.
pub struct MotoServer {
    child: Child,
    url: String,
    client: BlockingClient,
}

/// Finds `moto_server`: `FKQ_MOTO_SERVER`, else the first on `PATH`.
pub fn moto_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(MOTO_ENV) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
}

impl MotoServer {
    /// Starts `moto_server` on a free loopback port and waits for the line
    /// that says it serves.
    pub fn start() -> anyhow::Result<Self> {
        let binary = moto_binary().context(
            "moto_server is not on PATH: run the tests with scripts/test.sh, \
             which installs moto[server,cognitoidp], or set FKQ_MOTO_SERVER",
        )?;
        let port = crate::harness::closed_port();
        let mut child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;

        let stderr = child.stderr.take().context("moto's stderr")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("Running on") {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}/"),
            client: BlockingClient::plain(),
        };
        ready_rx.recv_timeout(READY_TIMEOUT).with_context(|| {
            format!(
                "{} did not start within {READY_TIMEOUT:?}",
                binary.display()
            )
        })?;
        Ok(server)
    }

    /// The endpoint, as `cognito_endpoint` takes it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls a user-pool API operation and returns the reply, whatever
    /// its status.
    pub fn call(
        &self,
        operation: &str,
        body: &Value,
    ) -> anyhow::Result<BlockingResponse> {
        let target = format!("AWSCognitoIdentityProviderService.{operation}");
        let headers = [("Content-Type", AMZ_JSON), ("X-Amz-Target", &target)];
        self.client.request(
            "POST",
            &self.url,
            &headers,
            Some(&body.to_string()),
        )
    }

    /// Calls an operation that must succeed and returns its JSON.
    fn call_ok(&self, operation: &str, body: &Value) -> anyhow::Result<Value> {
        let reply = self.call(operation, body)?;
        anyhow::ensure!(
            reply.status == 200,
            "{operation} answered {}: {}",
            reply.status,
            reply.body
        );
        reply.json()
    }

    /// Creates a user pool and an app client that allows the flows a
    /// FormKiQ stack's client allows, without a client secret.
    pub fn user_pool(&self) -> anyhow::Result<UserPool> {
        let pool =
            self.call_ok("CreateUserPool", &json!({"PoolName": "fkq"}))?;
        let pool_id =
            pool["UserPool"]["Id"].as_str().context("a pool id")?.to_owned();
        let client = self.call_ok(
            "CreateUserPoolClient",
            &json!({
                "UserPoolId": pool_id,
                "ClientName": "fkq-cred",
                "ExplicitAuthFlows": [
                    "ALLOW_USER_PASSWORD_AUTH",
                    "ALLOW_REFRESH_TOKEN_AUTH",
                ],
            }),
        )?;
        let client_id = client["UserPoolClient"]["ClientId"]
            .as_str()
            .context("a client id")?
            .to_owned();
        Ok(UserPool { pool_id, client_id })
    }

    /// Creates a user as an administrator does: it starts in
    /// `FORCE_CHANGE_PASSWORD` with `temporary` as its password.
    pub fn admin_create_user(
        &self,
        pool: &UserPool,
        username: &str,
        temporary: &str,
    ) -> anyhow::Result<()> {
        self.call_ok(
            "AdminCreateUser",
            &json!({
                "UserPoolId": pool.pool_id,
                "Username": username,
                "TemporaryPassword": temporary,
            }),
        )
        .map(drop)
    }

    /// The pool's JWKS document, whose keys sign its tokens.
    pub fn jwks(&self, pool: &UserPool) -> anyhow::Result<String> {
        let url = format!("{}{}/.well-known/jwks.json", self.url, pool.pool_id);
        let reply = self.client.get(&url, None)?;
        anyhow::ensure!(reply.status == 200, "JWKS answered {}", reply.status);
        Ok(reply.body)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // The child is ours; killing it can only fail if it already ended.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
