//! The HTTP API as GoCM's clients speak it: intake, validation, encodings,
//! routes. Every test goes through real HTTP to a real relay and checks what
//! the mock upstream received.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{legacy, wait_until};
use serde_json::json;

#[test]
fn gocm_readme_curl_example_raw_form() {
    let h = legacy(&[]);
    // Exactly what GoCM's README tells users to run: not url-encoded.
    let a = h.post_form(
        r#"tokens=T1&tokens=T2&payload={"title": "This is the title", "datestamp": "2014-03-07T18:01:04.702100"}"#,
    );
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    assert!(
        a.content_type.starts_with("text/plain"),
        "{}",
        a.content_type
    );
    h.wait_idle();
    let want = json!({"title": "This is the title", "datestamp": "2014-03-07T18:01:04.702100"});
    for t in ["T1", "T2"] {
        assert_eq!(h.mock.delivered(t), 1, "{t}");
        assert_eq!(h.mock.last_data(t), Some(want.clone()));
    }
    let r = h.report();
    assert_eq!(
        (r["attempts"].as_u64(), r["failures"].as_u64()),
        (Some(2), Some(0))
    );
}

#[test]
fn python_requests_form_encoding() {
    let h = legacy(&[]);
    // requests.post(url, data={"tokens": [t], "payload": json.dumps(msg)})
    // with msg = {"title": "Olá mundo", "n": 3}: quote_plus of each value.
    let body = "tokens=tok-py&payload=%7B%22title%22%3A+%22Ol%5Cu00e1+mundo%22%2C+%22n%22%3A+3%7D";
    let a = h.post_form(body);
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    h.wait_idle();
    assert_eq!(
        h.mock.last_data("tok-py"),
        Some(json!({"title": "Olá mundo", "n": 3}))
    );
}

