//! The log: `log` + `env_logger`, to stderr or, with `--logto FILE`,
//! appended to a file (as GoCM's `-logto`).
//!
//! The level comes from `--log-level`, and `RUST_LOG`, when set, wins.
//! Appending (`O_APPEND`) with one write per line keeps lines whole even
//! when several processes share the file, and lets logrotate's
//! `copytruncate` rotate it under a running gocm.

use std::fs::OpenOptions;
use std::path::Path;

use env_logger::{Builder, Target};

use crate::error::Error;

/// Installs the logger. Fails only when `log_to` cannot be opened.
pub fn init(level: &str, log_to: Option<&Path>) -> Result<(), Error> {
    let mut builder = Builder::new();
    builder
        .parse_filters(level)
        .parse_env("RUST_LOG")
        // ureq-proto dumps raw request bytes, Authorization header included,
        // at trace level: never let a secret reach the log that way.
        .filter_module("ureq_proto", log::LevelFilter::Info)
        .format_timestamp_millis();
    if let Some(path) = log_to {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| Error::Io {
                what: format!("opening --logto {}", path.display()),
                source,
            })?;
        builder.target(Target::Pipe(Box::new(file)));
    }
    builder.init();
    Ok(())
}
