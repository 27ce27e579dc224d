//! The HTTP API: routes, bodies, answers.
//!
//! GoCM's routes keep GoCM's answers byte for byte (`ok\n`, the report's
//! key order); errors are JSON `{"error": "..."}` with a 4xx/5xx status.
//! With an auth token set, every route but `/healthz` (a liveness probe
//! that reveals nothing) needs it, checked before routing, so an
//! unauthenticated client cannot even learn which paths exist.

pub mod send;
pub mod server;

use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tiny_http::{Header, Method, Request, Response};

use crate::auth::Auth;
use crate::metrics::{self, Metrics};
use crate::queue::store::{Arrival, Store};
use crate::queue::{Delivery, Job, Queue};
use crate::stats::Stats;
use crate::upstream::{Message, Upstream};

/// An answer other than success: status and a message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            allow: None,
        }
    }

    /// 405: `path` takes only `method`.
    pub fn method(method: &'static str, path: &str) -> ApiError {
        ApiError {
            allow: Some(method),
            ..ApiError::new(405, format!("use {method} for {path}"))
        }
    }
}

/// What the handlers need; shared by all handler threads.
pub struct Api {
    pub stats: Arc<Stats>,
    pub queue: Queue,
    pub max_body: usize,
    /// Longest a client may take to send a whole body (`--client-timeout-ms`).
    pub client_timeout: Duration,
    pub max_tokens: usize,
    /// Accepted requests not finished, beyond which sends get 503.
    pub max_pending: u64,
    /// Whether the canonical report can ever fill (legacy protocol only).
    pub has_canonical_ids: bool,
    /// Where `ok` is made durable; `None` in memory mode.
    pub store: Option<Store>,
    /// The next request id (the store's key).
    pub next_id: AtomicU64,
    /// Set on SIGTERM: sends get 503 while in-flight work finishes.
    pub draining: AtomicBool,
    pub metrics: Arc<Metrics>,
    pub auth: Auth,
    /// Asked whether its credentials are usable, for `/readyz`.
    pub upstream: Arc<dyn Upstream>,
    /// The pool size, for `/metrics`.
    pub workers: usize,
}

