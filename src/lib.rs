//! gocm: a push-notification relay.
pub mod config;
pub mod error;
pub mod upstream;
