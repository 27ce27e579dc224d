//! OAuth2 access tokens for FCM HTTP v1 from a Google service-account key
//! (the JWT bearer grant, RFC 7523), signed with ring directly.
//!
//! * [`ServiceAccount`] loads and checks the JSON key file and signs the JWT
//!   assertion (RS256). Its `Debug` never shows the key.
//! * [`TokenSource`] caches one access token for every worker thread. It is
//!   refreshed ahead of expiry by a single caller while the others keep using
//!   the still-valid token; only when no valid token exists do callers wait,
//!   for the one refresh in flight. A failed refresh is not retried before a
//!   doubling back-off has passed; meanwhile callers get an
//!   [`Outcome::Retry`] for their token, so messages wait in gocm's own
//!   retry schedule instead of a worker sleeping.
//!
//! Nothing here logs or formats the JWT, the access token or the key.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use parking_lot::{Condvar, Mutex, MutexGuard};
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::PrivateKeyDer;
use serde::Serialize;
use serde_json::Value;

use super::{read_body, retry_after, Outcome, Reason};
use crate::config::{Backoff, Secret};
use crate::error::Error;
use crate::metrics::Metrics;

/// The OAuth scope FCM HTTP v1 needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The grant type of the JWT bearer flow (RFC 7523).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime asked for in the JWT (`exp - iat`); Google's maximum.
pub const JWT_LIFETIME: Duration = Duration::from_secs(3600);
/// Refresh this long before expiry (or halfway through a shorter lifetime).
pub const REFRESH_EARLY: Duration = Duration::from_secs(5 * 60);
/// Stop using a token this long before expiry (or in its last tenth).
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// Assumed lifetime when the token endpoint does not say (`expires_in`).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// The most of a token-endpoint body that is read (and it is read to the end).
const BODY_LIMIT: u64 = 64 * 1024;

/// An RSA signing key; `Debug` prints nothing of it.
struct SigningKey(RsaKeyPair);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A checked Google service-account key: what the JWT bearer flow needs.
#[derive(Debug)]
pub struct ServiceAccount {
    /// `project_id` of the file; `None` only when the file lacks it (allowed
    /// when `--project-id` is given, see [`ServiceAccount::load`]).
    pub project_id: Option<String>,
    pub client_email: String,
    pub private_key_id: String,
    pub token_uri: String,
    key: SigningKey,
    rng: SystemRandom,
}

#[derive(Serialize)]
struct JwtHeader<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

#[derive(Serialize)]
struct JwtClaims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

impl ServiceAccount {
    /// Reads and checks the key file. Every failure is one
    /// [`Error::Credentials`] line naming the file and what is wrong with it,
    /// never its content. `project_id` may be missing from the file only when
    /// `project_override` (`--project-id`) is given.
    pub fn load(path: &Path, project_override: Option<&str>) -> Result<ServiceAccount, Error> {
        let fail = |msg: String| Error::Credentials(format!("{}: {msg}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| {
            fail(format!(
                "cannot read the service-account key file ({e}); check the path given \
                 to --credentials or GOOGLE_APPLICATION_CREDENTIALS"
            ))
        })?;
        let account = ServiceAccount::parse(&bytes).map_err(fail)?;
        if account.project_id.is_none() && project_override.is_none() {
            return Err(fail(
                "lacks the string field \"project_id\"; add it or pass --project-id".into(),
            ));
        }
        Ok(account)
    }

