//! Fake FCM identifiers: legacy `message_id` / `multicast_id` and the id part
//! of a v1 message `name`.
//!
//! They only need to be unique and shaped like Google's, so a counter pushed
//! through a mixing function is enough (no randomness source, no lock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Hands out unique identifiers; one per mock server.
pub(crate) struct IdGen {
    next: AtomicU64,
}

impl IdGen {
    /// Starts the counter at the current time in microseconds, so ids look
    /// like FCM's (`0:1500415314455276%31bd1c9631bd1c96`) and two mocks in
    /// one test are unlikely to hand out the same ones.
    pub fn new() -> IdGen {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        IdGen {
            next: AtomicU64::new(micros),
        }
    }

    /// A message id in FCM's form `0:<number>%<16 hex digits>`.
    pub fn message_id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("0:{n}%{:016x}", mix(n))
    }

    /// A multicast id. It is always above 2^53 (and below 2^63) on purpose:
    /// real ids such as `6782339717028231855` do not fit an f64 exactly, and
    /// a client that parses them as floats must fail against the mock too.
    pub fn multicast_id(&self) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (mix(n) >> 2) | (1 << 61)
    }
}

/// splitmix64's finaliser: spreads consecutive counters over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_shaped_like_fcm() {
        let ids = IdGen::new();
        let a = ids.message_id();
        let b = ids.message_id();
        assert_ne!(a, b);
        let (head, hex) = a.split_once('%').unwrap();
        assert!(head.starts_with("0:"));
        assert!(head[2..].chars().all(|c| c.is_ascii_digit()));
        assert_eq!(hex.len(), 16);
        let m = ids.multicast_id();
        assert!(m > 1 << 53 && m < 1 << 63);
    }
}
