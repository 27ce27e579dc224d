//! A scriptable mock of Google's FCM upstream for gocm's tests and
//! benchmarks.
//!
//! One HTTP server speaks all three protocols gocm talks to:
//!
//! * the legacy GCM/FCM JSON protocol at `POST /fcm/send` ([`MockFcm::legacy_url`]),
//! * FCM HTTP v1 at `POST /v1/projects/{project}/messages:send` under
//!   [`MockFcm::base_url`],
//! * the OAuth2 token endpoint at `POST /token` ([`MockFcm::token_uri`]).
//!
//! Tests steer it by token names and by pushing [`Scripted`] whole-request
//! answers, and read back what arrived ([`MockFcm::received`],
//! [`MockFcm::snapshot`], ...). The protocol details follow `fcm-protocol.md`
//! in the shared docs.
//!
//! # Token names
//!
//! | token | legacy result entry | v1 answer |
//! |---|---|---|
//! | anything else | `{"message_id":"0:<n>%<hex>"}` | 200 `{"name":"projects/<p>/messages/0:<n>%<hex>"}` |
//! | `canonical-<x>` | `message_id` + `"registration_id":"new-<x>"` | 200 (v1 has no canonical ids) |
//! | `notreg-*` | `{"error":"NotRegistered"}` | 404 NOT_FOUND / UNREGISTERED |
//! | `invalid-*` | `{"error":"InvalidRegistration"}` | 400 INVALID_ARGUMENT |
//! | `mismatch-*` | `{"error":"MismatchSenderId"}` | 403 PERMISSION_DENIED / SENDER_ID_MISMATCH |
//! | `thirdparty-*` | `{"error":"InvalidApnsCredential"}` | 401 UNAUTHENTICATED / THIRD_PARTY_AUTH_ERROR |
//! | `unavailN-*` | `{"error":"Unavailable"}` the first N times, then delivered | 503 UNAVAILABLE N times, then 200 |
//! | `internalN-*` | `{"error":"InternalServerError"}` N times, then delivered | 500 INTERNAL N times, then 200 |
//! | `quotaN-*` | `{"error":"DeviceMessageRateExceeded"}` N times, then delivered | 429 QUOTA_EXCEEDED + `Retry-After: 1` N times, then 200 |
//! | `slowN-*` | delivered, answered N ms later | same |
//!
//! "N times" counts the times normal handling judged the token: requests
//! refused as a whole (bad credentials, scripted answers) do not use them
//! up. [`MockFcm::reset_counts`] starts the count again.
//!
//! # Control routes
//!
//! For the `mock-fcm` binary (and usable in-process too): `GET /mock/stats`
//! answers [`MockFcm::snapshot`] as JSON, `POST /mock/reset` calls
//! [`MockFcm::reset_counts`] (204). Neither is counted.
//!
//! ```no_run
//! use mock_fcm::{MockFcm, MockOptions};
//! let mock = MockFcm::start(MockOptions::test_service_account());
//! // point gocm at mock.legacy_url() / mock.base_url() / mock.token_uri() ...
//! assert_eq!(mock.delivered("some-token"), 0);
//! ```

mod delay;
mod ids;
mod legacy;
mod outcome;
mod reply;
mod script;
mod server;
mod stats;
mod token;
mod v1;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use script::{ScriptBody, Scripted};
pub use stats::Stats;

use server::{Running, Shared};
use token::TokenEndpoint;

/// `client_email` of the test service account in `tests/fixtures`.
pub const TEST_CLIENT_EMAIL: &str = "gocm-test@test-project.iam.gserviceaccount.com";

/// The test service account's public key (PKCS#1 `RSAPublicKey`, DER), for
/// [`MockOptions::public_key_der`]. Test-only key; see `tests/fixtures/README.md`.
pub fn test_public_key_der() -> Vec<u8> {
    include_bytes!("../../tests/fixtures/service-account.pub.der").to_vec()
}

/// The test service-account key file (`tests/fixtures/service-account.json`)
/// with `token_uri` replaced, ready to write to a temp file for gocm.
pub fn test_service_account_json(token_uri: &str) -> String {
    let fixture = include_str!("../../tests/fixtures/service-account.json");
    let mut account: serde_json::Value =
        serde_json::from_str(fixture).expect("fixture is valid JSON");
    account["token_uri"] = serde_json::Value::String(token_uri.to_string());
    serde_json::to_string_pretty(&account).expect("a JSON value serialises")
}

/// How a mock server behaves. `Default` gives an open legacy endpoint, the
/// v1 project `test-project`, and a token endpoint that rejects every JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockOptions {
    /// Added to every send answer (legacy and v1), not to token-endpoint or
    /// control answers. Changeable later with [`MockFcm::set_latency`].
    pub latency: Duration,
    /// Legacy: when set, require `Authorization: key=<it>`, else answer 401
    /// with Google's HTML page.
    pub api_key: Option<String>,
    /// The project a v1 path must name, else 404.
    pub project_id: String,
    /// RSA public key (PKCS#1 `RSAPublicKey` DER) that JWT RS256 signatures
    /// must verify with; `None` makes the token endpoint reject every JWT
    /// (and so every v1 send fails with 401).
    pub public_key_der: Option<Vec<u8>>,
    /// When set, the JWT `iss` must equal it.
    pub client_email: Option<String>,
    /// Lifetime of issued access tokens, in seconds (0 = expired at once).
    pub expires_in: u64,
}

