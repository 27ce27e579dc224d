//! The OAuth2 token endpoint (`POST /token`, JWT-bearer grant) and the
//! access tokens it issues.
//!
//! gocm signs a JWT with its service-account key and trades it here for an
//! access token, exactly as with `oauth2.googleapis.com` (fcm-protocol.md
//! §3). The mock checks the JWT as strictly as Google documents it, so
//! signing bugs fail in tests rather than in production; v1 sends are then
//! accepted only with a token issued here and not yet expired.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use parking_lot::Mutex;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use serde_json::{json, Value};

use crate::reply::{Reply, OAUTH_JSON};

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

// Error descriptions: Google's wording where fcm-protocol.md §3.6/3.7 has it.
const BAD_SIGNATURE: &str = "Invalid JWT Signature.";
/// Google would not say this; the mock does, because a mock started
/// without a key can verify nothing and the newcomer needs to know why.
const NO_PUBLIC_KEY: &str =
    "Invalid JWT Signature. (mock-fcm was started without --public-key, so it refuses every assertion)";
const BAD_TIMES: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
                         reasonable timeframe. Check your iat and exp values in the JWT claim.";

/// How far in the future `iat` may lie (clock skew allowance).
const IAT_SKEW_SECS: i64 = 60;
/// Longest allowed `exp - iat`.
const MAX_LIFETIME_SECS: i64 = 3600;

/// Token-endpoint settings and state.
pub(crate) struct TokenEndpoint {
    public_key_der: Option<Vec<u8>>,
    client_email: Option<String>,
    expires_in: u64,
    /// The `aud` a JWT must carry: this mock's own token URL.
    audience: String,
    /// Issued access token → instant it expires.
    issued: Mutex<HashMap<String, Instant>>,
    /// Scripted failures: (calls left, status).
    failures: Mutex<(u32, u16)>,
    counter: AtomicU64,
    rng: SystemRandom,
}

impl TokenEndpoint {
    pub fn new(
        public_key_der: Option<Vec<u8>>,
        client_email: Option<String>,
        expires_in: u64,
        audience: String,
    ) -> TokenEndpoint {
        TokenEndpoint {
            public_key_der,
            client_email,
            expires_in,
            audience,
            issued: Mutex::new(HashMap::new()),
            failures: Mutex::new((0, 0)),
            counter: AtomicU64::new(0),
            rng: SystemRandom::new(),
        }
    }

    /// Makes the next `n` calls fail with `status`.
    pub fn fail_next(&self, n: u32, status: u16) {
        *self.failures.lock() = (n, status);
    }

    /// Forgets every issued token, so each one is now rejected.
    pub fn revoke_all(&self) {
        self.issued.lock().clear();
    }