    /// Parses the JSON of a key file. The error says what is wrong without
    /// quoting the file.
    pub fn parse(json: &[u8]) -> Result<ServiceAccount, String> {
        // Parsed as a `Value` first so that no serde message can echo a field.
        let v: Value = serde_json::from_slice(json).map_err(|e| {
            format!(
                "is not a JSON service-account key (line {}, column {}): download a key \
                 (IAM > Service accounts > Keys) for the Firebase project",
                e.line(),
                e.column()
            )
        })?;
        let obj = v
            .as_object()
            .ok_or_else(|| "is not a JSON object; expected a service-account key".to_string())?;
        let field = |name: &str| -> Result<String, String> {
            match obj.get(name) {
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err(format!(
                    "lacks the string field {name:?}; is this a service-account key file?"
                )),
            }
        };
        let kind = field("type")?;
        if kind != "service_account" {
            return Err(format!(
                "has \"type\": {kind:?}, not \"service_account\"; gocm needs a service-account \
                 key (IAM > Service accounts > Keys), not user or other credentials"
            ));
        }
        let project_id = field("project_id").ok();
        let client_email = field("client_email")?;
        let private_key_id = field("private_key_id")?;
        let token_uri = field("token_uri")?;
        if !(token_uri.starts_with("https://") || token_uri.starts_with("http://")) {
            return Err("\"token_uri\" is not an http:// or https:// URL".into());
        }
        let pem = match obj.get("private_key") {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            _ => return Err("lacks the string field \"private_key\"".into()),
        };
        let key = parse_private_key(pem)?;
        Ok(ServiceAccount {
            project_id,
            client_email,
            private_key_id,
            token_uri,
            key: SigningKey(key),
            rng: SystemRandom::new(),
        })
    }

    /// The signed JWT assertion for the token request, issued at `iat`
    /// (seconds since the Unix epoch). Secret: never log it.
    pub fn jwt(&self, iat: u64) -> Result<String, String> {
        let header = JwtHeader {
            alg: "RS256",
            typ: "JWT",
            kid: &self.private_key_id,
        };
        let claims = JwtClaims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat,
            exp: iat + JWT_LIFETIME.as_secs(),
        };
        let input = format!(
            "{}.{}",
            B64.encode(to_json(&header)),
            B64.encode(to_json(&claims))
        );
        let mut sig = vec![0u8; self.key.0.public().modulus_len()];
        self.key
            .0
            .sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut sig)
            .map_err(|_| "cannot sign the JWT with the service-account key".to_string())?;
        Ok(format!("{input}.{}", B64.encode(sig)))
    }
}

/// Compact JSON of a plain struct of strings and integers (cannot fail).
fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// PEM (PKCS#8 `BEGIN PRIVATE KEY`, as Google issues, or PKCS#1
/// `BEGIN RSA PRIVATE KEY`) → an RSA key pair. Errors never quote the PEM.
fn parse_private_key(pem_text: &str) -> Result<RsaKeyPair, String> {
    // A key pasted through a shell sometimes keeps its `\n` escapes literally.
    let unescaped;
    let pem_text = if !pem_text.contains('\n') && pem_text.contains("\\n") {
        unescaped = pem_text.replace("\\n", "\n");
        unescaped.as_str()
    } else {
        pem_text
    };
    let der = PrivateKeyDer::from_pem_slice(pem_text.as_bytes()).map_err(|e| {
        let what = match e {
            pem::Error::NoItemsFound => "holds no PEM private key",
            _ => "holds a malformed PEM block",
        };
        format!("\"private_key\" {what}; expected -----BEGIN PRIVATE KEY----- (PKCS#8 RSA)")
    })?;
    let parsed = match &der {
        PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
        _ => {
            return Err(
                "\"private_key\" is not an RSA key; service-account keys are RSA (PKCS#8)".into(),
            )
        }
    };
    parsed.map_err(|e| {
        // `KeyRejected` is a fixed description such as "InvalidEncoding".
        format!("\"private_key\" is not a usable RSA signing key ({e})")
    })
}

/// A cached access token with the number of the refresh that got it, so a
/// 401 can tell whether someone already replaced the rejected token.
#[derive(Clone, Debug)]
pub struct AccessToken {
    secret: Arc<Secret>,
    generation: u64,
}

impl AccessToken {
    /// The bearer token. Secret: never log it.
    pub fn expose(&self) -> &str {
        self.secret.expose()
    }

