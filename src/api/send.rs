//! `POST /gcm/send`: parse and validate, before anything is queued.
//!
//! Two body formats. GoCM's own, a form with `tokens` repeated and
//! `payload` as a JSON string (`curl -d`, Python `requests.post(data=..)`),
//! and JSON: `{"tokens": [...], "payload": {...}}`, which may also carry
//! `notification`, `android` and `dry_run`. Everything that can never be
//! delivered is refused here with a 4xx naming the problem, so an `ok`
//! means the request is sendable.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::ApiError;
use crate::upstream::{AndroidOptions, Message};

/// FCM's limit on the data payload, in bytes of compact JSON.
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// How deep a payload may nest (the object itself is level 1). serde_json
/// stops at 128 levels, and the stored and sent forms wrap the payload in
/// more levels: a payload near that limit would be accepted, then be
/// unreadable from the store and refused by the upstream. Real app data is
/// flat or nearly so.
pub const MAX_PAYLOAD_DEPTH: usize = 32;
/// Longest token accepted; real FCM tokens are about 160 bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Longest TTL FCM accepts: four weeks.
pub const MAX_TTL_SECS: u32 = 2_419_200;

/// A validated send: unique tokens, in the order given, and the message.
#[derive(Debug)]
pub struct SendRequest {
    pub tokens: Vec<String>,
    pub message: Message,
}

/// Data keys FCM reserves, or that legacy FCM silently overwrote with a
/// request option of the same name.
const RESERVED_KEYS: &[&str] = &[
    "from",
    "message_type",
    "collapse_key",
    "time_to_live",
    "delay_while_idle",
    "restricted_package_name",
    "dry_run",
];

pub fn parse(
    content_type: Option<&str>,
    body: &[u8],
    max_tokens: usize,
) -> Result<SendRequest, ApiError> {
    let media_type = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|s| s.trim().to_ascii_lowercase());
    let (tokens, message) = match media_type.as_deref() {
        Some("application/json") => parse_json(body)?,
        None | Some("") | Some("application/x-www-form-urlencoded") => parse_form(body)?,
        Some(other) => {
            return Err(ApiError::new(
                415,
                format!(
                    "unsupported Content-Type {other:?}: send application/x-www-form-urlencoded \
                     (tokens=..&payload=..) or application/json"
                ),
            ))
        }
    };
    let tokens = clean_tokens(tokens, max_tokens)?;
    Ok(SendRequest { tokens, message })
}

/// Splits a form body into decoded pairs: `+` is a space, `%XX` a byte, and
/// every name and value must decode to UTF-8.
fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |raw: &[u8]| -> Result<String, ApiError> {
        // A `%` must start an escape: `a%zz` is a client bug, not a token.
        let bad_escape = raw.iter().enumerate().any(|(i, &b)| {
            b == b'%'
                && !(raw.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && raw.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        });
        if bad_escape {
            return Err(ApiError::new(
                400,
                "form body has a `%` not followed by two hex digits: url-encode the values",
            ));
        }
        let plus_as_space: Vec<u8> = raw
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
        String::from_utf8(bytes)
            .map_err(|_| ApiError::new(400, "form body is not valid UTF-8 (after %-decoding)"))
    };
    body.split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut kv = part.splitn(2, |&b| b == b'=');
            let name = decode(kv.next().unwrap_or_default())?;
            let value = decode(kv.next().unwrap_or_default())?;
            Ok((name, value))
        })
        .collect()
}

fn parse_form(body: &[u8]) -> Result<(Vec<String>, Message), ApiError> {
    let mut tokens = Vec::new();
    let mut saw_tokens = false;
    let mut saw_token = false;
    let mut payload = None;
    for (name, value) in form_pairs(body)? {
        match name.as_str() {
            "tokens" => {
                saw_tokens = true;
                tokens.push(value);
            }
            "token" => saw_token = true,
            "payload" if payload.is_some() => {
                return Err(ApiError::new(400, "payload given more than once"));
            }
            "payload" => payload = Some(value),
            _ => {} // GoCM ignored other fields; so do we.
        }
    }
    if !saw_tokens {
        return Err(missing_tokens(saw_token));
    }
    let payload = payload.ok_or_else(|| {
        ApiError::new(400, "missing \"payload\" field: a JSON object as a string")
    })?;
    let data = payload_object(
        serde_json::from_str::<Value>(&payload)
            .map_err(|e| {
                ApiError::new(
                    400,
                    format!(
                        "payload is not valid JSON: {e} (in a form body, URL-encode the payload: \
                         a raw & ends the field and a raw + is a space; curl --data-urlencode does it)"
                    ),
                )
            })?,
    )?;
    Ok((
        tokens,
        Message {
            data,
            ..Message::default()
        },
    ))
}

