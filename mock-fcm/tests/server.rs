//! Server-level behaviour: connection counting, latency without a thread
//! per request, control routes, shutdown, and the `mock-fcm` binary.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{agent, legacy_tokens, post_raw};
use mock_fcm::{MockFcm, MockOptions, Stats};
use serde_json::json;

#[test]
fn keep_alive_requests_share_one_connection() {
    let mock = MockFcm::start(MockOptions::default());
    let agent = agent();
    let body = json!({"registration_ids": ["a"]}).to_string();
    for _ in 0..5 {
        assert_eq!(
            post_raw(&agent, &mock.legacy_url(), None, &body).status,
            200
        );
    }
    assert_eq!(mock.send_requests(), 5);
    assert_eq!(mock.connections(), 1);
    // A second agent is a second connection.
    assert_eq!(
        post_raw(&common::agent(), &mock.legacy_url(), None, &body).status,
        200
    );
    assert_eq!(mock.connections(), 2);
}

#[test]
fn latency_is_added_without_serialising_requests() {
    let mock = MockFcm::start(MockOptions {
        latency: Duration::from_millis(100),
        ..MockOptions::default()
    });
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let mock = &mock;
                s.spawn(move || {
                    let started = Instant::now();
                    let answer = legacy_tokens(mock, &[&format!("t{i}")]);
                    (answer.status, started.elapsed())
                })
            })
            .collect();
        for h in handles {
            let (status, took) = h.join().unwrap();
            assert_eq!(status, 200);
            assert!(
                took >= Duration::from_millis(100),
                "answered after {took:?}"
            );
        }
    });
    let total = t0.elapsed();
    // Serially this would be 10 s.
    assert!(
        total < Duration::from_secs(3),
        "100 requests took {total:?}"
    );
    assert_eq!(mock.send_requests(), 100);
    assert_eq!(mock.connections(), 100);
}

#[test]
fn a_thousand_requests_in_flight() {
    let mock = MockFcm::start(MockOptions {
        latency: Duration::from_millis(100),
        ..MockOptions::default()
    });
    let addr = mock.addr();
    let t0 = Instant::now();
    // One client thread: write all requests first, then read the answers,
    // so all 1000 are in flight at once.
    let mut streams: Vec<TcpStream> = (0..1000)
        .map(|i| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            let body = json!({"registration_ids": [format!("f{i}")]}).to_string();
            let request = format!(
                "POST /fcm/send HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).expect("write");
            stream
        })
        .collect();
    for stream in &mut streams {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let total = t0.elapsed();
    assert!(
        total < Duration::from_secs(10),
        "1000 requests at 100 ms took {total:?}"
    );
    assert_eq!(mock.send_requests(), 1000);
    assert_eq!(mock.delivered("f999"), 1);
}

#[test]
fn set_latency_applies_to_later_requests() {
    let mock = MockFcm::start(MockOptions::default());
    mock.set_latency(Duration::from_millis(200));
    let t0 = Instant::now();
    assert_eq!(legacy_tokens(&mock, &["a"]).status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(200));
    // The token endpoint is not delayed.
    mock.set_latency(Duration::from_secs(30));
    let t0 = Instant::now();
    assert_eq!(
        post_raw(&agent(), &mock.token_uri(), None, "grant_type=x").status,
        400
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn stats_and_reset_routes() {
    let mock = MockFcm::start(MockOptions::default());
    legacy_tokens(&mock, &["a", "notreg-b"]);
    let mut resp = agent()
        .get(format!("{}/mock/stats", mock.base_url()))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let stats: Stats = resp.body_mut().read_json().unwrap();
    assert_eq!(stats, mock.snapshot());
    assert_eq!(stats.send_requests, 1);
    assert_eq!(stats.connections, 1, "control routes are not counted");
    assert_eq!(stats.received["notreg-b"], 1);
    assert_eq!(stats.delivered["a"], 1);
    assert_eq!(stats.delivered["notreg-b"], 0);

    let resp = agent()
        .post(format!("{}/mock/reset", mock.base_url()))
        .send_empty()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(mock.snapshot(), Stats::default());
}

#[test]
fn unknown_routes_and_methods() {
    let mock = MockFcm::start(MockOptions::default());
    assert_eq!(
        post_raw(&agent(), &format!("{}/nope", mock.base_url()), None, "").status,
        404
    );
    let resp = agent().get(mock.legacy_url()).call().unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(mock.send_requests(), 0);
}

#[test]
fn drop_stops_listening_and_answers_waiting_requests() {
    let mock = MockFcm::start(MockOptions {
        latency: Duration::from_secs(30),
        ..MockOptions::default()
    });
    let addr = mock.addr();
    let url = mock.legacy_url();
    let waiting = std::thread::spawn(move || {
        let body = json!({"registration_ids": ["w"]}).to_string();
        post_raw(&agent(), &url, None, &body)
    });
    common::wait_until(Duration::from_secs(5), "the request to arrive", || {
        mock.received("w") == 1
    });
    let t0 = Instant::now();
    drop(mock);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "drop waited for the latency"
    );
    assert_eq!(waiting.join().unwrap().status, 200);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[test]
fn a_mock_can_restart_on_the_port_it_just_used() {
    let first = MockFcm::start(MockOptions::default());
    let addr = first.addr();
    // Leave a kept-alive connection open, as gocm would.
    let agent = agent();
    let body = json!({"registration_ids": ["a"]}).to_string();
    assert_eq!(
        post_raw(&agent, &first.legacy_url(), None, &body).status,
        200
    );
    drop(first);
    let second = MockFcm::start_on(addr, MockOptions::default()).expect("port free again");
    assert_eq!(second.addr(), addr);
    assert_eq!(legacy_tokens(&second, &["b"]).status, 200);
    assert_eq!(second.delivered("b"), 1);
    assert_eq!(second.received("a"), 0);
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn binary_serves_and_reports_counts_over_http() {
    let der = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/service-account.pub.der"
    );
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_mock-fcm"))
            .args([
                "--port",
                "0",
                "--latency-ms",
                "10",
                "--public-key",
                der,
                "--api-key",
                "k",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("mock-fcm runs"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut urls = Vec::new();
    for _ in 0..4 {
        urls.push(lines.next().expect("a line").expect("utf-8"));
    }
    let legacy_url = urls[0]
        .strip_prefix("legacy ")
        .expect("legacy line first")
        .to_string();
    assert!(legacy_url.ends_with("/fcm/send"));
    assert!(urls[1].starts_with("v1 http://127.0.0.1:"));
    assert!(urls[2].starts_with("token http://127.0.0.1:") && urls[2].ends_with("/token"));
    let stats_url = urls[3].strip_prefix("stats ").unwrap().to_string();

    let body = json!({"registration_ids": ["x", "y"]}).to_string();
    assert_eq!(
        post_raw(&agent(), &legacy_url, Some("key=k"), &body).status,
        200
    );
    assert_eq!(post_raw(&agent(), &legacy_url, None, &body).status, 401);
    let stats: Stats = agent()
        .get(&stats_url)
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(stats.send_requests, 2);
    assert_eq!(stats.received["x"], 2);
    assert_eq!(stats.delivered["x"], 1);
}
