//! Upstream providers: one trait, one outcome per token.
//!
//! A worker hands a provider one message and a slice of tokens (no more than
//! [`Upstream::max_tokens_per_call`]) and gets back exactly one [`Outcome`]
//! per token, in the same order. Whole-request failures (a 503, a timeout, a
//! 401) are reported as the same outcome for every token, so the worker has a
//! single code path: providers classify, the worker decides what to do.

pub mod legacy;
pub mod oauth;
pub mod retry_after;
pub mod v1;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{Config, HttpClientConfig, Provider};
use crate::error::Error;

/// What was accepted from a client: the payload plus the optional FCM options
/// of the JSON form of `/gcm/send`. Shared (behind an `Arc`) by every chunk
/// and retry of one send request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The GoCM payload; becomes `data` upstream.
    pub data: Map<String, Value>,
    /// `{title, body, image}`, passed through to the upstream unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<Map<String, Value>>,
    /// Android delivery options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android: Option<AndroidOptions>,
    /// Validate upstream without delivering (`dry_run` / `validate_only`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// Android options accepted in the JSON form of `/gcm/send`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndroidOptions {
    /// `"normal"` or `"high"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// Time to live in whole seconds (0 ..= 2,419,200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_key: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Normal,
    High,
}

/// The fate of one token after one upstream call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the upstream.
    Delivered,
    /// Delivered, and the upstream says the app now has this other token: the
    /// client must replace the original (legacy protocol only).
    Canonical(String),
    /// The token is dead: the client must purge it. Counts as a failure.
    NotRegistered,
    /// Transient: send this token again, no sooner than `after` when the
    /// upstream said so (`Retry-After`). A retry with [`Reason::Quota`] holds
    /// back every worker until then, since the quota is per project.
    Retry {
        after: Option<Duration>,
        reason: Reason,
        detail: String,
    },
    /// Final failure; not retried, not on the purge list.
    Failed { reason: Reason, detail: String },
}

impl Outcome {
    pub fn retry(after: Option<Duration>, reason: Reason, detail: impl Into<String>) -> Outcome {
        Outcome::Retry {
            after,
            reason,
            detail: detail.into(),
        }
    }

    pub fn failed(reason: Reason, detail: impl Into<String>) -> Outcome {
        Outcome::Failed {
            reason,
            detail: detail.into(),
        }
    }
}

/// Why a token failed or is retried; also the `reason` label of the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The upstream rejected the message or token as invalid.
    Invalid,
    /// Credentials rejected (API key, OAuth token, sender mismatch, APNs auth).
    Auth,
    /// Over the upstream's quota.
    Quota,
    /// The upstream failed: 5xx, an unreadable body, a refused connection.
    Upstream,
    /// The call timed out.
    Timeout,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Invalid => "invalid",
            Reason::Auth => "auth",
            Reason::Quota => "quota",
            Reason::Upstream => "upstream",
            Reason::Timeout => "timeout",
        }
    }
}

/// One push provider. Implementations are shared by every worker thread, so
/// they hold a `ureq::Agent` (a connection pool) and never block forever:
/// every call has a connect timeout and a whole-call timeout.
pub trait Upstream: Send + Sync {
    /// Short name for logs: `"legacy"` or `"v1"`.
    fn name(&self) -> &'static str;

    /// How many tokens one [`Upstream::send`] may carry (legacy: 1000, v1: 1).
    fn max_tokens_per_call(&self) -> usize;

    /// Whether this provider reports canonical IDs (only the legacy one does).
    fn has_canonical_ids(&self) -> bool {
        false
    }

    /// Sends `message` to `tokens` (1 ..= max_tokens_per_call of them) and
    /// returns exactly one outcome per token, in the same order.
    fn send(&self, message: &Message, tokens: &[String]) -> Vec<Outcome>;
}

/// Shortens a device token for a log line: enough to grep for, not the
/// whole credential-like string.
pub fn short_token(token: &str) -> String {
    let mut chars = token.chars();
    let head: String = chars.by_ref().take(12).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Builds the provider the config asks for. Fails when the v1 credentials
/// are unusable, so a bad key stops startup instead of failing every send.
pub fn build(config: &Config) -> Result<Arc<dyn Upstream>, Error> {
    let agent = agent(&config.http_client);
    Ok(match &config.provider {
        Provider::Legacy { api_key, endpoint } => Arc::new(legacy::Legacy::new(
            agent,
            api_key.clone(),
            endpoint.clone(),
        )),
        Provider::V1 {
            credentials,
            project_id,
            endpoint,
        } => Arc::new(v1::V1::from_config(
            agent,
            credentials,
            project_id.as_deref(),
            endpoint,
            config,
        )?),
    })
}

/// The one HTTP client shared by all workers. Statuses are not errors (we
/// classify them ourselves), every call has a connect and a whole-call
/// timeout, and the idle pool holds one connection per worker: callers must
/// read every response body to the end, or the connection is not reused.
pub fn agent(cfg: &HttpClientConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(cfg.connect_timeout))
        .timeout_global(Some(cfg.call_timeout))
        .max_idle_connections(cfg.max_idle)
        .max_idle_connections_per_host(cfg.max_idle)
        .max_idle_age(Duration::from_secs(50))
        .user_agent(concat!("gocm/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// Classifies a transport error (no HTTP status): timeouts are
/// [`Reason::Timeout`], everything else [`Reason::Upstream`]; both retried.
pub fn transport_outcome(err: &ureq::Error) -> Outcome {
    let reason = match err {
        ureq::Error::Timeout(_) => Reason::Timeout,
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => Reason::Timeout,
        _ => Reason::Upstream,
    };
    Outcome::retry(None, reason, err.to_string())
}

/// Reads a response body to the end (so the connection returns to the
/// pool), keeping at most `limit` bytes of it.
pub fn read_body(body: &mut ureq::Body, limit: u64) -> Result<Vec<u8>, ureq::Error> {
    body.with_config().limit(limit).read_to_vec()
}