fn missing_tokens(saw_token: bool) -> ApiError {
    if saw_token {
        ApiError::new(
            400,
            "missing \"tokens\" field (found \"token\": the field is \"tokens\", one per device)",
        )
    } else {
        ApiError::new(
            400,
            "missing \"tokens\" field: give one \"tokens\" field per device",
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSend {
    tokens: Option<Value>,
    token: Option<Value>,
    payload: Option<Value>,
    notification: Option<Map<String, Value>>,
    android: Option<AndroidOptions>,
    #[serde(default)]
    dry_run: bool,
}

fn parse_json(body: &[u8]) -> Result<(Vec<String>, Message), ApiError> {
    let req: JsonSend = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, format!("invalid JSON body: {e}")))?;
    let tokens = match req.tokens {
        None => return Err(missing_tokens(req.token.is_some())),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|t| match t {
                Value::String(s) => Ok(s),
                other => Err(ApiError::new(
                    400,
                    format!("\"tokens\" must hold strings; one is {}", kind(&other)),
                )),
            })
            .collect::<Result<Vec<String>, ApiError>>()?,
        Some(other) => {
            return Err(ApiError::new(
                400,
                format!(
                    "\"tokens\" must be an array of strings, e.g. [\"T1\"]; it is {}",
                    kind(&other)
                ),
            ))
        }
    };
    let data = match req.payload {
        None => {
            return Err(ApiError::new(
                400,
                "missing \"payload\" field: a JSON object (or a JSON object as a string)",
            ))
        }
        Some(Value::String(s)) => payload_object(
            serde_json::from_str(&s)
                .map_err(|e| ApiError::new(400, format!("payload is not valid JSON: {e}")))?,
        )?,
        Some(v) => payload_object(v)?,
    };
    if let Some(n) = &req.notification {
        for (k, v) in n {
            if !matches!(k.as_str(), "title" | "body" | "image") {
                return Err(ApiError::new(
                    400,
                    format!("notification.{k}: only title, body and image are supported"),
                ));
            }
            if !v.is_string() {
                return Err(ApiError::new(
                    400,
                    format!("notification.{k} must be a string"),
                ));
            }
        }
    }
    if let Some(n) = &req.notification {
        // FCM's 4096 bytes hold the notification and the data together.
        let size = serde_json::to_vec(n).map_or(usize::MAX, |b| b.len())
            + serde_json::to_vec(&data).map_or(usize::MAX, |b| b.len());
        if size > MAX_PAYLOAD_BYTES {
            return Err(ApiError::new(
                400,
                format!(
                    "notification and payload are {size} bytes of JSON together; \
                     FCM's limit is {MAX_PAYLOAD_BYTES}"
                ),
            ));
        }
    }
    if let Some(ttl) = req.android.as_ref().and_then(|a| a.ttl) {
        if ttl > MAX_TTL_SECS {
            return Err(ApiError::new(
                400,
                format!("android.ttl {ttl} is over FCM's maximum of {MAX_TTL_SECS} s (4 weeks)"),
            ));
        }
    }
    Ok((
        tokens,
        Message {
            data,
            notification: req.notification,
            android: req.android,
            dry_run: req.dry_run,
        },
    ))
}

