//! The legacy GCM/FCM JSON protocol: `POST /fcm/send` (fcm-protocol.md
//! §1.5–1.9).
//!
//! One request carries up to 1000 tokens in `registration_ids` (or one in
//! `to`); per-token failures come back inside an HTTP 200 envelope, in token
//! order. Only whole-request problems (credentials, unparsable JSON, bad
//! recipient lists) get a non-200 status.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::outcome::Outcome;
use crate::reply::{Reply, HTML};
use crate::script::Turn;
use crate::server::Shared;

/// Most tokens one request may carry.
const MAX_RECIPIENTS: usize = 1000;

/// Google's 401 page for a missing or wrong server key (§1.9).
const UNAUTHORIZED_HTML: &str = "<HTML><HEAD><TITLE>Unauthorized</TITLE></HEAD><BODY BGCOLOR=\"#FFFFFF\" \
                                 TEXT=\"#000000\"><H1>Unauthorized</H1><H2>Error 401</H2></BODY></HTML>";

/// Answers one legacy send request.
pub(crate) fn handle(shared: &Shared, authorization: Option<&str>, body: &[u8]) -> Reply {
    let parsed = serde_json::from_slice::<Value>(body).map(Arc::new);
    // Count what arrived before deciding anything: tests assert that
    // retries reach the upstream even when they are refused.
    if let Ok(message) = &parsed {
        let tokens = arrived_tokens(message);
        shared.counters.record_arrival(&tokens, message);
        if message.get("registration_ids").is_some_and(Value::is_array)
            || message.get("to").is_some_and(Value::is_string)
        {
            shared.counters.record_legacy_batch(tokens.len());
        }
    }
    let stall = match shared.scripts.next_turn() {
        Turn::Canned(reply) => return reply,
        Turn::Normal { stall } => stall,
    };
    answer(shared, authorization, body, parsed).delayed(stall)
}

/// Normal handling, in the order Google's front end would refuse things:
/// credentials, then JSON, then the recipient list.
fn answer(
    shared: &Shared,
    authorization: Option<&str>,
    raw: &[u8],
    parsed: Result<Arc<Value>, serde_json::Error>,
) -> Reply {
    if let Some(key) = &shared.api_key {
        let expected = format!("key={key}");
        if authorization.map(str::trim) != Some(expected.as_str()) {
            return Reply::new(401, Some(HTML), UNAUTHORIZED_HTML);
        }
    }
    let message = match parsed {
        Ok(message) => message,
        Err(e) => return Reply::text(400, json_parsing_error(raw, &e)),
    };
    let tokens = match recipients(&message) {
        Ok(tokens) => tokens,
        Err(text) => return Reply::text(400, text),
    };
    let dry_run = message
        .get("dry_run")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if tokens.is_empty() {
        // JSON without any recipient: the per-result error the docs list
        // for it (§1.6), still inside a 200 envelope.
        return envelope(
            shared,
            vec![json!({"error": "MissingRegistration"})],
            0,
            1,
            0,
        );
    }

    // A dry run is validated like a real send but delivers nothing.
    let judged = shared.counters.judge(&tokens, !dry_run);
    let mut results = Vec::with_capacity(judged.len());
    let (mut success, mut failure, mut canonical_ids) = (0, 0, 0);
    let mut extra = Duration::ZERO;
    for (rule, outcome) in judged {
        extra = extra.max(rule.extra_delay());
        let result = match outcome {
            Outcome::Delivered { canonical: None } => {
                success += 1;
                json!({"message_id": shared.ids.message_id()})
            }
            Outcome::Delivered {
                canonical: Some(new_token),
            } => {
                success += 1;
                canonical_ids += 1;
                json!({"message_id": shared.ids.message_id(), "registration_id": new_token})
            }
            error => {
                failure += 1;
                json!({"error": error_string(&error)})
            }
        };
        results.push(result);
    }
    envelope(shared, results, success, failure, canonical_ids).delayed(extra)
}

fn envelope(
    shared: &Shared,
    results: Vec<Value>,
    success: u32,
    failure: u32,
    canonical_ids: u32,
) -> Reply {
    let body = json!({
        "multicast_id": shared.ids.multicast_id(),
        "success": success,
        "failure": failure,
        "canonical_ids": canonical_ids,
        "results": results,
    });
    Reply::json(200, &body)
}

