//! The legacy protocol at `/fcm/send`: one test per row of the token table,
//! plus request validation and what the mock records.

mod common;

use std::time::{Duration, Instant};

use common::{agent, legacy, legacy_tokens, post_raw};
use mock_fcm::{MockFcm, MockOptions};
use serde_json::{json, Value};

fn start() -> MockFcm {
    MockFcm::start(MockOptions::default())
}

/// The single result of a one-token request, after checking the envelope.
fn only_result(mock: &MockFcm, token: &str) -> Value {
    let answer = legacy_tokens(mock, &[token]);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.content_type, "application/json; charset=UTF-8");
    let body = answer.json();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    results[0].clone()
}

fn assert_message_id(result: &Value) {
    let id = result["message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no message_id in {result}"));
    let (head, hex) = id.split_once('%').unwrap();
    assert!(head.starts_with("0:") && hex.len() == 16, "{id}");
}

#[test]
fn ordinary_token_is_delivered() {
    let mock = start();
    let answer = legacy_tokens(&mock, &["tok-a"]);
    let body = answer.json();
    assert!(
        body["multicast_id"].as_u64().unwrap() > 1 << 53,
        "multicast_id must need a u64"
    );
    assert_eq!(body["success"], 1);
    assert_eq!(body["failure"], 0);
    assert_eq!(body["canonical_ids"], 0);
    assert_message_id(&body["results"][0]);
    assert!(body["results"][0].get("registration_id").is_none());
    assert_eq!(mock.received("tok-a"), 1);
    assert_eq!(mock.delivered("tok-a"), 1);
}

#[test]
fn canonical_token_reports_the_new_one() {
    let mock = start();
    let answer = legacy_tokens(&mock, &["canonical-x"]);
    let body = answer.json();
    assert_eq!(
        (body["success"].as_u64(), body["canonical_ids"].as_u64()),
        (Some(1), Some(1))
    );
    assert_message_id(&body["results"][0]);
    assert_eq!(body["results"][0]["registration_id"], "new-x");
    assert_eq!(mock.delivered("canonical-x"), 1);
}

#[test]
fn permanent_errors() {
    let mock = start();
    for (token, error) in [
        ("notreg-1", "NotRegistered"),
        ("invalid-1", "InvalidRegistration"),
        ("mismatch-1", "MismatchSenderId"),
        ("thirdparty-1", "InvalidApnsCredential"),
    ] {
        for _ in 0..2 {
            assert_eq!(
                only_result(&mock, token),
                json!({ "error": error }),
                "{token}"
            );
        }
        assert_eq!(mock.received(token), 2);
        assert_eq!(mock.delivered(token), 0);
    }
}

#[test]
fn counted_errors_fail_n_times_then_deliver() {
    let mock = start();
    for (token, error) in [
        ("unavail2-a", "Unavailable"),
        ("internal2-a", "InternalServerError"),
        ("quota2-a", "DeviceMessageRateExceeded"),
    ] {
        assert_eq!(
            only_result(&mock, token),
            json!({ "error": error }),
            "{token}"
        );
        assert_eq!(
            only_result(&mock, token),
            json!({ "error": error }),
            "{token}"
        );
        assert_message_id(&only_result(&mock, token));
        assert_message_id(&only_result(&mock, token));
        assert_eq!(mock.received(token), 4);
        assert_eq!(mock.delivered(token), 2);
    }
}

#[test]
fn slow_token_is_answered_later_and_delivered() {
    let mock = start();
    let t0 = Instant::now();
    assert_message_id(&only_result(&mock, "slow300-a"));
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(mock.delivered("slow300-a"), 1);
}

#[test]
fn mixed_batch_keeps_token_order_and_counts() {
    let mock = start();
    let tokens = [
        "a",
        "unavail1-b",
        "invalid-c",
        "d",
        "canonical-e",
        "notreg-f",
    ];
    let body = legacy_tokens(&mock, &tokens).json();
    assert_eq!(body["success"], 3);
    assert_eq!(body["failure"], 3);
    assert_eq!(body["canonical_ids"], 1);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    assert_message_id(&results[0]);
    assert_eq!(results[1], json!({"error": "Unavailable"}));
    assert_eq!(results[2], json!({"error": "InvalidRegistration"}));
    assert_message_id(&results[3]);
    assert_eq!(results[4]["registration_id"], "new-e");
    assert_eq!(results[5], json!({"error": "NotRegistered"}));
    assert_eq!(mock.legacy_batch_sizes(), vec![6]);
    assert_eq!(mock.send_requests(), 1);
}

