//! The real `gocm` binary: flags as GoCM users type them, secrets kept out
//! of argv, logs and answers, clear startup errors, SIGTERM, `--logto`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{call, client, post_form_to, unix_http, wait_until, Running, TempFile};
use mock_fcm::{MockFcm, MockOptions, ScriptBody, Scripted};

const KEY: &str = "AIzaSy-very-secret-server-key";

#[test]
fn help_documents_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_gocm"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--apikey",
        "--credentials",
        "--project-id",
        "--fcm-endpoint",
        "--gcm-endpoint",
        "--ipaddress",
        "--port",
        "--workers",
        "--http-threads",
        "--queue-size",
        "--retries",
        "--max-body",
        "--max-tokens",
        "--connect-timeout-ms",
        "--upstream-timeout-ms",
        "--backoff-ms",
        "--backoff-max-ms",
        "--client-timeout-ms",
        "--log-level",
        "--max-pending",
        "--data-dir",
        "--shutdown-timeout-ms",
        "--apikey-file",
        "--unix-socket",
        "--auth-token",
        "--auth-token-file",
        "--logto",
        "0660",
        "send",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_gocm"))
        .args(["send", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--token",
        "--payload",
        "--dry-run",
        "--apikey",
        "--apikey-file",
        "--credentials",
        "--gcm-endpoint",
        "--fcm-endpoint",
        "--upstream-timeout-ms",
    ] {
        assert!(help.contains(flag), "send --help lacks {flag}");
    }
}

#[test]
fn missing_credentials_is_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_gocm"))
        .env_remove("GOCM_APIKEY")
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no upstream credentials"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn go_style_flags_start_the_server() {
    let mock = MockFcm::start(MockOptions {
        api_key: Some(KEY.into()),
        ..MockOptions::default()
    });
    let url = mock.legacy_url();
    let gocm = Running::start(
        &[
            "-apikey",
            KEY,
            "-port",
            "0",
            "-host",
            "127.0.0.1",
            "-gcm-endpoint",
            &url,
            "-workers=2",
            "-data-dir",
            "none",
        ],
        &[],
    );
    let addr = gocm.addr();
    let a = post_form_to(&client(), &addr, "tokens=go-1&payload={}");
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    wait_until("delivery", Duration::from_secs(10), || {
        mock.delivered("go-1") == 1
    });
    assert!(gocm.terminate().success(), "SIGTERM exits 0");
}

