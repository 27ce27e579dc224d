//! Test harness: a real gocm on an ephemeral port, in front of the in-repo
//! mock FCM, spoken to over real HTTP.

#![allow(dead_code)] // each test binary uses a different part of it

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gocm::config::Config;
use gocm::Relay;
use mock_fcm::{MockFcm, MockOptions};
use serde_json::Value;

pub const API_KEY: &str = "test-server-key";

pub struct Harness {
    pub mock: MockFcm,
    pub relay: Relay,
    pub base: String,
    agent: ureq::Agent,
}

/// Fast back-offs so retry tests take milliseconds, few workers so thread
/// counts stay small; `extra` flags override.
pub fn legacy(extra: &[&str]) -> Harness {
    legacy_with(MockOptions::default(), extra)
}

pub fn legacy_with(mut opts: MockOptions, extra: &[&str]) -> Harness {
    opts.api_key = Some(API_KEY.to_string());
    let mock = MockFcm::start(opts);
    let endpoint = mock.legacy_url();
    let defaults = [
        ("--workers", "8"),
        ("--backoff-ms", "20"),
        ("--backoff-max-ms", "200"),
        ("--data-dir", "none"),
    ];
    let mut args = vec![
        "--apikey",
        API_KEY,
        "--gcm-endpoint",
        &endpoint,
        "--port",
        "0",
    ];
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    let relay = start(&args);
    let base = format!("http://{}", relay.addr());
    Harness {
        mock,
        relay,
        base,
        agent: client(),
    }
}

pub fn start(args: &[&str]) -> Relay {
    let config = Config::from_args(args, |_| None).expect("valid test flags");
    Relay::start(config).expect("relay starts")
}

/// A client that returns every status as a response, with timeouts.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
}

pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    /// The `error` message of a JSON error answer.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {}", self.body))
            .to_string()
    }
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.expect("HTTP exchange");
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Answer {
        status: r.status().as_u16(),
        content_type,
        body: r.body_mut().read_to_string().expect("body"),
    }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn post(&self, content_type: &str, body: &[u8]) -> Answer {
        post_to(&self.agent, &self.url("/gcm/send"), content_type, body)
    }

    pub fn post_form(&self, body: &str) -> Answer {
        self.post("application/x-www-form-urlencoded", body.as_bytes())
    }

    pub fn post_json(&self, body: &Value) -> Answer {
        self.post("application/json", body.to_string().as_bytes())
    }

    /// Sends `tokens` with a small payload as JSON and expects `ok`.
    pub fn send(&self, tokens: &[&str]) {
        let a = self.post_json(&serde_json::json!({"tokens": tokens, "payload": {"k": "v"}}));
        assert_eq!((a.status, a.body.as_str()), (200, "ok\n"), "send refused");
    }

    pub fn get(&self, path: &str) -> Answer {
        answer(self.agent.get(&self.url(path)).call())
    }

    pub fn report(&self) -> Value {
        let a = self.get("/gcm/report");
        assert_eq!(a.status, 200);
        a.json()
    }

    /// Waits until every accepted request is finished.
    pub fn wait_idle(&self) -> Value {
        let mut last = Value::Null;
        wait_until("pending == 0", Duration::from_secs(30), || {
            last = self.report();
            last["pending"] == 0
        });
        last
    }
}

pub fn post_to(agent: &ureq::Agent, url: &str, content_type: &str, body: &[u8]) -> Answer {
    answer(
        agent
            .post(url)
            .header("Content-Type", content_type)
            .send(body),
    )
}

/// Polls `cond` every few milliseconds until it holds; fails the test if
/// `timeout` passes first.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// The real `gocm` binary, its stderr collected.
pub struct Running {
    pub child: Child,
    log: Arc<Mutex<String>>,
}

impl Running {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gocm"));
        cmd.args(args)
            .env_remove("GOCM_APIKEY")
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("gocm binary runs");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Running { child, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The address from the "listening on http://ADDR" line.
    pub fn addr(&self) -> String {
        let mut addr = String::new();
        wait_until("the listening line", Duration::from_secs(20), || {
            let log = self.log();
            if let Some(rest) = log.split("listening on http://").nth(1) {
                addr = rest.split_whitespace().next().unwrap().to_string();
                true
            } else {
                false
            }
        });
        addr
    }

    /// Sends `signal` (`"TERM"`, `"KILL"`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sig = format!("-{signal}");
        let ok = Command::new("kill")
            .args([sig.as_str(), &pid])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig} {pid}");
    }

    /// Waits for the exit, failing the test after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut status = None;
        wait_until("the process to exit", timeout, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(20))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
