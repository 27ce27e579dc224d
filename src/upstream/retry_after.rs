//! `Retry-After`: delta-seconds or an HTTP date (RFC 9110 §10.2.3).

use std::time::{Duration, SystemTime};

/// The longest wait gocm honours; a larger value is clamped to it so that a
/// bogus header cannot park a message for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Parses a `Retry-After` value. `None` when absent or unparsable.
pub fn parse(value: Option<&str>) -> Option<Duration> {
    let value = value?.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let when = httpdate::parse_http_date(value).ok()?;
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Reads the header off a ureq response.
pub fn from_response<B>(resp: &ureq::http::Response<B>) -> Option<Duration> {
    parse(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_dates() {
        assert_eq!(parse(Some("7")), Some(Duration::from_secs(7)));
        assert_eq!(parse(Some(" 0 ")), Some(Duration::ZERO));
        assert_eq!(parse(Some("99999999")), Some(MAX_RETRY_AFTER));
        assert_eq!(parse(Some("soon")), None);
        assert_eq!(parse(None), None);
        let future = SystemTime::now() + Duration::from_secs(120);
        let got = parse(Some(&httpdate::fmt_http_date(future))).unwrap();
        assert!(got > Duration::from_secs(100) && got <= Duration::from_secs(120));
        assert_eq!(
            parse(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
    }
}