#[test]
fn api_key_from_environment_never_reaches_the_log() {
    let mock = MockFcm::start(MockOptions {
        api_key: Some(KEY.into()),
        ..MockOptions::default()
    });
    mock.push_script(Scripted {
        status: 401,
        retry_after: None,
        body: ScriptBody::Html("<HTML><TITLE>Unauthorized</TITLE></HTML>".into()),
        stall: None,
    });
    let url = mock.legacy_url();
    let gocm = Running::start(
        &[
            "--port",
            "0",
            "--gcm-endpoint",
            &url,
            "--workers",
            "2",
            "--backoff-ms",
            "10",
            "--data-dir",
            "none",
        ],
        &[("GOCM_APIKEY", KEY), ("RUST_LOG", "trace")],
    );
    let addr = gocm.addr();
    let agent = client();
    let send = |t: &str| {
        let body = format!("tokens={t}&payload={{}}");
        post_form_to(&agent, &addr, &body)
    };
    // One at a time: the scripted 401 must meet the first send.
    assert_eq!(send("env-1").status, 200);
    wait_until("the 401", Duration::from_secs(10), || {
        mock.received("env-1") == 1
    });
    assert_eq!(send("unavail1-env").status, 200);
    wait_until("both handled", Duration::from_secs(10), || {
        mock.delivered("unavail1-env") == 1 && mock.received("env-1") == 1
    });
    let log = gocm.log();
    assert!(!log.is_empty());
    assert!(!log.contains(KEY), "the API key is in the log:\n{log}");
    assert_eq!(log.matches("API key rejected").count(), 1, "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("API key rejected"))
        .unwrap();
    assert!(line.contains("ERROR"), "logged as an error: {line}");
}

const AUTH_TOKEN: &str = "gocm-api-bearer-0123456789abcdef";

#[test]
fn secrets_never_reach_the_log_or_an_answer() {
    let mock = MockFcm::start(MockOptions {
        api_key: Some(KEY.into()),
        ..MockOptions::default()
    });
    let url = mock.legacy_url();
    let key_file = TempFile::new("apikey", &format!("{KEY}\n"));
    let gocm = Running::start(
        &[
            "--port",
            "0",
            "--gcm-endpoint",
            &url,
            "--apikey-file",
            key_file.path(),
            "--workers",
            "2",
            "--backoff-ms",
            "10",
            "--data-dir",
            "none",
        ],
        &[("GOCM_AUTH_TOKEN", AUTH_TOKEN), ("RUST_LOG", "trace")],
    );
    let base = format!("http://{}", gocm.addr());
    let agent = client();
    let good = format!("Bearer {AUTH_TOKEN}");
    let long_dead = "invalid-0123456789-device-token-that-must-be-shortened";
    let form = format!("tokens=sec-1&tokens=notreg-sec2&tokens={long_dead}&payload={{}}");
    let form_body = ("application/x-www-form-urlencoded", form.as_bytes());
    let mut answers = vec![call(
        &agent,
        &format!("{base}/gcm/send"),
        Some(&good),
        Some(form_body),
    )];
    assert_eq!(answers[0].status, 200, "{}", answers[0].body);
    wait_until("the send handled", Duration::from_secs(10), || {
        mock.delivered("sec-1") == 1 && mock.received(long_dead) == 1
    });
    for (path, auth, body) in [
        ("/gcm/send", None, Some(form_body)),
        ("/gcm/send", Some("Bearer not-the-token"), Some(form_body)),
        (
            "/gcm/send",
            Some(good.as_str()),
            Some(("application/json", b"{".as_slice())),
        ),
        ("/gcm/report", Some(good.as_str()), None),
        ("/gcm/report/canonical", Some(good.as_str()), None),
        ("/gcm/report/notregistered", Some(good.as_str()), None),
        ("/metrics", Some(good.as_str()), None),
        ("/readyz", Some(good.as_str()), None),
        ("/readyz", None, None),
        ("/healthz", None, None),
        ("/nope", Some(good.as_str()), None),
    ] {
        answers.push(call(&agent, &format!("{base}{path}"), auth, body));
    }
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        [200, 401, 401, 400, 200, 200, 200, 200, 200, 401, 200, 404]
    );
    for a in &answers {
        assert!(
            !a.body.contains(KEY),
            "the API key in an answer: {}",
            a.body
        );
        assert!(
            !a.body.contains(AUTH_TOKEN),
            "the auth token in an answer: {}",
            a.body
        );
        for (name, value) in &a.headers {
            assert!(
                !value.contains(KEY) && !value.contains(AUTH_TOKEN),
                "{name}: {value}"
            );
        }
    }
    let log = gocm.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "not a trace log:\n{log}"
    );
    assert!(!log.contains(KEY), "the API key is in the log:\n{log}");
    assert!(
        !log.contains(AUTH_TOKEN),
        "the auth token is in the log:\n{log}"
    );
    // One line per failed token, the token shortened.
    assert!(
        !log.contains(long_dead),
        "a whole device token in the log:\n{log}"
    );
    assert_eq!(log.matches("token invalid-0123…").count(), 1, "{log}");
    assert_eq!(
        log.matches("token notreg-sec2 failed (not_registered)")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("token invalid-0123… failed (invalid)").count(),
        1,
        "{log}"
    );
    assert!(gocm.terminate().success());
}