    /// 1 for the first token, +1 per successful refresh.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// A token just obtained from the token endpoint.
pub struct Fresh {
    pub token: Secret,
    /// `expires_in`, counted from the start of the request.
    pub lifetime: Duration,
}

/// Why the token endpoint gave no token.
#[derive(Debug)]
pub struct FetchError {
    /// [`Reason::Auth`] when the endpoint refused the key (400/401/403,
    /// `invalid_grant`); [`Reason::Upstream`] for 5xx, 429, timeouts and
    /// connection errors.
    pub reason: Reason,
    pub detail: String,
    /// `Retry-After` of a 429 or 503.
    pub retry_after: Option<Duration>,
}

type Fetch = dyn Fn() -> Result<Fresh, FetchError> + Send + Sync;

/// The shared access-token cache; see the module docs.
pub struct TokenSource {
    fetch: Box<Fetch>,
    backoff: Backoff,
    /// Longest a caller waits for someone else's refresh.
    wait_limit: Duration,
    state: Mutex<State>,
    refreshed: Condvar,
    /// Where refreshes and refresh failures are counted.
    metrics: Arc<Metrics>,
}

struct Cached {
    token: AccessToken,
    /// From here on the next caller refreshes (single-flight).
    refresh_at: Instant,
    /// From here on the token is not handed out any more.
    stale_at: Instant,
}

#[derive(Default)]
struct State {
    current: Option<Cached>,
    generation: u64,
    refreshing: bool,
    /// Failed refreshes in a row.
    failures: u32,
    /// No refresh before this instant (back-off after a failure).
    not_before: Option<Instant>,
    last_failure: Option<(Reason, String)>,
}

impl TokenSource {
    /// A source that exchanges JWTs signed by `account` at its `token_uri`
    /// through `agent` (so the agent's timeouts bound every refresh).
    pub fn new(
        agent: ureq::Agent,
        account: ServiceAccount,
        backoff: Backoff,
        wait_limit: Duration,
    ) -> TokenSource {
        TokenSource::with_fetcher(
            Box::new(move || exchange(&agent, &account)),
            backoff,
            wait_limit,
        )
    }

    /// A source over any fetch function (tests).
    pub fn with_fetcher(fetch: Box<Fetch>, backoff: Backoff, wait_limit: Duration) -> TokenSource {
        TokenSource {
            fetch,
            backoff,
            wait_limit,
            state: Mutex::new(State::default()),
            refreshed: Condvar::new(),
            metrics: Arc::default(),
        }
    }

    /// Counts refreshes and refresh failures into `metrics`.
    pub fn counting_into(mut self, metrics: Arc<Metrics>) -> TokenSource {
        self.metrics = metrics;
        self
    }

    /// A valid access token, or the [`Outcome::Retry`] to report for the
    /// message when there is none (token endpoint failing or backing off).
    ///
    /// Never sleeps beyond one in-flight refresh (bounded by the HTTP
    /// timeouts and `wait_limit`).
    pub fn get(&self) -> Result<AccessToken, Outcome> {
        let deadline = Instant::now() + self.wait_limit;
        let mut st = self.state.lock();
        loop {
            let now = Instant::now();
            let may_refresh = !st.refreshing && st.not_before.is_none_or(|t| now >= t);
            if let Some(c) = st.current.as_ref().filter(|c| now < c.stale_at) {
                let token = c.token.clone();
                if now >= c.refresh_at && may_refresh {
                    // Refresh early; on failure the old token is still good.
                    return Ok(self.refresh(st).unwrap_or(token));
                }
                return Ok(token);
            }
            if st.refreshing {
                if self.refreshed.wait_until(&mut st, deadline).timed_out() && st.refreshing {
                    return Err(Outcome::retry(
                        None,
                        Reason::Upstream,
                        "timed out waiting for the OAuth access token",
                    ));
                }
                continue;
            }
            if !may_refresh {
                let wait = st.not_before.map(|t| t.saturating_duration_since(now));
                let (reason, detail) = st
                    .last_failure
                    .clone()
                    .unwrap_or((Reason::Upstream, "no OAuth access token".to_string()));
                return Err(Outcome::retry(
                    wait,
                    reason,
                    format!("{detail} (token refresh backing off)"),
                ));
            }
            return self.refresh(st);
        }
    }

    /// After FCM answered 401 UNAUTHENTICATED to `rejected`: drops it unless
    /// another caller already replaced it, then returns a newer token (one
    /// forced refresh, shared by every caller that saw the same rejection).
    pub fn refresh_after_rejection(&self, rejected: &AccessToken) -> Result<AccessToken, Outcome> {
        {
            let mut st = self.state.lock();
            if st
                .current
                .as_ref()
                .is_some_and(|c| c.token.generation == rejected.generation)
            {
                log::info!(
                    "v1: FCM refused OAuth access token #{} (expired or revoked); refreshing it",
                    rejected.generation
                );
                st.current = None;
            }
        }
        self.get()
    }

