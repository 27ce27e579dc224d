//! FCM HTTP v1: one `messages:send` request per token, authorised with an
//! OAuth2 access token from a service-account key (see [`super::oauth`]).
//!
//! Errors are classified as the firebase-admin SDKs do: the `errorCode` of
//! the `FcmError` entry in `error.details` first, then `error.status`, then
//! the HTTP status. A 401 without an `FcmError` means the bearer token was
//! rejected (expired or revoked): one forced refresh, one resend.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{Map, Value};

use super::oauth::{clip, AccessToken, ServiceAccount, TokenSource};
use super::{
    read_body, retry_after, transport_outcome, Agents, Message, Outcome, Priority, Reason, Upstream,
};
use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;

/// The `@type` of the FCM-specific entry in `error.details`.
const FCM_ERROR_TYPE: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
/// Wait after a 429 that carries no `Retry-After` (FCM asks for at least a
/// minute before retrying over-quota sends).
pub const QUOTA_DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// The most of a response body that is kept (it is still read to the end).
const BODY_LIMIT: u64 = 256 * 1024;

/// The FCM HTTP v1 provider.
pub struct V1 {
    agents: Agents,
    /// `{endpoint}/v1/projects/{project_id}/messages:send`
    url: String,
    tokens: TokenSource,
}

impl V1 {
    /// Loads the service-account key (failing with one clear
    /// [`Error::Credentials`] line) and prepares the token cache. No network
    /// call happens here: the first send fetches the first token.
    pub fn from_config(
        agents: Agents,
        credentials: &Path,
        project_id: Option<&str>,
        endpoint: &str,
        config: &Config,
        metrics: Arc<Metrics>,
    ) -> Result<V1, Error> {
        let account = ServiceAccount::load(credentials, project_id)?;
        let project = match project_id {
            Some(p) => {
                check_project_id(p)
                    .map_err(|m| Error::Config(format!("--project-id {p:?}: {m}")))?;
                p.to_string()
            }
            None => {
                let p = account.project_id.clone().unwrap_or_default();
                check_project_id(&p).map_err(|m| {
                    Error::Credentials(format!(
                        "{}: \"project_id\" {p:?}: {m}",
                        credentials.display()
                    ))
                })?;
                p
            }
        };
        log::info!(
            "FCM HTTP v1: project {project}, service account {}, token endpoint {}",
            account.client_email,
            account.token_uri
        );
        let url = format!(
            "{}/v1/projects/{project}/messages:send",
            endpoint.trim_end_matches('/')
        );
        // A caller waiting for another thread's refresh waits no longer than
        // that refresh's own HTTP call can take.
        let wait_limit = config.http_client.call_timeout + config.http_client.connect_timeout;
        let tokens = TokenSource::new(agents.get().clone(), account, config.backoff, wait_limit)
            .counting_into(metrics);
        Ok(V1 {
            agents,
            url,
            tokens,
        })
    }

    /// The `messages:send` URL this provider posts to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One token: get an access token, send, and on a bare 401 refresh once
    /// and resend once.
    fn send_one(&self, body: &[u8]) -> Outcome {
        let access = match self.tokens.get() {
            Ok(t) => t,
            Err(outcome) => return outcome,
        };
        match self.post(&access, body) {
            Sent::Done(outcome) => outcome,
            Sent::Unauthenticated(first) => {
                log::debug!(
                    "v1: FCM rejected access token #{} ({first})",
                    access.generation()
                );
                let fresh = match self.tokens.refresh_after_rejection(&access) {
                    Ok(t) => t,
                    Err(outcome) => return outcome,
                };
                match self.post(&fresh, body) {
                    Sent::Done(outcome) => outcome,
                    Sent::Unauthenticated(detail) => Outcome::retry(
                        None,
                        Reason::Auth,
                        format!("{detail} (again with a refreshed access token)"),
                    ),
                }
            }
        }
    }

