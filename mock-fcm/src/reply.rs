//! An HTTP answer as the handlers compute it, before it is written.
//!
//! Handlers never write to the socket themselves: they build a [`Reply`] and
//! hand it to the delay queue (see `delay.rs`), which writes it now or when
//! it is due. Keeping the answer as plain data (instead of a tiny_http
//! `Response<R>`, which is generic and not `Ord`-friendly) lets one queue hold
//! every kind of answer.

use std::io::Cursor;
use std::time::Duration;

use tiny_http::{Header, Response, StatusCode};

/// Content type of FCM answers (legacy and v1), as Google's front end sends it.
pub(crate) const JSON: &str = "application/json; charset=UTF-8";
/// Content type of the OAuth token endpoint's answers (lower-case `utf-8`, as
/// in fcm-protocol.md §3.7).
pub(crate) const OAUTH_JSON: &str = "application/json; charset=utf-8";
/// Plain text, used by the legacy protocol's whole-request 400 answers.
pub(crate) const TEXT: &str = "text/plain; charset=UTF-8";
/// HTML, used by the legacy protocol's 401 page.
pub(crate) const HTML: &str = "text/html; charset=UTF-8";

/// One HTTP answer plus how much longer than the configured latency it must
/// wait (a `slowN-` token or a scripted stall).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub extra_delay: Duration,
}

impl Reply {
    /// An answer with a body; `content_type` is omitted when `None`.
    pub fn new(status: u16, content_type: Option<&'static str>, body: impl Into<Vec<u8>>) -> Reply {
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("Content-Type", ct.to_string()));
        }
        Reply {
            status,
            headers,
            body: body.into(),
            extra_delay: Duration::ZERO,
        }
    }

    /// A JSON answer with FCM's content type.
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::new(status, Some(JSON), value.to_string())
    }

    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply::new(status, Some(TEXT), body.into())
    }

    /// An answer without a body (and without a content type).
    pub fn empty(status: u16) -> Reply {
        Reply::new(status, None, Vec::new())
    }

    /// Adds a header (builder style).
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// Makes the answer wait `d` on top of the configured latency.
    pub fn delayed(mut self, d: Duration) -> Reply {
        self.extra_delay = self.extra_delay.saturating_add(d);
        self
    }

    /// Converts to the tiny_http response that is written on the wire.
    pub fn into_response(self) -> Response<Cursor<Vec<u8>>> {
        let len = self.body.len();
        let headers = self
            .headers
            .iter()
            .filter_map(|(name, value)| Header::from_bytes(name.as_bytes(), value.as_bytes()).ok())
            .collect();
        Response::new(
            StatusCode(self.status),
            headers,
            Cursor::new(self.body),
            Some(len),
            None,
        )
    }
}
