//! `mock-fcm`: the mock FCM upstream as its own process, for tests that kill
//! or restart gocm (or the upstream) and read counts over HTTP
//! (`GET /mock/stats`, `POST /mock/reset`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;
use mock_fcm::{MockFcm, MockOptions};

/// Mock FCM upstream: legacy /fcm/send, HTTP v1 and the OAuth2 token
/// endpoint on 127.0.0.1. Serves until killed.
#[derive(FromArgs)]
struct Cli {
    /// port on 127.0.0.1 (0 = any free port; the URLs printed at start name it)
    #[argh(option, default = "0")]
    port: u16,
    /// latency added to every send answer, in milliseconds
    #[argh(option, default = "0")]
    latency_ms: u64,
    /// legacy server key; when given, /fcm/send requires `Authorization: key=<it>`
    #[argh(option)]
    api_key: Option<String>,
    /// RSA public key (PKCS#1 RSAPublicKey DER) that JWTs must be signed with,
    /// e.g. tests/fixtures/service-account.pub.der; without it every JWT is rejected
    #[argh(option)]
    public_key: Option<PathBuf>,
    /// required JWT `iss` (the service account's client_email)
    #[argh(option)]
    client_email: Option<String>,
    /// project the v1 path must name
    #[argh(option, default = "String::from(\"test-project\")")]
    project_id: String,
    /// lifetime of issued access tokens, in seconds
    #[argh(option, default = "3599")]
    expires_in: u64,
}

fn main() -> ExitCode {
    let cli: Cli = argh::from_env();
    let public_key_der = match &cli.public_key {
        None => None,
        Some(path) => match std::fs::read(path) {
            Ok(der) => Some(der),
            Err(e) => {
                eprintln!("mock-fcm: cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
    };
    let opts = MockOptions {
        latency: Duration::from_millis(cli.latency_ms),
        api_key: cli.api_key,
        project_id: cli.project_id.clone(),
        public_key_der,
        client_email: cli.client_email,
        expires_in: cli.expires_in,
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, cli.port));
    let mock = match MockFcm::start_on(addr, opts) {
        Ok(mock) => mock,
        Err(e) => {
            eprintln!("mock-fcm: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One line per URL; stdout is line-buffered, so a parent process reading
    // the pipe sees each line at once.
    println!("legacy {}", mock.legacy_url());
    println!(
        "v1 {} (POST /v1/projects/{}/messages:send)",
        mock.base_url(),
        cli.project_id
    );
    println!("token {}", mock.token_uri());
    println!("stats {}/mock/stats", mock.base_url());
    loop {
        std::thread::park();
    }
}
