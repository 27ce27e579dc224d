//! The OAuth2 token endpoint: JWT checks, issued tokens, expiry, revocation
//! and scripted failures.

mod common;

use std::time::Duration;

use common::{
    access_token, good_claims, now, sign, sign_with_header, token_request, v1_token, wait_until,
    GRANT_TYPE,
};
use mock_fcm::{MockFcm, MockOptions};
use serde_json::{json, Value};

fn start() -> MockFcm {
    MockFcm::start(MockOptions::test_service_account())
}

/// Asserts a 400 invalid_grant, returning its description.
fn rejected(mock: &MockFcm, jwt: &str) -> String {
    let answer = token_request(mock, GRANT_TYPE, jwt);
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.content_type, "application/json; charset=utf-8");
    let body = answer.json();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    body["error_description"].as_str().unwrap().to_string()
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

#[test]
fn a_good_jwt_gets_an_access_token() {
    let mock = start();
    let answer = token_request(&mock, GRANT_TYPE, &sign(&good_claims(&mock)));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.content_type, "application/json; charset=utf-8");
    let body = answer.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("mock-"));
    assert_eq!(v1_token(&mock, token, "a").status, 200);
    assert_eq!(mock.token_requests(), 1);
}

#[test]
fn minimal_header_and_several_scopes_are_fine() {
    // node-gtoken sends only {"alg":"RS256"}; firebase-admin asks for several scopes.
    let mock = start();
    let claims = with(
        good_claims(&mock),
        "scope",
        json!("https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/firebase.messaging"),
    );
    let jwt = sign_with_header(&json!({"alg": "RS256"}), &claims);
    assert_eq!(token_request(&mock, GRANT_TYPE, &jwt).status, 200);
}

#[test]
fn tokens_are_distinct() {
    let mock = start();
    assert_ne!(access_token(&mock), access_token(&mock));
}

#[test]
fn bad_signature_is_rejected() {
    let mock = start();
    let claims = good_claims(&mock);
    let jwt = sign(&claims);
    // Re-use a valid signature over different claims.
    let (_, signature) = jwt.rsplit_once('.').unwrap();
    let earlier = claims["iat"].as_i64().unwrap() - 5;
    let other = sign(&with(claims, "iat", json!(earlier)));
    let (other_input, _) = other.rsplit_once('.').unwrap();
    assert_eq!(
        rejected(&mock, &format!("{other_input}.{signature}")),
        "Invalid JWT Signature."
    );
    // A corrupted signature.
    let mut bytes = jwt.into_bytes();
    let last = bytes.len() - 3;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        rejected(&mock, &String::from_utf8(bytes).unwrap()),
        "Invalid JWT Signature."
    );
}

#[test]
fn key_of_another_mock_rejects_everything() {
    let mock = MockFcm::start(MockOptions {
        public_key_der: Some(vec![0x30, 0x03, 0x02, 0x01, 0x01]),
        ..MockOptions::test_service_account()
    });
    assert_eq!(
        rejected(&mock, &sign(&good_claims(&mock))),
        "Invalid JWT Signature."
    );
}

#[test]
fn wrong_audience_issuer_or_scope_is_rejected() {
    let mock = start();
    let claims = good_claims(&mock);
    rejected(
        &mock,
        &sign(&with(
            claims.clone(),
            "aud",
            json!("https://oauth2.googleapis.com/token"),
        )),
    );
    rejected(
        &mock,
        &sign(&with(
            claims.clone(),
            "iss",
            json!("someone@else.iam.gserviceaccount.com"),
        )),
    );
    rejected(
        &mock,
        &sign(&with(
            claims.clone(),
            "scope",
            json!("https://www.googleapis.com/auth/cloud-platform"),
        )),
    );
    let mut no_scope = claims;
    no_scope.as_object_mut().unwrap().remove("scope");
    rejected(&mock, &sign(&no_scope));
}

