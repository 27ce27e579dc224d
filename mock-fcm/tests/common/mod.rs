//! Helpers shared by the mock's integration tests: an HTTP agent that
//! returns error statuses as values, and JWT signing with the fixture key.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mock_fcm::{MockFcm, MockOptions, TEST_CLIENT_EMAIL};
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde_json::{json, Value};

pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

const SERVICE_ACCOUNT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/service-account.json"
));

/// An agent that keeps connections alive and reports 4xx/5xx as responses.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// A plain response: status, selected headers, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub www_authenticate: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn collect(mut resp: ureq::http::Response<ureq::Body>) -> Answer {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after");
    let www_authenticate = header("www-authenticate");
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().expect("body readable");
    Answer {
        status,
        content_type,
        retry_after,
        www_authenticate,
        body,
    }
}

/// POSTs `body` (raw) with optional Authorization header.
pub fn post_raw(agent: &ureq::Agent, url: &str, authorization: Option<&str>, body: &str) -> Answer {
    let mut req = agent.post(url).header("Content-Type", "application/json");
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    collect(req.send(body).expect("request sent"))
}

/// POSTs JSON to the legacy endpoint without credentials.
pub fn legacy(mock: &MockFcm, body: &Value) -> Answer {
    post_raw(&agent(), &mock.legacy_url(), None, &body.to_string())
}

/// POSTs a legacy request for these tokens with some data.
pub fn legacy_tokens(mock: &MockFcm, tokens: &[&str]) -> Answer {
    legacy(
        mock,
        &json!({"registration_ids": tokens, "data": {"k": "v"}}),
    )
}

pub fn v1_url(mock: &MockFcm, project: &str) -> String {
    format!("{}/v1/projects/{project}/messages:send", mock.base_url())
}

/// POSTs a v1 send with a bearer token.
pub fn v1(mock: &MockFcm, access_token: &str, body: &Value) -> Answer {
    post_raw(
        &agent(),
        &v1_url(mock, "test-project"),
        Some(&format!("Bearer {access_token}")),
        &body.to_string(),
    )
}

/// A v1 send of a data message to `token`.
pub fn v1_token(mock: &MockFcm, access_token: &str, token: &str) -> Answer {
    v1(
        mock,
        access_token,
        &json!({"message": {"token": token, "data": {"k": "v"}}}),
    )
}

/// POSTs a form to the token endpoint.
pub fn token_request(mock: &MockFcm, grant_type: &str, assertion: &str) -> Answer {
    let resp = agent()
        .post(&mock.token_uri())
        .send_form([("grant_type", grant_type), ("assertion", assertion)])
        .expect("request sent");
    collect(resp)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims gocm would send for this mock.
pub fn good_claims(mock: &MockFcm) -> Value {
    let now = now();
    json!({
        "iss": TEST_CLIENT_EMAIL,
        "scope": SCOPE,
        "aud": mock.token_uri(),
        "iat": now,
        "exp": now + 3600,
    })
}

fn fixture_key() -> RsaKeyPair {
    let account: Value = serde_json::from_str(SERVICE_ACCOUNT).unwrap();
    let pem = account["private_key"].as_str().unwrap();
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).expect("PKCS#8 PEM");
    RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).expect("RSA key")
}

/// Signs `claims` with the fixture's private key under `header`.
pub fn sign_with_header(header: &Value, claims: &Value) -> String {
    let key = fixture_key();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .expect("signing works");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Signs `claims` the way Go's oauth2 does (RS256, typ JWT, kid).
pub fn sign(claims: &Value) -> String {
    let account: Value = serde_json::from_str(SERVICE_ACCOUNT).unwrap();
    sign_with_header(
        &json!({"alg": "RS256", "typ": "JWT", "kid": account["private_key_id"]}),
        claims,
    )
}

/// Gets an access token from the mock's token endpoint.
pub fn access_token(mock: &MockFcm) -> String {
    let answer = token_request(mock, GRANT_TYPE, &sign(&good_claims(mock)));
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["access_token"].as_str().unwrap().to_string()
}

/// A mock with the fixture service account and an access token for it.
pub fn v1_mock(opts: MockOptions) -> (MockFcm, String) {
    let mock = MockFcm::start(opts);
    let token = access_token(&mock);
    (mock, token)
}

/// Waits until `cond` holds, failing after `deadline`.
pub fn wait_until(deadline: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
