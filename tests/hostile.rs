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

#[test]
fn a_trickled_body_times_out_as_a_whole_and_others_go_on() {
    let h = legacy(&["--client-timeout-ms", "600", "--http-threads", "1"]);
    // Over 64 KiB, so a handler thread reads it; one byte every 100 ms
    // never trips the socket timeout, only the whole-body deadline.
    let mut s = TcpStream::connect(h.relay.addr()).unwrap();
    s.write_all(b"POST /gcm/send HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\ntokens=")
        .unwrap();
    let started = Instant::now();
    let trickle = std::thread::spawn(move || {
        let mut s2 = s.try_clone().unwrap();
        while started.elapsed() < Duration::from_secs(5) {
            if s2.write_all(b"a").is_err() {
                break;
            }
            // Pacing a deliberately slow client, not waiting for a result.
            std::thread::sleep(Duration::from_millis(100));
        }
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    // The only handler is busy with the trickle, then free again.
    h.send(&["behind-the-trickle"]);
    wait_until("delivery", Duration::from_secs(10), || {
        h.mock.delivered("behind-the-trickle") == 1
    });
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited {:?}",
        started.elapsed()
    );
    let out = trickle.join().unwrap();
    assert!(out.starts_with("HTTP/1.1 408"), "{out:?}");
    assert!(out.contains("--client-timeout-ms"), "{out:?}");
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