/// Levels of arrays and objects in `v` (a string or number is 0). The
/// recursion is bounded: serde_json refused anything over 128 levels.
fn nesting(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

/// The payload must be a JSON object that FCM will accept as `data`.
fn payload_object(v: Value) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(map) = v else {
        return Err(ApiError::new(
            400,
            format!("payload must be a JSON object, not {}", kind(&v)),
        ));
    };
    for (k, v) in &map {
        let lower = k.to_ascii_lowercase();
        if RESERVED_KEYS.contains(&lower.as_str())
            || lower.starts_with("google")
            || lower.starts_with("gcm")
        {
            return Err(ApiError::new(
                400,
                format!("payload key {k:?} is reserved by FCM (from, message_type, google*, gcm*, and legacy option names)"),
            ));
        }
        if v.is_null() {
            return Err(ApiError::new(
                400,
                format!("payload key {k:?} is null: FCM data values must be strings, numbers, booleans, objects or arrays"),
            ));
        }
    }
    let depth = 1 + map.values().map(nesting).max().unwrap_or(0);
    if depth > MAX_PAYLOAD_DEPTH {
        return Err(ApiError::new(
            400,
            format!("payload nests {depth} levels deep; the limit is {MAX_PAYLOAD_DEPTH}"),
        ));
    }
    let size = serde_json::to_vec(&map)
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    if size > MAX_PAYLOAD_BYTES {
        return Err(ApiError::new(
            400,
            format!("payload is {size} bytes of JSON; FCM's limit is {MAX_PAYLOAD_BYTES}"),
        ));
    }
    Ok(map)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Trims, drops blanks and duplicates (keeping the first), enforces limits.
fn clean_tokens(raw: Vec<String>, max_tokens: usize) -> Result<Vec<String>, ApiError> {
    let mut seen: HashSet<&str> = HashSet::with_capacity(raw.len());
    let mut tokens = Vec::with_capacity(raw.len());
    for t in &raw {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        if t.chars().any(char::is_control) {
            return Err(ApiError::new(
                400,
                "a token contains a control character (newline, NUL, …); no device has such a token",
            ));
        }
        if t.len() > MAX_TOKEN_BYTES {
            return Err(ApiError::new(
                400,
                format!(
                    "a token is {} bytes long; the limit is {MAX_TOKEN_BYTES}",
                    t.len()
                ),
            ));
        }
        if seen.insert(t) {
            tokens.push(t.to_string());
        }
    }
    if tokens.is_empty() {
        return Err(ApiError::new(
            400,
            "no usable token: every \"tokens\" value is blank",
        ));
    }
    if tokens.len() > max_tokens {
        return Err(ApiError::new(
            413,
            format!(
                "{} tokens in one send; the limit is {max_tokens} (--max-tokens)",
                tokens.len()
            ),
        ));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn form_decoding_is_exact() {
        let body = "tokens=a+b&tokens=c%2Bd&tokens=%20a+b%20&payload=%7B%22m%22%3A%22caf%C3%A9+%F0%9F%8E%89%22%7D";
        let r = parse(FORM, body.as_bytes(), 10).unwrap();
        assert_eq!(r.tokens, ["a b", "c+d"]);
        assert_eq!(r.message.data["m"], "café 🎉");
    }

    #[test]
    fn raw_gocm_curl_example_parses() {
        let body = r#"tokens=T1&tokens=T2&payload={"title": "This is the title", "datestamp": "2014-03-07T18:01:04.702100"}"#;
        let r = parse(FORM, body.as_bytes(), 10).unwrap();
        assert_eq!(r.tokens, ["T1", "T2"]);
        assert_eq!(r.message.data["datestamp"], "2014-03-07T18:01:04.702100");
    }

    #[test]
    fn refusals_name_the_problem() {
        let err = |ct, body: &str| parse(ct, body.as_bytes(), 3).unwrap_err();
        assert!(err(FORM, "token=a&payload={}")
            .message
            .contains("found \"token\""));
        assert!(err(FORM, "tokens=+&payload={}")
            .message
            .contains("no usable token"));
        assert!(err(FORM, "tokens=a").message.contains("payload"));
        assert!(err(FORM, "tokens=a&payload=[1]")
            .message
            .contains("an array"));
        assert!(err(FORM, "tokens=a&payload={x")
            .message
            .contains("not valid JSON"));
        assert!(err(FORM, r#"tokens=a&payload={"google.x":1}"#)
            .message
            .contains("reserved"));
        assert!(err(FORM, r#"tokens=a&payload={"collapse_key":1}"#)
            .message
            .contains("reserved"));
        assert!(err(FORM, r#"tokens=a&payload={"k":null}"#)
            .message
            .contains("\"k\" is null"));
        assert!(err(FORM, "tokens=%FF&payload={}").message.contains("UTF-8"));
        assert!(err(FORM, "tokens=a%zz&payload={}")
            .message
            .contains("hex digits"));
        assert!(err(FORM, "tokens=a%&payload={}")
            .message
            .contains("hex digits"));
        assert!(err(FORM, "tokens=a%0Ab&payload={}")
            .message
            .contains("control character"));
        assert!(err(FORM, "tokens=a%00b&payload={}")
            .message
            .contains("control character"));
        assert_eq!(
            err(FORM, "tokens=a&tokens=b&tokens=c&tokens=d&payload={}").status,
            413
        );
        assert_eq!(err(Some("text/xml"), "").status, 415);
        let big = format!(r#"tokens=a&payload={{"k":"{}"}}"#, "x".repeat(4096));
        assert!(err(FORM, &big).message.contains("4096"));
    }

    #[test]
    fn json_body_with_options() {
        let body = r#"{"tokens":["a","a"],"payload":"{\"n\":1}","notification":{"title":"t"},"android":{"priority":"high","ttl":60},"dry_run":true}"#;
        let r = parse(Some("application/json; charset=utf-8"), body.as_bytes(), 10).unwrap();
        assert_eq!(r.tokens, ["a"]);
        assert_eq!(r.message.data["n"], 1);
        assert!(r.message.dry_run);
        assert_eq!(r.message.android.unwrap().ttl, Some(60));
        let bad = parse(
            Some("application/json"),
            br#"{"tokens":["a"],"payload":{},"x":1}"#,
            10,
        );
        assert!(bad.unwrap_err().message.contains("unknown field"));
    }
}
