//! The worker pool: a fixed number of OS threads, each making one blocking
//! upstream call at a time. A worker never sleeps: back-offs go to the
//! scheduler, and a quota hold re-queues the work until the hold ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use crate::config::Backoff;
use crate::metrics::Metrics;
use crate::queue::store::Store;
use crate::queue::{Delivery, Inbox, Queue};
use crate::stats::Stats;
use crate::upstream::{short_token, Outcome, Reason, Upstream};

/// What every worker shares.
pub struct Pool {
    pub upstream: Arc<dyn Upstream>,
    pub queue: Queue,
    pub stats: Arc<Stats>,
    pub retries: u32,
    pub backoff: Backoff,
    /// Where token progress is recorded; `None` in memory mode.
    pub store: Option<Store>,
    /// Counts busy workers (`gocm_workers_busy`).
    pub metrics: Arc<Metrics>,
    /// Set by a quota answer: no worker calls the upstream before then (the
    /// quota is per project, so hammering it helps nobody).
    hold_until: Mutex<Option<Instant>>,
}

impl Pool {
    pub fn new(
        upstream: Arc<dyn Upstream>,
        queue: Queue,
        stats: Arc<Stats>,
        retries: u32,
        backoff: Backoff,
        store: Option<Store>,
        metrics: Arc<Metrics>,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            upstream,
            queue,
            stats,
            retries,
            backoff,
            store,
            metrics,
            hold_until: Mutex::new(None),
        })
    }

    /// Starts `n` workers. Worker stacks are small: a worker holds little
    /// more than one upstream call, and hundreds of them are expected.
    pub fn spawn(
        self: &Arc<Self>,
        n: usize,
        inbox: &Inbox,
    ) -> std::io::Result<Vec<JoinHandle<()>>> {
        (0..n)
            .map(|i| {
                let pool = self.clone();
                let inbox = inbox.clone();
                std::thread::Builder::new()
                    .name(format!("gocm-worker-{i}"))
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        while let Some(d) = inbox.next() {
                            let _busy = pool.metrics.worker_busy();
                            pool.process(d);
                        }
                    })
            })
            .collect()
    }

    /// One delivery: split it to the upstream's size, wait out a quota hold
    /// (by re-queuing), make the call, and act on each token's outcome.
    pub fn process(&self, mut d: Delivery) {
        for chunk in d.split_off_chunks(self.upstream.max_tokens_per_call()) {
            self.queue.ready(chunk);
        }
        if let Some(until) = *self.hold_until.lock() {
            if until > Instant::now() {
                self.queue.retry_at(until, d);
                return;
            }
        }
        let outcomes = self.upstream.send(&d.message, &d.tokens);
        self.apply(d, outcomes);
    }

    fn apply(&self, d: Delivery, mut outcomes: Vec<Outcome>) {
        if outcomes.len() != d.tokens.len() {
            log::error!(
                "{} upstream returned {} outcomes for {} tokens; retrying the chunk",
                self.upstream.name(),
                outcomes.len(),
                d.tokens.len()
            );
            outcomes =
                vec![Outcome::retry(None, Reason::Upstream, "bad outcome count"); d.tokens.len()];
        }
        let mut delivered = 0;
        let mut failures = FailureLog::default();
        let mut finished_ids = Vec::with_capacity(d.ids.len());
        let mut retry = Vec::new();
        let mut retry_ids = Vec::new();
        let mut retry_after: Option<Duration> = None;
        let mut retry_reason = Reason::Upstream;
        let mut retry_detail = String::new();
        for ((token, &id), outcome) in d.tokens.iter().zip(&d.ids).zip(outcomes) {
            if !matches!(outcome, Outcome::Retry { .. }) {
                finished_ids.push(id);
            }
            match outcome {
                Outcome::Delivered => delivered += 1,
                Outcome::Canonical(new) => {
                    delivered += 1;
                    self.stats.canonical(token, &new);
                }
                Outcome::NotRegistered => {
                    self.stats.not_registered(token);
                    failures.add(token, NOT_REGISTERED, "not registered");
                }
                Outcome::Failed { reason, detail } => {
                    self.stats.failed(1, reason);
                    failures.add(token, reason.as_str(), &detail);
                }
                Outcome::Retry {
                    after,
                    reason,
                    detail,
                } => {
                    retry_after = retry_after.max(after);
                    if reason == Reason::Quota || retry.is_empty() {
                        retry_reason = reason;
                        retry_detail = detail.clone();
                    }
                    log::debug!(
                        "{} will retry {}: {detail}",
                        self.upstream.name(),
                        short_token(token)
                    );
                    retry.push(token.clone());
                    retry_ids.push(id);
                }
            }
        }
        self.stats.delivered(delivered);
        failures.log(self.upstream.name());

        if retry.is_empty() {
            self.chunk_done(&d, finished_ids);
            return;
        }
        if d.tries >= self.retries {
            log::warn!(
                "{} gave up on {} token(s) (first {}) after {} tries ({}): {retry_detail}",
                self.upstream.name(),
                retry.len(),
                short_token(&retry[0]),
                d.tries + 1,
                retry_reason.as_str()
            );
            self.stats.failed(retry.len(), retry_reason);
            finished_ids.extend(retry_ids);
            self.chunk_done(&d, finished_ids);
            return;
        }
        let now = Instant::now();
        let wait = self
            .backoff
            .delay(d.tries)
            .max(retry_after.unwrap_or_default());
        let at = now + wait;
        if retry_reason == Reason::Quota {
            let mut hold = self.hold_until.lock();
            let new_hold = now + retry_after.unwrap_or(wait);
            if hold.is_none_or(|h| h < new_hold) {
                log::warn!(
                    "upstream quota exceeded: holding every worker for {:?}",
                    new_hold - now
                );
                *hold = Some(new_hold);
            }
        }
        self.stats.retried(retry.len());
        self.tokens_done(&d, finished_ids);
        if let Some(store) = &self.store {
            let ids = retry_ids.clone();
            store.tokens_retry(d.job.id, ids, d.tries + 1, SystemTime::now() + wait);
        }
        self.queue.retry_at(
            at,
            Delivery {
                job: d.job,
                message: d.message,
                tokens: retry,
                ids: retry_ids,
                tries: d.tries + 1,
            },
        );
    }

    fn tokens_done(&self, d: &Delivery, ids: Vec<u32>) {
        if let Some(store) = &self.store {
            store.tokens_done(d.job.id, ids);
        }
    }

    /// A chunk has no token left to send (`ids` are its last ones); the
    /// last chunk ends its request, whose removal from the store takes its
    /// token states with it, so its last tokens need no record of their own.
    fn chunk_done(&self, d: &Delivery, ids: Vec<u32>) {
        if d.job.chunk_done() {
            self.stats.finished(d.job.id);
            if let Some(store) = &self.store {
                store.request_done(d.job.id);
            }
        } else {
            self.tokens_done(d, ids);
        }
    }
}

