//! Per-token behaviour, chosen by the token's name.
//!
//! Tests steer the mock by naming tokens (`notreg-a`, `unavail2-b`, ...)
//! rather than by configuring it, so one request can mix outcomes and many
//! tests can share a mock without interfering. The same rules serve the legacy
//! protocol (an entry in `results`) and v1 (the whole answer); `legacy.rs` and
//! `v1.rs` turn an [`Outcome`] into their wire format.

use std::time::Duration;

/// What a token's name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Any other name: delivered.
    Deliver,
    /// `canonical-<x>`: delivered; the legacy answer names `new-<x>` as the
    /// canonical token (v1 has no canonical ids, so v1 just delivers).
    Canonical(String),
    /// `notreg-*`: the token is no longer registered.
    NotRegistered,
    /// `invalid-*`: the token is malformed.
    Invalid,
    /// `mismatch-*`: the token belongs to another sender.
    Mismatch,
    /// `thirdparty-*`: APNs / web-push credentials are broken.
    ThirdParty,
    /// `unavailN-*`: unavailable the first N times, then delivered.
    Unavailable(u32),
    /// `internalN-*`: internal error the first N times, then delivered.
    Internal(u32),
    /// `quotaN-*`: rate limited the first N times, then delivered.
    Quota(u32),
    /// `slowN-*`: delivered, N ms later than other answers.
    Slow(Duration),
}

/// How the mock answers one token this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Delivered; `canonical` is the legacy `registration_id` to report.
    Delivered {
        canonical: Option<String>,
    },
    NotRegistered,
    InvalidRegistration,
    MismatchSenderId,
    ThirdPartyAuth,
    Unavailable,
    Internal,
    QuotaExceeded,
}

impl Outcome {
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered { .. })
    }
}

impl Rule {
    /// Reads the rule from a token's name. Prefixes are case-sensitive; a
    /// counted prefix without digits (`unavail-x`) is just an ordinary token.
    pub fn for_token(token: &str) -> Rule {
        if let Some(x) = token.strip_prefix("canonical-") {
            return Rule::Canonical(format!("new-{x}"));
        }
        if token.starts_with("notreg-") {
            return Rule::NotRegistered;
        }
        if token.starts_with("invalid-") {
            return Rule::Invalid;
        }
        if token.starts_with("mismatch-") {
            return Rule::Mismatch;
        }
        if token.starts_with("thirdparty-") {
            return Rule::ThirdParty;
        }
        if let Some(n) = counted(token, "unavail") {
            return Rule::Unavailable(saturate(n));
        }
        if let Some(n) = counted(token, "internal") {
            return Rule::Internal(saturate(n));
        }
        if let Some(n) = counted(token, "quota") {
            return Rule::Quota(saturate(n));
        }
        if let Some(n) = counted(token, "slow") {
            return Rule::Slow(Duration::from_millis(n));
        }
        Rule::Deliver
    }

    /// The outcome when the mock has already judged this token `earlier`
    /// times (so the Nth-receipt rules can fail N times, then deliver).
    pub fn outcome(&self, earlier: u32) -> Outcome {
        let delivered = Outcome::Delivered { canonical: None };
        match self {
            Rule::Deliver | Rule::Slow(_) => delivered,
            Rule::Canonical(new) => Outcome::Delivered {
                canonical: Some(new.clone()),
            },
            Rule::NotRegistered => Outcome::NotRegistered,
            Rule::Invalid => Outcome::InvalidRegistration,
            Rule::Mismatch => Outcome::MismatchSenderId,
            Rule::ThirdParty => Outcome::ThirdPartyAuth,
            Rule::Unavailable(n) if earlier < *n => Outcome::Unavailable,
            Rule::Internal(n) if earlier < *n => Outcome::Internal,
            Rule::Quota(n) if earlier < *n => Outcome::QuotaExceeded,
            Rule::Unavailable(_) | Rule::Internal(_) | Rule::Quota(_) => delivered,
        }
    }

    /// Extra time before the answer (only `slowN-` tokens have any).
    pub fn extra_delay(&self) -> Duration {
        match self {
            Rule::Slow(d) => *d,
            _ => Duration::ZERO,
        }
    }
}

/// `<prefix><digits>-...` → the number; `None` when the shape differs.
fn counted(token: &str, prefix: &str) -> Option<u64> {
    let rest = token.strip_prefix(prefix)?;
    let digits_end = rest.find(|c: char| !c.is_ascii_digit())?;
    if digits_end == 0 || !rest[digits_end..].starts_with('-') {
        return None;
    }
    // More digits than a u64 holds: treat as "forever".
    Some(rest[..digits_end].parse().unwrap_or(u64::MAX))
}

fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_rules() {
        assert_eq!(Rule::for_token("abc"), Rule::Deliver);
        assert_eq!(
            Rule::for_token("canonical-7"),
            Rule::Canonical("new-7".into())
        );
        assert_eq!(Rule::for_token("notreg-1"), Rule::NotRegistered);
        assert_eq!(Rule::for_token("invalid-1"), Rule::Invalid);
        assert_eq!(Rule::for_token("mismatch-1"), Rule::Mismatch);
        assert_eq!(Rule::for_token("thirdparty-1"), Rule::ThirdParty);
        assert_eq!(Rule::for_token("unavail3-x"), Rule::Unavailable(3));
        assert_eq!(Rule::for_token("internal12-x"), Rule::Internal(12));
        assert_eq!(Rule::for_token("quota1-x"), Rule::Quota(1));
        assert_eq!(
            Rule::for_token("slow250-x"),
            Rule::Slow(Duration::from_millis(250))
        );
        // Not the counted shape: ordinary tokens.
        assert_eq!(Rule::for_token("unavail-x"), Rule::Deliver);
        assert_eq!(Rule::for_token("unavail3x"), Rule::Deliver);
        assert_eq!(Rule::for_token("unavail3"), Rule::Deliver);
        assert_eq!(Rule::for_token("Notreg-1"), Rule::Deliver);
    }

    #[test]
    fn counted_rules_fail_n_times_then_deliver() {
        let rule = Rule::Unavailable(2);
        assert_eq!(rule.outcome(0), Outcome::Unavailable);
        assert_eq!(rule.outcome(1), Outcome::Unavailable);
        assert!(rule.outcome(2).is_delivered());
        assert!(Rule::Quota(0).outcome(0).is_delivered());
    }
}
