//! Hostile HTTP: request shapes that broke tiny_http or could smuggle a
//! request, and clients that are slow on purpose. Each must get a clear
//! answer (or a closed connection), and nothing else may be harmed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{legacy, wait_until};

/// Sends raw bytes on a new connection and returns everything the server
/// sends back until it closes the connection (or 10 s pass).
fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn smuggled_send(token: &str) -> String {
    let body = format!("tokens={token}&payload={{}}");
    format!(
        "POST /gcm/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn http_versions_above_1_1_get_505_and_a_closed_connection() {
    let h = legacy(&[]);
    for line in [
        "GET /healthz HTTP/2.0\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "GET /healthz HTTP/3.0\r\n\r\n",
    ] {
        let started = Instant::now();
        let out = exchange(h.relay.addr(), line.as_bytes());
        assert!(out.starts_with("HTTP/1.1 505"), "{line:?}: {out:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{line:?} held the connection"
        );
    }
    // Many of them leak nothing that stops the server.
    for _ in 0..200 {
        exchange(h.relay.addr(), b"GET /healthz HTTP/2.0\r\n\r\n");
    }
    h.send(&["after-505"]);
    wait_until("delivery", Duration::from_secs(10), || {
        h.mock.delivered("after-505") == 1
    });
}

#[test]
fn ambiguous_body_lengths_are_refused_and_nothing_is_smuggled() {
    let h = legacy(&[]);
    let cases: &[(&str, &str)] = &[
        (
            "conflicting lengths",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
        ),
        ("negative length", "Content-Length: -1\r\n"),
        (
            "length over u64",
            "Content-Length: 18446744073709551616\r\n",
        ),
        ("signed length", "Content-Length: +5\r\n"),
        ("list length", "Content-Length: 5, 5\r\n"),
        (
            "length and chunked",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        ),
        ("unknown coding", "Transfer-Encoding: xchunked\r\n"),
        ("coding list", "Transfer-Encoding: chunked, identity\r\n"),
    ];
    for (i, (what, headers)) in cases.iter().enumerate() {
        let token = format!("smuggled-{i}");
        let request = format!(
            "POST /gcm/send HTTP/1.1\r\nHost: x\r\n{headers}\r\nhello{}",
            smuggled_send(&token)
        );
        let out = exchange(h.relay.addr(), request.as_bytes());
        assert!(out.starts_with("HTTP/1.1 400"), "{what}: {out:?}");
        assert!(
            !out.contains("ok\n"),
            "{what}: a smuggled request was served: {out:?}"
        );
    }
    // A body too large to read: 413, and the connection closes instead of
    // reading the rest as the next request.
    let request = format!(
        "POST /gcm/send HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n{}",
        smuggled_send("smuggled-big")
    );
    let out = exchange(h.relay.addr(), request.as_bytes());
    assert!(out.starts_with("HTTP/1.1 413"), "{out:?}");
    assert_eq!(out.matches("HTTP/1.1").count(), 1, "{out:?}");

    h.send(&["after-smuggling"]);
    h.wait_idle();
    assert_eq!(h.mock.delivered("after-smuggling"), 1);
    for i in 0..cases.len() {
        assert_eq!(h.mock.received(&format!("smuggled-{i}")), 0);
    }
    assert_eq!(h.mock.received("smuggled-big"), 0);
    assert_eq!(h.report()["attempts"], 1);
}

#[test]
fn too_many_headers_are_refused() {
    let h = legacy(&[]);
    let mut request = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        request.push_str(&format!("X-Filler-{i}: {}\r\n", "y".repeat(100)));
    }
    request.push_str("\r\n");
    let out = exchange(h.relay.addr(), request.as_bytes());
    assert!(out.starts_with("HTTP/1.1 400"), "{out:?}");
}

