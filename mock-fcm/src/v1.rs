//! FCM HTTP v1: `POST /v1/projects/{project}/messages:send` (fcm-protocol.md
//! §2.3–2.9).
//!
//! One request, one token. Success is `{"name": ...}`; every failure is a
//! `google.rpc.Status` JSON body with the matching HTTP status. The bodies
//! below copy §2.9; where Google's wording is not known the mock says so in
//! a comment.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::outcome::Outcome;
use crate::reply::Reply;
use crate::script::Turn;
use crate::server::Shared;

const FCM_ERROR: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
const BAD_REQUEST: &str = "type.googleapis.com/google.rpc.BadRequest";
const QUOTA_FAILURE: &str = "type.googleapis.com/google.rpc.QuotaFailure";

/// Google's generic answer to a missing, expired or revoked bearer token.
const UNAUTHENTICATED: &str = "Request had invalid authentication credentials. Expected OAuth 2 access \
                               token, login cookie or other valid authentication credential. See \
                               https://developers.google.com/identity/sign-in/web/devconsole-project.";
const NO_RECIPIENT: &str = "Recipient of the message is not set.";

/// Answers one v1 send request for the project named in its path.
pub(crate) fn handle(
    shared: &Shared,
    project: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Reply {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let validate_only = parsed.as_ref().is_some_and(validate_only);
    // Count the token before anything can refuse the request.
    if let Some(message) = parsed
        .as_ref()
        .and_then(|b| b.get("message"))
        .and_then(Value::as_object)
    {
        if let Some(token) = message.get("token").and_then(Value::as_str) {
            let mut recorded = message.clone();
            if validate_only {
                recorded.insert("validate_only".into(), Value::Bool(true));
            }
            shared
                .counters
                .record_arrival(&[token], &Arc::new(Value::Object(recorded)));
        }
    }
    let stall = match shared.scripts.next_turn() {
        Turn::Canned(reply) => return reply,
        Turn::Normal { stall } => stall,
    };
    answer(shared, project, authorization, parsed, validate_only).delayed(stall)
}

/// Normal handling: credentials, then the project, then the body.
fn answer(
    shared: &Shared,
    project: &str,
    authorization: Option<&str>,
    parsed: Option<Value>,
    validate_only: bool,
) -> Reply {
    let bearer = authorization.and_then(bearer_token);
    if !bearer.is_some_and(|t| shared.tokens.is_valid(t)) {
        return error(401, "UNAUTHENTICATED", UNAUTHENTICATED, vec![]).header(
            "WWW-Authenticate",
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
        );
    }
    if project != shared.project_id {
        // Mock choice: a generic NOT_FOUND without FcmError detail, so it
        // cannot be mistaken for UNREGISTERED.
        return error(404, "NOT_FOUND", "Requested entity was not found.", vec![]);
    }
    let Some(body) = parsed else {
        // Wording not verified (§6).
        return error(
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
            vec![],
        );
    };
    let Some(message) = body.get("message").and_then(Value::as_object) else {
        return no_recipient();
    };
    if let Some(reply) = check_data(message) {
        return reply;
    }
    let token = match message.get("token") {
        Some(Value::String(t)) if !t.is_empty() => t.as_str(),
        Some(Value::String(_)) | None => {
            // Topic and condition sends are not what gocm tests, but they
            // are valid targets, so they succeed (uncounted).
            let other_target = ["topic", "condition"]
                .iter()
                .any(|k| message.get(*k).is_some_and(Value::is_string));
            if other_target {
                return success(shared, project, validate_only);
            }
            return no_recipient();
        }
        Some(other) => {
            let text = format!("Invalid value at 'message.token' (TYPE_STRING), {other}");
            return error(
                400,
                "INVALID_ARGUMENT",
                &text,
                vec![bad_request("message.token", &text)],
            );
        }
    };

    // A validate-only send is judged like a real one but delivers nothing.
    let judged = shared.counters.judge(&[token], !validate_only);
    let (rule, outcome) = judged.into_iter().next().expect("one token judged");
    outcome_reply(shared, project, validate_only, outcome).delayed(rule.extra_delay())
}

fn outcome_reply(shared: &Shared, project: &str, validate_only: bool, outcome: Outcome) -> Reply {
    match outcome {
        Outcome::Delivered { .. } => success(shared, project, validate_only),
        Outcome::NotRegistered => error(
            404,
            "NOT_FOUND",
            "Requested entity was not found.",
            vec![fcm_error("UNREGISTERED")],
        ),
        Outcome::InvalidRegistration => error(
            400,
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            vec![fcm_error("INVALID_ARGUMENT")],
        ),
        Outcome::MismatchSenderId => error(
            403,
            "PERMISSION_DENIED",
            "SenderId mismatch",
            vec![fcm_error("SENDER_ID_MISMATCH")],
        ),
        Outcome::ThirdPartyAuth => error(
            401,
            "UNAUTHENTICATED",
            "Auth error from APNS or Web Push Service",
            vec![fcm_error("THIRD_PARTY_AUTH_ERROR")],
        ),
        // No Retry-After: the header is optional (§2.6), and a long one
        // would slow every test; scripts can add one.
        Outcome::Unavailable => error(
            503,
            "UNAVAILABLE",
            "The service is currently unavailable.",
            vec![fcm_error("UNAVAILABLE")],
        ),
        Outcome::Internal => error(
            500,
            "INTERNAL",
            "Internal error encountered.",
            vec![fcm_error("INTERNAL")],
        ),
        Outcome::QuotaExceeded => {
            let quota = json!({
                "@type": QUOTA_FAILURE,
                "violations": [{"subject": format!("project:{project}"), "description": "messages per minute"}],
            });
            error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded.",
                vec![fcm_error("QUOTA_EXCEEDED"), quota],
            )
            .header("Retry-After", "1")
        }
    }
}

