//! `GET /metrics`: parsed by a Prometheus text-format parser, values checked
//! against the traffic sent through a real relay and the mock.

mod common;

use std::time::Duration;

use common::{legacy, legacy_with, wait_until, Harness, Metrics};
use mock_fcm::MockOptions;

/// Waits until nothing is pending and no worker is busy, polling /metrics
/// (not /gcm/report, so that route's count stays exact).
fn wait_quiet(h: &Harness) -> Metrics {
    let mut last = None;
    wait_until("an idle relay", Duration::from_secs(30), || {
        let m = h.metrics();
        let quiet = m.value("gocm_requests_pending", &[]) == 0.0
            && m.value("gocm_workers_busy", &[]) == 0.0
            && m.value("gocm_upstream_calls_in_flight", &[]) == 0.0;
        last = Some(m);
        quiet
    });
    last.unwrap()
}

#[test]
fn counters_match_the_traffic_sent() {
    let h = legacy(&[]);
    // Outcomes are chosen by the mock from the token names (see README).
    h.send(&["m-a", "m-b", "notreg-m1", "canonical-m2"]);
    h.send(&["invalid-m3", "mismatch-m4", "unavail1-m5"]);
    h.send(&["internal9-m6"]); // fails after 2 retries (--retries 2)
    assert_eq!(h.post_form("payload={}").status, 400);
    assert_eq!(h.get("/gcm/send").status, 405);
    assert_eq!(h.get("/no/such/path").status, 404);
    assert_eq!(h.get("/another/unknown").status, 404);

    let m = wait_quiet(&h);
    let v = |name: &str| m.value(name, &[]);
    assert_eq!(v("gocm_tokens_accepted_total"), 8.0);
    assert_eq!(v("gocm_tokens_delivered_total"), 4.0);
    assert_eq!(v("gocm_tokens_retried_total"), 3.0);
    assert_eq!(v("gocm_canonical_replacements_total"), 1.0);
    let failed = |reason| m.value("gocm_tokens_failed_total", &[("reason", reason)]);
    assert_eq!(failed("not_registered"), 1.0);
    assert_eq!(failed("invalid"), 1.0);
    assert_eq!(failed("auth"), 1.0);
    assert_eq!(failed("upstream"), 1.0);
    assert_eq!(failed("quota"), 0.0);
    assert_eq!(failed("timeout"), 0.0);

    let http = |route, status| {
        m.get(
            "gocm_http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(http("/gcm/send", "200"), Some(3.0));
    assert_eq!(http("/gcm/send", "400"), Some(1.0));
    assert_eq!(http("/gcm/send", "405"), Some(1.0));
    // Unknown paths share one label value.
    assert_eq!(http("other", "404"), Some(2.0));
    assert_eq!(http("/gcm/report", "200"), None);
    assert!(!m.text.contains("/no/such/path"));

    // One histogram observation per upstream call: 1 + (1 + 1 retry) + 3.
    assert_eq!(h.mock.send_requests(), 6);
    let count = v("gocm_upstream_call_duration_seconds_count");
    assert_eq!(count, 6.0);
    let buckets = m.buckets("gocm_upstream_call_duration_seconds");
    assert!(buckets
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count));
    assert!(v("gocm_upstream_call_duration_seconds_sum") > 0.0);

    for queue in ["intake", "ready", "retry"] {
        assert_eq!(m.value("gocm_queue_depth", &[("queue", queue)]), 0.0);
    }
    assert_eq!(v("gocm_oldest_pending_age_seconds"), 0.0);
    assert_eq!(v("gocm_workers"), 8.0);
    assert_eq!(v("gocm_oauth_token_refreshes_total"), 0.0);
    assert_eq!(
        m.value("gocm_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );

    // The same totals as GoCM's report.
    let report = h.report();
    let all_failed: f64 = [
        "not_registered",
        "invalid",
        "auth",
        "quota",
        "upstream",
        "timeout",
    ]
    .into_iter()
    .map(failed)
    .sum();
    assert_eq!(report["failures"], all_failed as u64);
    assert_eq!(report["failures"], 4);
    assert_eq!(report["delivered"], 4);
    assert_eq!(report["attempts"], 8);
}

#[test]
fn gauges_follow_work_in_progress() {
    let h = legacy_with(
        MockOptions {
            latency: Duration::from_millis(1500),
            ..MockOptions::default()
        },
        &[
            "--workers",
            "1",
            "--backoff-ms",
            "3000",
            "--backoff-max-ms",
            "3000",
        ],
    );
    h.send(&["slow-1"]);
    h.send(&["slow-2"]);
    h.send(&["slow-3"]);
    // One call in flight on the only worker, two requests in the intake.
    wait_until(
        "one call in flight, two queued",
        Duration::from_secs(10),
        || {
            let m = h.metrics();
            m.value("gocm_upstream_calls_in_flight", &[]) == 1.0
                && m.value("gocm_workers_busy", &[]) == 1.0
                && m.value("gocm_queue_depth", &[("queue", "intake")]) == 2.0
                && m.value("gocm_requests_pending", &[]) == 3.0
                && m.value("gocm_oldest_pending_age_seconds", &[]) >= 0.2
        },
    );
    h.mock.set_latency(Duration::ZERO);
    let m = wait_quiet(&h);
    assert_eq!(m.value("gocm_tokens_delivered_total", &[]), 3.0);
    assert_eq!(m.value("gocm_oldest_pending_age_seconds", &[]), 0.0);
    // The first call took at least the mock's 1.5 s.
    assert!(m.value("gocm_upstream_call_duration_seconds_sum", &[]) >= 1.5);
    let buckets = m.buckets("gocm_upstream_call_duration_seconds");
    let le_1s = buckets.iter().find(|(le, _)| *le == 1.0).unwrap().1;
    assert_eq!(le_1s, 2.0, "{buckets:?}");

    // A retry waits with the scheduler, counted as queue="retry".
    h.send(&["unavail1-r"]);
    wait_until("a retry waiting", Duration::from_secs(10), || {
        let m = h.metrics();
        m.value("gocm_queue_depth", &[("queue", "retry")]) == 1.0
            && m.value("gocm_tokens_retried_total", &[]) == 1.0
            && m.value("gocm_requests_pending", &[]) == 1.0
    });
}
