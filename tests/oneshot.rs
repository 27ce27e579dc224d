//! `gocm send`: one message through the real binary against the mock, no
//! server; one line per token, exit 0 only when all were delivered.

mod common;

use std::process::{Command, Output};

use common::TempFile;
use mock_fcm::{MockFcm, MockOptions};

const KEY: &str = "AIzaSy-one-shot-server-key";

fn mock() -> MockFcm {
    MockFcm::start(MockOptions {
        api_key: Some(KEY.into()),
        ..MockOptions::default()
    })
}

fn gocm(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gocm"));
    cmd.args(args)
        .env_remove("GOCM_APIKEY")
        .env_remove("GOCM_AUTH_TOKEN")
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("gocm runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn delivered_tokens_exit_zero() {
    let mock = mock();
    let url = mock.legacy_url();
    let key = TempFile::new("apikey", &format!("{KEY}\n"));
    let out = gocm(
        &[
            "send",
            "--token",
            "once-1",
            "--token",
            "canonical-once2",
            "--payload",
            r#"{"title": "hi", "n": 3}"#,
            "--apikey-file",
            key.path(),
            "--gcm-endpoint",
            &url,
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        stdout(&out),
        "once-1: delivered\ncanonical-once2: canonical new-once2\n"
    );
    assert_eq!(mock.delivered("once-1"), 1);
    assert_eq!(
        mock.last_data("once-1").unwrap(),
        serde_json::json!({"title": "hi", "n": 3})
    );
    assert!(!stdout(&out).contains(KEY) && !stderr(&out).contains(KEY));
}

#[test]
fn a_dead_token_exits_non_zero() {
    let mock = mock();
    let url = mock.legacy_url();
    let out = gocm(
        &[
            "send",
            "--token",
            "notreg-once3",
            "--token",
            "once-4",
            "--gcm-endpoint",
            &url,
        ],
        &[("GOCM_APIKEY", KEY)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "notreg-once3: not registered\nonce-4: delivered\n"
    );
}

#[test]
fn a_rejected_key_is_a_failure_with_its_reason() {
    let mock = mock();
    let url = mock.legacy_url();
    let out = gocm(
        &[
            "send",
            "--token",
            "once-5",
            "--apikey",
            "wrong-key",
            "--gcm-endpoint",
            &url,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let line = stdout(&out);
    assert!(line.starts_with("once-5: failed (auth: "), "{line}");
    // A refused key is not transient: nothing hints that a retry would help.
    assert!(!line.contains("transient"), "{line}");
    assert_eq!(mock.delivered("once-5"), 0);
}

#[test]
fn dry_run_validates_without_delivering() {
    let mock = mock();
    let url = mock.legacy_url();
    let out = gocm(
        &[
            "send",
            "--token",
            "once-6",
            "--dry-run",
            "--apikey",
            KEY,
            "--gcm-endpoint",
            &url,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "once-6: valid (dry run: validated by FCM, not delivered)\n"
    );
    assert_eq!((mock.received("once-6"), mock.delivered("once-6")), (1, 0));
}

#[test]
fn go_style_flags_and_flags_before_send_work() {
    let mock = mock();
    let url = mock.legacy_url();
    // The key before `send` (a server flag), Go spellings after it.
    let out = gocm(
        &[
            "-apikey",
            KEY,
            "send",
            "-token",
            "once-7",
            &format!("-gcm-endpoint={url}"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "once-7: delivered\n");
}

#[test]
fn usage_errors_exit_two_and_say_why() {
    let mock = mock();
    let url = mock.legacy_url();
    for (args, expected) in [
        (vec!["send", "--apikey", KEY], "--token"),
        (
            vec![
                "send",
                "--apikey",
                KEY,
                "--token",
                "t",
                "--payload",
                "{nope",
            ],
            "--payload is not JSON",
        ),
        (
            vec![
                "send",
                "--apikey",
                KEY,
                "--token",
                "t",
                "--payload",
                r#"{"from": "x"}"#,
            ],
            "from",
        ),
        (vec!["send", "--token", "t"], "no upstream credentials"),
    ] {
        let mut args = args;
        args.extend(["--gcm-endpoint", &url]);
        let out = gocm(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{args:?}");
        // The hint points at the subcommand's own help.
        assert!(
            stderr(&out).contains("gocm send --help"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(mock.send_requests(), 0);
}

#[test]
fn fcm_v1_credentials_are_checked_end_to_end() {
    let mock = MockFcm::start(MockOptions::test_service_account());
    let key = TempFile::new(
        "service-account",
        &mock_fcm::test_service_account_json(&mock.token_uri()),
    );
    let out = gocm(
        &[
            "send",
            "--credentials",
            key.path(),
            "--fcm-endpoint",
            &mock.base_url(),
            "--token",
            "v1-once",
            "--token",
            "notreg-v1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "v1-once: delivered\nnotreg-v1: not registered\n"
    );
    assert_eq!(mock.delivered("v1-once"), 1);
}