    fn post(&self, access: &AccessToken, body: &[u8]) -> Sent {
        let result = self
            .agents
            .get()
            .post(&self.url)
            .header("Authorization", format!("Bearer {}", access.expose()))
            .header("X-GOOG-API-FORMAT-VERSION", "2")
            .content_type("application/json")
            .send(body);
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => return Sent::Done(transport_outcome(&e)),
        };
        let status = resp.status().as_u16();
        let retry_after = retry_after::from_response(&resp);
        match read_body(resp.body_mut(), BODY_LIMIT) {
            Ok(body) => classify(status, retry_after, &body),
            // Accepted: the status says so even if its body broke off.
            Err(_) if (200..300).contains(&status) => Sent::Done(Outcome::Delivered),
            Err(e) => Sent::Done(Outcome::retry(
                retry_after,
                Reason::Upstream,
                format!("HTTP {status}, unreadable body: {e}"),
            )),
        }
    }
}

impl Upstream for V1 {
    fn name(&self) -> &'static str {
        "v1"
    }

    fn max_tokens_per_call(&self) -> usize {
        1
    }

    fn warm_up(&self) {
        // A failure is logged, counted and kept for /readyz by the token
        // source; the first message retries it under the usual back-off.
        let _ = self.tokens.get();
    }

    fn ready(&self) -> Result<(), String> {
        self.tokens.health()
    }

    fn send(&self, message: &Message, tokens: &[String]) -> Vec<Outcome> {
        tokens
            .iter()
            .map(|token| match request_body(message, token) {
                Ok(body) => self.send_one(&body),
                Err(e) => Outcome::failed(Reason::Invalid, format!("cannot encode: {e}")),
            })
            .collect()
    }
}

/// FCM project IDs are lowercase letters, digits and hyphens; older
/// domain-scoped ones look like `example.com:project`.
fn check_project_id(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("is empty");
    }
    if p.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '_'))
    {
        Ok(())
    } else {
        Err("is not a project ID (letters, digits, '-', '.', ':')")
    }
}

/// What one POST came to.
#[derive(Debug, PartialEq)]
enum Sent {
    Done(Outcome),
    /// 401 without an `FcmError`: the bearer token itself was refused.
    Unauthenticated(String),
}

// ---------------------------------------------------------------------------
// Request body

#[derive(Serialize)]
struct SendRequest<'a> {
    message: WireMessage<'a>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    validate_only: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    token: &'a str,
    data: DataMap<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notification: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    android: Option<WireAndroid<'a>>,
}

#[derive(Serialize)]
struct WireAndroid<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collapse_key: Option<&'a str>,
}

/// `data` with every value turned into the string v1 requires.
struct DataMap<'a>(&'a Map<String, Value>);

impl Serialize for DataMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, &data_value(v))?;
        }
        map.end()
    }
}

/// A legacy `data` value as a v1 string: strings unchanged, numbers and
/// booleans as their JSON text (`3`, `2.5`, `true`), objects and arrays as
/// compact JSON, `null` as `"null"` (intake refuses it; this is a fallback).
pub fn data_value(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed("null"),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        Value::Number(n) => Cow::Owned(n.to_string()),
        Value::Array(_) | Value::Object(_) => Cow::Owned(v.to_string()),
    }
}

/// The compact JSON body of `messages:send` for one token.
pub fn request_body(message: &Message, token: &str) -> Result<Vec<u8>, serde_json::Error> {
    let android = message.android.as_ref().and_then(|a| {
        let wire = WireAndroid {
            priority: a.priority.map(|p| match p {
                Priority::High => "high",
                Priority::Normal => "normal",
            }),
            ttl: a.ttl.map(|t| format!("{t}s")),
            collapse_key: a.collapse_key.as_deref(),
        };
        (wire.priority.is_some() || wire.ttl.is_some() || wire.collapse_key.is_some())
            .then_some(wire)
    });
    serde_json::to_vec(&SendRequest {
        message: WireMessage {
            token,
            data: DataMap(&message.data),
            notification: message.notification.as_ref().filter(|n| !n.is_empty()),
            android,
        },
        validate_only: message.dry_run,
    })
}

// ---------------------------------------------------------------------------
// Response classification

/// The code that decides, as the SDKs pick it, and the message for the log.
struct FcmErrorBody {
    /// `details[@type=FcmError].errorCode`
    fcm_code: Option<String>,
    /// `error.status`
    status: Option<String>,
    message: Option<String>,
}

