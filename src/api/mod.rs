//! The HTTP API: routes, bodies, answers.
//!
//! GoCM's routes keep GoCM's answers byte for byte (`ok\n`, the report's
//! key order); errors are JSON `{"error": "..."}` with a 4xx/5xx status.

pub mod send;
pub mod server;

use std::io::Read;
use std::sync::Arc;

use serde::Serialize;
use tiny_http::{Header, Method, Request, Response};

use crate::queue::{Delivery, Full, Job, Queue};
use crate::stats::Stats;
use crate::upstream::Message;

/// An answer other than success: status and a message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

/// What the handlers need; shared by all handler threads.
pub struct Api {
    pub stats: Arc<Stats>,
    pub queue: Queue,
    pub max_body: usize,
    pub max_tokens: usize,
    /// Whether the canonical report can ever fill (legacy protocol only).
    pub has_canonical_ids: bool,
}

impl Api {
    /// Answers one request. Never panics on client input; I/O errors while
    /// answering only mean the client went away.
    pub fn handle(&self, mut rq: Request) {
        let path = rq.url().split('?').next().unwrap_or("").to_string();
        let method = rq.method().clone();
        let result = match (path.as_str(), &method) {
            ("/gcm/send", Method::Post) => self.send(&mut rq).map(|()| text("ok\n")),
            ("/gcm/report", Method::Get) => Ok(json(200, &self.stats.report())),
            ("/gcm/report/canonical", Method::Get) => Ok(json(
                200,
                &CanonicalReport {
                    canonical_replacements: self.stats.drain_canonical(),
                },
            )),
            ("/gcm/report/notregistered", Method::Get) => Ok(json(
                200,
                &TokensReport {
                    tokens: self.stats.drain_notregistered(),
                },
            )),
            ("/healthz", Method::Get) => Ok(text("ok\n")),
            ("/gcm/send", _) => Err(ApiError::new(405, "use POST for /gcm/send")),
            (
                "/gcm/report" | "/gcm/report/canonical" | "/gcm/report/notregistered" | "/healthz",
                _,
            ) => Err(ApiError::new(405, format!("use GET for {path}"))),
            _ => Err(ApiError::new(404, format!("no route {path}"))),
        };
        let response = result.unwrap_or_else(|e| error_response(&e));
        let _ = rq.respond(response);
    }

    fn send(&self, rq: &mut Request) -> Result<(), ApiError> {
        let body = read_body(rq, self.max_body)?;
        let content_type = header(rq, "Content-Type");
        let send = send::parse(content_type.as_deref(), &body, self.max_tokens)?;
        self.enqueue(send.tokens, send.message)
    }

    fn enqueue(&self, tokens: Vec<String>, message: Message) -> Result<(), ApiError> {
        let n = tokens.len();
        // Counted before the push: a fast worker may finish the job before
        // `submit` returns, and `pending` must never dip below zero.
        self.stats.accepted(n);
        let delivery = Delivery {
            job: Job::new(),
            message: Arc::new(message),
            tokens,
            tries: 0,
        };
        self.queue.submit(delivery).map_err(|Full(_)| {
            self.stats.rejected(n);
            ApiError::new(503, "queue full: retry later")
        })
    }
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
fn read_body(rq: &mut Request, max: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::new(413, format!("request body over {max} bytes (--max-body)"));
    if rq.body_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(rq.body_length().unwrap_or(0));
    rq.as_reader()
        .take(max as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::new(400, format!("could not read the request body: {e}")))?;
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
    r
}
