//! What the mock received: per token, per request, per TCP connection.
//!
//! Benchmarks push tens of thousands of requests a second through the mock,
//! so recording must stay cheap: request totals are atomics, and everything
//! keyed by token sits in one `parking_lot` mutex that each request takes
//! once or twice for a few hash-map updates. Message bodies are kept behind
//! an `Arc`, so a 1000-token legacy request stores its body once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::outcome::{Outcome, Rule};

/// A serialisable summary of the counts, as `GET /mock/stats` returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Send requests received (legacy + v1), scripted ones included.
    pub send_requests: u64,
    /// Token-endpoint calls, successful or not.
    pub token_requests: u64,
    /// Distinct TCP connections (peer addresses) seen.
    pub connections: u64,
    /// Times each token arrived in a send request, whatever the answer.
    pub received: BTreeMap<String, u32>,
    /// Times each token was answered as delivered (canonical included).
    pub delivered: BTreeMap<String, u32>,
}

#[derive(Default)]
struct TokenRecord {
    received: u32,
    delivered: u32,
    /// Times normal handling judged this token. The `unavailN-` style rules
    /// count these, not `received`: a request refused as a whole (bad
    /// credentials, a scripted answer) never looked at the token, so it must
    /// not use up one of the N failures a test asked for.
    judged: u32,
    /// Legacy: the whole request body. v1: the `message` object.
    last_message: Option<Arc<Value>>,
}

/// The live counters behind [`Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    tokens: Mutex<HashMap<String, TokenRecord>>,
    send_requests: AtomicU64,
    token_requests: AtomicU64,
    peers: Mutex<HashSet<SocketAddr>>,
    legacy_batch_sizes: Mutex<Vec<usize>>,
}

impl Counters {
    /// Notes the TCP connection a request came on. tiny_http does not expose
    /// connections, but a connection is identified by its peer address, so
    /// distinct peers = distinct connections.
    pub fn count_peer(&self, peer: Option<&SocketAddr>) {
        if let Some(peer) = peer {
            let mut peers = self.peers.lock();
            if !peers.contains(peer) {
                peers.insert(*peer);
            }
        }
    }

    pub fn count_send_request(&self) {
        self.send_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_token_request(&self) {
        self.token_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_legacy_batch(&self, size: usize) {
        self.legacy_batch_sizes.lock().push(size);
    }

    /// Records that `tokens` arrived carrying `message` (before any judging).
    pub fn record_arrival(&self, tokens: &[&str], message: &Arc<Value>) {
        let mut map = self.tokens.lock();
        for token in tokens {
            let record = token_record(&mut map, token);
            record.received += 1;
            record.last_message = Some(Arc::clone(message));
        }
    }

    /// Judges each token by its name and how often it was judged before, in
    /// order, and counts deliveries unless `count_delivered` is false (dry
    /// runs). The count and the decision happen under one lock so concurrent
    /// retries of one `unavail2-` token see 0, 1, 2 and fail exactly twice.
    pub fn judge(&self, tokens: &[&str], count_delivered: bool) -> Vec<(Rule, Outcome)> {
        let mut map = self.tokens.lock();
        tokens
            .iter()
            .map(|token| {
                let record = token_record(&mut map, token);
                let rule = Rule::for_token(token);
                let outcome = rule.outcome(record.judged);
                record.judged = record.judged.saturating_add(1);
                if count_delivered && outcome.is_delivered() {
                    record.delivered += 1;
                }
                (rule, outcome)
            })
            .collect()
    }

    pub fn received(&self, token: &str) -> u32 {
        self.tokens.lock().get(token).map_or(0, |r| r.received)
    }

    pub fn delivered(&self, token: &str) -> u32 {
        self.tokens.lock().get(token).map_or(0, |r| r.delivered)
    }

    pub fn last_message(&self, token: &str) -> Option<Arc<Value>> {
        self.tokens
            .lock()
            .get(token)
            .and_then(|r| r.last_message.clone())
    }

    pub fn send_requests(&self) -> u64 {
        self.send_requests.load(Ordering::Relaxed)
    }

    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    pub fn connections(&self) -> u64 {
        self.peers.lock().len() as u64
    }

    pub fn legacy_batch_sizes(&self) -> Vec<usize> {
        self.legacy_batch_sizes.lock().clone()
    }

    pub fn snapshot(&self) -> Stats {
        let mut received = BTreeMap::new();
        let mut delivered = BTreeMap::new();
        for (token, record) in self.tokens.lock().iter() {
            received.insert(token.clone(), record.received);
            delivered.insert(token.clone(), record.delivered);
        }
        Stats {
            send_requests: self.send_requests(),
            token_requests: self.token_requests(),
            connections: self.connections(),
            received,
            delivered,
        }
    }

    /// Forgets everything counted, including how often each `unavailN-`
    /// style token was judged, so a reset mock behaves like a fresh one.
    pub fn reset(&self) {
        self.tokens.lock().clear();
        self.peers.lock().clear();
        self.legacy_batch_sizes.lock().clear();
        self.send_requests.store(0, Ordering::Relaxed);
        self.token_requests.store(0, Ordering::Relaxed);
    }
}

/// The record for `token`, created on first use without allocating the key
/// again when it already exists (the common case under load).
fn token_record<'a>(map: &'a mut HashMap<String, TokenRecord>, token: &str) -> &'a mut TokenRecord {
    if !map.contains_key(token) {
        map.insert(token.to_string(), TokenRecord::default());
    }
    map.get_mut(token).expect("just inserted")
}