fn parse_error(body: &[u8]) -> Option<FcmErrorBody> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?.as_object()?;
    let string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let fcm_code = err
        .get("details")
        .and_then(Value::as_array)
        .and_then(|details| {
            details
                .iter()
                .find(|d| d.get("@type").and_then(Value::as_str) == Some(FCM_ERROR_TYPE))
        })
        .map(|d| string(d.get("errorCode")).unwrap_or_else(|| "UNSPECIFIED_ERROR".into()));
    Some(FcmErrorBody {
        fcm_code,
        status: string(err.get("status")),
        message: string(err.get("message")).filter(|m| !m.is_empty()),
    })
}

/// What a known code means, or `None` to fall through to the next source.
fn by_code(code: &str, detail: &str, retry_after: Option<Duration>) -> Option<Outcome> {
    Some(match code {
        "UNREGISTERED" => Outcome::NotRegistered,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => {
            Outcome::failed(Reason::Invalid, detail)
        }
        "SENDER_ID_MISMATCH"
        | "PERMISSION_DENIED"
        | "THIRD_PARTY_AUTH_ERROR"
        | "APNS_AUTH_ERROR" => Outcome::failed(Reason::Auth, detail),
        "QUOTA_EXCEEDED" | "RESOURCE_EXHAUSTED" => Outcome::retry(
            Some(retry_after.unwrap_or(QUOTA_DEFAULT_WAIT)),
            Reason::Quota,
            detail,
        ),
        "UNAVAILABLE" | "INTERNAL" | "UNKNOWN" | "DEADLINE_EXCEEDED" | "ABORTED" => {
            Outcome::retry(retry_after, Reason::Upstream, detail)
        }
        _ => return None,
    })
}

/// Why a 404 without `FcmError: UNREGISTERED` does not purge the token.
const NOT_FOUND_HINT: &str = "; not UNREGISTERED, so the token is kept (is --project-id right?)";

