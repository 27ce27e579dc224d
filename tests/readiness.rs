//! `/healthz` and `/readyz`: alive vs ready to take sends; a draining relay
//! is alive but not ready.

mod common;

use std::time::Duration;

use common::{call, client, legacy, legacy_with, wait_until, Harness};
use mock_fcm::{MockOptions, Scripted};

#[test]
fn a_running_relay_is_ready() {
    let h = legacy(&[]);
    let a = h.get("/readyz");
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    assert_eq!(h.get("/healthz").status, 200);
    let a = call(
        &client(),
        &h.url("/readyz"),
        None,
        Some(("text/plain", b"")),
    );
    assert_eq!(a.status, 405, "{}", a.body);
}

#[test]
fn a_draining_relay_is_not_ready() {
    // The upstream takes 3 s, the drain waits at most 1.5 s: /readyz is
    // polled while the relay is draining and still answering.
    let h = legacy_with(
        MockOptions {
            latency: Duration::from_secs(3),
            ..MockOptions::default()
        },
        &["--shutdown-timeout-ms", "1500", "--workers", "1"],
    );
    h.send(&["drain-1"]);
    wait_until("the upstream call", Duration::from_secs(10), || {
        h.mock.received("drain-1") == 1
    });
    let ready = h.get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);

    let Harness { relay, base, .. } = h;
    let url = format!("{base}/readyz");
    let stopping = std::thread::spawn(move || relay.shutdown());
    let agent = client();
    let mut seen = None;
    wait_until("/readyz answering 503", Duration::from_secs(10), || {
        let a = call(&agent, &url, None, None);
        let done = a.status == 503;
        seen = Some(a);
        done
    });
    let a = seen.unwrap();
    assert!(a.error().contains("draining"), "{}", a.body);
    assert_eq!(a.header("retry-after"), Some("1"));
    // Alive all the same.
    let live = call(&agent, &format!("{base}/healthz"), None, None);
    assert_eq!(live.status, 200);
    stopping.join().unwrap();
}

#[test]
fn a_relay_with_a_store_is_ready() {
    let dir = std::env::temp_dir().join(format!("gocm-readyz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let h = legacy(&["--data-dir", dir.to_str().unwrap()]);
    let a = h.get("/readyz");
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A legacy relay (no retries) whose first call, for `token`, the mock
/// answered `status`; returns once that token is counted as failed.
fn after_one_failed_call(status: u16, token: &str) -> common::Harness {
    let h = legacy(&["--retries", "0"]);
    h.mock.push_script(Scripted::status(status));
    h.send(&[token]);
    wait_until("the failed call", Duration::from_secs(10), || {
        h.report()["failures"] == 1
    });
    h
}

#[test]
fn a_rejected_api_key_makes_the_relay_unready_until_a_call_succeeds() {
    let h = after_one_failed_call(401, "refused-1");
    let a = h.get("/readyz");
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.error().contains("rejected the API key"), "{}", a.body);
    assert!(!a.body.contains(common::API_KEY), "no secret in {}", a.body);
    // The key is accepted again (rotated back, say): ready once a call goes through.
    h.send(&["accepted-1"]);
    wait_until("the next call", Duration::from_secs(10), || {
        h.mock.delivered("accepted-1") == 1
    });
    wait_until("ready again", Duration::from_secs(5), || {
        h.get("/readyz").status == 200
    });
}

#[test]
fn an_upstream_that_is_down_leaves_the_relay_ready() {
    let h = after_one_failed_call(503, "down-1");
    let a = h.get("/readyz");
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
}