#[test]
fn api_key_is_required_when_configured() {
    let mock = MockFcm::start(MockOptions {
        api_key: Some("k1".into()),
        ..MockOptions::default()
    });
    let body = json!({"registration_ids": ["a"]}).to_string();
    for auth in [None, Some("key=wrong"), Some("Bearer k1")] {
        let answer = post_raw(&agent(), &mock.legacy_url(), auth, &body);
        assert_eq!(answer.status, 401, "{auth:?}");
        assert_eq!(answer.content_type, "text/html; charset=UTF-8");
        assert!(
            answer.body.contains("<H2>Error 401</H2>"),
            "{}",
            answer.body
        );
    }
    // Refused requests still show that the token arrived.
    assert_eq!(mock.received("a"), 3);
    assert_eq!(mock.delivered("a"), 0);
    let answer = post_raw(&agent(), &mock.legacy_url(), Some("key=k1"), &body);
    assert_eq!(answer.status, 200);
    assert_eq!(mock.delivered("a"), 1);
}

#[test]
fn unparsable_json_is_a_plain_text_400() {
    let mock = start();
    let answer = post_raw(&agent(), &mock.legacy_url(), None, "xyz");
    assert_eq!(answer.status, 400);
    assert_eq!(answer.content_type, "text/plain; charset=UTF-8");
    assert_eq!(
        answer.body,
        "JSON_PARSING_ERROR: Unexpected character (x) at position 0."
    );
    assert_eq!(mock.send_requests(), 1);
}

#[test]
fn bad_recipient_lists_are_400() {
    let mock = start();
    let many: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
    for body in [
        json!({"registration_ids": []}),
        json!({"registration_ids": "a"}),
        json!({"registration_ids": ["a", 2]}),
        json!({ "registration_ids": many }),
        json!({"to": 5}),
    ] {
        let answer = legacy(&mock, &body);
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.content_type, "text/plain; charset=UTF-8");
    }
    assert_eq!(mock.delivered("a"), 0);
}

#[test]
fn thousand_tokens_are_accepted() {
    let mock = start();
    let many: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
    let body = legacy(&mock, &json!({ "registration_ids": many })).json();
    assert_eq!(body["success"], 1000);
    assert_eq!(mock.legacy_batch_sizes(), vec![1000]);
    assert_eq!(mock.delivered("t999"), 1);
}

#[test]
fn missing_recipient_is_a_per_result_error() {
    let mock = start();
    let answer = legacy(&mock, &json!({"data": {"k": "v"}}));
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["failure"], 1);
    assert_eq!(body["results"], json!([{"error": "MissingRegistration"}]));
}

#[test]
fn single_recipient_in_to() {
    let mock = start();
    let body = legacy(&mock, &json!({"to": "one", "data": {"x": "1"}})).json();
    assert_eq!(body["success"], 1);
    assert_eq!(mock.delivered("one"), 1);
    assert_eq!(mock.legacy_batch_sizes(), vec![1]);
}

#[test]
fn last_data_and_message_are_recorded() {
    let mock = start();
    let request = json!({"registration_ids": ["a", "b"], "data": {"score": "5x1", "n": 3}, "priority": "high"});
    legacy(&mock, &request);
    assert_eq!(mock.last_data("a"), Some(json!({"score": "5x1", "n": 3})));
    assert_eq!(mock.last_message("b"), Some(request));
    legacy(
        &mock,
        &json!({"registration_ids": ["a"], "data": {"score": "6"}}),
    );
    assert_eq!(mock.last_data("a"), Some(json!({"score": "6"})));
    assert_eq!(mock.last_data("never"), None);
}

#[test]
fn dry_run_is_judged_but_not_delivered() {
    let mock = start();
    let body = legacy(
        &mock,
        &json!({"registration_ids": ["a", "notreg-b"], "dry_run": true}),
    )
    .json();
    assert_eq!(body["success"], 1);
    assert_eq!(body["results"][1], json!({"error": "NotRegistered"}));
    assert_eq!(mock.received("a"), 1);
    assert_eq!(mock.delivered("a"), 0);
}

#[test]
fn reset_forgets_counts_and_failure_history() {
    let mock = start();
    assert_eq!(
        only_result(&mock, "unavail1-z"),
        json!({"error": "Unavailable"})
    );
    mock.reset_counts();
    assert_eq!(mock.received("unavail1-z"), 0);
    assert_eq!(mock.send_requests(), 0);
    assert!(mock.legacy_batch_sizes().is_empty());
    assert_eq!(
        only_result(&mock, "unavail1-z"),
        json!({"error": "Unavailable"})
    );
}
