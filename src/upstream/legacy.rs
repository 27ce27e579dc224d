//! The legacy GCM/FCM HTTP protocol: one POST of up to 1000
//! `registration_ids`, answered with one result per token, in order.
//!
//! Google shut this API down in 2024; it stays for GoCM compatibility, for
//! compatible services, and for the mock.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    read_body, retry_after, transport_outcome, Agents, Message, Outcome, Reason, Upstream,
};
use crate::config::Secret;

/// The protocol's multicast limit.
pub const MAX_TOKENS: usize = 1000;
/// More than any real answer (1000 results of ~100 bytes).
const BODY_LIMIT: u64 = 1024 * 1024;

pub struct Legacy {
    agents: Agents,
    api_key: Secret,
    endpoint: String,
    /// The last answer was a 401 (the key is refused), for `/readyz`;
    /// cleared by the next call the upstream accepts.
    key_rejected: AtomicBool,
}

impl Legacy {
    pub fn new(agents: Agents, api_key: Secret, endpoint: String) -> Legacy {
        Legacy {
            agents,
            api_key,
            endpoint,
            key_rejected: AtomicBool::new(false),
        }
    }
}

#[derive(Serialize)]
struct Request<'a> {
    registration_ids: &'a [String],
    data: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notification: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collapse_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<super::Priority>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_to_live: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dry_run: bool,
}

#[derive(Deserialize)]
struct Response {
    results: Vec<TokenResult>,
}

#[derive(Deserialize)]
struct TokenResult {
    message_id: Option<Value>,
    registration_id: Option<String>,
    error: Option<String>,
}

impl Upstream for Legacy {
    fn name(&self) -> &'static str {
        "legacy"
    }

    fn max_tokens_per_call(&self) -> usize {
        MAX_TOKENS
    }

    fn has_canonical_ids(&self) -> bool {
        true
    }

    fn ready(&self) -> Result<(), String> {
        if self.key_rejected.load(Ordering::Relaxed) {
            Err(
                "the upstream rejected the API key on the last call (HTTP 401): \
                 check --apikey / GOCM_APIKEY"
                    .into(),
            )
        } else {
            Ok(())
        }
    }

    fn send(&self, message: &Message, tokens: &[String]) -> Vec<Outcome> {
        let android = message.android.as_ref();
        let body = Request {
            registration_ids: tokens,
            data: &message.data,
            notification: message.notification.as_ref(),
            collapse_key: android.and_then(|a| a.collapse_key.as_deref()),
            priority: android.and_then(|a| a.priority),
            time_to_live: android.and_then(|a| a.ttl),
            dry_run: message.dry_run,
        };
        let body = serde_json::to_vec(&body).expect("request serializes");
        let all = |o: Outcome| vec![o; tokens.len()];
        let mut resp = match self
            .agents
            .get()
            .post(&self.endpoint)
            .header("Authorization", &format!("key={}", self.api_key.expose()))
            .content_type("application/json")
            .send(&body[..])
        {
            Ok(r) => r,
            Err(e) => return all(transport_outcome(&e)),
        };
        let status = resp.status().as_u16();
        let after = retry_after::from_response(&resp);
        let body = read_body(resp.body_mut(), BODY_LIMIT);
        if matches!(status, 200 | 401) {
            self.key_rejected.store(status == 401, Ordering::Relaxed);
        }
        match status {
            200 => {}
            401 => {
                return all(Outcome::failed(
                    Reason::Auth,
                    "API key rejected by the upstream (HTTP 401): check --apikey / GOCM_APIKEY",
                ))
            }
            429 => return all(Outcome::retry(after, Reason::Upstream, "HTTP 429")),
            500..=599 => {
                return all(Outcome::retry(
                    after,
                    Reason::Upstream,
                    format!("HTTP {status}"),
                ))
            }
            _ => {
                return all(Outcome::failed(
                    Reason::Invalid,
                    format!(
                        "HTTP {status}: {}",
                        snippet(body.as_deref().unwrap_or_default())
                    ),
                ))
            }
        }
        let body = match body {
            Ok(b) => b,
            Err(e) => return all(transport_outcome(&e)),
        };
        let parsed: Response = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(_) => {
                return all(Outcome::retry(
                    after,
                    Reason::Upstream,
                    format!("HTTP 200 with an unreadable body: {}", snippet(&body)),
                ))
            }
        };
        if parsed.results.len() != tokens.len() {
            return all(Outcome::retry(
                after,
                Reason::Upstream,
                format!(
                    "{} results for {} tokens",
                    parsed.results.len(),
                    tokens.len()
                ),
            ));
        }
        parsed
            .results
            .into_iter()
            .map(|r| classify(r, after))
            .collect()
    }
}

fn classify(r: TokenResult, after: Option<std::time::Duration>) -> Outcome {
    match (r.error.as_deref(), r.message_id, r.registration_id) {
        (None, Some(_), Some(canonical)) => Outcome::Canonical(canonical),
        (None, Some(_), None) => Outcome::Delivered,
        (Some("NotRegistered"), _, _) => Outcome::NotRegistered,
        (Some(e @ ("Unavailable" | "InternalServerError")), _, _) => {
            Outcome::retry(after, Reason::Upstream, e)
        }
        (Some(e @ ("MismatchSenderId" | "InvalidApnsCredential")), _, _) => {
            Outcome::failed(Reason::Auth, e)
        }
        (Some(e @ ("DeviceMessageRateExceeded" | "TopicsMessageRateExceeded")), _, _) => {
            Outcome::failed(Reason::Quota, e)
        }
        (Some(e), _, _) => Outcome::failed(Reason::Invalid, e),
        (None, None, _) => Outcome::retry(
            after,
            Reason::Upstream,
            "result without message_id or error",
        ),
    }
}

/// The start of a body for a log line, on one line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(json: &str) -> Outcome {
        classify(serde_json::from_str(json).unwrap(), None)
    }

    #[test]
    fn per_token_results() {
        assert_eq!(result(r#"{"message_id":"1:08"}"#), Outcome::Delivered);
        assert_eq!(
            result(r#"{"message_id":"1:2342","registration_id":"32"}"#),
            Outcome::Canonical("32".into())
        );
        assert_eq!(
            result(r#"{"error":"NotRegistered"}"#),
            Outcome::NotRegistered
        );
        assert!(matches!(
            result(r#"{"error":"Unavailable"}"#),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            result(r#"{"error":"InternalServerError"}"#),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            result(r#"{"error":"InvalidRegistration"}"#),
            Outcome::Failed {
                reason: Reason::Invalid,
                ..
            }
        ));
        assert!(matches!(
            result(r#"{"error":"SomethingNew"}"#),
            Outcome::Failed { .. }
        ));
    }
}