    /// True for a token issued here that has not expired.
    pub fn is_valid(&self, access_token: &str) -> bool {
        self.issued
            .lock()
            .get(access_token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }

    /// Answers one `POST /token` with the form-encoded `body`.
    pub fn handle(&self, body: &[u8]) -> Reply {
        if let Some(status) = self.take_failure() {
            return scripted_failure(status);
        }
        let form = parse_form(body);
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        match field("grant_type") {
            Some(GRANT_TYPE) => {}
            Some(other) => {
                return oauth_error(
                    400,
                    "unsupported_grant_type",
                    &format!("Invalid grant_type: {other}"),
                )
            }
            None => {
                return oauth_error(
                    400,
                    "invalid_request",
                    "Missing required parameter: grant_type",
                )
            }
        }
        let Some(assertion) = field("assertion") else {
            return oauth_error(
                400,
                "invalid_request",
                "Missing required parameter: assertion",
            );
        };
        if let Err(why) = self.verify(assertion, unix_now()) {
            return oauth_error(400, "invalid_grant", why);
        }
        let token = self.issue();
        let answer = json!({
            "access_token": token,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
        });
        Reply::new(200, Some(OAUTH_JSON), answer.to_string())
    }

    fn take_failure(&self) -> Option<u16> {
        let mut failures = self.failures.lock();
        if failures.0 == 0 {
            return None;
        }
        failures.0 -= 1;
        Some(failures.1)
    }

    fn issue(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let mut random = [0u8; 12];
        // SystemRandom only fails if the OS has no randomness source; the
        // counter alone still makes the token unique then.
        let _ = self.rng.fill(&mut random);
        let token = format!("mock-{n}-{}", URL_SAFE_NO_PAD.encode(random));
        // A huge `expires_in` means "never expires", not a clock overflow.
        let now = Instant::now();
        let expiry = now
            .checked_add(Duration::from_secs(self.expires_in))
            .unwrap_or(now + Duration::from_secs(100 * 365 * 24 * 3600));
        self.issued.lock().insert(token.clone(), expiry);
        token
    }

    /// Checks a compact-serialised RS256 JWT (fcm-protocol.md §3.2).
    fn verify(&self, jwt: &str, now: i64) -> Result<(), &'static str> {
        let parts: Vec<&str> = jwt.split('.').collect();
        let [header_b64, claims_b64, signature_b64] = parts[..] else {
            return Err("Invalid JWT: expected three dot-separated parts.");
        };
        let header = decode_json(header_b64).ok_or("Invalid JWT: header is not base64url JSON.")?;
        let claims =
            decode_json(claims_b64).ok_or("Invalid JWT: claims are not base64url JSON.")?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| "Invalid JWT: signature is not base64url.")?;

        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err("Invalid JWT: alg must be RS256.");
        }
        match header.get("typ") {
            None => {}
            Some(typ) if typ.as_str() == Some("JWT") => {}
            Some(_) => return Err("Invalid JWT: typ must be JWT."),
        }

        // The signature covers the two encoded parts exactly as sent.
        let signed = &jwt[..header_b64.len() + 1 + claims_b64.len()];
        let key = self.public_key_der.as_deref().ok_or(NO_PUBLIC_KEY)?;
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| BAD_SIGNATURE)?;

        if let Some(email) = &self.client_email {
            if claims.get("iss").and_then(Value::as_str) != Some(email.as_str()) {
                return Err("Invalid JWT: iss is not the expected client_email.");
            }
        }
        let scopes = claims.get("scope").and_then(Value::as_str).unwrap_or("");
        if !scopes.split(' ').any(|s| s == FCM_SCOPE) {
            return Err("Invalid JWT: scope does not include firebase.messaging.");
        }
        if claims.get("aud").and_then(Value::as_str) != Some(self.audience.as_str()) {
            return Err("Invalid JWT: aud is not this token endpoint.");
        }
        let (Some(iat), Some(exp)) = (seconds(&claims, "iat"), seconds(&claims, "exp")) else {
            return Err(BAD_TIMES);
        };
        if iat > now + IAT_SKEW_SECS || exp <= now || exp - iat > MAX_LIFETIME_SECS {
            return Err(BAD_TIMES);
        }
        Ok(())
    }
}

/// The answer for a scripted failure: RFC 6749 §5.2 JSON. 5xx uses
/// `internal_failure`, one of the codes Google's auth libraries retry on.
fn scripted_failure(status: u16) -> Reply {
    match status {
        500..=599 => Reply::new(
            status,
            Some(OAUTH_JSON),
            json!({"error": "internal_failure"}).to_string(),
        ),
        401 => oauth_error(401, "invalid_client", "The OAuth client was not found."),
        400 => oauth_error(400, "invalid_grant", BAD_SIGNATURE),
        429 => oauth_error(429, "temporarily_unavailable", "Too many token requests."),
        _ => oauth_error(status, "invalid_request", "Scripted failure."),
    }
}

fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    let body = json!({"error": error, "error_description": description});
    Reply::new(status, Some(OAUTH_JSON), body.to_string())
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.is_object().then_some(value)
}

/// A NumericDate claim; JWT allows fractions, so floats are truncated.
fn seconds(claims: &Value, name: &str) -> Option<i64> {
    let v = claims.get(name)?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses an `application/x-www-form-urlencoded` body into name/value pairs.
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut halves = pair.splitn(2, |&b| b == b'=');
            let name = percent_decode(halves.next().unwrap_or_default());
            let value = percent_decode(halves.next().unwrap_or_default());
            (name, value)
        })
        .collect()
}

/// Form decoding: `+` is a space, `%XX` a byte; malformed escapes are kept.
fn percent_decode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let escaped = match input.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex_value(*hi).zip(hex_value(*lo)),
            _ => None,
        };
        if let Some((hi, lo)) = escaped {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(if input[i] == b'+' { b' ' } else { input[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let form = parse_form(b"grant_type=urn%3Aietf%3Aparams&a=b+c&bad=%zz%4&empty=&flag");
        assert_eq!(form[0], ("grant_type".into(), "urn:ietf:params".into()));
        assert_eq!(form[1], ("a".into(), "b c".into()));
        assert_eq!(form[2], ("bad".into(), "%zz%4".into()));
        assert_eq!(form[3], ("empty".into(), "".into()));
        assert_eq!(form[4], ("flag".into(), "".into()));
    }
}