    /// For `/readyz`: `Err` while the token endpoint refuses the key and no
    /// valid token is left, so every message waits and in the end fails.
    /// An endpoint that is only down or slow does not count: messages wait
    /// in the queue and go out once it is back, so the instance should keep
    /// taking them.
    pub fn health(&self) -> Result<(), String> {
        let st = self.state.lock();
        let valid = st
            .current
            .as_ref()
            .is_some_and(|c| Instant::now() < c.stale_at);
        match &st.last_failure {
            Some((Reason::Auth, detail)) if !valid => Err(detail.clone()),
            _ => Ok(()),
        }
    }

    /// How many token requests succeeded so far.
    pub fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    /// Runs the one refresh (the caller checked nobody else is), with the
    /// lock released during the request.
    fn refresh(&self, mut st: MutexGuard<'_, State>) -> Result<AccessToken, Outcome> {
        st.refreshing = true;
        let started = Instant::now();
        let result = MutexGuard::unlocked(&mut st, || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.fetch)()))
                .unwrap_or_else(|_| {
                    Err(FetchError {
                        reason: Reason::Upstream,
                        detail: "the token refresh panicked".into(),
                        retry_after: None,
                    })
                })
        });
        st.refreshing = false;
        self.refreshed.notify_all();
        match result {
            Ok(fresh) => {
                self.metrics.oauth_refreshed();
                st.generation += 1;
                st.failures = 0;
                st.not_before = None;
                st.last_failure = None;
                let token = AccessToken {
                    secret: Arc::new(fresh.token),
                    generation: st.generation,
                };
                let life = fresh.lifetime;
                let expires_at = started + life;
                st.current = Some(Cached {
                    token: token.clone(),
                    refresh_at: expires_at - REFRESH_EARLY.min(life / 2),
                    stale_at: expires_at - EXPIRY_MARGIN.min(life / 10),
                });
                log::debug!(
                    "v1: new OAuth access token #{} valid for {} s",
                    st.generation,
                    life.as_secs()
                );
                Ok(token)
            }
            Err(e) => {
                self.metrics.oauth_refresh_failed(e.reason);
                st.failures += 1;
                let backoff = self
                    .backoff
                    .initial
                    .saturating_mul(1u32 << (st.failures - 1).min(20))
                    .min(self.backoff.max);
                let wait = backoff
                    .max(e.retry_after.unwrap_or_default())
                    .min(self.backoff.max.max(backoff));
                let now = Instant::now();
                st.not_before = Some(now + wait);
                let still_valid = st.current.as_ref().is_some_and(|c| now < c.stale_at);
                let msg = format!(
                    "v1: OAuth token refresh failed ({} in a row): {}; next try in {} ms{}",
                    st.failures,
                    e.detail,
                    wait.as_millis(),
                    if still_valid {
                        ", the current token is still valid"
                    } else {
                        ", messages wait for it (each until its --retries are spent)"
                    }
                );
                if e.reason == Reason::Auth {
                    log::error!("{msg}");
                } else {
                    log::warn!("{msg}");
                }
                st.last_failure = Some((e.reason, e.detail.clone()));
                Err(Outcome::retry(Some(wait), e.reason, e.detail))
            }
        }
    }
}