#[test]
fn an_open_api_beyond_loopback_is_a_loud_warning() {
    let args = [
        "--apikey",
        KEY,
        "--ipaddress",
        "0.0.0.0",
        "--port",
        "0",
        "--data-dir",
        "none",
        "--workers",
        "1",
    ];
    let open = Running::start(&args, &[]);
    open.addr();
    let log = open.log();
    assert!(log.contains("WITHOUT API authentication"), "{log}");
    assert!(log.contains("no API authentication"), "{log}");

    let closed = Running::start(&args, &[("GOCM_AUTH_TOKEN", AUTH_TOKEN)]);
    closed.addr();
    let log = closed.log();
    assert!(!log.contains("WITHOUT API authentication"), "{log}");
    assert!(log.contains("bearer token required"), "{log}");
}

#[test]
fn logto_appends_and_the_unix_socket_goes_on_exit() {
    let mock = MockFcm::start(MockOptions {
        api_key: Some(KEY.into()),
        ..MockOptions::default()
    });
    let url = mock.legacy_url();
    let log_file = TempFile::new("logto", "a line from an earlier run\n");
    let socket = std::env::temp_dir().join(format!("gocm-cli-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let mut gocm = Running::start(
        &[
            "--apikey",
            KEY,
            "--gcm-endpoint",
            &url,
            "--unix-socket",
            socket.to_str().unwrap(),
            "--logto",
            log_file.path(),
            "--data-dir",
            "none",
            "--workers",
            "1",
        ],
        &[],
    );
    let read_log = || std::fs::read_to_string(&log_file.0).unwrap();
    wait_until(
        "the listening line in the file",
        Duration::from_secs(20),
        || read_log().contains(&format!("listening on unix:{}", socket.display())),
    );
    let a = unix_http(
        &socket,
        "POST",
        "/gcm/send",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"tokens=logto-1&payload={}",
    );
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    wait_until("delivery", Duration::from_secs(10), || {
        mock.delivered("logto-1") == 1
    });
    gocm.signal("TERM");
    assert!(gocm.wait_exit(Duration::from_secs(20)).success());
    assert!(!socket.exists(), "the socket file is removed on exit");
    let log = read_log();
    assert!(log.starts_with("a line from an earlier run\n"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !gocm.log().contains("listening"),
        "logged to stderr too:\n{}",
        gocm.log()
    );
}

#[test]
fn an_unwritable_logto_is_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_gocm"))
        .args(["--apikey", KEY, "--logto", "/nonexistent-dir/gocm.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--logto /nonexistent-dir/gocm.log"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// Every thread of the process is named after its part, tiny_http's own
/// connection threads included (`gocm-conn`), so that `top -H`, perf and
/// the bench's CPU figures can tell gocm's work apart.
#[test]
fn every_thread_is_named() {
    let mock = MockFcm::start(MockOptions::default());
    let url = mock.legacy_url();
    let gocm = Running::start(
        &[
            "--apikey",
            KEY,
            "--gcm-endpoint",
            &url,
            "--port",
            "0",
            "--data-dir",
            "none",
            "--workers",
            "2",
        ],
        &[],
    );
    let addr = gocm.addr();
    let agent = client();
    assert_eq!(
        post_form_to(&agent, &addr, "tokens=T1&payload={}").status,
        200
    );
    let names = || -> Vec<String> {
        let tasks = format!("/proc/{}/task", gocm.child.id());
        std::fs::read_dir(tasks)
            .unwrap()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|c| c.trim().to_string())
            .collect()
    };
    wait_until("a connection thread", Duration::from_secs(5), || {
        names().iter().any(|n| n == "gocm-conn")
    });
    let names = names();
    let unnamed: Vec<&String> = names
        .iter()
        .filter(|n| *n != "gocm" && !n.starts_with("gocm-"))
        .collect();
    assert!(
        unnamed.is_empty(),
        "threads without a gocm name: {unnamed:?}"
    );
    for part in ["gocm-http-0", "gocm-worker-0", "gocm-scheduler"] {
        assert!(names.iter().any(|n| n == part), "{part} in {names:?}");
    }
}