#[test]
fn bad_times_are_rejected_with_googles_wording() {
    let mock = start();
    let now = now();
    let short_lived =
        "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
                       timeframe. Check your iat and exp values in the JWT claim.";
    let claims = good_claims(&mock);
    // Expired.
    let expired = with(
        with(claims.clone(), "iat", json!(now - 4000)),
        "exp",
        json!(now - 400),
    );
    assert_eq!(rejected(&mock, &sign(&expired)), short_lived);
    // Lives longer than an hour.
    assert_eq!(
        rejected(
            &mock,
            &sign(&with(claims.clone(), "exp", json!(now + 3601)))
        ),
        short_lived
    );
    // Issued in the future.
    let future = with(
        with(claims.clone(), "iat", json!(now + 120)),
        "exp",
        json!(now + 1000),
    );
    assert_eq!(rejected(&mock, &sign(&future)), short_lived);
    // Missing iat.
    let mut no_iat = claims.clone();
    no_iat.as_object_mut().unwrap().remove("iat");
    assert_eq!(rejected(&mock, &sign(&no_iat)), short_lived);
    // Go back-dates iat by 10 s: still fine.
    let go_style = with(
        with(claims, "iat", json!(now - 10)),
        "exp",
        json!(now - 10 + 3600),
    );
    assert_eq!(
        token_request(&mock, GRANT_TYPE, &sign(&go_style)).status,
        200
    );
}

#[test]
fn malformed_jwts_and_headers_are_rejected() {
    let mock = start();
    let claims = good_claims(&mock);
    rejected(&mock, "not-a-jwt");
    rejected(&mock, "a.b.c.d");
    rejected(
        &mock,
        &sign_with_header(&json!({"alg": "HS256", "typ": "JWT"}), &claims),
    );
    rejected(
        &mock,
        &sign_with_header(&json!({"alg": "RS256", "typ": "JWS"}), &claims),
    );
    // Padding is not base64url-without-padding.
    let jwt = sign(&claims);
    rejected(&mock, &format!("{jwt}=="));
}

#[test]
fn grant_type_and_assertion_are_required() {
    let mock = start();
    let jwt = sign(&good_claims(&mock));
    let answer = token_request(&mock, "client_credentials", &jwt);
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"], "unsupported_grant_type");
    let answer = common::post_raw(&common::agent(), &mock.token_uri(), None, "grant_type=x");
    assert_eq!(answer.status, 400);
    assert_eq!(mock.token_requests(), 2);
}

#[test]
fn scripted_failures_then_success() {
    let mock = start();
    let jwt = sign(&good_claims(&mock));
    mock.fail_token_requests(2, 503);
    for _ in 0..2 {
        let answer = token_request(&mock, GRANT_TYPE, &jwt);
        assert_eq!(answer.status, 503);
        assert_eq!(answer.json(), json!({"error": "internal_failure"}));
    }
    assert_eq!(token_request(&mock, GRANT_TYPE, &jwt).status, 200);

    mock.fail_token_requests(1, 401);
    let answer = token_request(&mock, GRANT_TYPE, &jwt);
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["error"], "invalid_client");
    mock.fail_token_requests(1, 400);
    assert_eq!(
        token_request(&mock, GRANT_TYPE, &jwt).json()["error"],
        "invalid_grant"
    );
    assert_eq!(mock.token_requests(), 5);
}

#[test]
fn issued_tokens_expire() {
    // expires_in 0: expired the moment it is issued.
    let mock = MockFcm::start(MockOptions {
        expires_in: 0,
        ..MockOptions::test_service_account()
    });
    let token = access_token(&mock);
    assert_eq!(v1_token(&mock, &token, "a").status, 401);

    // expires_in 2: valid now, invalid a little later.
    let mock = MockFcm::start(MockOptions {
        expires_in: 2,
        ..MockOptions::test_service_account()
    });
    let token = access_token(&mock);
    assert_eq!(v1_token(&mock, &token, "b").status, 200);
    wait_until(
        Duration::from_secs(10),
        "the access token to expire",
        || v1_token(&mock, &token, "b").status == 401,
    );
}

#[test]
fn revoked_tokens_get_generic_401_and_new_ones_work() {
    let mock = start();
    let old = access_token(&mock);
    assert_eq!(v1_token(&mock, &old, "a").status, 200);
    mock.revoke_access_tokens();
    let answer = v1_token(&mock, &old, "a");
    assert_eq!(answer.status, 401);
    let body = answer.json();
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert!(body["error"].get("details").is_none());
    let new = access_token(&mock);
    assert_eq!(v1_token(&mock, &new, "a").status, 200);
    assert_eq!(mock.received("a"), 3);
    assert_eq!(mock.delivered("a"), 2);
}
