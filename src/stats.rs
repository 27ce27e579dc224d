//! Counters and the two report lists, behind one `parking_lot` mutex.
//!
//! One lock, not atomics: a report must be a consistent snapshot, and
//! draining a list must be a single step (GoCM read a list and cleared it in
//! two steps, losing whatever arrived in between).

use parking_lot::Mutex;
use serde::Serialize;

use crate::upstream::Reason;

#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    report: Report,
    canonical: Vec<Canonical>,
    notregistered: Vec<String>,
}

/// `GET /gcm/report`: GoCM's five keys first and in GoCM's order; the rest
/// are gocm's additions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Tokens accepted for sending, once per token (not per try).
    pub attempts: u64,
    /// Tokens that finally failed (not registered included).
    pub failures: u64,
    /// Accepted send requests not finished yet: queued, in flight or waiting
    /// for a retry.
    pub pending: u64,
    /// Canonical replacements reported so far (running total).
    pub canonicals: u64,
    /// Not-registered tokens reported so far (running total).
    pub notregistered: u64,
    /// Tokens the upstream accepted.
    pub delivered: u64,
    /// Upstream retries scheduled, once per token per retry.
    pub retries: u64,
}

/// One entry of `GET /gcm/report/canonical`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Canonical {
    pub original: String,
    pub canonical: String,
}

impl Stats {
    pub fn report(&self) -> Report {
        self.inner.lock().report.clone()
    }

    /// A send request of `tokens` tokens was accepted.
    pub fn accepted(&self, tokens: usize) {
        let mut g = self.inner.lock();
        g.report.attempts += tokens as u64;
        g.report.pending += 1;
    }

    /// Undoes [`Stats::accepted`] for a request refused after counting.
    pub fn rejected(&self, tokens: usize) {
        let mut g = self.inner.lock();
        g.report.attempts = g.report.attempts.saturating_sub(tokens as u64);
        g.report.pending = g.report.pending.saturating_sub(1);
    }

    /// A send request is finished: every token delivered or finally failed.
    pub fn finished(&self) {
        let mut g = self.inner.lock();
        g.report.pending = g.report.pending.saturating_sub(1);
    }

    pub fn delivered(&self, n: usize) {
        self.inner.lock().report.delivered += n as u64;
    }

    pub fn canonical(&self, original: &str, canonical: &str) {
        let mut g = self.inner.lock();
        g.report.canonicals += 1;
        g.canonical.push(Canonical {
            original: original.to_string(),
            canonical: canonical.to_string(),
        });
    }

    pub fn not_registered(&self, token: &str) {
        let mut g = self.inner.lock();
        g.report.notregistered += 1;
        g.report.failures += 1;
        g.notregistered.push(token.to_string());
    }

    pub fn failed(&self, n: usize, _reason: Reason) {
        self.inner.lock().report.failures += n as u64;
    }

    pub fn retried(&self, n: usize) {
        self.inner.lock().report.retries += n as u64;
    }

    /// Everything collected since the last call, removed in the same step.
    pub fn drain_canonical(&self) -> Vec<Canonical> {
        std::mem::take(&mut self.inner.lock().canonical)
    }

    /// Everything collected since the last call, removed in the same step.
    pub fn drain_notregistered(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().notregistered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_keys_keep_gocm_order() {
        let s = Stats::default();
        s.accepted(3);
        s.not_registered("a");
        let json = serde_json::to_string(&s.report()).unwrap();
        assert!(
            json.starts_with(
                r#"{"attempts":3,"failures":1,"pending":1,"canonicals":0,"notregistered":1,"#
            ),
            "{json}"
        );
    }

    #[test]
    fn drain_empties_the_list() {
        let s = Stats::default();
        s.canonical("a", "b");
        assert_eq!(s.drain_canonical().len(), 1);
        assert!(s.drain_canonical().is_empty());
        assert_eq!(s.report().canonicals, 1);
    }
}
