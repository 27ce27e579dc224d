//! API authentication: one shared bearer token (`--auth-token`,
//! `--auth-token-file` or `GOCM_AUTH_TOKEN`).
//!
//! Only a SHA-256 digest of the token is kept, and a presented token is
//! hashed and compared with `subtle`'s constant-time equality: the time an
//! answer takes says nothing about how much of a guess was right, not even
//! its length. Error messages never echo what the client sent.

use ring::digest::{digest, SHA256};
use subtle::ConstantTimeEq;

use crate::api::ApiError;
use crate::config::Secret;

/// The check every route but `/healthz` goes through.
#[derive(Default)]
pub struct Auth {
    /// SHA-256 of the expected token; `None` when the API is open.
    expected: Option<[u8; 32]>,
}

impl Auth {
    pub fn new(token: Option<&Secret>) -> Auth {
        Auth {
            expected: token.map(|t| sha256(t.expose().as_bytes())),
        }
    }

    pub fn enabled(&self) -> bool {
        self.expected.is_some()
    }

    /// Checks the request's `Authorization` header value (the first one, if
    /// the client sent several). A 401 names the problem without the token.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), ApiError> {
        let Some(expected) = &self.expected else {
            return Ok(());
        };
        let value = authorization.ok_or_else(|| {
            ApiError::new(
                401,
                "missing Authorization header: send `Authorization: Bearer <token>` \
                 (the token gocm was started with: --auth-token-file, GOCM_AUTH_TOKEN \
                 or --auth-token)",
            )
        })?;
        let value = value.trim();
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::new(
                401,
                "the Authorization header must use the Bearer scheme: \
                 `Authorization: Bearer <token>`",
            ));
        }
        let presented = sha256(token.trim_start_matches(' ').as_bytes());
        if bool::from(presented.ct_eq(expected)) {
            Ok(())
        } else {
            Err(ApiError::new(401, "wrong bearer token"))
        }
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    digest(&SHA256, bytes)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_when_no_token_is_set() {
        assert!(Auth::new(None).check(None).is_ok());
        assert!(!Auth::new(None).enabled());
    }

    #[test]
    fn bearer_token_is_required_and_compared() {
        let a = Auth::new(Some(&Secret::new("s3cret-token")));
        assert!(a.check(Some("Bearer s3cret-token")).is_ok());
        assert!(a.check(Some("bearer  s3cret-token ")).is_ok());
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("Bearer s3cret-toke"),
            Some("Bearer s3cret-token2"),
            Some("Basic s3cret-token"),
            Some("s3cret-token"),
        ] {
            let e = a.check(bad).unwrap_err();
            assert_eq!(e.status, 401, "{bad:?}");
            assert!(!e.message.contains("s3cret"), "{}", e.message);
        }
    }
}
