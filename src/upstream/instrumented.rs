//! A provider wrapped so that every call is measured: how long it took
//! (`gocm_upstream_call_duration_seconds`) and how many are under way
//! (`gocm_upstream_calls_in_flight`). A wrapper, not code in each provider,
//! so legacy, v1 and any later provider are measured the same way.

use std::sync::Arc;

use super::{Message, Outcome, Upstream};
use crate::metrics::Metrics;

pub struct Instrumented {
    inner: Arc<dyn Upstream>,
    metrics: Arc<Metrics>,
}

impl Instrumented {
    pub fn new(inner: Arc<dyn Upstream>, metrics: Arc<Metrics>) -> Instrumented {
        Instrumented { inner, metrics }
    }
}

impl Upstream for Instrumented {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn max_tokens_per_call(&self) -> usize {
        self.inner.max_tokens_per_call()
    }

    fn has_canonical_ids(&self) -> bool {
        self.inner.has_canonical_ids()
    }

    fn send(&self, message: &Message, tokens: &[String]) -> Vec<Outcome> {
        let _timer = self.metrics.upstream_call();
        self.inner.send(message, tokens)
    }

    fn warm_up(&self) {
        self.inner.warm_up()
    }

    fn ready(&self) -> Result<(), String> {
        self.inner.ready()
    }
}
