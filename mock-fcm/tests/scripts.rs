//! Per-request scripts: canned whole-request answers and stalls, for both
//! protocols.

mod common;

use std::time::{Duration, Instant};

use common::{legacy_tokens, v1_mock, v1_token};
use mock_fcm::{MockFcm, MockOptions, ScriptBody, Scripted};

const HTML_401: &str =
    "<HTML><HEAD><TITLE>Unauthorized</TITLE></HEAD><BODY><H1>Unauthorized</H1></BODY></HTML>";

#[test]
fn builders_fill_the_fields() {
    let s = Scripted::status(503).retry_after("2");
    assert_eq!(
        s,
        Scripted {
            status: 503,
            retry_after: Some("2".into()),
            body: ScriptBody::Empty,
            stall: None
        }
    );
    assert_eq!(Scripted::html(401, "x").body, ScriptBody::Html("x".into()));
    assert!(Scripted::stall(Duration::from_secs(1)).is_normal());
    assert_eq!(
        Scripted::json(500, "{}")
            .with_stall(Duration::from_millis(5))
            .stall,
        Some(Duration::from_millis(5))
    );
}

#[test]
fn legacy_503_with_retry_after_then_normal() {
    let mock = MockFcm::start(MockOptions::default());
    mock.push_script(Scripted::status(503).retry_after("2"));
    let answer = legacy_tokens(&mock, &["a"]);
    assert_eq!(answer.status, 503);
    assert_eq!(answer.retry_after.as_deref(), Some("2"));
    assert_eq!(answer.body, "");
    // The retry arrives and is handled normally.
    assert_eq!(legacy_tokens(&mock, &["a"]).status, 200);
    assert_eq!(mock.received("a"), 2);
    assert_eq!(mock.delivered("a"), 1);
    assert_eq!(mock.send_requests(), 2);
    assert_eq!(mock.legacy_batch_sizes(), vec![1, 1]);
}

#[test]
fn v1_html_401_from_a_proxy() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    mock.push_script(Scripted::html(401, HTML_401));
    let answer = v1_token(&mock, &token, "a");
    assert_eq!(answer.status, 401);
    assert_eq!(answer.content_type, "text/html; charset=UTF-8");
    assert_eq!(answer.body, HTML_401);
    assert_eq!(mock.received("a"), 1);
    assert_eq!(mock.delivered("a"), 0);
}

#[test]
fn scripts_are_used_in_order_by_either_protocol() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    mock.push_script(Scripted::json(500, "{\"error\":\"first\"}"));
    mock.push_script(Scripted::text(502, "second"));
    let first = legacy_tokens(&mock, &["a"]);
    assert_eq!(
        (first.status, first.content_type.as_str()),
        (500, "application/json; charset=UTF-8")
    );
    assert_eq!(first.body, "{\"error\":\"first\"}");
    let second = v1_token(&mock, &token, "b");
    assert_eq!((second.status, second.body.as_str()), (502, "second"));
    assert_eq!(v1_token(&mock, &token, "b").status, 200);
    // Token-endpoint calls do not consume scripts.
    mock.push_script(Scripted::status(503));
    common::access_token(&mock);
    assert_eq!(legacy_tokens(&mock, &["a"]).status, 503);
}

#[test]
fn stall_holds_the_answer_then_answers_normally() {
    let (mock, token) = v1_mock(MockOptions::test_service_account());
    mock.push_script(Scripted::stall(Duration::from_millis(400)));
    let t0 = Instant::now();
    let answer = v1_token(&mock, &token, "a");
    assert!(t0.elapsed() >= Duration::from_millis(400));
    assert_eq!(answer.status, 200);
    assert_eq!(mock.delivered("a"), 1);

    // A stall with a canned answer, on the legacy side.
    mock.push_script(Scripted::status(503).with_stall(Duration::from_millis(300)));
    let t0 = Instant::now();
    assert_eq!(legacy_tokens(&mock, &["b"]).status, 503);
    assert!(t0.elapsed() >= Duration::from_millis(300));
}

#[test]
fn a_stall_does_not_block_other_requests() {
    let mock = MockFcm::start(MockOptions::default());
    mock.push_script(Scripted::stall(Duration::from_secs(3)));
    std::thread::scope(|s| {
        let stalled = s.spawn(|| legacy_tokens(&mock, &["stalled"]));
        common::wait_until(
            Duration::from_secs(5),
            "the stalled request to arrive",
            || mock.received("stalled") == 1,
        );
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(legacy_tokens(&mock, &["other"]).status, 200);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "other requests waited for the stall"
        );
        assert_eq!(stalled.join().unwrap().status, 200);
    });
}