/// The routes, as the `route` label of `gocm_http_requests_total`.
const ROUTES: &[&str] = &[
    "/gcm/send",
    "/gcm/report",
    "/gcm/report/canonical",
    "/gcm/report/notregistered",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// The `route` label for `path`: the route itself, or `"other"` for every
/// unknown path, so that scanners cannot grow the metrics without bound.
pub fn route_label(path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

impl Api {
    /// Answers one request. Never panics on client input; I/O errors while
    /// answering only mean the client went away.
    pub fn handle(&self, mut rq: Request) {
        let path = origin_path(rq.url()).to_string();
        let route = route_label(&path);
        let result = if route == "/healthz" {
            Ok(())
        } else {
            self.auth.check(header(&rq, "Authorization").as_deref())
        }
        .and_then(|()| self.route(&mut rq, &path));
        // Counted before the answer goes out, so a client that has its
        // answer also finds it in /metrics.
        self.metrics
            .http_request(route, result.as_ref().map_or_else(|e| e.status, |_| 200));
        let response = result.unwrap_or_else(|e| error_response(&e));
        let _ = rq.respond(response);
    }

    fn route(&self, rq: &mut Request, path: &str) -> Result<Answer, ApiError> {
        let method = rq.method().clone();
        match (path, &method) {
            ("/gcm/send", Method::Post) => self.send(rq).map(|()| text("ok\n")),
            ("/gcm/report", Method::Get) => Ok(json(200, &self.stats.report())),
            ("/gcm/report/canonical", Method::Get) => self
                .stats
                .drain_canonical()
                .map(|list| {
                    json(
                        200,
                        &CanonicalReport {
                            canonical_replacements: list,
                        },
                    )
                })
                .map_err(store_error),
            ("/gcm/report/notregistered", Method::Get) => self
                .stats
                .drain_notregistered()
                .map(|tokens| json(200, &TokensReport { tokens }))
                .map_err(store_error),
            ("/healthz", Method::Get) => Ok(text("ok\n")),
            ("/readyz", Method::Get) => self.ready().map(|()| text("ok\n")),
            ("/metrics", Method::Get) => Ok(Response::from_data(
                self.metrics
                    .render(&self.stats.snapshot(), &self.queue, self.workers)
                    .into_bytes(),
            )
            .with_header(content_type(metrics::CONTENT_TYPE))),
            ("/gcm/send", _) => Err(ApiError::method("POST", path)),
            (p, _) if route_label(p) != "other" => Err(ApiError::method("GET", p)),
            _ => Err(ApiError::new(404, format!("no route {path}"))),
        }
    }

    /// Ready to take sends: not draining, the store takes writes, the
    /// upstream's credentials are usable. A 503 names every problem.
    fn ready(&self) -> Result<(), ApiError> {
        let mut problems = Vec::new();
        if self.draining.load(Ordering::Acquire) {
            problems.push("draining: shutting down, send to another instance".to_string());
        }
        if let Some(Err(e)) = self.store.as_ref().map(Store::health) {
            problems.push(e);
        }
        if let Err(e) = self.upstream.ready() {
            problems.push(format!("upstream credentials: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::new(
                503,
                format!("not ready: {}", problems.join("; ")),
            ))
        }
    }

    fn send(&self, rq: &mut Request) -> Result<(), ApiError> {
        // Before the body is read: the store's next commit may wait for it.
        let arrival = self.store.as_ref().map(Store::arrival);
        let body = read_body(rq, self.max_body, self.client_timeout)?;
        let content_type = header(rq, "Content-Type");
        let send = send::parse(content_type.as_deref(), &body, self.max_tokens)?;
        self.enqueue(arrival, send.tokens, send.message)
    }

    /// Reserves an intake slot, commits the request to the store (when
    /// there is one), then queues it: `ok` is only answered after all three.
    fn enqueue(
        &self,
        arrival: Option<Arrival>,
        tokens: Vec<String>,
        message: Message,
    ) -> Result<(), ApiError> {
        if self.draining.load(Ordering::Acquire) {
            return Err(ApiError::new(
                503,
                "shutting down: retry against the next instance",
            ));
        }
        if self.stats.pending() >= self.max_pending {
            return Err(ApiError::new(
                503,
                format!(
                    "{} requests pending (--max-pending): retry later",
                    self.max_pending
                ),
            ));
        }
        let slot = self
            .queue
            .reserve()
            .ok_or_else(|| ApiError::new(503, "queue full (--queue-size): retry later"))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let (Some(store), Some(arrival)) = (&self.store, arrival) {
            store
                .accept(arrival, id, &message, &tokens)
                .map_err(store_error)?;
        }
        let n = tokens.len();
        self.stats.accepted(id, n);
        let delivery = Delivery {
            job: Job::new(id),
            message: Arc::new(message),
            ids: (0..n as u32).collect(),
            tokens,
            tries: 0,
        };
        self.queue.submit(slot, delivery);
        Ok(())
    }
}

fn store_error(e: String) -> ApiError {
    log::error!("queue store: {e}");
    ApiError::new(503, "the queue store failed: retry later")
}

#[derive(Serialize)]
struct CanonicalReport {
    canonical_replacements: Vec<crate::stats::Canonical>,
}

#[derive(Serialize)]
struct TokensReport {
    tokens: Vec<String>,
}

/// Reads the body, refusing more than `max` bytes without reading them.
/// Reads the body, refusing more than `max` bytes without reading them, and
/// giving up when the whole body takes longer than `deadline`: the socket
/// timeout bounds each read, not a client that trickles a byte at a time.
fn read_body(rq: &mut Request, max: usize, deadline: Duration) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::new(413, format!("request body over {max} bytes (--max-body)"));
    if rq.body_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let too_slow = || {
        ApiError::new(
            408,
            format!(
                "the request body took over {} ms (--client-timeout-ms)",
                deadline.as_millis()
            ),
        )
    };
    let started = Instant::now();
    let mut body = Vec::with_capacity(rq.body_length().unwrap_or(0).min(max));
    let mut reader = rq.as_reader().take(max as u64 + 1);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(too_slow())
            }
            Err(e) => {
                return Err(ApiError::new(
                    400,
                    format!("could not read the request body: {e}"),
                ))
            }
        }
        if started.elapsed() > deadline {
            return Err(too_slow());
        }
    }
    if body.len() > max {
        return Err(too_large());
    }
    Ok(body)
}

fn header(rq: &Request, name: &'static str) -> Option<String> {
    rq.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_string())
}

type Answer = Response<std::io::Cursor<Vec<u8>>>;

fn content_type(value: &str) -> Header {
    Header::from_bytes("Content-Type", value).expect("static header is valid")
}

fn text(body: &str) -> Answer {
    Response::from_data(body.as_bytes().to_vec())
        .with_header(content_type("text/plain; charset=utf-8"))
}

fn json<T: Serialize>(status: u16, value: &T) -> Answer {
    let body = serde_json::to_vec(value).expect("report types serialize");
    Response::from_data(body)
        .with_status_code(status)
        .with_header(content_type("application/json"))
}

fn error_response(e: &ApiError) -> Answer {
    let mut r = json(e.status, &serde_json::json!({ "error": e.message }));
    if e.status == 503 {
        r = r.with_header(Header::from_bytes("Retry-After", "1").expect("static header"));
    }
    if let Some(allow) = e.allow {
        r = r.with_header(Header::from_bytes("Allow", allow).expect("static header"));
    }
    if e.status == 401 {
        r = r.with_header(
            Header::from_bytes("WWW-Authenticate", "Bearer realm=\"gocm\"").expect("static header"),
        );
    }
    r
}

/// The path of a request target without its query; the absolute form
/// (`http://host/path`, RFC 9112 §3.2.2, which servers must accept) is
/// reduced to its path.
fn origin_path(target: &str) -> &str {
    let target = match target.split_once("://") {
        Some((scheme, rest)) if !scheme.contains('/') => rest.find('/').map_or("/", |i| &rest[i..]),
        _ => target,
    };
    target.split('?').next().unwrap_or("")
}