/// The reason logged for a not-registered token: the `reason` label it
/// has in `gocm_tokens_failed_total`, so a log line and the metric agree.
const NOT_REGISTERED: &str = "not_registered";

/// Groups final failures of one call by cause, so that a whole-request
/// failure of 1000 tokens is one log line, not a thousand.
#[derive(Default)]
struct FailureLog {
    /// (reason label, detail) → (tokens, the first token shortened)
    by_cause: HashMap<(&'static str, String), (usize, String)>,
}

impl FailureLog {
    fn add(&mut self, token: &str, reason: &'static str, detail: &str) {
        self.by_cause
            .entry((reason, detail.to_string()))
            .or_insert_with(|| (0, short_token(token)))
            .0 += 1;
    }

    fn log(self, upstream: &str) {
        for ((reason, detail), (count, first)) in self.by_cause {
            // Refused credentials fail every message until an operator acts:
            // an error, not one more warning about a bad token.
            let level = if reason == Reason::Auth.as_str() {
                log::Level::Error
            } else {
                log::Level::Warn
            };
            if count == 1 {
                log::log!(
                    level,
                    "{upstream}: token {first} failed ({reason}): {detail}"
                );
            } else {
                log::log!(
                    level,
                    "{upstream}: {count} tokens (first {first}) failed ({reason}): {detail}"
                );
            }
        }
    }
}
