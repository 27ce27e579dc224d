//! FCM HTTP v1 (being written).

use std::path::Path;

use super::{Message, Outcome, Upstream};
use crate::config::Config;
use crate::error::Error;

pub struct V1 {}

impl V1 {
    pub fn from_config(
        _agent: ureq::Agent,
        _credentials: &Path,
        _project_id: Option<&str>,
        _endpoint: &str,
        _config: &Config,
    ) -> Result<V1, Error> {
        Err(Error::Config("HTTP v1 is not written yet".into()))
    }
}

impl Upstream for V1 {
    fn name(&self) -> &'static str {
        "v1"
    }
    fn max_tokens_per_call(&self) -> usize {
        1
    }
    fn send(&self, _message: &Message, _tokens: &[String]) -> Vec<Outcome> {
        Vec::new()
    }
}
