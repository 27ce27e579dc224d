//! Upstream providers: one trait, one outcome per token.
//!
//! A worker hands a provider one message and a slice of tokens (no more than
//! [`Upstream::max_tokens_per_call`]) and gets back exactly one [`Outcome`]
//! per token, in the same order. Whole-request failures (a 503, a timeout, a
//! 401) are reported as the same outcome for every token, so the worker has a
//! single code path: providers classify, the worker decides what to do.

pub mod coalesce;
pub mod instrumented;
pub mod legacy;
pub mod oauth;
pub mod resolver;
pub mod retry_after;
pub mod v1;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ureq::unversioned::transport::Connector;

use crate::config::{Config, HttpClientConfig, Provider};
use crate::error::Error;
use crate::metrics::Metrics;

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
/// `Reason as usize` indexes arrays of per-reason counters, in the order of
/// [`Reason::ALL`].
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
    /// Every reason, in declaration order (`ALL[r as usize] == r`).
    pub const ALL: [Reason; 5] = [
        Reason::Invalid,
        Reason::Auth,
        Reason::Quota,
        Reason::Upstream,
        Reason::Timeout,
    ];

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

    /// Whether the credentials are usable, for `GET /readyz`: `Err` names
    /// the problem (never a secret). Credentials are checked before the
    /// relay starts, but the upstream can refuse them later (legacy: a 401;
    /// v1: the token endpoint refusing the key); an upstream that is merely
    /// down is no reason, since messages wait in the queue until it is back.
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    /// Fetches ahead of time what the first call needs (v1: the OAuth
    /// access token), so that a refused key shows in the log and in
    /// `/readyz` right after start, not at the first message. Called once,
    /// from a thread of its own: it may block on the network.
    fn warm_up(&self) {}
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
    build_counting(config, Arc::default())
}

/// [`build`], with OAuth token refreshes counted into `metrics`.
fn build_counting(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<dyn Upstream>, Error> {
    let agents = Agents::new(&config.http_client);
    Ok(match &config.provider {
        Provider::Legacy { api_key, endpoint } => Arc::new(legacy::Legacy::new(
            agents,
            api_key.clone(),
            endpoint.clone(),
        )),
        Provider::V1 {
            credentials,
            project_id,
            endpoint,
        } => Arc::new(v1::V1::from_config(
            agents,
            credentials,
            project_id.as_deref(),
            endpoint,
            config,
            metrics,
        )?),
    })
}

/// [`build`], with every upstream call timed into `metrics` (latency
/// histogram, calls in flight) and OAuth refreshes counted: what
/// [`crate::Relay`] runs.
pub fn build_with_metrics(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Result<Arc<dyn Upstream>, Error> {
    Ok(Arc::new(instrumented::Instrumented::new(
        build_counting(config, metrics.clone())?,
        metrics.clone(),
    )))
}

/// Idle connections one agent keeps; see [`Agents`].
const CONNECTIONS_PER_AGENT: usize = 32;

/// The HTTP clients of a provider: one `ureq::Agent` per
/// [`CONNECTIONS_PER_AGENT`] workers, all with the same configuration, each
/// worker thread always using the same one.
///
/// Why not one agent for all: ureq looks a connection up in its idle pool
/// by a linear scan, so with 512 workers sharing one pool every call scanned
/// hundreds of entries (7% of the CPU of a delivery benchmark). Small pools
/// keep the lookup short, and since a worker sticks to its agent, it keeps
/// finding its own connection: connections opened stay at one per worker.
#[derive(Clone)]
pub struct Agents {
    shards: Arc<[ureq::Agent]>,
}

impl Agents {
    pub fn new(cfg: &HttpClientConfig) -> Agents {
        let n = cfg.max_idle.div_ceil(CONNECTIONS_PER_AGENT).max(1);
        let per_agent = cfg.max_idle.clamp(1, CONNECTIONS_PER_AGENT);
        Agents {
            shards: (0..n).map(|_| agent(cfg, per_agent)).collect(),
        }
    }

    /// The calling thread's agent.
    pub fn get(&self) -> &ureq::Agent {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        SHARD.with(|i| &self.shards[i % self.shards.len()])
    }
}

/// One HTTP client. Statuses are not errors (we classify them ourselves),
/// every call has a connect and a whole-call timeout, and callers must read
/// every response body to the end, or the connection is not reused.
/// Buffers are 16 KiB, not ureq's 128 KiB: answers are small, and with
/// hundreds of pooled connections the default cost 256 KiB of memory each.
fn agent(cfg: &HttpClientConfig, max_idle: usize) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(cfg.connect_timeout))
        .timeout_global(Some(cfg.call_timeout))
        .max_idle_connections(max_idle)
        .max_idle_connections_per_host(max_idle)
        .max_idle_age(Duration::from_secs(50))
        .input_buffer_size(16 * 1024)
        .output_buffer_size(16 * 1024)
        .user_agent(concat!("gocm/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default()
            .chain(coalesce::CoalescingConnector),
        resolver::CachingResolver::new(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_all_is_in_declaration_order() {
        for (i, r) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i, "{r:?}");
        }
    }
}
