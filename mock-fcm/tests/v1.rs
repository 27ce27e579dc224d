//! FCM HTTP v1: one test per row of the token table, plus auth, project and
//! body validation, and what the mock records.

mod common;

use std::time::{Duration, Instant};

use common::{agent, post_raw, v1, v1_mock, v1_token, v1_url};
use mock_fcm::MockOptions;
use serde_json::{json, Value};

const FCM_ERROR: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";

fn fcm_error_code(body: &Value) -> Option<&str> {
    body["error"]["details"]
        .as_array()?
        .iter()
        .find(|d| d["@type"] == FCM_ERROR)?["errorCode"]
        .as_str()
}

#[test]
fn ordinary_and_canonical_tokens_are_delivered() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    for device in ["tok-a", "canonical-b"] {
        let answer = v1_token(&mock, &token, device);
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.content_type, "application/json; charset=UTF-8");
        let name = answer.json()["name"].as_str().unwrap().to_string();
        let id = name
            .strip_prefix("projects/test-project/messages/")
            .unwrap();
        assert!(id.starts_with("0:") && id.contains('%'), "{name}");
        assert_eq!(mock.received(device), 1);
        assert_eq!(mock.delivered(device), 1);
    }
}

#[test]
fn permanent_errors_have_the_documented_bodies() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    let cases = [
        (
            "notreg-1",
            404,
            "NOT_FOUND",
            "UNREGISTERED",
            "Requested entity was not found.",
        ),
        (
            "invalid-1",
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
        ),
        (
            "mismatch-1",
            403,
            "PERMISSION_DENIED",
            "SENDER_ID_MISMATCH",
            "SenderId mismatch",
        ),
        (
            "thirdparty-1",
            401,
            "UNAUTHENTICATED",
            "THIRD_PARTY_AUTH_ERROR",
            "Auth error from APNS or Web Push Service",
        ),
    ];
    for (device, status, rpc_status, fcm_code, message) in cases {
        let answer = v1_token(&mock, &token, device);
        assert_eq!(answer.status, status, "{device}: {}", answer.body);
        let body = answer.json();
        assert_eq!(body["error"]["code"], status);
        assert_eq!(body["error"]["status"], rpc_status);
        assert_eq!(body["error"]["message"], message);
        assert_eq!(fcm_error_code(&body), Some(fcm_code), "{body}");
        assert_eq!(mock.delivered(device), 0);
    }
    // Exactly the §2.9 body for UNREGISTERED.
    let body = v1_token(&mock, &token, "notreg-2").json();
    assert_eq!(
        body,
        json!({ "error": { "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
            "details": [ { "@type": FCM_ERROR, "errorCode": "UNREGISTERED" } ] } })
    );
}

#[test]
fn counted_errors_fail_n_times_then_deliver() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    for (device, status, code) in [
        ("unavail2-a", 503, "UNAVAILABLE"),
        ("internal2-a", 500, "INTERNAL"),
        ("quota2-a", 429, "QUOTA_EXCEEDED"),
    ] {
        for _ in 0..2 {
            let answer = v1_token(&mock, &token, device);
            assert_eq!(answer.status, status, "{device}");
            assert_eq!(fcm_error_code(&answer.json()), Some(code));
            let expected_retry_after = (status == 429).then(|| "1".to_string());
            assert_eq!(answer.retry_after, expected_retry_after, "{device}");
        }
        assert_eq!(v1_token(&mock, &token, device).status, 200);
        assert_eq!(mock.received(device), 3);
        assert_eq!(mock.delivered(device), 1);
    }
}

#[test]
fn slow_token_is_answered_later() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    let t0 = Instant::now();
    assert_eq!(v1_token(&mock, &token, "slow250-a").status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(250));
    assert_eq!(mock.delivered("slow250-a"), 1);
}

#[test]
fn validate_only_answers_a_fake_id_and_delivers_nothing() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    let answer = v1(
        &mock,
        &token,
        &json!({"validate_only": true, "message": {"token": "a", "data": {"k": "v"}}}),
    );
    assert_eq!(
        answer.json(),
        json!({"name": "projects/test-project/messages/fake_message_id"})
    );
    assert_eq!(mock.received("a"), 1);
    assert_eq!(mock.delivered("a"), 0);
    assert_eq!(
        mock.last_message("a"),
        Some(json!({"token": "a", "data": {"k": "v"}, "validate_only": true}))
    );
}

