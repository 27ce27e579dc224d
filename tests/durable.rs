//! `ok` is a promise: the durable queue keeps every accepted request until
//! it is finished, across graceful restarts, SIGKILL and full queues.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{client, post_form_to, post_to, start, wait_until, Running, API_KEY};
use gocm::Relay;
use mock_fcm::{MockFcm, MockOptions};
use serde_json::{json, Value};

/// A fresh folder under the system temp dir, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("gocm-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Dir(p)
    }
    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mock() -> MockFcm {
    MockFcm::start(MockOptions {
        api_key: Some(API_KEY.into()),
        ..MockOptions::default()
    })
}

fn relay(mock: &MockFcm, dir: &Dir, extra: &[&str]) -> Relay {
    let url = mock.legacy_url();
    let mut args = vec![
        "--apikey",
        API_KEY,
        "--gcm-endpoint",
        &url,
        "--port",
        "0",
        "--data-dir",
        dir.arg(),
        "--shutdown-timeout-ms",
        "2000",
    ];
    if !extra.contains(&"--workers") {
        args.extend(["--workers", "4"]);
    }
    args.extend_from_slice(extra);
    start(&args)
}

/// Flags for the real binary on `dir` in front of `mock`, then `extra`.
fn binary_args(mock: &MockFcm, dir: &Dir, extra: &[&str]) -> Vec<String> {
    let url = mock.legacy_url();
    ["--apikey", API_KEY, "--gcm-endpoint", &url]
        .iter()
        .chain(&["--port", "0", "--data-dir", dir.arg()])
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

fn send(relay: &Relay, tokens: &[&str]) -> common::Answer {
    let body = serde_json::json!({"tokens": tokens, "payload": {"k": "v"}}).to_string();
    post_to(
        &client(),
        &format!("http://{}/gcm/send", relay.addr()),
        "application/json",
        body.as_bytes(),
    )
}

fn get(relay: &Relay, path: &str) -> Value {
    let mut r = client()
        .get(&format!("http://{}{path}", relay.addr()))
        .call()
        .unwrap();
    r.body_mut().read_json().unwrap()
}

#[test]
fn a_restart_keeps_waiting_retries_and_does_not_resend_delivered_tokens() {
    let mock = mock();
    let dir = Dir::new("restart");
    // The retry of `unavail1-r` is due 2-6 s later; stop before that.
    let r = relay(
        &mock,
        &dir,
        &["--backoff-ms", "4000", "--backoff-max-ms", "4000"],
    );
    assert_eq!(send(&r, &["fine-r", "unavail1-r"]).status, 200);
    wait_until("the first round", Duration::from_secs(10), || {
        mock.received("unavail1-r") == 1 && mock.delivered("fine-r") == 1
    });
    let stopped = Instant::now();
    r.shutdown();

    let r = relay(&mock, &dir, &[]);
    let report = get(&r, "/gcm/report");
    assert_eq!(report["pending"], 1, "the request is recovered");
    assert_eq!(
        report["attempts"], 1,
        "the token still to send counts as this process's attempt: {report}"
    );
    wait_until(
        "the retry after the restart",
        Duration::from_secs(15),
        || mock.delivered("unavail1-r") == 1,
    );
    assert!(
        stopped.elapsed() >= Duration::from_millis(1900),
        "the retry kept its due time ({:?})",
        stopped.elapsed()
    );
    assert_eq!(
        mock.received("fine-r"),
        1,
        "a delivered token is not resent"
    );
    wait_until("pending 0", Duration::from_secs(5), || {
        get(&r, "/gcm/report")["pending"] == 0
    });
    let report = get(&r, "/gcm/report");
    assert_eq!(
        (&report["attempts"], &report["delivered"]),
        (&json!(1), &json!(1)),
        "{report}"
    );
    r.shutdown();

    // Finished requests are gone from the store.
    let r = relay(&mock, &dir, &[]);
    assert_eq!(get(&r, "/gcm/report")["pending"], 0);
}

/// The chunks of a split request end together, so their progress and the
/// request's end are folded into one commit; nothing of it may be left
/// for a restart to send again.
#[test]
fn the_deepest_payload_accepted_survives_a_restart() {
    let mock = mock();
    let dir = Dir::new("deep");
    let deepest = gocm::api::send::MAX_PAYLOAD_DEPTH;
    let inner = format!("{}1{}", "[".repeat(deepest - 1), "]".repeat(deepest - 1));
    let payload: Value = serde_json::from_str(&format!(r#"{{"k":{inner}}}"#)).unwrap();
    let body = json!({"tokens": ["unavail1-deep"], "payload": payload}).to_string();
    // The retry is due seconds later: it is still stored at the stop.
    let r = relay(
        &mock,
        &dir,
        &["--backoff-ms", "4000", "--backoff-max-ms", "4000"],
    );
    let url = format!("http://{}/gcm/send", r.addr());
    let a = post_to(&client(), &url, "application/json", body.as_bytes());
    assert_eq!(a.status, 200, "{}", a.body);
    wait_until("the first try", Duration::from_secs(10), || {
        mock.received("unavail1-deep") == 1
    });
    r.shutdown();
    // The store reads it back (it once could not: too deep for serde_json
    // with the store's own levels around it) and sends it unchanged.
    let r = relay(&mock, &dir, &[]);
    wait_until("the retry", Duration::from_secs(15), || {
        mock.delivered("unavail1-deep") == 1
    });
    assert_eq!(mock.last_data("unavail1-deep"), Some(payload));
    r.shutdown();
}

#[test]
fn a_split_request_that_ends_at_once_leaves_nothing_to_resend() {
    let mock = mock();
    let dir = Dir::new("folded");
    let r = relay(&mock, &dir, &[]);
    let tokens: Vec<String> = (0..2500).map(|i| format!("fold-{i}")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    assert_eq!(send(&r, &refs).status, 200);
    wait_until("three calls delivered", Duration::from_secs(10), || {
        get(&r, "/gcm/report")["pending"] == 0
    });
    assert_eq!(mock.send_requests(), 3, "2500 tokens in three calls");
    r.shutdown();

    let r = relay(&mock, &dir, &[]);
    assert_eq!(get(&r, "/gcm/report")["pending"], 0, "nothing recovered");
    assert_eq!(mock.send_requests(), 3, "nothing sent again");
    assert!(tokens.iter().all(|t| mock.received(t) == 1));
}

#[test]
fn report_lists_survive_a_restart_and_drain_once() {
    let mock = mock();
    let dir = Dir::new("lists");
    let r = relay(&mock, &dir, &[]);
    assert_eq!(send(&r, &["notreg-l", "canonical-l"]).status, 200);
    wait_until("both outcomes", Duration::from_secs(10), || {
        let rep = get(&r, "/gcm/report");
        rep["pending"] == 0 && rep["notregistered"] == 1
    });
    r.shutdown();

    let r = relay(&mock, &dir, &[]);
    assert_eq!(
        get(&r, "/gcm/report/notregistered")["tokens"],
        serde_json::json!(["notreg-l"])
    );
    assert_eq!(
        get(&r, "/gcm/report/canonical")["canonical_replacements"],
        serde_json::json!([{"original": "canonical-l", "canonical": "new-l"}])
    );
    assert_eq!(
        get(&r, "/gcm/report/notregistered")["tokens"],
        serde_json::json!([])
    );
    r.shutdown();

    let r = relay(&mock, &dir, &[]);
    assert_eq!(
        get(&r, "/gcm/report/notregistered")["tokens"],
        serde_json::json!([])
    );
    assert_eq!(
        get(&r, "/gcm/report/canonical")["canonical_replacements"],
        serde_json::json!([])
    );
}

/// A store written by the first gocm layout (a `messages` row, and a
/// `tokens` row for each token still to send) is moved into the current
/// tables on start: nothing it held is lost, nothing done is resent.
#[test]
fn a_store_of_the_first_layout_is_upgraded_without_losing_a_request() {
    use redb::{ReadableDatabase, TableDefinition};
    const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
    const TOKENS: TableDefinition<(u64, u32), (&str, u32, u64)> = TableDefinition::new("tokens");
    let mock = mock();
    let dir = Dir::new("upgrade");
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("queue.redb");
    {
        let db = redb::Database::create(&file).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut messages = w.open_table(MESSAGES).unwrap();
            let mut tokens = w.open_table(TOKENS).unwrap();
            // Request 7: token 0 was delivered (its row is gone), token 1
            // waits for its first try, token 2 for a retry that is due.
            messages
                .insert(7, br#"{"data":{"k":"seven"}}"#.as_slice())
                .unwrap();
            tokens.insert((7, 1), ("old-b", 0, 0)).unwrap();
            tokens.insert((7, 2), ("old-c", 1, 1)).unwrap();
            // Request 8: every token done, the message row not yet removed.
            messages
                .insert(8, br#"{"data":{"k":"eight"}}"#.as_slice())
                .unwrap();
            // Request 9: one token waiting.
            messages
                .insert(9, br#"{"data":{"k":"nine"}}"#.as_slice())
                .unwrap();
            tokens.insert((9, 0), ("old-d", 0, 0)).unwrap();
        }
        w.commit().unwrap();
    }

    let r = relay(&mock, &dir, &[]);
    wait_until("the moved requests", Duration::from_secs(10), || {
        ["old-b", "old-c", "old-d"]
            .iter()
            .all(|t| mock.delivered(t) == 1)
            && get(&r, "/gcm/report")["pending"] == 0
    });
    assert_eq!(
        mock.last_data("old-b"),
        Some(serde_json::json!({"k": "seven"}))
    );
    assert_eq!(
        mock.last_data("old-c"),
        Some(serde_json::json!({"k": "seven"}))
    );
    assert_eq!(
        mock.last_data("old-d"),
        Some(serde_json::json!({"k": "nine"}))
    );
    // A new send gets an id after the old ones, not one of theirs.
    assert_eq!(send(&r, &["new-e"]).status, 200);
    wait_until("the new send", Duration::from_secs(10), || {
        mock.delivered("new-e") == 1 && get(&r, "/gcm/report")["pending"] == 0
    });
    r.shutdown();

    let names: Vec<String> = redb::Database::open(&file)
        .unwrap()
        .begin_read()
        .unwrap()
        .list_tables()
        .unwrap()
        .map(|t| redb::TableHandle::name(&t).to_string())
        .collect();
    assert!(
        !names.iter().any(|n| n == "messages" || n == "tokens"),
        "the old tables are dropped: {names:?}"
    );
    let r = relay(&mock, &dir, &[]);
    assert_eq!(get(&r, "/gcm/report")["pending"], 0);
    r.shutdown();
    for t in ["old-b", "old-c", "old-d", "new-e"] {
        assert_eq!(mock.received(t), 1, "{t} sent once");
    }
}

#[test]
fn a_second_process_on_the_same_store_is_refused() {
    let mock = mock();
    let dir = Dir::new("lock");
    let _first = relay(&mock, &dir, &[]);
    let url = mock.legacy_url();
    let mut second = Running::start(
        &[
            "--apikey",
            "k",
            "--gcm-endpoint",
            &url,
            "--port",
            "0",
            "--data-dir",
            dir.arg(),
        ],
        &[],
    );
    let status = second.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    let log = second.log();
    assert!(log.contains("in use by another gocm"), "{log}");
}

#[test]
fn a_corrupt_store_stops_startup_and_is_left_alone() {
    let dir = Dir::new("corrupt");
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("queue.redb");
    let garbage: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &garbage).unwrap();
    let config = gocm::config::Config::from_args(
        &["--apikey", "k", "--port", "0", "--data-dir", dir.arg()],
        |_| None,
    )
    .unwrap();
    let err = Relay::start(config)
        .err()
        .expect("startup refuses a corrupt store");
    let msg = err.to_string();
    assert!(msg.contains("cannot open the queue"), "{msg}");
    assert!(msg.contains("queue.redb"), "{msg}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        garbage,
        "the file was modified"
    );
}

#[test]
fn a_full_queue_answers_503_then_recovers() {
    let mock = mock();
    mock.set_latency(Duration::from_millis(700));
    let dir = Dir::new("full");
    let r = relay(
        &mock,
        &dir,
        &["--workers", "1", "--queue-size", "1", "--max-pending", "3"],
    );
    let mut accepted = Vec::new();
    let mut refused = None;
    for i in 0..10 {
        let token = format!("full-{i}");
        let a = send(&r, &[&token]);
        match a.status {
            200 => accepted.push(token),
            503 => {
                refused = Some(a);
                break;
            }
            s => panic!("unexpected {s}"),
        }
    }
    let refused = refused.expect("a bounded queue refuses at some point");
    assert!(refused.error().contains("retry later"), "{}", refused.body);
    assert!(
        accepted.len() <= 3,
        "{} accepted over --max-pending 3",
        accepted.len()
    );
    // Every accepted one is delivered, and then sends are accepted again.
    wait_until("the backlog", Duration::from_secs(20), || {
        accepted.iter().all(|t| mock.delivered(t) == 1)
    });
    wait_until("room again", Duration::from_secs(5), || {
        get(&r, "/gcm/report")["pending"] == 0
    });
    mock.set_latency(Duration::ZERO);
    assert_eq!(send(&r, &["after-full"]).status, 200);
    wait_until("delivery", Duration::from_secs(10), || {
        mock.delivered("after-full") == 1
    });
}

#[test]
fn sigterm_drains_in_flight_calls_and_keeps_the_rest() {
    let mock = mock();
    mock.set_latency(Duration::from_millis(800));
    let dir = Dir::new("sigterm");
    let args = binary_args(&mock, &dir, &["--workers", "2", "--log-level", "info"]);
    let mut gocm = Running::start(&args, &[]);
    let addr = gocm.addr();
    let agent = client();
    let tokens: Vec<String> = (0..6).map(|i| format!("term-{i}")).collect();
    for t in &tokens {
        let body = format!("tokens={t}&payload={{}}");
        let a = post_form_to(&agent, &addr, &body);
        assert_eq!(a.status, 200);
    }
    wait_until("two calls in flight", Duration::from_secs(5), || {
        tokens.iter().filter(|t| mock.received(t) == 1).count() == 2
    });
    gocm.signal("TERM");
    // While draining, new sends are refused (the listener still answers).
    wait_until("draining", Duration::from_secs(5), || {
        gocm.log().contains("draining")
    });
    let a = post_form_to(&agent, &addr, "tokens=late&payload={}");
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(gocm.wait_exit(Duration::from_secs(15)).success(), "exit 0");
    // The two in-flight calls finished; the other four were never sent.
    let sent: Vec<&String> = tokens.iter().filter(|t| mock.received(t) > 0).collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|t| mock.delivered(t) == 1));

    mock.set_latency(Duration::ZERO);
    let gocm = Running::start(&args, &[]);
    gocm.addr();
    wait_until(
        "the rest after the restart",
        Duration::from_secs(15),
        || tokens.iter().all(|t| mock.delivered(t) >= 1),
    );
    assert!(
        tokens.iter().all(|t| mock.delivered(t) == 1),
        "nothing sent twice"
    );
    assert_eq!(mock.received("late"), 0);
}

/// Loads the real binary with concurrent sends against a slow mock, kills
/// it with SIGKILL at several moments, restarts it on the same store, and
/// checks at the mock that every token answered `ok` was delivered.
#[test]
fn sigkill_at_any_moment_loses_nothing_answered_ok() {
    let mock = mock();
    mock.set_latency(Duration::from_millis(30));
    let dir = Dir::new("crash");
    let args = binary_args(&mock, &dir, &["--workers", "8", "--backoff-ms", "50"]);
    let acked = Mutex::new(Vec::<String>::new());
    for (round, kill_after) in [150u64, 400, 30, 700].into_iter().enumerate() {
        let gocm = Running::start(&args, &[]);
        let addr = gocm.addr();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for c in 0..6 {
                let (stop, acked, addr) = (&stop, &acked, &addr);
                s.spawn(move || {
                    let agent = client();
                    let mut i = 0;
                    while !stop.load(Ordering::Acquire) {
                        let token = format!("crash-{round}-{c}-{i}");
                        let body = format!("tokens={token}&tokens={token}-b&payload={{}}");
                        let r = agent
                            .post(&format!("http://{addr}/gcm/send"))
                            .header("Content-Type", "application/x-www-form-urlencoded")
                            .send(body.as_bytes());
                        // Only a complete `ok` is a promise; a connection
                        // cut by the kill is not.
                        if let Ok(mut r) = r {
                            if r.status() == 200
                                && r.body_mut().read_to_string().ok().as_deref() == Some("ok\n")
                            {
                                let mut a = acked.lock().unwrap();
                                a.push(token.clone());
                                a.push(format!("{token}-b"));
                            }
                        }
                        i += 1;
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(kill_after));
            gocm.signal("KILL");
            stop.store(true, Ordering::Release);
        });
        drop(gocm);
    }
    // A last start delivers whatever the kills left.
    let gocm = Running::start(&args, &[]);
    let addr = gocm.addr();
    wait_until(
        "pending 0 after the last restart",
        Duration::from_secs(60),
        || {
            let mut r = client()
                .get(&format!("http://{addr}/gcm/report"))
                .call()
                .unwrap();
            r.body_mut().read_json::<Value>().unwrap()["pending"] == 0
        },
    );
    let acked = acked.into_inner().unwrap();
    assert!(
        acked.len() > 50,
        "the load was too small to mean much: {}",
        acked.len()
    );
    let lost: Vec<&String> = acked.iter().filter(|t| mock.delivered(t) == 0).collect();
    assert!(
        lost.is_empty(),
        "{} of {} tokens answered ok were never delivered: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    let unique: HashSet<&String> = acked.iter().collect();
    let dupes: u32 = unique
        .iter()
        .map(|t| mock.delivered(t).saturating_sub(1))
        .sum();
    // Only calls in flight at a kill may repeat: the workers' calls under
    // way, and those that had just finished but whose completion was not
    // yet committed (workers do not wait for the fsync; under load a commit
    // takes longer, so more of them). If completions were not recorded at
    // all, nearly every token delivered before a kill would come again.
    println!(
        "crash test: {} tokens answered ok, {} repeated deliveries",
        acked.len(),
        dupes
    );
    let bound = (acked.len() as u32 / 10).max(4 * (8 * 2) * 2);
    assert!(dupes <= bound, "{dupes} duplicates (bound {bound})");
}

#[test]
fn a_second_signal_exits_at_once_and_the_store_keeps_everything() {
    let mock = mock();
    mock.set_latency(Duration::from_secs(3));
    let dir = Dir::new("twice");
    let args = binary_args(
        &mock,
        &dir,
        &["--workers", "1", "--shutdown-timeout-ms", "30000"],
    );
    let mut gocm = Running::start(&args, &[]);
    let addr = gocm.addr();
    let agent = client();
    for t in ["twice-0", "twice-1", "twice-2"] {
        let body = format!("tokens={t}&payload={{}}");
        let a = post_form_to(&agent, &addr, &body);
        assert_eq!(a.status, 200);
    }
    wait_until("a call in flight", Duration::from_secs(5), || {
        mock.received("twice-0") == 1
    });
    gocm.signal("TERM");
    wait_until("draining", Duration::from_secs(5), || {
        gocm.log().contains("draining")
    });
    let second = Instant::now();
    gocm.signal("TERM");
    let status = gocm.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{}", gocm.log());
    assert!(
        second.elapsed() < Duration::from_secs(2),
        "the second signal waited for the in-flight call"
    );
    mock.set_latency(Duration::ZERO);
    let gocm = Running::start(&args, &[]);
    gocm.addr();
    wait_until(
        "every request after the restart",
        Duration::from_secs(15),
        || {
            ["twice-0", "twice-1", "twice-2"]
                .iter()
                .all(|t| mock.delivered(t) >= 1)
        },
    );
}
