//! FCM HTTP v1 end to end, over real HTTP against the in-repo mock: the
//! service-account flow (JWT → access token, cached, refreshed, revoked),
//! the request body, and every per-token outcome. Two layers:
//!
//! * `provider_*`: the v1 provider alone, through the `Upstream` trait, so
//!   each test sees the exact `Outcome` per token;
//! * `relay_*`: a whole gocm (`Relay::start`) spoken to over its HTTP API,
//!   so retries, back-off and the reports are the real ones.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, post_to, wait_until, Answer};
use gocm::config::Config;
use gocm::error::Error;
use gocm::upstream::{self, AndroidOptions, Message, Outcome, Priority, Reason, Upstream};
use gocm::Relay;
use mock_fcm::{MockFcm, MockOptions, Scripted};
use serde_json::{json, Map, Value};

const FIXTURE: &str = include_str!("fixtures/service-account.json");

// ---------------------------------------------------------------------------
// Helpers

/// A key file in the temp dir, removed on drop.
struct TempKey(PathBuf);

impl TempKey {
    fn new(content: &str) -> TempKey {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "gocm-v1-test-{}-{}-{}.json",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            fastrand::u64(..)
        ));
        std::fs::write(&path, content).expect("write temp key file");
        TempKey(path)
    }

    /// The fixture key with `token_uri` pointing at `mock`.
    fn for_mock(mock: &MockFcm) -> TempKey {
        TempKey::new(&mock_fcm::test_service_account_json(&mock.token_uri()))
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn mock_with(expires_in: u64, latency: Duration) -> MockFcm {
    MockFcm::start(MockOptions {
        expires_in,
        latency,
        ..MockOptions::test_service_account()
    })
}

fn mock() -> MockFcm {
    mock_with(3599, Duration::ZERO)
}

/// gocm flags for v1 against `mock`, with fast back-offs; `extra` wins.
fn config(mock: &MockFcm, key: &TempKey, extra: &[&str]) -> Config {
    let endpoint = mock.base_url();
    let defaults = [
        ("--credentials", key.path()),
        ("--fcm-endpoint", endpoint.as_str()),
        ("--port", "0"),
        ("--workers", "8"),
        ("--backoff-ms", "50"),
        ("--backoff-max-ms", "400"),
        ("--upstream-timeout-ms", "5000"),
        ("--data-dir", "none"),
    ];
    let mut args: Vec<&str> = Vec::new();
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    Config::from_args(&args, |_| None).expect("valid test flags")
}

/// The v1 provider alone.
fn provider(mock: &MockFcm, key: &TempKey, extra: &[&str]) -> Arc<dyn Upstream> {
    let up = upstream::build(&config(mock, key, extra)).expect("v1 provider starts");
    assert_eq!((up.name(), up.max_tokens_per_call()), ("v1", 1));
    up
}

fn send(up: &dyn Upstream, message: &Message, token: &str) -> Outcome {
    let mut outcomes = up.send(message, &[token.to_string()]);
    assert_eq!(outcomes.len(), 1);
    outcomes.pop().unwrap()
}

fn data(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn small() -> Message {
    Message {
        data: data(json!({"k": "v"})),
        ..Message::default()
    }
}

/// A relay in front of a mock, with its key file.
struct V1Relay {
    mock: MockFcm,
    relay: Relay,
    agent: ureq::Agent,
    _key: TempKey,
}

impl V1Relay {
    fn start(mock: MockFcm, extra: &[&str]) -> V1Relay {
        let key = TempKey::for_mock(&mock);
        let relay = Relay::start(config(&mock, &key, extra)).expect("relay starts");
        V1Relay {
            mock,
            relay,
            agent: client(),
            _key: key,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.relay.addr())
    }

    fn post_json(&self, body: &Value) -> Answer {
        post_to(
            &self.agent,
            &self.url("/gcm/send"),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    fn send(&self, tokens: &[String]) {
        let a = self.post_json(&json!({"tokens": tokens, "payload": {"k": "v"}}));
        assert_eq!((a.status, a.body.as_str()), (200, "ok\n"), "send refused");
    }

    fn get_json(&self, path: &str) -> Value {
        let mut r = self.agent.get(&self.url(path)).call().expect("GET");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).expect("JSON")
    }

    fn report(&self) -> Value {
        self.get_json("/gcm/report")
    }

    /// Waits until nothing is pending; returns the report.
    fn wait_idle(&self, timeout: Duration) -> Value {
        let mut last = Value::Null;
        wait_until("pending == 0", timeout, || {
            last = self.report();
            last["pending"] == 0
        });
        last
    }
}

fn tokens(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

// ---------------------------------------------------------------------------
// The provider alone

#[test]
fn provider_classifies_every_outcome() {
    let mock = mock();
    let key = TempKey::for_mock(&mock);
    let up = provider(&mock, &key, &[]);
    let m = small();

    assert_eq!(send(&*up, &m, "device-1"), Outcome::Delivered);
    assert_eq!(mock.delivered("device-1"), 1);
    assert_eq!(send(&*up, &m, "notreg-1"), Outcome::NotRegistered);
    assert_eq!(
        send(&*up, &m, "invalid-1"),
        Outcome::failed(
            Reason::Invalid,
            "INVALID_ARGUMENT: The registration token is not a valid FCM registration token"
        )
    );
    assert_eq!(
        send(&*up, &m, "mismatch-1"),
        Outcome::failed(Reason::Auth, "SENDER_ID_MISMATCH: SenderId mismatch")
    );
    assert_eq!(
        send(&*up, &m, "thirdparty-1"),
        Outcome::failed(
            Reason::Auth,
            "THIRD_PARTY_AUTH_ERROR: Auth error from APNS or Web Push Service"
        )
    );

    // Transient: retried by the caller, then delivered.
    assert_eq!(
        send(&*up, &m, "unavail1-a"),
        Outcome::retry(
            None,
            Reason::Upstream,
            "UNAVAILABLE: The service is currently unavailable."
        )
    );
    assert_eq!(send(&*up, &m, "unavail1-a"), Outcome::Delivered);
    assert_eq!(
        send(&*up, &m, "internal1-a"),
        Outcome::retry(
            None,
            Reason::Upstream,
            "INTERNAL: Internal error encountered."
        )
    );
    assert_eq!(send(&*up, &m, "internal1-a"), Outcome::Delivered);
    assert_eq!(
        send(&*up, &m, "quota1-a"),
        Outcome::retry(
            Some(Duration::from_secs(1)),
            Reason::Quota,
            "QUOTA_EXCEEDED: Quota exceeded."
        )
    );
    assert_eq!(send(&*up, &m, "quota1-a"), Outcome::Delivered);

    // Whole-request answers of a front end: status and Retry-After only.
    mock.push_script(
        Scripted::html(503, "<html>Error 503 (Server Error)!!1</html>").retry_after("3"),
    );
    assert_eq!(
        send(&*up, &m, "device-2"),
        Outcome::retry(
            Some(Duration::from_secs(3)),
            Reason::Upstream,
            "HTTP 503 (not an FCM error body)"
        )
    );
    mock.push_script(Scripted::html(
        502,
        "<html>Error 502 (Server Error)!!1</html>",
    ));
    assert!(matches!(
        send(&*up, &m, "device-2"),
        Outcome::Retry {
            after: None,
            reason: Reason::Upstream,
            ..
        }
    ));
    mock.push_script(Scripted::json(500, "{not json"));
    assert!(matches!(
        send(&*up, &m, "device-2"),
        Outcome::Retry {
            reason: Reason::Upstream,
            ..
        }
    ));
    mock.push_script(Scripted::status(429));
    assert_eq!(
        send(&*up, &m, "device-2"),
        Outcome::retry(
            Some(Duration::from_secs(60)),
            Reason::Quota,
            "HTTP 429 (not an FCM error body)"
        ),
        "429 without Retry-After waits a minute"
    );
    mock.push_script(Scripted::text(418, "teapot"));
    assert!(matches!(
        send(&*up, &m, "device-2"),
        Outcome::Failed {
            reason: Reason::Invalid,
            ..
        }
    ));
    assert_eq!(send(&*up, &m, "device-2"), Outcome::Delivered);

    // One token for all of it, and every body read to the end, so one
    // pooled connection carried the token request and all the sends.
    assert_eq!(mock.token_requests(), 1);
    assert_eq!(mock.connections(), 1, "connection reused");
}

#[test]
fn provider_sends_data_as_strings_and_passes_options_through() {
    let mock = mock();
    let key = TempKey::for_mock(&mock);
    let up = provider(&mock, &key, &[]);
    let message = Message {
        data: data(json!({
            "s": "text",
            "e": "",
            "u": "ünïcødé \"q\" \\",
            "i": 3,
            "n": -12,
            "f": 2.5,
            "big": 12345678901234567890u64,
            "t": true,
            "b": false,
            "o": {"a": [1, "x", {"y": null}], "z": 1.5},
            "a": [1, 2, 3],
            "ea": [],
        })),
        notification: Some(data(
            json!({"title": "Hello", "body": "World", "image": "https://x/y.png"}),
        )),
        android: Some(AndroidOptions {
            priority: Some(Priority::High),
            ttl: Some(3600),
            collapse_key: Some("score".into()),
        }),
        dry_run: false,
    };
    assert_eq!(send(&*up, &message, "data-1"), Outcome::Delivered);
    let got = mock.last_message("data-1").expect("arrived");
    assert_eq!(
        got["data"],
        json!({
            "s": "text",
            "e": "",
            "u": "ünïcødé \"q\" \\",
            "i": "3",
            "n": "-12",
            "f": "2.5",
            "big": "12345678901234567890",
            "t": "true",
            "b": "false",
            "o": r#"{"a":[1,"x",{"y":null}],"z":1.5}"#,
            "a": "[1,2,3]",
            "ea": "[]",
        })
    );
    assert_eq!(
        got["notification"],
        json!({"title": "Hello", "body": "World", "image": "https://x/y.png"})
    );
    assert_eq!(
        got["android"],
        json!({"priority": "high", "ttl": "3600s", "collapse_key": "score"})
    );
    assert_eq!(got["token"], "data-1");
    assert!(got.get("validate_only").is_none());

    // Absent sections are absent; normal priority; TTL 0.
    let plain = Message {
        android: Some(AndroidOptions {
            priority: Some(Priority::Normal),
            ttl: Some(0),
            collapse_key: None,
        }),
        ..small()
    };
    assert_eq!(send(&*up, &plain, "plain-1"), Outcome::Delivered);
    assert_eq!(
        mock.last_message("plain-1").unwrap(),
        json!({"token": "plain-1", "data": {"k": "v"}, "android": {"priority": "normal", "ttl": "0s"}})
    );

    // dry_run → validate_only: judged, answered, not delivered.
    let dry = Message {
        dry_run: true,
        ..small()
    };
    assert_eq!(send(&*up, &dry, "dry-1"), Outcome::Delivered);
    assert_eq!((mock.received("dry-1"), mock.delivered("dry-1")), (1, 0));
    assert_eq!(mock.last_message("dry-1").unwrap()["validate_only"], true);
}

/// One recorded HTTP request: the head (request line and headers) and body.
struct Raw {
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// A tiny HTTP/1.1 server that records `n` raw requests (one connection at
/// a time, keep-alive) and answers `/token` with an access token and
/// anything else with a v1 success.
fn recording_server(n: usize) -> (String, std::thread::JoinHandle<Vec<Raw>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while seen.len() < n {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut out = stream;
            while seen.len() < n {
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 {
                        break;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                if head.is_empty() {
                    break; // connection closed
                }
                let mut raw = Raw {
                    head,
                    body: Vec::new(),
                };
                let len: usize = raw
                    .header("content-length")
                    .map_or(0, |v| v.parse().unwrap());
                raw.body = vec![0; len];
                reader.read_exact(&mut raw.body).unwrap();
                let answer = if raw.head.starts_with("POST /token ") {
                    r#"{"access_token":"raw-token","expires_in":3600,"token_type":"Bearer"}"#
                } else {
                    r#"{"name":"projects/test-project/messages/1"}"#
                };
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                    answer.len()
                )
                .unwrap();
                out.flush().unwrap();
                seen.push(raw);
            }
        }
        seen
    });
    (base, handle)
}

#[test]
fn provider_sends_exact_bytes_and_headers() {
    let (base, server) = recording_server(2);
    let key = TempKey::new(&mock_fcm::test_service_account_json(&format!(
        "{base}/token"
    )));
    let endpoint = base.clone();
    let config = Config::from_args(
        &[
            "--credentials",
            key.path(),
            "--fcm-endpoint",
            &endpoint,
            "--data-dir",
            "none",
        ],
        |_| None,
    )
    .unwrap();
    let up = upstream::build(&config).unwrap();
    let message = Message {
        data: data(json!({"f": 2.5, "i": 3, "o": {"a": [1, null]}, "s": "x", "t": true})),
        notification: Some(data(json!({"title": "T"}))),
        android: Some(AndroidOptions {
            priority: Some(Priority::High),
            ttl: Some(60),
            collapse_key: Some("k".into()),
        }),
        dry_run: true,
    };
    assert_eq!(send(&*up, &message, "raw-1"), Outcome::Delivered);
    let seen = server.join().unwrap();

    let token = &seen[0];
    assert!(
        token.head.starts_with("POST /token HTTP/1.1\r\n"),
        "{}",
        token.head
    );
    assert_eq!(
        token.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let form = String::from_utf8(token.body.clone()).unwrap();
    let assertion = form
        .strip_prefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")
        .unwrap_or_else(|| panic!("form: {form}"));
    assert_eq!(assertion.split('.').count(), 3);

    let send = &seen[1];
    assert!(
        send.head
            .starts_with("POST /v1/projects/test-project/messages:send HTTP/1.1\r\n"),
        "{}",
        send.head
    );
    assert_eq!(
        send.header("authorization").as_deref(),
        Some("Bearer raw-token")
    );
    assert_eq!(
        send.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        send.header("x-goog-api-format-version").as_deref(),
        Some("2")
    );
    assert_eq!(
        String::from_utf8(send.body.clone()).unwrap(),
        r#"{"message":{"token":"raw-1","data":{"f":"2.5","i":"3","o":"{\"a\":[1,null]}","s":"x","t":"true"},"notification":{"title":"T"},"android":{"priority":"high","ttl":"60s","collapse_key":"k"}},"validate_only":true}"#
    );
}

#[test]
fn provider_refreshes_a_revoked_token_once_and_resends() {
    let mock = mock();
    let key = TempKey::for_mock(&mock);
    let up = provider(&mock, &key, &[]);
    assert_eq!(send(&*up, &small(), "r-1"), Outcome::Delivered);
    assert_eq!(mock.token_requests(), 1);

    mock.revoke_access_tokens();
    assert_eq!(send(&*up, &small(), "r-2"), Outcome::Delivered);
    assert_eq!(mock.token_requests(), 2, "one refresh");
    assert_eq!(mock.received("r-2"), 2, "rejected once, resent once");
    assert_eq!(mock.delivered("r-2"), 1);

    // Still 401 after the refresh: Retry (auth), no second refresh or resend.
    let unauthenticated = r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#;
    mock.push_script(Scripted::json(401, unauthenticated));
    mock.push_script(Scripted::json(401, unauthenticated));
    match send(&*up, &small(), "r-3") {
        Outcome::Retry {
            reason: Reason::Auth,
            detail,
            ..
        } => assert!(detail.contains("UNAUTHENTICATED"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(mock.token_requests(), 3);
    assert_eq!(mock.received("r-3"), 2);
    assert_eq!(send(&*up, &small(), "r-3"), Outcome::Delivered);
    assert_eq!(mock.token_requests(), 3);
}

#[test]
fn provider_backs_off_a_failing_token_endpoint() {
    let mock = mock();
    let key = TempKey::for_mock(&mock);
    let up = provider(
        &mock,
        &key,
        &["--backoff-ms", "100", "--backoff-max-ms", "400"],
    );

    mock.fail_token_requests(2, 503);
    let after = match send(&*up, &small(), "b-1") {
        Outcome::Retry {
            after: Some(after),
            reason: Reason::Upstream,
            detail,
        } => {
            assert!(detail.contains("HTTP 503"), "{detail}");
            after
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(after, Duration::from_millis(100));
    let t0 = Instant::now();
    // During the back-off: Retry at once, and the endpoint is left alone.
    for _ in 0..20 {
        assert!(matches!(
            send(&*up, &small(), "b-1"),
            Outcome::Retry {
                reason: Reason::Upstream,
                ..
            }
        ));
    }
    assert_eq!(mock.token_requests(), 1);
    assert_eq!(mock.received("b-1"), 0, "nothing sent without a token");

    // Second failure doubles the back-off; then the endpoint recovers.
    wait_until("second try", Duration::from_secs(5), || {
        let _ = send(&*up, &small(), "b-1");
        mock.token_requests() == 2
    });
    assert!(t0.elapsed() >= Duration::from_millis(90));
    let t1 = Instant::now();
    let mut outcome = Outcome::Delivered;
    wait_until("delivered after recovery", Duration::from_secs(5), || {
        outcome = send(&*up, &small(), "b-1");
        outcome == Outcome::Delivered
    });
    assert!(
        t1.elapsed() >= Duration::from_millis(190),
        "{:?}",
        t1.elapsed()
    );
    assert_eq!(mock.token_requests(), 3);

    // invalid_grant: Retry with Reason::Auth, the endpoint's words kept.
    let mock = MockFcm::start(MockOptions::test_service_account());
    let key = TempKey::for_mock(&mock);
    let up = provider(&mock, &key, &[]);
    mock.fail_token_requests(1, 400);
    match send(&*up, &small(), "g-1") {
        Outcome::Retry {
            reason: Reason::Auth,
            detail,
            ..
        } => {
            assert!(detail.contains("invalid_grant"), "{detail}");
            assert!(detail.contains("Invalid JWT Signature."), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn provider_is_refused_by_a_token_endpoint_that_does_not_know_the_key() {
    // A mock without our public key rejects every JWT (invalid_grant).
    let mock = MockFcm::start(MockOptions::default());
    let key = TempKey::for_mock(&mock);
    let up = provider(&mock, &key, &[]);
    match send(&*up, &small(), "x-1") {
        Outcome::Retry {
            reason: Reason::Auth,
            detail,
            ..
        } => {
            // The mock says why, so a newcomer knows which flag is missing.
            assert!(detail.contains("--public-key"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(mock.received("x-1"), 0);
}

// ---------------------------------------------------------------------------
// The whole relay

#[test]
fn relay_reports_v1_outcomes() {
    let r = V1Relay::start(mock(), &[]);
    let sent = [
        "ok-1",
        "notreg-1",
        "invalid-1",
        "mismatch-1",
        "thirdparty-1",
        "unavail2-1",
        "internal1-1",
        "ok-2",
    ];
    let sent: Vec<String> = sent.iter().map(|s| s.to_string()).collect();
    r.send(&sent);
    let report = r.wait_idle(Duration::from_secs(20));
    assert_eq!(report["attempts"], 8);
    assert_eq!(report["failures"], 4, "{report}");
    assert_eq!(report["notregistered"], 1);
    assert_eq!(report["canonicals"], 0);
    assert_eq!(
        r.get_json("/gcm/report/notregistered"),
        json!({"tokens": ["notreg-1"]})
    );
    for t in ["ok-1", "ok-2", "unavail2-1", "internal1-1"] {
        assert_eq!(r.mock.delivered(t), 1, "{t}");
    }
    assert_eq!(r.mock.received("unavail2-1"), 3);
    // Permanent failures are not retried.
    for t in ["notreg-1", "invalid-1", "mismatch-1", "thirdparty-1"] {
        assert_eq!(r.mock.received(t), 1, "{t}");
    }
    assert_eq!(r.mock.token_requests(), 1);
}

#[test]
fn relay_passes_payload_notification_android_and_dry_run_through() {
    let r = V1Relay::start(mock(), &[]);
    let a = r.post_json(&json!({
        "tokens": ["pass-1"],
        "payload": {"message": "hi", "count": 3, "ratio": 0.25, "flag": true, "nested": {"k": ["v", 1]}},
        "notification": {"title": "T", "body": "B"},
        "android": {"priority": "high", "ttl": 60, "collapse_key": "k"},
    }));
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    let a = r.post_json(&json!({
        "tokens": ["dry-1"],
        "payload": {"message": "hi"},
        "dry_run": true,
    }));
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    r.wait_idle(Duration::from_secs(20));

    assert_eq!(
        r.mock.last_message("pass-1").unwrap(),
        json!({
            "token": "pass-1",
            "data": {"message": "hi", "count": "3", "ratio": "0.25", "flag": "true", "nested": r#"{"k":["v",1]}"#},
            "notification": {"title": "T", "body": "B"},
            "android": {"priority": "high", "ttl": "60s", "collapse_key": "k"},
        })
    );
    assert_eq!(r.mock.delivered("pass-1"), 1);
    assert_eq!(
        r.mock.last_message("dry-1").unwrap(),
        json!({"token": "dry-1", "data": {"message": "hi"}, "validate_only": true})
    );
    assert_eq!(r.mock.delivered("dry-1"), 0, "validate only");
    assert_eq!(r.report()["failures"], 0);
}

#[test]
fn relay_survives_token_expiry_in_the_middle_of_200_sends() {
    // Tokens live 2 s; 200 sends at 500 ms each over 40 workers take ~2.5 s,
    // so the first token runs out (and is refreshed early) mid-burst.
    let r = V1Relay::start(
        mock_with(2, Duration::from_millis(500)),
        &["--workers", "40"],
    );
    let all = tokens("burst", 200);
    let t0 = Instant::now();
    r.send(&all);
    let report = r.wait_idle(Duration::from_secs(30));
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(2), "burst too short: {took:?}");
    assert_eq!(report["failures"], 0, "{report}");
    assert_eq!(report["delivered"], 200, "{report}");
    for t in &all {
        assert_eq!(r.mock.delivered(t), 1, "{t}");
    }
    // One token, then about one refresh a second (single-flight).
    let calls = r.mock.token_requests();
    assert!(
        (2..=6).contains(&calls),
        "token endpoint called {calls} times"
    );
}

#[test]
fn relay_answers_a_revoked_token_with_exactly_one_refresh() {
    let r = V1Relay::start(mock(), &["--workers", "16"]);
    r.send(&tokens("before", 20));
    r.wait_idle(Duration::from_secs(20));
    assert_eq!(r.mock.token_requests(), 1);

    r.mock.revoke_access_tokens();
    let after = tokens("after", 100);
    r.send(&after);
    let report = r.wait_idle(Duration::from_secs(20));
    assert_eq!(report["failures"], 0, "{report}");
    assert_eq!(r.mock.token_requests(), 2, "exactly one refresh");
    for t in &after {
        assert_eq!(r.mock.delivered(t), 1, "{t}");
    }
    // /metrics counts both token fetches and no failure.
    let mut m = r.agent.get(&r.url("/metrics")).call().unwrap();
    let text = m.body_mut().read_to_string().unwrap();
    assert!(
        text.lines()
            .any(|l| l == "gocm_oauth_token_refreshes_total 2"),
        "{text}"
    );
    assert!(
        !text.lines().any(
            |l| l.starts_with("gocm_oauth_token_refresh_failures_total{") && !l.ends_with(" 0")
        ),
        "{text}"
    );
}

#[test]
fn relay_holds_messages_while_the_token_endpoint_is_down() {
    // Scripted before the start: the relay fetches a token right away.
    let m = mock();
    m.fail_token_requests(3, 503);
    let r = V1Relay::start(
        m,
        &[
            "--retries",
            "10",
            "--backoff-ms",
            "50",
            "--backoff-max-ms",
            "200",
        ],
    );
    let all = tokens("wait", 30);
    r.send(&all);
    let report = r.wait_idle(Duration::from_secs(20));
    assert_eq!(report["failures"], 0, "{report}");
    assert_eq!(report["delivered"], 30, "{report}");
    // Three failed refreshes, one good one: no hammering.
    assert_eq!(r.mock.token_requests(), 4);
    for t in &all {
        assert_eq!(r.mock.delivered(t), 1, "{t}");
    }
    let mut m = r.agent.get(&r.url("/metrics")).call().unwrap();
    let text = m.body_mut().read_to_string().unwrap();
    for line in [
        "gocm_oauth_token_refreshes_total 1",
        "gocm_oauth_token_refresh_failures_total{reason=\"upstream\"} 3",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
}

#[test]
fn relay_gives_up_on_a_refused_key_after_the_retries() {
    let m = mock();
    m.fail_token_requests(1000, 400);
    let r = V1Relay::start(
        m,
        &[
            "--retries",
            "2",
            "--backoff-ms",
            "20",
            "--backoff-max-ms",
            "80",
        ],
    );
    r.send(&tokens("refused", 5));
    let report = r.wait_idle(Duration::from_secs(20));
    assert_eq!(report["failures"], 5, "{report}");
    assert_eq!(report["notregistered"], 0);
    // One refused exchange per retry round (3 tries), shared by all five
    // messages and spaced by the back-off: far fewer than the 15 attempts.
    let calls = r.mock.token_requests();
    assert!(
        (1..=5).contains(&calls),
        "token endpoint called {calls} times"
    );
    assert_eq!(r.mock.received("refused-0"), 0);
    // Every send would fail the same way: not ready, and the reason says
    // which key and why (not the key itself).
    let a = common::call(&r.agent, &r.url("/readyz"), None, None);
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(
        a.error().contains("refused the service-account key"),
        "{}",
        a.body
    );
    assert!(key_material().iter().all(|k| !a.body.contains(k.as_str())));
}

#[test]
fn a_refused_key_shows_in_readyz_before_the_first_send() {
    let m = mock();
    m.fail_token_requests(1000, 400);
    let r = V1Relay::start(m, &[]);
    // No message was sent: the relay fetched a token at start.
    wait_until("the refusal is seen", Duration::from_secs(10), || {
        common::call(&r.agent, &r.url("/readyz"), None, None).status == 503
    });
    assert!(r.mock.token_requests() >= 1);
    assert_eq!(r.report()["attempts"], 0);
}

#[test]
fn a_good_key_is_fetched_once_at_start() {
    let r = V1Relay::start(mock(), &[]);
    wait_until("the token at start", Duration::from_secs(10), || {
        r.mock.token_requests() == 1
    });
    r.send(&tokens("warm", 3));
    r.wait_idle(Duration::from_secs(10));
    assert_eq!(r.mock.token_requests(), 1, "the first sends used it");
}

#[test]
fn relay_stays_ready_while_the_token_endpoint_is_down() {
    let m = mock();
    m.fail_token_requests(1000, 503);
    let r = V1Relay::start(m, &["--backoff-ms", "20", "--backoff-max-ms", "40"]);
    r.send(&tokens("down", 1));
    wait_until("two refused refreshes", Duration::from_secs(10), || {
        r.mock.token_requests() >= 2
    });
    // The messages wait in the queue for the endpoint to come back: keep
    // taking them.
    let a = common::call(&r.agent, &r.url("/readyz"), None, None);
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
}

#[test]
fn relay_honours_retry_after_on_429() {
    let r = V1Relay::start(mock(), &[]);
    let t0 = Instant::now();
    r.send(&["quota1-x".to_string()]);
    let report = r.wait_idle(Duration::from_secs(20));
    let took = t0.elapsed();
    assert_eq!(report["failures"], 0, "{report}");
    assert_eq!(r.mock.received("quota1-x"), 2);
    assert_eq!(r.mock.delivered("quota1-x"), 1);
    // The mock says Retry-After: 1; gocm's own back-off is 50 ms.
    assert!(took >= Duration::from_millis(950), "retried after {took:?}");
}

#[test]
fn a_quota_answer_holds_back_every_worker() {
    let r = V1Relay::start(mock(), &[]);
    r.send(&["quota1-hold".to_string()]);
    wait_until("the 429", Duration::from_secs(10), || {
        r.mock.received("quota1-hold") == 1
    });
    let after_429 = Instant::now();
    // Other messages, for other devices, must wait out the project's quota
    // too: the mock's Retry-After is 1 s.
    let others = tokens("held", 5);
    r.send(&others);
    wait_until("the held messages", Duration::from_secs(10), || {
        others.iter().all(|t| r.mock.delivered(t) == 1)
    });
    let waited = after_429.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "sent after {waited:?}"
    );
    assert!(
        others.iter().all(|t| r.mock.received(t) == 1),
        "held, not failed and retried"
    );
    assert_eq!(r.wait_idle(Duration::from_secs(10))["failures"], 0);
}

#[test]
fn relay_with_a_wrong_project_purges_nothing() {
    let r = V1Relay::start(mock(), &["--project-id", "some-other-project"]);
    r.send(&tokens("kept", 3));
    let report = r.wait_idle(Duration::from_secs(20));
    assert_eq!(report["failures"], 3, "{report}");
    assert_eq!(report["notregistered"], 0, "a bare NOT_FOUND is no verdict");
    assert_eq!(
        r.get_json("/gcm/report/notregistered"),
        json!({"tokens": []})
    );
}

#[test]
fn relay_project_id_flag_overrides_the_file() {
    let mock = MockFcm::start(MockOptions {
        project_id: "override-project".into(),
        ..MockOptions::test_service_account()
    });
    let r = V1Relay::start(mock, &["--project-id", "override-project"]);
    r.send(&["o-1".to_string()]);
    let report = r.wait_idle(Duration::from_secs(20));
    assert_eq!(report["failures"], 0, "{report}");
    assert_eq!(r.mock.delivered("o-1"), 1);
}

// ---------------------------------------------------------------------------
// Bad credential files stop startup with one clear line

fn key_material() -> Vec<String> {
    let v: Value = serde_json::from_str(FIXTURE).unwrap();
    v["private_key"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 20)
        .map(|l| l[..20].to_string())
        .collect()
}

fn startup_error(mock: &MockFcm, path: &str) -> String {
    let endpoint = mock.base_url();
    let args = [
        "--credentials",
        path,
        "--fcm-endpoint",
        endpoint.as_str(),
        "--port",
        "0",
        "--data-dir",
        "none",
    ];
    let config = Config::from_args(&args, |_| None).expect("flags parse");
    match Relay::start(config) {
        Err(e @ Error::Credentials(_)) => {
            let text = e.to_string();
            assert!(!text.contains('\n'), "one line: {text}");
            for chunk in key_material() {
                assert!(!text.contains(&chunk), "key material in {text}");
            }
            assert!(!format!("{e:?}").contains(&key_material()[0]));
            text
        }
        Err(other) => panic!("not a credentials error: {other}"),
        Ok(_) => panic!("started with {path}"),
    }
}

fn edited(mock: &MockFcm, edit: impl FnOnce(&mut Map<String, Value>)) -> TempKey {
    let mut v: Value =
        serde_json::from_str(&mock_fcm::test_service_account_json(&mock.token_uri())).unwrap();
    edit(v.as_object_mut().unwrap());
    TempKey::new(&v.to_string())
}

#[test]
fn bad_credential_files_stop_startup() {
    let mock = mock();

    let missing = std::env::temp_dir().join("gocm-v1-test-no-such-file.json");
    let e = startup_error(&mock, missing.to_str().unwrap());
    assert!(
        e.contains("gocm-v1-test-no-such-file.json") && e.contains("cannot read"),
        "{e}"
    );

    let not_json = TempKey::new("this is not JSON");
    let e = startup_error(&mock, not_json.path());
    assert!(e.contains("not a JSON"), "{e}");

    for field in [
        "client_email",
        "private_key",
        "private_key_id",
        "token_uri",
        "project_id",
    ] {
        let key = edited(&mock, |m| {
            m.remove(field);
        });
        let e = startup_error(&mock, key.path());
        assert!(e.contains(field), "{field}: {e}");
    }

    let key = edited(&mock, |m| {
        m.insert("type".into(), "authorized_user".into());
    });
    assert!(startup_error(&mock, key.path()).contains("service_account"));

    // A key whose base64 was damaged: PEM armour intact, DER broken.
    let key = edited(&mock, |m| {
        let pem = m["private_key"].as_str().unwrap().to_string();
        let mut lines: Vec<&str> = pem.lines().collect();
        let n = lines.len();
        lines.drain(4..n - 3);
        m.insert("private_key".into(), lines.join("\n").into());
    });
    let e = startup_error(&mock, key.path());
    assert!(e.contains("private_key"), "{e}");

    // A key file that is fine but names no project, without --project-id.
    let key = edited(&mock, |m| {
        m.remove("project_id");
    });
    let e = startup_error(&mock, key.path());
    assert!(e.contains("--project-id"), "{e}");
    assert!(Path::new(key.path()).exists());
}
