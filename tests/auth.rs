//! `--auth-token`: every route but /healthz needs `Authorization: Bearer`,
//! over real HTTP against a real relay.

mod common;

use std::time::Duration;

use common::{call, client, legacy, wait_until, Answer, Harness, Metrics, TempFile};

const TOKEN: &str = "t0ken-Zq9_x~long.enough";

/// A POST body and its content type; `None` makes a GET.
type Body = Option<(&'static str, &'static [u8])>;

/// (path, body) of every route.
fn routes() -> Vec<(&'static str, Body)> {
    vec![
        (
            "/gcm/send",
            Some((
                "application/x-www-form-urlencoded",
                b"tokens=auth-1&payload={}".as_slice(),
            )),
        ),
        ("/gcm/report", None),
        ("/gcm/report/canonical", None),
        ("/gcm/report/notregistered", None),
        ("/readyz", None),
        ("/metrics", None),
        ("/no/such/route", None),
    ]
}

fn request(h: &Harness, path: &str, auth: Option<&str>, body: Option<(&str, &[u8])>) -> Answer {
    call(&client(), &h.url(path), auth, body)
}

fn assert_refused(a: &Answer, what: &str) {
    assert_eq!(a.status, 401, "{what}: {}", a.body);
    assert!(
        a.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{what}: no WWW-Authenticate: Bearer"
    );
    let error = a.error();
    assert!(!error.is_empty(), "{what}");
    assert!(
        !a.body.contains(TOKEN) && !a.body.contains("wrong-token"),
        "{what}: {}",
        a.body
    );
}

#[test]
fn every_route_but_healthz_needs_the_token() {
    let h = legacy(&["--auth-token", TOKEN]);
    let bearer = format!("Bearer {TOKEN}");
    for (path, body) in routes() {
        let no_header = request(&h, path, None, body);
        assert_refused(&no_header, &format!("{path} without a token"));
        assert!(
            no_header.error().contains("Authorization"),
            "{}",
            no_header.body
        );
        assert_refused(
            &request(&h, path, Some("Bearer wrong-token"), body),
            &format!("{path} with a wrong token"),
        );
        assert_refused(
            &request(&h, path, Some(&format!("Basic {TOKEN}")), body),
            &format!("{path} with the Basic scheme"),
        );
        assert_refused(
            &request(&h, path, Some(&format!("Bearer {TOKEN}x")), body),
            &format!("{path} with a longer token"),
        );
        let ok = request(&h, path, Some(&bearer), body);
        let expected = if path == "/no/such/route" { 404 } else { 200 };
        assert_eq!(ok.status, expected, "{path} with the token: {}", ok.body);
    }
    // /healthz is a liveness probe: open, with or without a token.
    for auth in [None, Some("Bearer wrong-token")] {
        let a = request(&h, "/healthz", auth, None);
        assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    }

    // Only the authenticated send was accepted and delivered.
    wait_until("the delivery", Duration::from_secs(10), || {
        h.mock.delivered("auth-1") == 1
    });
    let a = request(&h, "/gcm/report", Some(&bearer), None);
    assert_eq!(a.json()["attempts"], 1);
    let m = request(&h, "/metrics", Some(&bearer), None);
    let m = Metrics::parse(&m.body);
    let http = |route, status| {
        m.get(
            "gocm_http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(http("/gcm/send", "401"), Some(4.0));
    assert_eq!(http("/gcm/send", "200"), Some(1.0));
    assert_eq!(http("other", "401"), Some(4.0));
    assert_eq!(http("/healthz", "200"), Some(2.0));
}

#[test]
fn without_a_token_the_api_stays_open() {
    let h = legacy(&[]);
    for (path, body) in routes() {
        let a = request(&h, path, None, body);
        assert_ne!(a.status, 401, "{path}: {}", a.body);
    }
}

#[test]
fn token_file_loses_its_trailing_newline() {
    // As written by an editor on Windows: CRLF.
    let file = TempFile::new("auth-token", &format!("{TOKEN}\r\n"));
    let h = legacy(&["--auth-token-file", file.path()]);
    let ok = request(&h, "/gcm/report", Some(&format!("Bearer {TOKEN}")), None);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(request(&h, "/gcm/report", None, None).status, 401);
}