impl Default for MockOptions {
    fn default() -> MockOptions {
        MockOptions {
            latency: Duration::ZERO,
            api_key: None,
            project_id: "test-project".to_string(),
            public_key_der: None,
            client_email: None,
            expires_in: 3599,
        }
    }
}

impl MockOptions {
    /// Defaults plus the test service account of `tests/fixtures` (its
    /// public key and `client_email`), so the v1 flow works end to end.
    pub fn test_service_account() -> MockOptions {
        MockOptions {
            public_key_der: Some(test_public_key_der()),
            client_email: Some(TEST_CLIENT_EMAIL.to_string()),
            ..MockOptions::default()
        }
    }
}

/// A running mock server. Dropping it stops the server threads and closes
/// the listening socket (see `server.rs` for what happens to connections
/// that are still open).
pub struct MockFcm {
    shared: Arc<Shared>,
    addr: SocketAddr,
    // Declared last so it drops (stopping the threads) after nothing else
    // needs them; it owns the listener.
    _running: Running,
}

impl MockFcm {
    /// Starts on 127.0.0.1 with an OS-chosen port. Panics if it cannot
    /// (it is a test helper).
    pub fn start(opts: MockOptions) -> MockFcm {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        MockFcm::start_on(addr, opts).expect("mock-fcm: cannot start on 127.0.0.1:0")
    }

    /// Starts on `addr` (port 0 = OS-chosen).
    pub fn start_on(addr: SocketAddr, opts: MockOptions) -> std::io::Result<MockFcm> {
        let bound = server::bind(addr)?;
        let addr = bound.addr;
        let tokens = TokenEndpoint::new(
            opts.public_key_der,
            opts.client_email,
            opts.expires_in,
            token_uri(addr),
        );
        let shared = Arc::new(Shared::new(
            opts.latency,
            opts.api_key,
            opts.project_id,
            tokens,
        ));
        let running = Running::start(bound, Arc::clone(&shared))?;
        Ok(MockFcm {
            shared,
            addr,
            _running: running,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (gocm's `--fcm-endpoint`).
    pub fn base_url(&self) -> String {
        base_url(self.addr)
    }

    /// `base_url() + "/fcm/send"` (gocm's `--gcm-endpoint`).
    pub fn legacy_url(&self) -> String {
        format!("{}/fcm/send", self.base_url())
    }

    /// `base_url() + "/token"`: the `token_uri` for a service-account file,
    /// and the `aud` the token endpoint requires in JWTs.
    pub fn token_uri(&self) -> String {
        token_uri(self.addr)
    }

    /// Changes the latency added to every send answer from now on.
    pub fn set_latency(&self, d: Duration) {
        self.shared.set_latency(d);
    }

    /// Queues a canned answer: the next legacy or v1 send request consumes
    /// the oldest entry instead of normal handling (FIFO).
    pub fn push_script(&self, s: Scripted) {
        self.shared.scripts.push(s);
    }

    /// Makes the next `n` token-endpoint calls fail with `status` (RFC 6749
    /// JSON error body; 5xx answers `{"error":"internal_failure"}`).
    pub fn fail_token_requests(&self, n: u32, status: u16) {
        self.shared.tokens.fail_next(n, status);
    }

    /// Invalidates every access token issued so far: the next v1 send with
    /// one gets 401 UNAUTHENTICATED (generic Google body, no FcmError).
    pub fn revoke_access_tokens(&self) {
        self.shared.tokens.revoke_all();
    }

    /// Times `token` arrived in a send request (legacy or v1), whatever the
    /// answer, scripted and refused requests included.
    pub fn received(&self, token: &str) -> u32 {
        self.shared.counters.received(token)
    }

    /// Times `token` was answered as delivered (canonical included; dry-run
    /// and validate-only sends excluded, scripted answers never count).
    pub fn delivered(&self, token: &str) -> u32 {
        self.shared.counters.delivered(token)
    }

    /// The `data` object last received for `token` (legacy: the request's
    /// `data`; v1: `message.data`); `None` if the token never arrived or its
    /// last message had no `data`.
    pub fn last_data(&self, token: &str) -> Option<serde_json::Value> {
        self.shared
            .counters
            .last_message(token)
            .and_then(|m| m.get("data").cloned())
    }

    /// The last message that carried `token`: v1, the whole `message` object
    /// (with `"validate_only": true` copied in when set); legacy, the whole
    /// request body.
    pub fn last_message(&self, token: &str) -> Option<serde_json::Value> {
        self.shared
            .counters
            .last_message(token)
            .map(|m| (*m).clone())
    }

    /// Send requests received (legacy + v1), scripted and refused ones included.
    pub fn send_requests(&self) -> u64 {
        self.shared.counters.send_requests()
    }

    /// Number of tokens in each legacy request (`registration_ids` length,
    /// 1 for `to`), in arrival order.
    pub fn legacy_batch_sizes(&self) -> Vec<usize> {
        self.shared.counters.legacy_batch_sizes()
    }

    /// Token-endpoint calls, successful or not.
    pub fn token_requests(&self) -> u64 {
        self.shared.counters.token_requests()
    }

    /// Distinct TCP connections seen (distinct peer addresses over all
    /// requests except the `/mock/*` control routes).
    pub fn connections(&self) -> u64 {
        self.shared.counters.connections()
    }

    /// A serialisable summary of the counts.
    pub fn snapshot(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Forgets all counts (and how often each `unavailN-` style token has
    /// failed). Scripts, issued tokens and latency are kept.
    pub fn reset_counts(&self) {
        self.shared.counters.reset();
    }
}

fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

fn token_uri(addr: SocketAddr) -> String {
    format!("{}/token", base_url(addr))
}
