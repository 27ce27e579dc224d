//! Delivery through the legacy protocol against the mock: chunking, each
//! per-token outcome, retries, Retry-After, stalls, whole-request failures.

mod common;

use std::time::{Duration, Instant};

use common::{legacy, legacy_with, wait_until};
use mock_fcm::{MockOptions, ScriptBody, Scripted};
use serde_json::json;

#[test]
fn tokens_2500_become_three_upstream_requests() {
    let h = legacy(&[]);
    let tokens: Vec<String> = (0..2500).map(|i| format!("bulk-{i}")).collect();
    let a = h.post_json(&json!({"tokens": tokens, "payload": {"k": "v"}}));
    assert_eq!(a.status, 200);
    let r = h.wait_idle();
    let mut sizes = h.mock.legacy_batch_sizes();
    sizes.sort_unstable();
    assert_eq!(sizes, [500, 1000, 1000]);
    assert_eq!(
        (r["attempts"].as_u64(), r["failures"].as_u64()),
        (Some(2500), Some(0))
    );
    assert!(tokens.iter().all(|t| h.mock.delivered(t) == 1));
}

#[test]
fn each_chunk_succeeds_or_fails_on_its_own() {
    let h = legacy(&["--retries", "0"]);
    // The first upstream request fails as a whole; the other two go through.
    h.mock.push_script(Scripted {
        status: 500,
        retry_after: None,
        body: ScriptBody::Empty,
        stall: None,
    });
    let tokens: Vec<String> = (0..2500).map(|i| format!("c-{i}")).collect();
    assert_eq!(
        h.post_json(&json!({"tokens": tokens, "payload": {}}))
            .status,
        200
    );
    let r = h.wait_idle();
    let delivered = tokens.iter().filter(|t| h.mock.delivered(t) == 1).count() as u64;
    let failed = r["failures"].as_u64().unwrap();
    assert!(failed == 1000 || failed == 500, "{r}");
    assert_eq!(delivered + failed, 2500);
}

#[test]
fn per_token_outcomes_reach_the_reports() {
    let h = legacy(&[]);
    h.send(&[
        "ok-1",
        "canonical-a",
        "notreg-b",
        "invalid-c",
        "mismatch-d",
        "canonical-e",
    ]);
    let r = h.wait_idle();
    assert_eq!(r["attempts"], 6);
    assert_eq!(r["failures"], 3, "{r}"); // notreg, invalid, mismatch
    assert_eq!(r["canonicals"], 2);
    assert_eq!(r["notregistered"], 1);
    let c = h.get("/gcm/report/canonical").json();
    let mut pairs: Vec<(String, String)> = c["canonical_replacements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["original"].as_str().unwrap().into(),
                e["canonical"].as_str().unwrap().into(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ("canonical-a".to_string(), "new-a".to_string()),
            ("canonical-e".to_string(), "new-e".to_string())
        ]
    );
    assert_eq!(
        h.get("/gcm/report/notregistered").json(),
        json!({"tokens": ["notreg-b"]})
    );
    // Drained: the next reads are empty, the running totals stay.
    assert_eq!(
        h.get("/gcm/report/canonical").body,
        r#"{"canonical_replacements":[]}"#
    );
    assert_eq!(h.get("/gcm/report/notregistered").body, r#"{"tokens":[]}"#);
    assert_eq!(h.report()["canonicals"], 2);
    // Permanent errors are not retried.
    for t in ["notreg-b", "invalid-c", "mismatch-d"] {
        assert_eq!(h.mock.received(t), 1, "{t}");
    }
}

#[test]
fn unavailable_token_is_retried_alone() {
    let h = legacy(&[]);
    h.send(&["fine-1", "unavail1-x", "internal2-y", "notreg-z"]);
    let r = h.wait_idle();
    assert_eq!(
        h.mock.received("fine-1"),
        1,
        "delivered tokens are not resent"
    );
    assert_eq!(h.mock.received("notreg-z"), 1);
    assert_eq!(
        (
            h.mock.received("unavail1-x"),
            h.mock.delivered("unavail1-x")
        ),
        (2, 1)
    );
    assert_eq!(
        (
            h.mock.received("internal2-y"),
            h.mock.delivered("internal2-y")
        ),
        (3, 1)
    );
    assert_eq!(r["failures"], 1, "{r}");
    assert_eq!(r["notregistered"], 1);
    assert_eq!(r["attempts"], 4);
}

#[test]
fn retries_are_bounded_by_the_flag() {
    let h = legacy(&["--retries", "2"]);
    h.send(&["unavail9-forever"]);
    let r = h.wait_idle();
    assert_eq!(h.mock.received("unavail9-forever"), 3, "1 try + 2 retries");
    assert_eq!(r["failures"], 1);
    assert_eq!(r["attempts"], 1);
}

#[test]
fn retry_after_503_is_honoured() {
    let h = legacy(&[]);
    h.mock.push_script(Scripted {
        status: 503,
        retry_after: Some("1".into()),
        body: ScriptBody::Empty,
        stall: None,
    });
    let start = Instant::now();
    h.send(&["ra-1"]);
    wait_until("delivery", Duration::from_secs(10), || {
        h.mock.delivered("ra-1") == 1
    });
    let took = start.elapsed();
    // Back-off alone is ~20 ms here; only Retry-After explains a second.
    assert!(took >= Duration::from_millis(950), "retried after {took:?}");
    assert_eq!(h.mock.received("ra-1"), 2);
    assert_eq!(h.wait_idle()["failures"], 0);
}

#[test]
fn retry_after_as_http_date_and_html_bodies_do_not_crash() {
    let h = legacy(&[]);
    h.mock.push_script(Scripted {
        status: 502,
        retry_after: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
        body: ScriptBody::Html("<html><body>Error 502 (Server Error)!!1</body></html>".into()),
        stall: None,
    });
    h.mock.push_script(Scripted {
        status: 200,
        retry_after: None,
        body: ScriptBody::Html("<html>not json</html>".into()),
        stall: None,
    });
    h.send(&["html-1"]);
    let r = h.wait_idle();
    assert_eq!(
        (h.mock.received("html-1"), h.mock.delivered("html-1")),
        (3, 1)
    );
    assert_eq!(r["failures"], 0);
}

#[test]
fn stalled_upstream_times_out_and_others_keep_flowing() {
    let h = legacy(&["--upstream-timeout-ms", "400", "--workers", "4"]);
    h.mock.push_script(Scripted {
        status: 200,
        retry_after: None,
        body: ScriptBody::Empty,
        stall: Some(Duration::from_secs(5)),
    });
    let start = Instant::now();
    h.send(&["stalled-1"]);
    wait_until("the stalled call", Duration::from_secs(5), || {
        h.mock.received("stalled-1") == 1
    });
    for i in 0..20 {
        h.send(&[&format!("flow-{i}")]);
    }
    wait_until("the others", Duration::from_secs(4), || {
        (0..20).all(|i| h.mock.delivered(&format!("flow-{i}")) == 1)
    });
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "others waited on the stall"
    );
    wait_until("the retry", Duration::from_secs(10), || {
        h.mock.delivered("stalled-1") == 1
    });
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the retry waited out the stall"
    );
    assert_eq!(h.wait_idle()["failures"], 0);
}

