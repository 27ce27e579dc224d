//! Test harness: a real gocm on an ephemeral port, in front of the in-repo
//! mock FCM, spoken to over real HTTP.

#![allow(dead_code)] // each test binary uses a different part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
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
    let mut args = vec!["--apikey", API_KEY, "--gcm-endpoint", &endpoint];
    if !extra.contains(&"--unix-socket") {
        args.extend(["--port", "0"]);
    }
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    let relay = start(&args);
    // `http://127.0.0.1:PORT`, or `unix:PATH` (then use `unix_http`).
    let base = relay.listen_addr().to_string();
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
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

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
    let headers = r
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    Answer {
        status: r.status().as_u16(),
        content_type,
        body: r.body_mut().read_to_string().expect("body"),
        headers,
    }
}

/// One request with an optional `Authorization` header value: `GET` when
/// `body` is `None`, else `POST` with that content type and body.
pub fn call(
    agent: &ureq::Agent,
    url: &str,
    authorization: Option<&str>,
    body: Option<(&str, &[u8])>,
) -> Answer {
    match body {
        None => {
            let mut rq = agent.get(url);
            if let Some(a) = authorization {
                rq = rq.header("Authorization", a);
            }
            answer(rq.call())
        }
        Some((content_type, body)) => {
            let mut rq = agent.post(url).header("Content-Type", content_type);
            if let Some(a) = authorization {
                rq = rq.header("Authorization", a);
            }
            answer(rq.send(body))
        }
    }
}

/// One HTTP/1.1 exchange over a UNIX socket, written by hand:
/// `Connection: close`, then the answer read to the end. The answer's
/// headers are lower-cased; a chunked body is not decoded (gocm's answers
/// are small enough to carry a Content-Length).
pub fn unix_http(
    socket: &Path,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut s = UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connect to {}: {e}", socket.display()));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut rq = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        rq.push_str(&format!("{k}: {v}\r\n"));
    }
    rq.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(rq.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("the answer, then EOF");
    let raw = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let content_type = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body: body.to_string(),
        headers,
    }
}

/// A `/metrics` answer parsed by a real Prometheus text-format parser,
/// after a strict check of every line (that parser skips lines it does
/// not understand, which would hide a rendering bug).
pub struct Metrics {
    pub scrape: prometheus_parse::Scrape,
    pub text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        use prometheus_parse::LineInfo;
        use std::collections::HashMap;
        let mut types: HashMap<String, String> = HashMap::new();
        let mut helps = HashMap::new();
        for line in text.lines() {
            match LineInfo::parse(line) {
                LineInfo::Doc { metric_name, .. } => {
                    assert!(
                        helps.insert(metric_name.to_string(), ()).is_none(),
                        "HELP twice: {line}"
                    );
                }
                LineInfo::Type { .. } => {
                    let mut words = line.split_whitespace().skip(2);
                    let (name, kind) = (words.next().unwrap(), words.next().unwrap());
                    assert!(
                        ["counter", "gauge", "histogram"].contains(&kind),
                        "unexpected type: {line}"
                    );
                    if kind == "counter" {
                        assert!(name.ends_with("_total"), "a counter without _total: {line}");
                    }
                    assert!(
                        types.insert(name.to_string(), kind.to_string()).is_none(),
                        "TYPE twice: {line}"
                    );
                }
                LineInfo::Sample { metric_name, .. } => {
                    let family = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|suffix| {
                            let base = metric_name.strip_suffix(suffix)?;
                            (types.get(base).map(String::as_str) == Some("histogram"))
                                .then_some(base)
                        })
                        .unwrap_or(metric_name);
                    assert!(types.contains_key(family), "no TYPE before: {line}");
                    assert!(helps.contains_key(family), "no HELP before: {line}");
                }
                LineInfo::Empty | LineInfo::Ignored => panic!("not a metrics line: {line:?}"),
            }
        }
        for name in types.keys() {
            assert!(name.starts_with("gocm_"), "unprefixed metric {name}");
        }
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        Metrics {
            scrape,
            text: text.to_string(),
        }
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&prometheus_parse::Sample> {
        self.scrape.samples.iter().find(|s| {
            s.metric == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
    }

    /// The value of a counter, gauge or untyped sample with exactly these
    /// labels; panics when there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        use prometheus_parse::Value;
        match self.find(name, labels).map(|s| &s.value) {
            Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
            other => panic!("{name}{labels:?}: {other:?} in\n{}", self.text),
        }
    }

    /// A counter or gauge with these labels, or `None` if it has no sample.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.find(name, labels).map(|_| self.value(name, labels))
    }

    /// A histogram's buckets as (le, cumulative count).
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        match self.find(name, &[]).map(|s| &s.value) {
            Some(prometheus_parse::Value::Histogram(b)) => {
                b.iter().map(|h| (h.less_than, h.count)).collect()
            }
            other => panic!("{name}: {other:?}"),
        }
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

    /// `GET /metrics`, checked and parsed.
    pub fn metrics(&self) -> Metrics {
        let a = self.get("/metrics");
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.content_type, "text/plain; version=0.0.4; charset=utf-8");
        Metrics::parse(&a.body)
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

/// Posts a form body to `/gcm/send` of the gocm at `addr` (`host:port`).
pub fn post_form_to(agent: &ureq::Agent, addr: &str, body: &str) -> Answer {
    post_to(
        agent,
        &format!("http://{addr}/gcm/send"),
        "application/x-www-form-urlencoded",
        body.as_bytes(),
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

/// A file in the temp dir, removed on drop: secrets, keys, logs.
pub struct TempFile(pub std::path::PathBuf);

impl TempFile {
    pub fn new(name: &str, content: &str) -> TempFile {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "gocm-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, content).expect("write a temp file");
        TempFile(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The real `gocm` binary, its stderr collected.
pub struct Running {
    pub child: Child,
    log: Arc<Mutex<String>>,
}

impl Running {
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Running {
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