#[test]
fn last_message_and_data_are_recorded() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    let message = json!({"token": "a", "data": {"score": "5x1"}, "android": {"priority": "high", "ttl": "3600s"}});
    v1(&mock, &token, &json!({ "message": message }));
    assert_eq!(mock.last_message("a"), Some(message));
    assert_eq!(mock.last_data("a"), Some(json!({"score": "5x1"})));
}

#[test]
fn missing_or_bad_bearer_token_is_unauthenticated() {
    let (mock, _token) = v1_mock(MockOptions::test_service_account());
    let body = json!({"message": {"token": "a"}}).to_string();
    for auth in [
        None,
        Some("Bearer not-issued-here".to_string()),
        Some("key=abc".to_string()),
    ] {
        let answer = post_raw(
            &agent(),
            &v1_url(&mock, "test-project"),
            auth.as_deref(),
            &body,
        );
        assert_eq!(answer.status, 401, "{auth:?}");
        let json = answer.json();
        assert_eq!(json["error"]["status"], "UNAUTHENTICATED");
        assert!(
            json["error"].get("details").is_none(),
            "generic body has no FcmError"
        );
        assert!(answer.www_authenticate.unwrap().contains("invalid_token"));
    }
    assert_eq!(mock.received("a"), 3);
    assert_eq!(mock.delivered("a"), 0);
}

#[test]
fn without_a_public_key_no_v1_send_succeeds() {
    let mock = mock_fcm::MockFcm::start(MockOptions::default());
    let answer = common::token_request(
        &mock,
        common::GRANT_TYPE,
        &common::sign(&common::good_claims(&mock)),
    );
    assert_eq!(answer.status, 400);
    assert_eq!(v1_token(&mock, "mock-1-anything", "a").status, 401);
}

#[test]
fn wrong_project_is_404() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    let answer = post_raw(
        &agent(),
        &v1_url(&mock, "other-project"),
        Some(&format!("Bearer {token}")),
        &json!({"message": {"token": "a"}}).to_string(),
    );
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"]["status"], "NOT_FOUND");
    assert_eq!(fcm_error_code(&answer.json()), None);
    assert_eq!(mock.delivered("a"), 0);
}

#[test]
fn non_string_data_value_is_rejected() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    let answer = v1(
        &mock,
        &token,
        &json!({"message": {"token": "a", "data": {"n": 12}}}),
    );
    assert_eq!(answer.status, 400);
    let expected = "Invalid value at 'message.data[0].value' (TYPE_STRING), 12";
    assert_eq!(
        answer.json(),
        json!({ "error": { "code": 400, "message": expected, "status": "INVALID_ARGUMENT",
            "details": [ { "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [ { "field": "message.data[0].value", "description": expected } ] } ] } })
    );
    assert_eq!(mock.received("a"), 1);
    assert_eq!(mock.delivered("a"), 0);
}

#[test]
fn missing_token_is_recipient_not_set() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    for body in [
        json!({"message": {"data": {"k": "v"}}}),
        json!({"message": {"token": ""}}),
        json!({}),
    ] {
        let answer = v1(&mock, &token, &body);
        assert_eq!(answer.status, 400, "{body}");
        let json = answer.json();
        assert_eq!(
            json["error"]["message"],
            "Recipient of the message is not set."
        );
        assert_eq!(fcm_error_code(&json), Some("INVALID_ARGUMENT"));
    }
}

#[test]
fn invalid_json_is_400() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    let answer = post_raw(
        &agent(),
        &v1_url(&mock, "test-project"),
        Some(&format!("Bearer {token}")),
        "{not json",
    );
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(mock.send_requests(), 1);
}

#[test]
fn legacy_and_v1_share_token_counts() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    common::legacy_tokens(&mock, &["shared", "unavail1-s"]);
    v1_token(&mock, &token, "shared");
    assert_eq!(v1_token(&mock, &token, "unavail1-s").status, 200);
    assert_eq!(mock.received("shared"), 2);
    assert_eq!(mock.delivered("shared"), 2);
    assert_eq!(mock.send_requests(), 3);
    let stats = mock.snapshot();
    assert_eq!(stats.received["unavail1-s"], 2);
    assert_eq!(stats.delivered["unavail1-s"], 1);
    assert_eq!(stats.token_requests, 1);
}