#[test]
fn rejected_api_key_fails_every_token_without_retry() {
    let h = legacy(&[]);
    h.mock.push_script(Scripted {
        status: 401,
        retry_after: None,
        body: ScriptBody::Html(
            "<HTML><HEAD><TITLE>Unauthorized</TITLE></HEAD><BODY><H1>Unauthorized</H1><H2>Error 401</H2></BODY></HTML>"
                .into(),
        ),
        stall: None,
    });
    h.send(&["k-1", "k-2", "k-3"]);
    let r = h.wait_idle();
    assert_eq!(r["failures"], 3);
    assert_eq!(h.mock.send_requests(), 1, "a 401 is not retried");
    // The relay still works for the next request.
    h.send(&["k-4"]);
    h.wait_idle();
    assert_eq!(h.mock.delivered("k-4"), 1);
}

#[test]
fn wrong_api_key_is_a_real_401_from_the_mock() {
    let mock = mock_fcm::MockFcm::start(MockOptions {
        api_key: Some("right".into()),
        ..MockOptions::default()
    });
    let relay = common::start(&[
        "--apikey",
        "wrong",
        "--gcm-endpoint",
        &mock.legacy_url(),
        "--port",
        "0",
        "--workers",
        "2",
        "--data-dir",
        "none",
    ]);
    let agent = common::client();
    let url = format!("http://{}", relay.addr());
    let a = common::post_to(
        &agent,
        &format!("{url}/gcm/send"),
        "application/x-www-form-urlencoded",
        b"tokens=w-1&payload={}",
    );
    assert_eq!(a.status, 200);
    wait_until("the failure", Duration::from_secs(10), || {
        relay.stats().report().failures == 1
    });
    assert_eq!(mock.received("w-1"), 1);
    assert_eq!(mock.delivered("w-1"), 0);
}

#[test]
fn connections_are_reused() {
    let h = legacy_with(MockOptions::default(), &["--workers", "4"]);
    for i in 0..200 {
        h.send(&[&format!("reuse-{i}")]);
    }
    h.wait_idle();
    assert!(
        h.mock.connections() <= 4,
        "{} connections for 4 workers",
        h.mock.connections()
    );
}