#[test]
fn form_decoding_reaches_the_upstream_byte_exact() {
    let h = legacy(&[]);
    // `+` is a space, `%2B` a plus, UTF-8 (accents, emoji) passes unchanged.
    let body = "tokens=enc-1&payload=%7B%22a%22%3A%22x+y%22%2C%22b%22%3A%22x%2By%22%2C%22c%22%3A%22caf%C3%A9+%F0%9F%8E%89%22%7D";
    assert_eq!(h.post_form(body).status, 200);
    h.wait_idle();
    assert_eq!(
        h.mock.last_data("enc-1"),
        Some(json!({"a": "x y", "b": "x+y", "c": "café 🎉"}))
    );
    // Raw (not %-encoded) UTF-8 in a form body works too.
    assert_eq!(
        h.post_form(r#"tokens=enc-2&payload={"c":"ñ🚀"}"#).status,
        200
    );
    h.wait_idle();
    assert_eq!(h.mock.last_data("enc-2"), Some(json!({"c": "ñ🚀"})));
}

#[test]
fn json_body_with_payload_as_object_or_string() {
    let h = legacy(&[]);
    let a = h.post_json(&json!({"tokens": ["j-1"], "payload": {"n": 1, "s": "é"}}));
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    let a = h.post_json(&json!({"tokens": ["j-2"], "payload": "{\"n\": 2}"}));
    assert_eq!(a.status, 200);
    h.wait_idle();
    assert_eq!(h.mock.last_data("j-1"), Some(json!({"n": 1, "s": "é"})));
    assert_eq!(h.mock.last_data("j-2"), Some(json!({"n": 2})));
}

#[test]
fn unsendable_requests_get_a_400_naming_the_problem() {
    let h = legacy(&[]);
    let cases: &[(&str, &str)] = &[
        ("token=T1&payload={}", "\"tokens\""),
        ("payload={}", "missing \"tokens\""),
        ("tokens=+&tokens=%20&payload={}", "no usable token"),
        ("tokens=T1", "missing \"payload\""),
        ("tokens=T1&payload=[1,2]", "JSON object"),
        ("tokens=T1&payload={nope", "not valid JSON"),
        // A raw `&` in the payload cuts it short: the error says how to send it.
        (r#"tokens=T1&payload={"q":"a&b"}"#, "--data-urlencode"),
        (r#"tokens=T1&payload={"from":"x"}"#, "reserved"),
        (r#"tokens=T1&payload={"message_type":"x"}"#, "reserved"),
        (r#"tokens=T1&payload={"google.c.a":"x"}"#, "reserved"),
        (r#"tokens=T1&payload={"gcm.n":"x"}"#, "reserved"),
        (r#"tokens=T1&payload={"collapse_key":"x"}"#, "reserved"),
        ("tokens=%C3%28&payload={}", "UTF-8"),
    ];
    for (body, needle) in cases {
        let a = h.post_form(body);
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert!(a.content_type.starts_with("application/json"), "{body}");
        assert!(a.error().contains(needle), "{body}: {}", a.error());
    }
    // 4096 bytes of compact JSON is the limit, counted in UTF-8 bytes.
    let fits = format!(r#"{{"k":"{}"}}"#, "é".repeat((4096 - 8) / 2));
    assert_eq!(fits.len(), 4096);
    let a = h.post_json(&json!({"tokens": ["big-ok"], "payload": fits}));
    assert_eq!(a.status, 200, "{}", a.body);
    let over = format!(r#"{{"k":"{}x"}}"#, "é".repeat((4096 - 8) / 2));
    let a = h.post_json(&json!({"tokens": ["big-no"], "payload": over}));
    assert_eq!(a.status, 400);
    assert!(a.error().contains("4096"), "{}", a.error());
    // Nesting is capped well below serde_json's 128 levels, which the stored
    // and sent forms (more levels around the payload) would exceed.
    let nested = |levels: usize| {
        format!(
            r#"{{"k":{}1{}}}"#,
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    };
    let a = h.post_json(&json!({"tokens": ["deep-no"], "payload": nested(33)}));
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.error().contains("33 levels deep"), "{}", a.error());
    let a = h.post_form(&format!("tokens=deep-no&payload={}", nested(127)));
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.error().contains("levels deep"), "{}", a.error());
    let a = h.post_json(&json!({"tokens": ["deep-ok"], "payload": nested(32)}));
    assert_eq!(a.status, 200, "{}", a.body);
    // FCM's 4096 bytes hold the notification and the data together.
    let a = h.post_json(&json!({
        "tokens": ["loud-no"],
        "payload": {"k": "v"},
        "notification": {"title": "t".repeat(4096)},
    }));
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.error().contains("together"), "{}", a.error());
    // A JSON body's tokens are an array of strings, and the error says so.
    for (tokens, needle) in [
        (json!("T1"), "must be an array of strings"),
        (json!(["T1", 7]), "must hold strings; one is a number"),
    ] {
        let a = h.post_json(&json!({"tokens": tokens, "payload": {}}));
        assert_eq!(a.status, 400, "{}", a.body);
        assert!(a.error().contains(needle), "{}", a.error());
    }
    // Nothing refused reached the upstream; the good one did.
    h.wait_idle();
    assert_eq!(h.mock.received("T1"), 0);
    assert_eq!(h.mock.received("big-no"), 0);
    assert_eq!(h.mock.received("deep-no"), 0);
    assert_eq!(h.mock.received("loud-no"), 0);
    assert_eq!(h.mock.delivered("big-ok"), 1);
    assert_eq!(h.mock.delivered("deep-ok"), 1);
    assert_eq!(h.report()["attempts"], 2);
}

#[test]
fn limits_answer_413_and_the_server_stays_up() {
    let h = legacy(&["--max-body", "2000", "--max-tokens", "3"]);
    let a = h.post_form("tokens=a&tokens=b&tokens=c&tokens=d&payload={}");
    assert_eq!(a.status, 413);
    assert!(a.error().contains("--max-tokens"), "{}", a.error());
    let long = format!("tokens=a&payload={{\"k\":\"{}\"}}", "x".repeat(3000));
    let a = h.post_form(&long);
    assert_eq!(a.status, 413);
    assert!(a.error().contains("--max-body"));

    // A client announcing a terabyte: answered 413 without reading it, and
    // the process must not try to allocate it (tiny_http upstream did).
    let mut s = TcpStream::connect(h.relay.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /gcm/send HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\ntokens=a")
        .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    drop(s);

    // A chunked body over the limit (no Content-Length to check up front).
    let mut s = TcpStream::connect(h.relay.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let chunk = "x".repeat(4000);
    write!(
        s,
        "POST /gcm/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    )
    .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");

    // Still serving, and nothing was accepted.
    h.send(&["after-limits"]);
    let r = h.wait_idle();
    assert_eq!(r["attempts"], 1);
    assert_eq!(h.mock.delivered("after-limits"), 1);
}

#[test]
fn duplicate_tokens_are_sent_once() {
    let h = legacy(&[]);
    let a = h.post_form("tokens=d1&tokens=d1&tokens=+d1+&tokens=d2&payload={}");
    assert_eq!(a.status, 200);
    let r = h.wait_idle();
    assert_eq!(r["attempts"], 2);
    assert_eq!(h.mock.received("d1"), 1);
    assert_eq!(h.mock.received("d2"), 1);
}

#[test]
fn routes_methods_and_content_types() {
    let h = legacy(&[]);
    let a = h.get("/healthz");
    assert_eq!(a.status, 200);
    let a = h.get("/nope");
    assert_eq!(a.status, 404);
    assert!(a.error().contains("/nope"));
    let a = h.get("/gcm/send");
    assert_eq!(a.status, 405);
    assert!(a.error().contains("POST"));
    let a = h.post("text/xml", b"<x/>");
    assert_eq!(a.status, 415);
    assert!(a.error().contains("application/json"));
    let a = h.post(
        "application/json",
        b"{\"tokens\": [\"a\"], \"payload\": {}, \"extra\": 1}",
    );
    assert_eq!(a.status, 400);
    assert!(a.error().contains("extra"), "{}", a.error());
    // The report keeps GoCM's five keys first, in GoCM's order.
    let body = h.get("/gcm/report").body;
    assert!(
        body.starts_with(
            r#"{"attempts":0,"failures":0,"pending":0,"canonicals":0,"notregistered":0"#
        ),
        "{body}"
    );
    assert_eq!(
        h.get("/gcm/report/canonical").body,
        r#"{"canonical_replacements":[]}"#
    );
    assert_eq!(h.get("/gcm/report/notregistered").body, r#"{"tokens":[]}"#);
}

#[test]
fn a_silent_client_does_not_block_the_others() {
    let h = legacy(&["--client-timeout-ms", "500", "--http-threads", "1"]);
    // Announces a body and never sends it: its read must time out.
    let mut s = TcpStream::connect(h.relay.addr()).unwrap();
    s.write_all(b"POST /gcm/send HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\ntokens")
        .unwrap();
    // A small body is read by the connection's own thread, so the single
    // handler serves the next client at once; the silent one gets a 408.
    h.send(&["after-silent"]);
    wait_until("delivery", Duration::from_secs(10), || {
        h.mock.delivered("after-silent") == 1
    });
    let mut buf = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.read_to_end(&mut buf);
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
}
