//! Per-request scripting: canned answers that replace normal handling.
//!
//! Token names (see `outcome.rs`) cover per-token behaviour; what they cannot
//! express is a failure of the whole request (a 503 with `Retry-After`, an
//! HTML 401 from a proxy, a hung upstream). For those a test pushes
//! [`Scripted`] entries; each legacy or v1 *send* request takes the oldest
//! one. Token-endpoint calls never consume scripts (they have
//! `MockFcm::fail_token_requests`).

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;

use crate::reply::{Reply, HTML, JSON, TEXT};

/// Body of a scripted answer; the variant picks the `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptBody {
    /// No body and no `Content-Type`.
    Empty,
    /// `text/html; charset=UTF-8`, e.g. a proxy's or Google's error page.
    Html(String),
    /// `application/json; charset=UTF-8`, sent as given (it may be invalid
    /// JSON on purpose).
    Json(String),
    /// `text/plain; charset=UTF-8`.
    Text(String),
}

/// One canned answer for the next send request.
///
/// The request still counts as received for its tokens (so a test can see
/// that a retry arrived) but never as delivered, unless it is a pure stall
/// ([`Scripted::stall`]), which ends in normal handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripted {
    /// HTTP status to answer with, or [`Scripted::NORMAL`] to answer as if
    /// there were no script (useful together with `stall`).
    pub status: u16,
    /// `Retry-After` header value (delta-seconds or an HTTP date), if any.
    pub retry_after: Option<String>,
    pub body: ScriptBody,
    /// Hold the request unanswered this long (on top of the configured
    /// latency) before answering. tiny_http cannot drop a connection
    /// without answering, so a stall always ends in an answer; a client
    /// timeout shorter than the stall is what a test observes.
    pub stall: Option<Duration>,
}

impl Scripted {
    /// Status value meaning "no canned answer: handle the request normally".
    pub const NORMAL: u16 = 0;

    /// An answer with this status and no body, e.g.
    /// `Scripted::status(503).retry_after("2")`.
    pub fn status(status: u16) -> Scripted {
        Scripted {
            status,
            retry_after: None,
            body: ScriptBody::Empty,
            stall: None,
        }
    }

    /// An HTML answer, e.g. `Scripted::html(401, "<HTML>...</HTML>")`.
    pub fn html(status: u16, body: impl Into<String>) -> Scripted {
        Scripted {
            body: ScriptBody::Html(body.into()),
            ..Scripted::status(status)
        }
    }

    /// A JSON answer (the string is sent verbatim).
    pub fn json(status: u16, body: impl Into<String>) -> Scripted {
        Scripted {
            body: ScriptBody::Json(body.into()),
            ..Scripted::status(status)
        }
    }

    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Scripted {
        Scripted {
            body: ScriptBody::Text(body.into()),
            ..Scripted::status(status)
        }
    }

    /// Holds the request unanswered for `d`, then answers it normally
    /// (and counts deliveries as usual).
    pub fn stall(d: Duration) -> Scripted {
        Scripted {
            stall: Some(d),
            ..Scripted::status(Scripted::NORMAL)
        }
    }

    /// Sets the `Retry-After` header (builder style).
    pub fn retry_after(mut self, value: impl Into<String>) -> Scripted {
        self.retry_after = Some(value.into());
        self
    }

    /// Delays this canned answer by `d` (builder style).
    pub fn with_stall(mut self, d: Duration) -> Scripted {
        self.stall = Some(d);
        self
    }

    /// True when the entry ends in normal handling rather than a canned answer.
    pub fn is_normal(&self) -> bool {
        self.status == Scripted::NORMAL
    }

    /// The canned answer, or `None` for a pure stall.
    pub(crate) fn reply(&self) -> Option<Reply> {
        if self.is_normal() {
            return None;
        }
        let mut reply = match &self.body {
            ScriptBody::Empty => Reply::empty(self.status),
            ScriptBody::Html(s) => Reply::new(self.status, Some(HTML), s.clone()),
            ScriptBody::Json(s) => Reply::new(self.status, Some(JSON), s.clone()),
            ScriptBody::Text(s) => Reply::new(self.status, Some(TEXT), s.clone()),
        };
        if let Some(ra) = &self.retry_after {
            reply = reply.header("Retry-After", ra.clone());
        }
        Some(reply.delayed(self.stall.unwrap_or_default()))
    }
}

/// The FIFO of pending scripts.
#[derive(Default)]
pub(crate) struct ScriptQueue {
    queue: Mutex<VecDeque<Scripted>>,
}

impl ScriptQueue {
    pub fn push(&self, s: Scripted) {
        self.queue.lock().push_back(s);
    }

    pub fn pop(&self) -> Option<Scripted> {
        self.queue.lock().pop_front()
    }

    /// Takes the next script, if any, and says how the request proceeds.
    pub fn next_turn(&self) -> Turn {
        match self.pop() {
            None => Turn::Normal {
                stall: Duration::ZERO,
            },
            Some(script) => match script.reply() {
                Some(reply) => Turn::Canned(reply),
                None => Turn::Normal {
                    stall: script.stall.unwrap_or_default(),
                },
            },
        }
    }
}

/// What a send request does after its arrival was recorded.
pub(crate) enum Turn {
    /// Answer with this canned reply instead of normal handling.
    Canned(Reply),
    /// Handle normally, then wait `stall` longer (zero without a script).
    Normal { stall: Duration },
}