/// One JWT-bearer exchange at the key's `token_uri`.
fn exchange(agent: &ureq::Agent, account: &ServiceAccount) -> Result<Fresh, FetchError> {
    let fail = |reason, detail: String, retry_after| FetchError {
        reason,
        detail,
        retry_after,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let jwt = account.jwt(now).map_err(|e| fail(Reason::Auth, e, None))?;
    let uri = &account.token_uri;
    let mut resp = match agent
        .post(uri)
        .send_form([("grant_type", GRANT_TYPE), ("assertion", jwt.as_str())])
    {
        Ok(resp) => resp,
        Err(e) => {
            return Err(fail(
                Reason::Upstream,
                format!("OAuth token endpoint {uri}: {e}"),
                None,
            ))
        }
    };
    let status = resp.status().as_u16();
    let retry_after = retry_after::from_response(&resp);
    let body = match read_body(resp.body_mut(), BODY_LIMIT) {
        Ok(b) => b,
        Err(e) => {
            return Err(fail(
                Reason::Upstream,
                format!("OAuth token endpoint {uri}: HTTP {status}, unreadable body: {e}"),
                None,
            ))
        }
    };
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    let text =
        |name: &str| -> Option<String> { json.as_ref()?.get(name)?.as_str().map(|s| clip(s, 200)) };
    match status {
        200..=299 => {
            let token = json
                .as_ref()
                .and_then(|j| j.get("access_token"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    fail(
                        Reason::Upstream,
                        format!(
                            "OAuth token endpoint {uri}: HTTP {status} without an access_token"
                        ),
                        None,
                    )
                })?;
            let lifetime = match json.as_ref().and_then(|j| j.get("expires_in")) {
                Some(Value::Number(n)) => n.as_u64().map(Duration::from_secs),
                Some(Value::String(s)) => s.trim().parse().ok().map(Duration::from_secs),
                _ => None,
            }
            .unwrap_or(DEFAULT_LIFETIME);
            Ok(Fresh {
                token: Secret::new(token),
                lifetime,
            })
        }
        408 | 429 | 500..=599 => Err(fail(
            Reason::Upstream,
            format!(
                "OAuth token endpoint {uri}: HTTP {status}{}",
                text("error").map(|e| format!(" {e}")).unwrap_or_default()
            ),
            retry_after,
        )),
        _ => {
            let error = text("error").unwrap_or_else(|| "no error code".into());
            let description = text("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            let hint = if error == "invalid_grant" {
                " (is the key deleted or rotated, or the clock wrong?)"
            } else {
                ""
            };
            Err(fail(
                Reason::Auth,
                format!(
                    "OAuth token endpoint {uri} refused the service-account key: HTTP {status} \
                     {error}{description}{hint}"
                ),
                None,
            ))
        }
    }
}

/// At most `max` characters of `s`, on one line.
pub(crate) fn clip(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::thread;

    const FIXTURE: &str = include_str!("../../tests/fixtures/service-account.json");
    const PUBLIC_KEY_DER: &[u8] = include_bytes!("../../tests/fixtures/service-account.pub.der");

    fn fixture() -> serde_json::Map<String, Value> {
        serde_json::from_str(FIXTURE).unwrap()
    }

    fn account() -> ServiceAccount {
        ServiceAccount::parse(FIXTURE.as_bytes()).unwrap()
    }

    /// Lines of the PEM body: none may ever show up in an error or a Debug.
    fn key_material() -> Vec<String> {
        let pem = fixture()["private_key"].as_str().unwrap().to_string();
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
            .map(|l| l[..16].to_string())
            .collect()
    }

    fn assert_no_key_material(text: &str) {
        for chunk in key_material() {
            assert!(!text.contains(&chunk), "key material in {text:?}");
        }
        assert!(!text.contains("MII"), "key material in {text:?}");
    }

    fn b64_json(part: &str) -> Value {
        serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn fixture_loads() {
        let a = account();
        assert_eq!(a.project_id.as_deref(), Some("test-project"));
        assert_eq!(
            a.client_email,
            "gocm-test@test-project.iam.gserviceaccount.com"
        );
        assert_eq!(a.token_uri, "http://127.0.0.1:1/token");
        assert_no_key_material(&format!("{a:?}"));
    }

    #[test]
    fn jwt_is_rs256_with_the_right_claims_and_a_valid_signature() {
        let a = account();
        let iat = 1_700_000_000;
        let jwt = a.jwt(iat).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!jwt.contains('='), "base64url without padding");
        assert_eq!(
            b64_json(parts[0]),
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": a.private_key_id})
        );
        assert_eq!(
            b64_json(parts[1]),
            serde_json::json!({
                "iss": "gocm-test@test-project.iam.gserviceaccount.com",
                "scope": "https://www.googleapis.com/auth/firebase.messaging",
                "aud": "http://127.0.0.1:1/token",
                "iat": iat,
                "exp": iat + 3600,
            })
        );
        let sig = B64.decode(parts[2]).unwrap();
        assert_eq!(sig.len(), 256, "RSA-2048");
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            PUBLIC_KEY_DER,
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(signed.as_bytes(), &sig).unwrap();
        // A changed claim does not verify.
        let forged = format!("{}.{}x", parts[0], parts[1]);
        assert!(public.verify(forged.as_bytes(), &sig).is_err());
    }

    fn load_err(path: &Path, project: Option<&str>) -> String {
        match ServiceAccount::load(path, project) {
            Err(e @ Error::Credentials(_)) => {
                let text = e.to_string();
                assert!(!text.contains('\n'), "one line: {text:?}");
                assert_no_key_material(&text);
                text
            }
            Err(other) => panic!("not a credentials error: {other:?}"),
            Ok(_) => panic!("loaded"),
        }
    }

    fn temp_file(name: &str, content: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "gocm-oauth-{}-{name}-{}.json",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&path, content).unwrap();
        path
    }

    fn with_field(name: &str, value: Option<Value>) -> Vec<u8> {
        let mut m = fixture();
        match value {
            Some(v) => m.insert(name.into(), v),
            None => m.remove(name),
        };
        serde_json::to_vec_pretty(&m).unwrap()
    }

    #[test]
    fn unusable_files_fail_with_one_clear_line() {
        let missing = std::env::temp_dir().join("gocm-no-such-key-file.json");
        let e = load_err(&missing, None);
        assert!(
            e.contains("cannot read") && e.contains("gocm-no-such-key-file"),
            "{e}"
        );

        let p = temp_file("notjson", b"-----BEGIN PRIVATE KEY-----\nMIIEvAIBADAN\n");
        let e = load_err(&p, None);
        assert!(e.contains("is not a JSON"), "{e}");
        std::fs::remove_file(p).unwrap();

        for field in [
            "client_email",
            "private_key",
            "private_key_id",
            "token_uri",
            "type",
        ] {
            let p = temp_file("nofield", &with_field(field, None));
            let e = load_err(&p, None);
            assert!(e.contains(&format!("\"{field}\"")), "{field}: {e}");
            std::fs::remove_file(p).unwrap();
        }

        let p = temp_file("user", &with_field("type", Some("authorized_user".into())));
        let e = load_err(&p, None);
        assert!(e.contains("authorized_user"), "{e}");
        std::fs::remove_file(p).unwrap();

        // project_id may be missing only when --project-id is given.
        let p = temp_file("noproject", &with_field("project_id", None));
        let e = load_err(&p, None);
        assert!(
            e.contains("project_id") && e.contains("--project-id"),
            "{e}"
        );
        assert!(ServiceAccount::load(&p, Some("other")).is_ok());
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn bad_keys_are_refused_without_quoting_them() {
        let pem = fixture()["private_key"].as_str().unwrap().to_string();
        let mut lines: Vec<&str> = pem.lines().collect();
        // Truncated body: valid PEM armour, broken DER.
        let n = lines.len();
        lines.drain(3..n - 2);
        let truncated = lines.join("\n");
        // A flipped character inside the base64: still PEM, not a key.
        let flipped = pem.replacen("MII", "MIJ", 1);
        let cases = [
            ("not pem", "definitely not a key".to_string()),
            ("truncated", truncated),
            ("flipped", flipped),
            ("no end", pem.replace("-----END PRIVATE KEY-----", "")),
            (
                "ec",
                "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n-----END EC PRIVATE KEY-----\n".to_string(),
            ),
        ];
        for (what, key) in cases {
            let p = temp_file("badkey", &with_field("private_key", Some(key.into())));
            let e = load_err(&p, None);
            assert!(e.contains("private_key"), "{what}: {e}");
            std::fs::remove_file(p).unwrap();
        }
    }

    #[test]
    fn literal_backslash_n_in_the_key_is_accepted() {
        let pem = fixture()["private_key"]
            .as_str()
            .unwrap()
            .replace('\n', "\\n");
        let json = with_field("private_key", Some(pem.into()));
        assert!(ServiceAccount::parse(&json).is_ok());
    }

    // -- TokenSource --------------------------------------------------------

    const BACKOFF: Backoff = Backoff {
        initial: Duration::from_millis(40),
        max: Duration::from_millis(160),
    };

    /// A fetcher that counts calls, sleeps `delay`, and answers with what
    /// `script(call_number)` says (call numbers start at 1).
    fn source<F>(delay: Duration, script: F) -> (Arc<TokenSource>, Arc<AtomicU32>)
    where
        F: Fn(u32) -> Result<Fresh, FetchError> + Send + Sync + 'static,
    {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let fetch = Box::new(move || {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            thread::sleep(delay);
            script(n)
        });
        let src = TokenSource::with_fetcher(fetch, BACKOFF, Duration::from_secs(5));
        (Arc::new(src), calls)
    }

    fn ok(lifetime: Duration) -> impl Fn(u32) -> Result<Fresh, FetchError> {
        move |n| {
            Ok(Fresh {
                token: Secret::new(format!("tok-{n}")),
                lifetime,
            })
        }
    }

    fn fail(reason: Reason) -> FetchError {
        FetchError {
            reason,
            detail: "token endpoint down".into(),
            retry_after: None,
        }
    }

    #[test]
    fn one_token_is_cached_for_everyone() {
        let (src, calls) = source(Duration::ZERO, ok(Duration::from_secs(3600)));
        for _ in 0..100 {
            assert_eq!(src.get().unwrap().expose(), "tok-1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_no_key_material(&format!("{:?}", src.get().unwrap()));
        assert!(!format!("{:?}", src.get().unwrap()).contains("tok-1"));
    }

    #[test]
    fn without_a_token_callers_wait_for_the_single_refresh() {
        let (src, calls) = source(Duration::from_millis(150), ok(Duration::from_secs(3600)));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let src = src.clone();
                thread::spawn(move || src.get().unwrap().expose().to_string())
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), "tok-1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn early_refresh_is_single_flight_and_does_not_block_the_others() {
        // 2 s lifetime: refresh from 1 s on, stale at 1.8 s. The refresh
        // takes 300 ms; nobody else may wait for it.
        let slow = Duration::from_millis(300);
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let fetch = Box::new(move || {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            if n > 1 {
                thread::sleep(slow);
            }
            Ok(Fresh {
                token: Secret::new(format!("tok-{n}")),
                lifetime: Duration::from_secs(2),
            })
        });
        let src = Arc::new(TokenSource::with_fetcher(
            fetch,
            BACKOFF,
            Duration::from_secs(5),
        ));
        assert_eq!(src.get().unwrap().expose(), "tok-1");
        thread::sleep(Duration::from_millis(1050));
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (src, barrier) = (src.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    let t0 = Instant::now();
                    let tok = src.get().unwrap().expose().to_string();
                    (tok, t0.elapsed())
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one early refresh");
        let waited: Vec<_> = results.iter().filter(|(_, took)| *took >= slow).collect();
        assert_eq!(waited.len(), 1, "only the refresher waits: {results:?}");
        assert_eq!(waited[0].0, "tok-2");
        assert!(
            results.iter().any(|(t, _)| t == "tok-1"),
            "the others kept the valid token: {results:?}"
        );
        assert_eq!(src.get().unwrap().expose(), "tok-2");
    }

    #[test]
    fn failures_back_off_and_answer_retry_without_calling_again() {
        let (src, calls) = source(Duration::ZERO, |n| match n {
            1..=3 => Err(fail(Reason::Upstream)),
            _ => ok(Duration::from_secs(3600))(n),
        });
        let retry_after = |r: Result<AccessToken, Outcome>| match r {
            Err(Outcome::Retry {
                after,
                reason,
                detail,
            }) => {
                assert_eq!(reason, Reason::Upstream);
                assert!(detail.contains("token endpoint down"), "{detail}");
                after.unwrap()
            }
            other => panic!("{other:?}"),
        };
        let first = retry_after(src.get());
        assert_eq!(first, BACKOFF.initial);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Within the back-off: no new request, still a Retry.
        for _ in 0..20 {
            assert!(retry_after(src.get()) <= first);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        thread::sleep(first);
        assert_eq!(retry_after(src.get()), BACKOFF.initial * 2, "doubles");
        thread::sleep(BACKOFF.initial * 2);
        assert_eq!(retry_after(src.get()), BACKOFF.initial * 4);
        thread::sleep(BACKOFF.initial * 4);
        assert_eq!(src.get().unwrap().expose(), "tok-4");
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn backoff_is_capped_and_auth_failures_say_auth() {
        let (src, _) = source(Duration::ZERO, |_| Err(fail(Reason::Auth)));
        let mut last = Duration::ZERO;
        for _ in 0..5 {
            match src.get() {
                Err(Outcome::Retry {
                    after: Some(after),
                    reason: Reason::Auth,
                    ..
                }) => last = after,
                other => panic!("{other:?}"),
            }
            thread::sleep(last);
        }
        assert_eq!(last, BACKOFF.max);
    }

    /// Calls `get` until the fetcher has run `n` times (back-offs pass).
    fn get_until_call(
        src: &TokenSource,
        calls: &AtomicU32,
        n: u32,
    ) -> Result<AccessToken, Outcome> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let got = src.get();
            if calls.load(Ordering::SeqCst) >= n {
                return got;
            }
            assert!(std::time::Instant::now() < deadline, "no call {n}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_refused_key_is_unhealthy_until_a_refresh_succeeds() {
        let (src, calls) = source(Duration::ZERO, |n| match n {
            1 => Err(fail(Reason::Upstream)),
            2 => Err(FetchError {
                reason: Reason::Auth,
                detail: "HTTP 400 invalid_grant".into(),
                retry_after: None,
            }),
            _ => ok(Duration::from_secs(3600))(n),
        });
        assert!(get_until_call(&src, &calls, 1).is_err());
        assert_eq!(
            src.health(),
            Ok(()),
            "an endpoint that is down is no reason"
        );
        assert!(get_until_call(&src, &calls, 2).is_err());
        assert_eq!(src.health(), Err("HTTP 400 invalid_grant".to_string()));
        assert!(get_until_call(&src, &calls, 3).is_ok());
        assert_eq!(src.health(), Ok(()));
    }

    #[test]
    fn a_failed_early_refresh_keeps_the_valid_token() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let fetch = Box::new(move || match c.fetch_add(1, Ordering::SeqCst) + 1 {
            1 => ok(Duration::from_secs(2))(1),
            _ => Err(fail(Reason::Upstream)),
        });
        // A long back-off, so the loop below surely runs inside it.
        let backoff = Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(10),
        };
        let src = TokenSource::with_fetcher(fetch, backoff, Duration::from_secs(5));
        assert_eq!(src.get().unwrap().expose(), "tok-1");
        thread::sleep(Duration::from_millis(1050));
        // The refresher fails but still gets the valid token; the others do
        // not try again during the back-off.
        for _ in 0..10 {
            assert_eq!(src.get().unwrap().expose(), "tok-1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_rejected_token_is_refreshed_once_for_all_callers() {
        let (src, calls) = source(Duration::from_millis(100), ok(Duration::from_secs(3600)));
        let rejected = src.get().unwrap();
        assert_eq!(rejected.generation(), 1);
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (src, rejected) = (src.clone(), rejected.clone());
                thread::spawn(move || src.refresh_after_rejection(&rejected).unwrap())
            })
            .collect();
        for t in threads {
            let t = t.join().unwrap();
            assert_eq!((t.expose(), t.generation()), ("tok-2", 2));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // A late report about the old token reuses the new one.
        assert_eq!(
            src.refresh_after_rejection(&rejected).unwrap().expose(),
            "tok-2"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_waiter_gives_up_after_the_wait_limit() {
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = started.clone();
        let fetch = Box::new(move || {
            flag.store(true, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(400));
            ok(Duration::from_secs(3600))(1)
        });
        let src = Arc::new(TokenSource::with_fetcher(
            fetch,
            BACKOFF,
            Duration::from_millis(100),
        ));
        let s = src.clone();
        let refresher = thread::spawn(move || s.get().map(|t| t.generation()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !started.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the refresh never started");
            thread::sleep(Duration::from_millis(1));
        }
        let t0 = Instant::now();
        match src.get() {
            Err(Outcome::Retry { reason, .. }) => assert_eq!(reason, Reason::Upstream),
            other => panic!("{other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_millis(350));
        assert_eq!(refresher.join().unwrap().unwrap(), 1);
    }

    #[test]
    fn a_panicking_fetch_does_not_wedge_the_cache() {
        let (src, _) = source(Duration::ZERO, |n| {
            if n == 1 {
                panic!("boom");
            }
            ok(Duration::from_secs(3600))(n)
        });
        assert!(matches!(src.get(), Err(Outcome::Retry { .. })));
        thread::sleep(BACKOFF.initial);
        assert_eq!(src.get().unwrap().expose(), "tok-2");
    }

    #[test]
    fn clip_shortens_and_flattens() {
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(clip("abcdef", 3), "abc…");
    }
}
