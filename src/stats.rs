//! Counters and the two report lists, behind one `parking_lot` mutex.
//!
//! One lock, not atomics: a report must be a consistent snapshot, and
//! draining a list must be a single step (GoCM read a list and cleared it in
//! two steps, losing whatever arrived in between).

use std::collections::BTreeMap;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

use crate::queue::store::{Recovered, Store};
use crate::upstream::Reason;

/// With a store, list entries are persisted as they arrive and removed when
/// drained, so a client collects each one exactly once across restarts.
#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
    store: Option<Store>,
}

#[derive(Default)]
struct Inner {
    report: Report,
    /// List entries keep their store key (a sequence number).
    canonical: Vec<(u64, Canonical)>,
    notregistered: Vec<(u64, String)>,
    next_seq: u64,
    /// Final failures other than not-registered, indexed by `Reason as
    /// usize`: the `reason` label of `gocm_tokens_failed_total`.
    failed_by_reason: [u64; Reason::ALL.len()],
    /// Unfinished requests by id, with when they were accepted, for the age
    /// of the oldest one. Ids grow with acceptance time, so the first entry
    /// is the oldest (to within one store commit).
    open: BTreeMap<u64, Instant>,
}

/// Everything `/metrics` reads from the stats, taken under one lock.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub report: Report,
    /// Final failures other than not-registered, by reason.
    pub failed: [(Reason, u64); Reason::ALL.len()],
    /// When the oldest unfinished request was accepted.
    pub oldest_pending: Option<Instant>,
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
    /// Stats backed by `store`, starting with what a previous run left:
    /// its undrained lists and its unfinished requests as `pending` (their
    /// age counted from now: the store does not keep acceptance times).
    pub fn with_store(store: Store, recovered: &mut Recovered) -> Stats {
        let now = Instant::now();
        let inner = Inner {
            // A recovered token is sent (again) by this process, so it
            // counts as an attempt here: attempts stay >= delivered +
            // failures, the invariant dashboards check.
            report: Report {
                attempts: recovered
                    .requests
                    .iter()
                    .flat_map(|r| &r.groups)
                    .map(|g| g.tokens.len() as u64)
                    .sum(),
                pending: recovered.requests.len() as u64,
                ..Report::default()
            },
            canonical: std::mem::take(&mut recovered.canonical),
            notregistered: std::mem::take(&mut recovered.notregistered),
            next_seq: recovered.next_id,
            failed_by_reason: Default::default(),
            open: recovered.requests.iter().map(|r| (r.id, now)).collect(),
        };
        Stats {
            inner: Mutex::new(inner),
            store: Some(store),
        }
    }

    pub fn report(&self) -> Report {
        self.inner.lock().report.clone()
    }

    /// The counters, failures by reason and the oldest pending request.
    pub fn snapshot(&self) -> Snapshot {
        let g = self.inner.lock();
        Snapshot {
            report: g.report.clone(),
            failed: Reason::ALL.map(|r| (r, g.failed_by_reason[r as usize])),
            oldest_pending: g.open.first_key_value().map(|(_, t)| *t),
        }
    }

    pub fn pending(&self) -> u64 {
        self.inner.lock().report.pending
    }

    /// Send request `id` of `tokens` tokens was accepted.
    pub fn accepted(&self, id: u64, tokens: usize) {
        let mut g = self.inner.lock();
        g.report.attempts += tokens as u64;
        g.report.pending += 1;
        g.open.insert(id, Instant::now());
    }

    /// Send request `id` is finished: every token delivered or finally
    /// failed.
    pub fn finished(&self, id: u64) {
        let mut g = self.inner.lock();
        g.report.pending = g.report.pending.saturating_sub(1);
        g.open.remove(&id);
    }

    pub fn delivered(&self, n: usize) {
        self.inner.lock().report.delivered += n as u64;
    }

    pub fn canonical(&self, original: &str, canonical: &str) {
        let entry = Canonical {
            original: original.to_string(),
            canonical: canonical.to_string(),
        };
        let mut g = self.inner.lock();
        g.report.canonicals += 1;
        g.next_seq += 1;
        let seq = g.next_seq;
        // Sent under the lock, so the store sees entries in sequence order.
        if let Some(store) = &self.store {
            store.add_canonical(seq, entry.clone());
        }
        g.canonical.push((seq, entry));
    }

    pub fn not_registered(&self, token: &str) {
        let mut g = self.inner.lock();
        g.report.notregistered += 1;
        g.report.failures += 1;
        g.next_seq += 1;
        let seq = g.next_seq;
        if let Some(store) = &self.store {
            store.add_not_registered(seq, token.to_string());
        }
        g.notregistered.push((seq, token.to_string()));
    }

    pub fn failed(&self, n: usize, reason: Reason) {
        let mut g = self.inner.lock();
        g.report.failures += n as u64;
        g.failed_by_reason[reason as usize] += n as u64;
    }

    pub fn retried(&self, n: usize) {
        self.inner.lock().report.retries += n as u64;
    }

    /// Everything collected since the last call, removed in the same step
    /// (and from the store before it is returned). On a store failure the
    /// entries go back for the next read.
    pub fn drain_canonical(&self) -> Result<Vec<Canonical>, String> {
        let taken = std::mem::take(&mut self.inner.lock().canonical);
        if let Err(e) = self.forget(taken.iter().map(|(s, _)| *s).collect(), Vec::new()) {
            let mut g = self.inner.lock();
            let newer = std::mem::replace(&mut g.canonical, taken);
            g.canonical.extend(newer);
            return Err(e);
        }
        Ok(taken.into_iter().map(|(_, e)| e).collect())
    }

    /// Everything collected since the last call, removed in the same step.
    pub fn drain_notregistered(&self) -> Result<Vec<String>, String> {
        let taken = std::mem::take(&mut self.inner.lock().notregistered);
        if let Err(e) = self.forget(Vec::new(), taken.iter().map(|(s, _)| *s).collect()) {
            let mut g = self.inner.lock();
            let newer = std::mem::replace(&mut g.notregistered, taken);
            g.notregistered.extend(newer);
            return Err(e);
        }
        Ok(taken.into_iter().map(|(_, t)| t).collect())
    }

    fn forget(&self, canonical: Vec<u64>, notregistered: Vec<u64>) -> Result<(), String> {
        match &self.store {
            Some(store) => store.drained(canonical, notregistered),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_keys_keep_gocm_order() {
        let s = Stats::default();
        s.accepted(1, 3);
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
    fn snapshot_has_failures_by_reason_and_the_oldest_pending() {
        let s = Stats::default();
        assert!(s.snapshot().oldest_pending.is_none());
        s.accepted(7, 2);
        let first = s.snapshot().oldest_pending.unwrap();
        s.accepted(8, 1);
        assert_eq!(s.snapshot().oldest_pending, Some(first));
        s.failed(2, Reason::Timeout);
        s.not_registered("x");
        s.finished(7);
        let snap = s.snapshot();
        assert!(snap.oldest_pending.unwrap() >= first);
        assert!(snap.failed.contains(&(Reason::Timeout, 2)));
        assert_eq!(snap.failed.iter().map(|(_, n)| n).sum::<u64>(), 2);
        assert_eq!(snap.report.failures, 3);
        s.finished(8);
        assert!(s.snapshot().oldest_pending.is_none());
    }

    #[test]
    fn drain_empties_the_list() {
        let s = Stats::default();
        s.canonical("a", "b");
        assert_eq!(s.drain_canonical().unwrap().len(), 1);
        assert!(s.drain_canonical().unwrap().is_empty());
        assert_eq!(s.report().canonicals, 1);
    }
}