fn success(shared: &Shared, project: &str, validate_only: bool) -> Reply {
    let id = if validate_only {
        "fake_message_id".to_string()
    } else {
        shared.ids.message_id()
    };
    Reply::json(
        200,
        &json!({"name": format!("projects/{project}/messages/{id}")}),
    )
}

/// `data` must be a map of strings. Google names the offending entry by its
/// index; serde_json keeps object keys sorted, so the index is in key order
/// (the same as request order for the usual one-key test).
fn check_data(message: &Map<String, Value>) -> Option<Reply> {
    let data = message.get("data")?;
    let Some(data) = data.as_object() else {
        // Wording not verified; the generic INVALID_ARGUMENT text of §2.9.
        return Some(error(
            400,
            "INVALID_ARGUMENT",
            "Request contains an invalid argument.",
            vec![],
        ));
    };
    let (index, value) = data.values().enumerate().find(|(_, v)| !v.is_string())?;
    let field = format!("message.data[{index}].value");
    let text = format!("Invalid value at '{field}' (TYPE_STRING), {value}");
    Some(error(
        400,
        "INVALID_ARGUMENT",
        &text,
        vec![bad_request(&field, &text)],
    ))
}

fn no_recipient() -> Reply {
    error(
        400,
        "INVALID_ARGUMENT",
        NO_RECIPIENT,
        vec![
            bad_request("message", NO_RECIPIENT),
            fcm_error("INVALID_ARGUMENT"),
        ],
    )
}

/// `validate_only`, or its lowerCamelCase spelling (proto3 JSON accepts both).
fn validate_only(body: &Value) -> bool {
    body.get("validate_only")
        .or_else(|| body.get("validateOnly"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The token of an `Authorization: Bearer <token>` header (scheme
/// case-insensitive, as HTTP auth schemes are).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A `google.rpc.Status` error body (§2.4); `details` omitted when empty.
fn error(code: u16, status: &str, message: &str, details: Vec<Value>) -> Reply {
    let mut error = json!({"code": code, "message": message, "status": status});
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    Reply::json(code, &json!({ "error": error }))
}

fn fcm_error(code: &str) -> Value {
    json!({"@type": FCM_ERROR, "errorCode": code})
}

fn bad_request(field: &str, description: &str) -> Value {
    json!({"@type": BAD_REQUEST, "fieldViolations": [{"field": field, "description": description}]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("key=abc"), None);
        assert_eq!(bearer_token("Basic abc"), None);
    }

    #[test]
    fn non_string_data_is_named_by_index() {
        let message = json!({"data": {"a": "x", "b": 12}});
        let reply = check_data(message.as_object().unwrap()).unwrap();
        assert_eq!(reply.status, 400);
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            body["error"]["message"],
            "Invalid value at 'message.data[1].value' (TYPE_STRING), 12"
        );
        assert!(check_data(json!({"data": {"a": "x"}}).as_object().unwrap()).is_none());
    }
}
