//! The legacy GCM/FCM HTTP protocol (being written).
use super::{Message, Outcome, Upstream};
use crate::config::Secret;

pub struct Legacy {
    agent: ureq::Agent,
    api_key: Secret,
    endpoint: String,
}

impl Legacy {
    pub fn new(agent: ureq::Agent, api_key: Secret, endpoint: String) -> Legacy {
        Legacy { agent, api_key, endpoint }
    }
}

impl Upstream for Legacy {
    fn name(&self) -> &'static str {
        "legacy"
    }
    fn max_tokens_per_call(&self) -> usize {
        1000
    }
    fn send(&self, _message: &Message, _tokens: &[String]) -> Vec<Outcome> {
        let _ = (&self.agent, &self.api_key, &self.endpoint);
        Vec::new()
    }
}