/// Opens a connection that sends `head`, then one byte of `drip` every
/// 100 ms for up to 5 s; returns what the server answered by the time it
/// closed the connection.
fn trickle(
    addr: std::net::SocketAddr,
    head: &'static [u8],
    drip: u8,
) -> std::thread::JoinHandle<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head).unwrap();
    let started = Instant::now();
    std::thread::spawn(move || {
        let mut s2 = s.try_clone().unwrap();
        while started.elapsed() < Duration::from_secs(5) {
            if s2.write_all(&[drip]).is_err() {
                break;
            }
            // Pacing a deliberately slow client, not waiting for a result.
            std::thread::sleep(Duration::from_millis(100));
        }
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

#[test]
fn a_trickled_body_times_out_as_a_whole_and_others_go_on() {
    // Up to 1 MiB a body is read by the connection's own thread; above it
    // (allowed here by --max-body) by a handler, under gocm's own deadline.
    // One byte every 100 ms never trips the socket timeout, only the
    // whole-request deadline.
    let h = legacy(&[
        "--client-timeout-ms",
        "600",
        "--http-threads",
        "1",
        "--max-body",
        "3000000",
    ]);
    for head in [
        &b"POST /gcm/send HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\ntokens="[..],
        &b"POST /gcm/send HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\ntokens="[..],
        &b"POST /gcm/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n"[..],
    ] {
        let started = Instant::now();
        let slow = trickle(h.relay.addr(), head, b'a');
        // The only handler is free for others, or soon free again.
        let token = format!("behind-{}", head.len());
        h.send(&[&token]);
        wait_until("delivery", Duration::from_secs(10), || {
            h.mock.delivered(&token) == 1
        });
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "waited {:?}",
            started.elapsed()
        );
        let out = slow.join().unwrap();
        assert!(out.starts_with("HTTP/1.1 408"), "{out:?}");
        assert!(out.contains("--client-timeout-ms"), "{out:?}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "the slow client was held {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn slow_bodies_on_every_handler_block_no_one() {
    // More slow clients than handler threads: chunked bodies and
    // `Expect: 100-continue` ones are read by their connection's thread.
    let h = legacy(&["--client-timeout-ms", "5000", "--http-threads", "2"]);
    let slow: Vec<_> = (0..3)
        .flat_map(|_| {
            [
                trickle(
                    h.relay.addr(),
                    b"POST /gcm/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100\r\n",
                    b'a',
                ),
                trickle(
                    h.relay.addr(),
                    b"POST /gcm/send HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n",
                    b'a',
                ),
            ]
        })
        .collect();
    let started = Instant::now();
    h.send(&["beside-the-slow"]);
    assert!(h.get("/healthz").status == 200);
    // Handlers held by the slow bodies would free up only at their 408s, 5 s.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "a send waited {:?} behind slow bodies",
        started.elapsed()
    );
    for s in slow {
        let out = s.join().unwrap();
        assert!(out.contains("408"), "{out:?}");
    }
    wait_until("delivery", Duration::from_secs(10), || {
        h.mock.delivered("beside-the-slow") == 1
    });
}

#[test]
fn a_header_sent_a_byte_at_a_time_is_cut_off() {
    let h = legacy(&["--client-timeout-ms", "600"]);
    let started = Instant::now();
    let out = trickle(h.relay.addr(), b"GET /healthz HTTP/1.1\r\nX-Slow: ", b'a')
        .join()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 408"), "{out:?}");
    assert!(out.contains("header did not arrive"), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "held {:?}",
        started.elapsed()
    );
}

#[test]
fn a_client_that_pipelines_without_reading_holds_two_handlers_at_most() {
    // Two requests of a connection may be in flight: one answer being
    // written, the next waiting for its turn. A third handler serves others.
    let h = legacy(&["--http-threads", "3", "--client-timeout-ms", "3000"]);
    // 200,000 pipelined requests, answers never read: before, tiny_http
    // queued them all, and once the socket buffers were full every handler
    // waited to write its answer on this connection.
    let mut s = TcpStream::connect(h.relay.addr()).unwrap();
    let flood = "GET /healthz HTTP/1.1\r\n\r\n".repeat(200_000);
    // So that the test fails, not hangs, if the server stops reading.
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let writer = std::thread::spawn(move || {
        let _ = s.write_all(flood.as_bytes());
        s
    });
    let started = Instant::now();
    h.send(&["beside-the-flood"]);
    assert_eq!(h.get("/healthz").status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "others waited {:?}",
        started.elapsed()
    );
    wait_until("delivery", Duration::from_secs(10), || {
        h.mock.delivered("beside-the-flood") == 1
    });
    drop(writer.join().unwrap());
}

#[test]
fn a_client_that_reads_no_answer_is_disconnected_at_the_write_timeout() {
    // The default --client-timeout-ms (30 s): an answer left unread is
    // given 2 s, not the whole client timeout.
    let h = legacy(&["--http-threads", "1"]);
    // /metrics answers are kilobytes: the socket buffers fill at once.
    let mut s = TcpStream::connect(h.relay.addr()).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let flood = "GET /metrics HTTP/1.1\r\n\r\n".repeat(500_000);
    let started = Instant::now();
    let writer = std::thread::spawn(move || s.write_all(flood.as_bytes()));
    let result = writer.join().unwrap();
    // gocm closed the connection (the write fails with a reset or a broken
    // pipe) soon after its answer could not be written; it did not keep
    // reading requests it could not answer, 500 ms of a handler each.
    let err = result.expect_err("the connection is closed before 13 MB are read");
    assert!(
        !matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    h.send(&["after-the-deaf-client"]);
    wait_until("delivery", Duration::from_secs(10), || {
        h.mock.delivered("after-the-deaf-client") == 1
    });
}

#[test]
fn errors_found_while_reading_the_header_are_json() {
    let h = legacy(&[]);
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "x".repeat(20 * 1024));
    for (request, status, needle) in [
        ("GET /healthz\r\n\r\n".to_string(), "400", "request line"),
        (
            "GET /healthz HTTP/1.1\r\nNo colon\r\n\r\n".to_string(),
            "400",
            "header line",
        ),
        (long, "431", "16 KiB"),
        (
            "GET /healthz HTTP/1.1\r\nExpect: foo\r\n\r\n".to_string(),
            "417",
            "Expect",
        ),
        (
            "GET /healthz HTTP/0.9\r\n\r\n".to_string(),
            "400",
            "request line",
        ),
    ] {
        let out = exchange(h.relay.addr(), request.as_bytes());
        assert!(out.starts_with(&format!("HTTP/1.1 {status}")), "{out:?}");
        assert!(out.contains("application/json"), "{out:?}");
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default();
        let v: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        assert!(v["error"].as_str().unwrap().contains(needle), "{out:?}");
    }
}

#[test]
fn wrong_methods_say_which_one_is_allowed() {
    let h = legacy(&[]);
    let out = exchange(
        h.relay.addr(),
        b"GET /gcm/send HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 405"), "{out:?}");
    assert!(out.contains("Allow: POST"), "{out:?}");
    let out = exchange(
        h.relay.addr(),
        b"DELETE /gcm/report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(out.contains("Allow: GET"), "{out:?}");
}

#[test]
fn an_absolute_form_target_is_served() {
    let h = legacy(&[]);
    let out = exchange(
        h.relay.addr(),
        b"GET http://localhost:5601/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out:?}");
}