/// The per-result error string for a failed token (§1.6).
fn error_string(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Delivered { .. } => unreachable!("delivered tokens have no error"),
        Outcome::NotRegistered => "NotRegistered",
        Outcome::InvalidRegistration => "InvalidRegistration",
        Outcome::MismatchSenderId => "MismatchSenderId",
        Outcome::ThirdPartyAuth => "InvalidApnsCredential",
        Outcome::Unavailable => "Unavailable",
        Outcome::Internal => "InternalServerError",
        Outcome::QuotaExceeded => "DeviceMessageRateExceeded",
    }
}

/// The tokens a request names, leniently: whatever strings are in
/// `registration_ids`, else `to`. Used for counting before validation.
fn arrived_tokens(message: &Value) -> Vec<&str> {
    if let Some(ids) = message.get("registration_ids").and_then(Value::as_array) {
        return ids.iter().filter_map(Value::as_str).collect();
    }
    message
        .get("to")
        .and_then(Value::as_str)
        .into_iter()
        .collect()
}

/// The recipient list, strictly: `registration_ids` must be an array of 1 to
/// 1000 strings; without it a string `to` is the single recipient. The error
/// is the 400 answer's text (wording not verified against Google, §1.4,
/// except the bulk-limit text, which users quote).
fn recipients(message: &Value) -> Result<Vec<&str>, String> {
    let Some(object) = message.as_object() else {
        return Err("InvalidParameters: the request body must be a JSON object".into());
    };
    if let Some(ids) = object.get("registration_ids") {
        let Some(ids) = ids.as_array() else {
            return Err("InvalidParameters: \"registration_ids\" field is not a JSON array".into());
        };
        if ids.is_empty() {
            return Err(
                "InvalidParameters: \"registration_ids\" must hold at least one token".into(),
            );
        }
        if ids.len() > MAX_RECIPIENTS {
            return Err(format!(
                "Number of messages on bulk exceeds maximum allowed ({MAX_RECIPIENTS})"
            ));
        }
        return ids
            .iter()
            .map(|id| {
                id.as_str().ok_or_else(|| {
                    "InvalidParameters: \"registration_ids\" must hold strings".to_string()
                })
            })
            .collect();
    }
    match object.get("to") {
        None => Ok(Vec::new()),
        Some(Value::String(to)) => Ok(vec![to.as_str()]),
        Some(_) => Err("InvalidParameters: \"to\" field must be a JSON string".into()),
    }
}

/// The plain-text 400 body for unparsable JSON, in the shape of §1.9's
/// example: `JSON_PARSING_ERROR: Unexpected character (x) at position 0.`
fn json_parsing_error(raw: &[u8], e: &serde_json::Error) -> String {
    let position = byte_offset(raw, e.line(), e.column());
    if e.is_eof() || position >= raw.len() {
        return format!(
            "JSON_PARSING_ERROR: Unexpected end-of-input at position {}.",
            raw.len()
        );
    }
    let c = String::from_utf8_lossy(&raw[position..])
        .chars()
        .next()
        .unwrap_or('?');
    format!("JSON_PARSING_ERROR: Unexpected character ({c}) at position {position}.")
}

/// serde_json reports 1-based line and column; turn them into a byte offset.
fn byte_offset(raw: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = raw
        .split(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    line_start + column.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_errors_name_the_character() {
        let raw = b"xyz";
        let e = serde_json::from_slice::<Value>(raw).unwrap_err();
        assert_eq!(
            json_parsing_error(raw, &e),
            "JSON_PARSING_ERROR: Unexpected character (x) at position 0."
        );
        let raw = b"{\"a\":\n 1,}";
        let e = serde_json::from_slice::<Value>(raw).unwrap_err();
        assert_eq!(
            json_parsing_error(raw, &e),
            "JSON_PARSING_ERROR: Unexpected character (}) at position 9."
        );
        let raw = b"{\"a\":";
        let e = serde_json::from_slice::<Value>(raw).unwrap_err();
        assert_eq!(
            json_parsing_error(raw, &e),
            "JSON_PARSING_ERROR: Unexpected end-of-input at position 5."
        );
    }

    #[test]
    fn recipients_are_validated() {
        assert_eq!(
            recipients(&json!({"registration_ids": ["a", "b"]})).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(recipients(&json!({"to": "a"})).unwrap(), vec!["a"]);
        assert!(recipients(&json!({})).unwrap().is_empty());
        assert!(recipients(&json!({"registration_ids": []})).is_err());
        assert!(recipients(&json!({"registration_ids": "a"})).is_err());
        assert!(recipients(&json!({"registration_ids": [1]})).is_err());
        assert!(recipients(&json!({"to": 1})).is_err());
        assert!(recipients(&json!([1])).is_err());
        let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
        assert!(recipients(&json!({ "registration_ids": many }))
            .unwrap_err()
            .contains("(1000)"));
    }
}