/// Classifies one `messages:send` response.
///
/// Only `FcmError: UNREGISTERED` marks a token as dead. A bare `NOT_FOUND`
/// (no `FcmError`) is what a wrong project or URL gives, and Go's and
/// Python's SDKs do not read it as "unregistered" either; purging every token
/// on a misconfiguration would be unrecoverable, so it is a plain failure.
fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Sent {
    if (200..300).contains(&status) {
        return Sent::Done(Outcome::Delivered);
    }
    let parsed = parse_error(body);
    if let Some(e) = &parsed {
        let detail_for = |code: &str| match &e.message {
            Some(m) => format!("{code}: {}", clip(m, 300)),
            None => code.to_string(),
        };
        if let Some(code) = &e.fcm_code {
            if let Some(o) = by_code(code, &detail_for(code), retry_after) {
                return Sent::Done(o);
            }
        }
        if let Some(code) = &e.status {
            if status == 401 && e.fcm_code.is_none() {
                return Sent::Unauthenticated(detail_for(code));
            }
            if let Some(o) = by_code(code, &detail_for(code), retry_after) {
                return Sent::Done(o);
            }
        }
        let code = e
            .fcm_code
            .clone()
            .or_else(|| e.status.clone())
            .unwrap_or_else(|| format!("HTTP {status}"));
        let mut detail = detail_for(&code);
        if status == 404 {
            detail.push_str(NOT_FOUND_HINT);
        }
        return Sent::Done(match status {
            401 if e.fcm_code.is_none() => return Sent::Unauthenticated(detail),
            400 => Outcome::failed(Reason::Invalid, detail),
            401 | 403 => Outcome::failed(Reason::Auth, detail),
            429 => Outcome::retry(
                Some(retry_after.unwrap_or(QUOTA_DEFAULT_WAIT)),
                Reason::Quota,
                detail,
            ),
            408 => Outcome::retry(retry_after, Reason::Upstream, detail),
            402..=499 => Outcome::failed(Reason::Invalid, detail),
            _ => Outcome::retry(retry_after, Reason::Upstream, detail),
        });
    }
    // Not a Google error body (an HTML page from a proxy or front end): the
    // HTTP status alone.
    let mut detail = format!("HTTP {status} (not an FCM error body)");
    if status == 404 {
        detail.push_str(NOT_FOUND_HINT);
    }
    Sent::Done(match status {
        400 => Outcome::failed(Reason::Invalid, detail),
        401 => return Sent::Unauthenticated(detail),
        403 => Outcome::failed(Reason::Auth, detail),
        429 => Outcome::retry(
            Some(retry_after.unwrap_or(QUOTA_DEFAULT_WAIT)),
            Reason::Quota,
            detail,
        ),
        408 => Outcome::retry(retry_after, Reason::Upstream, detail),
        402..=499 => Outcome::failed(Reason::Invalid, detail),
        _ => Outcome::retry(retry_after, Reason::Upstream, detail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::AndroidOptions;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn data_values_become_strings() {
        let table = [
            (json!("text"), "text"),
            (json!(""), ""),
            (json!("ünï \"q\""), "ünï \"q\""),
            (json!(3), "3"),
            (json!(-7), "-7"),
            (json!(2.5), "2.5"),
            (json!(18446744073709551615u64), "18446744073709551615"),
            (json!(true), "true"),
            (json!(false), "false"),
            (
                json!({"a": 1, "b": [true, null]}),
                r#"{"a":1,"b":[true,null]}"#,
            ),
            (json!([1, "x", {"y": "z"}]), r#"[1,"x",{"y":"z"}]"#),
            (json!([]), "[]"),
            (Value::Null, "null"),
        ];
        for (value, want) in table {
            assert_eq!(data_value(&value), want, "{value}");
        }
    }

    #[test]
    fn minimal_body_is_compact_and_omits_absent_sections() {
        let m = Message {
            data: obj(json!({"message": "hi", "n": 3})),
            ..Message::default()
        };
        let body = request_body(&m, "tok-1").unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"message":{"token":"tok-1","data":{"message":"hi","n":"3"}}}"#
        );
    }

    #[test]
    fn full_body_passes_everything_through() {
        let m = Message {
            data: obj(json!({"b": true, "o": {"k": [1, 2]}})),
            notification: Some(obj(json!({"body": "B", "title": "T"}))),
            android: Some(AndroidOptions {
                priority: Some(Priority::High),
                ttl: Some(60),
                collapse_key: Some("k".into()),
            }),
            dry_run: true,
        };
        let body = request_body(&m, "tok").unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"message":{"token":"tok","data":{"b":"true","o":"{\"k\":[1,2]}"},"notification":{"body":"B","title":"T"},"android":{"priority":"high","ttl":"60s","collapse_key":"k"}},"validate_only":true}"#
        );
        let normal = Message {
            android: Some(AndroidOptions {
                priority: Some(Priority::Normal),
                ttl: Some(0),
                collapse_key: None,
            }),
            ..Message::default()
        };
        let body = String::from_utf8(request_body(&normal, "t").unwrap()).unwrap();
        assert_eq!(
            body,
            r#"{"message":{"token":"t","data":{},"android":{"priority":"normal","ttl":"0s"}}}"#
        );
        let empty_android = Message {
            android: Some(AndroidOptions::default()),
            notification: Some(Map::new()),
            ..Message::default()
        };
        let body = String::from_utf8(request_body(&empty_android, "t").unwrap()).unwrap();
        assert_eq!(body, r#"{"message":{"token":"t","data":{}}}"#);
    }

    fn done(status: u16, ra: Option<u64>, body: &str) -> Outcome {
        match classify(status, ra.map(Duration::from_secs), body.as_bytes()) {
            Sent::Done(o) => o,
            other => panic!("{other:?}"),
        }
    }

    // Bodies from docs/fcm-protocol.md §2.9.
    const INVALID_TOKEN: &str = r#"{ "error": { "code": 400,
        "message": "The registration token is not a valid FCM registration token",
        "status": "INVALID_ARGUMENT",
        "details": [ { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT" } ] } }"#;
    const NON_STRING_DATA: &str = r#"{ "error": { "code": 400,
        "message": "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
        "status": "INVALID_ARGUMENT",
        "details": [ { "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [ { "field": "message.data[0].value",
              "description": "Invalid value at 'message.data[0].value' (TYPE_STRING), 12" } ] } ] } }"#;
    const NO_RECIPIENT: &str = r#"{ "error": { "code": 400, "message": "Recipient of the message is not set.", "status": "INVALID_ARGUMENT",
        "details": [ { "@type": "type.googleapis.com/google.rpc.BadRequest",
                       "fieldViolations": [ { "field": "message", "description": "Recipient of the message is not set." } ] },
                     { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT" } ] } }"#;
    const TOO_LARGE: &str = r#"{ "error": { "code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT" } }"#;
    const UNREGISTERED: &str = r#"{ "error": { "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
        "details": [ { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED" } ] } }"#;
    const MISMATCH: &str = r#"{ "error": { "code": 403, "message": "SenderId mismatch", "status": "PERMISSION_DENIED",
        "details": [ { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "SENDER_ID_MISMATCH" } ] } }"#;
    const QUOTA: &str = r#"{ "error": { "code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED",
        "details": [ { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "QUOTA_EXCEEDED" },
                     { "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                       "violations": [ { "subject": "project:my-project", "description": "messages per minute" } ] } ] } }"#;
    const INTERNAL: &str = r#"{ "error": { "code": 500, "message": "Internal error encountered.", "status": "INTERNAL",
        "details": [ { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INTERNAL" } ] } }"#;
    const UNAVAILABLE: &str = r#"{ "error": { "code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE",
        "details": [ { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNAVAILABLE" } ] } }"#;
    const THIRD_PARTY: &str = r#"{ "error": { "code": 401, "message": "Auth error from APNS or Web Push Service", "status": "UNAUTHENTICATED",
        "details": [ { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "THIRD_PARTY_AUTH_ERROR" } ] } }"#;
    const BAD_BEARER: &str = r#"{ "error": { "code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "status": "UNAUTHENTICATED" } }"#;
    const HTML_502: &str = "<!DOCTYPE html><html><title>Error 502 (Server Error)!!1</title></html>";

    #[test]
    fn success() {
        let ok = r#"{ "name": "projects/myproject-b5ae1/messages/0:1500415314455276%31bd1c9631bd1c96" }"#;
        assert_eq!(done(200, None, ok), Outcome::Delivered);
        let fake = r#"{ "name": "projects/my-project/messages/fake_message_id" }"#;
        assert_eq!(done(200, None, fake), Outcome::Delivered);
    }

    #[test]
    fn permanent_errors() {
        assert_eq!(
            done(400, None, INVALID_TOKEN),
            Outcome::failed(
                Reason::Invalid,
                "INVALID_ARGUMENT: The registration token is not a valid FCM registration token"
            )
        );
        assert_eq!(
            done(400, None, NON_STRING_DATA),
            Outcome::failed(
                Reason::Invalid,
                "INVALID_ARGUMENT: Invalid value at 'message.data[0].value' (TYPE_STRING), 12"
            )
        );
        assert_eq!(
            done(400, None, NO_RECIPIENT),
            Outcome::failed(
                Reason::Invalid,
                "INVALID_ARGUMENT: Recipient of the message is not set."
            )
        );
        assert_eq!(
            done(400, None, TOO_LARGE),
            Outcome::failed(
                Reason::Invalid,
                "INVALID_ARGUMENT: Request contains an invalid argument."
            )
        );
        assert_eq!(done(404, None, UNREGISTERED), Outcome::NotRegistered);
        assert_eq!(
            done(403, None, MISMATCH),
            Outcome::failed(Reason::Auth, "SENDER_ID_MISMATCH: SenderId mismatch")
        );
        assert_eq!(
            done(401, None, THIRD_PARTY),
            Outcome::failed(
                Reason::Auth,
                "THIRD_PARTY_AUTH_ERROR: Auth error from APNS or Web Push Service"
            )
        );
        let apns = THIRD_PARTY.replace("THIRD_PARTY_AUTH_ERROR", "APNS_AUTH_ERROR");
        assert!(matches!(
            done(401, None, &apns),
            Outcome::Failed {
                reason: Reason::Auth,
                ..
            }
        ));
        // PERMISSION_DENIED without an FcmError (API disabled, IAM).
        let denied =
            r#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#;
        assert_eq!(
            done(403, None, denied),
            Outcome::failed(Reason::Auth, "PERMISSION_DENIED: Permission denied")
        );
        // NOT_FOUND without FcmError (a wrong project) does not purge.
        let nf = r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}"#;
        assert_eq!(
            done(404, None, nf),
            Outcome::failed(
                Reason::Invalid,
                format!("NOT_FOUND: Requested entity was not found.{NOT_FOUND_HINT}")
            )
        );
        // Other 4xx with a code: invalid, with the code in the detail.
        let conflict = r#"{"error":{"code":409,"message":"dup","status":"ALREADY_EXISTS"}}"#;
        assert_eq!(
            done(409, None, conflict),
            Outcome::failed(Reason::Invalid, "ALREADY_EXISTS: dup")
        );
    }

    #[test]
    fn fcm_error_code_wins_over_status_and_http_code() {
        // Details order varies; the FcmError entry is found by @type.
        let body = r#"{"error":{"code":400,"status":"INVALID_ARGUMENT","message":"m","details":[
            {"@type":"type.googleapis.com/google.rpc.BadRequest"},
            {"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#;
        assert_eq!(done(400, None, body), Outcome::NotRegistered);
        // An unknown errorCode falls back to the status...
        let body = r#"{"error":{"code":503,"status":"UNAVAILABLE","details":[
            {"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNSPECIFIED_ERROR"}]}}"#;
        assert_eq!(
            done(503, Some(4), body),
            Outcome::retry(
                Some(Duration::from_secs(4)),
                Reason::Upstream,
                "UNAVAILABLE"
            )
        );
        // ...and an unknown status to the HTTP code.
        let body = r#"{"error":{"code":429,"status":"SOMETHING_NEW","message":"x"}}"#;
        assert_eq!(
            done(429, None, body),
            Outcome::retry(Some(QUOTA_DEFAULT_WAIT), Reason::Quota, "SOMETHING_NEW: x")
        );
    }

    #[test]
    fn transient_errors() {
        assert_eq!(
            done(429, Some(7), QUOTA),
            Outcome::retry(
                Some(Duration::from_secs(7)),
                Reason::Quota,
                "QUOTA_EXCEEDED: Quota exceeded."
            )
        );
        assert_eq!(
            done(429, None, QUOTA),
            Outcome::retry(
                Some(QUOTA_DEFAULT_WAIT),
                Reason::Quota,
                "QUOTA_EXCEEDED: Quota exceeded."
            )
        );
        assert_eq!(
            done(503, Some(10), UNAVAILABLE),
            Outcome::retry(
                Some(Duration::from_secs(10)),
                Reason::Upstream,
                "UNAVAILABLE: The service is currently unavailable."
            )
        );
        assert_eq!(
            done(500, None, INTERNAL),
            Outcome::retry(
                None,
                Reason::Upstream,
                "INTERNAL: Internal error encountered."
            )
        );
        for (status, body) in [(502, HTML_502), (500, ""), (504, "{"), (503, "[]")] {
            assert_eq!(
                done(status, None, body),
                Outcome::retry(
                    None,
                    Reason::Upstream,
                    format!("HTTP {status} (not an FCM error body)")
                ),
                "{status} {body:?}"
            );
        }
        // Nor does a bare 404 page.
        assert!(matches!(
            done(404, None, "<html>Not Found</html>"),
            Outcome::Failed {
                reason: Reason::Invalid,
                ..
            }
        ));
        assert!(matches!(
            done(413, None, "<html>too large</html>"),
            Outcome::Failed {
                reason: Reason::Invalid,
                ..
            }
        ));
    }

    #[test]
    fn a_bare_401_asks_for_a_token_refresh() {
        assert_eq!(
            classify(401, None, BAD_BEARER.as_bytes()),
            Sent::Unauthenticated(
                "UNAUTHENTICATED: Request had invalid authentication credentials. Expected OAuth 2 \
                 access token, login cookie or other valid authentication credential. See \
                 https://developers.google.com/identity/sign-in/web/devconsole-project."
                    .into()
            )
        );
        assert!(matches!(
            classify(401, None, b"Unauthorized"),
            Sent::Unauthenticated(_)
        ));
    }

    #[test]
    fn project_ids() {
        assert!(check_project_id("test-project").is_ok());
        assert!(check_project_id("example.com:proj").is_ok());
        assert!(check_project_id("").is_err());
        assert!(check_project_id("a/b").is_err());
        assert!(check_project_id("a b").is_err());
    }
}
