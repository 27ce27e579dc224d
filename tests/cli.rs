//! The real `gocm` binary: flags as GoCM users type them, the API key kept
//! out of argv and logs, clear startup errors, SIGTERM.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{client, post_to, wait_until, Running};
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
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
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
    let a = post_to(
        &client(),
        &format!("http://{addr}/gcm/send"),
        "application/x-www-form-urlencoded",
        b"tokens=go-1&payload={}",
    );
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
        post_to(
            &agent,
            &format!("http://{addr}/gcm/send"),
            "application/x-www-form-urlencoded",
            body.as_bytes(),
        )
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
}
