//! gocm: a push-notification relay.
//!
//! Data flow: [`config`] (flags → validated Config) → [`api`] (routes; parse
//! and validate a send) → [`queue`] (bounded intake, ready channel, retry
//! scheduler) → [`worker`] (a fixed pool of OS threads) →
//! [`upstream`] (legacy or v1; one outcome per token) → [`stats`] (counters
//! and the drained report lists).
//!
//! [`Relay::start`] runs the whole service in-process; `main.rs` is a thin
//! shell around it, and the tests start it on an ephemeral port.

pub mod api;
pub mod config;
pub mod error;
pub mod queue;
pub mod stats;
pub mod upstream;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use crate::api::server::HttpServer;
use crate::api::Api;
use crate::config::Config;
use crate::error::Error;
use crate::stats::Stats;
use crate::worker::Pool;

/// A running gocm: HTTP handlers, queue, scheduler and workers.
/// [`Relay::shutdown`] (or drop) stops it; work not yet delivered is dropped.
pub struct Relay {
    http: Option<HttpServer>,
    stats: Arc<Stats>,
    stop: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    pub fn start(config: Config) -> Result<Relay, Error> {
        let upstream = upstream::build(&config)?;
        let stats = Arc::new(Stats::default());
        let io = |what: &str| {
            let what = what.to_string();
            move |source| Error::Io { what, source }
        };
        let channels = queue::start(config.queue_size).map_err(io("starting the scheduler"))?;
        let pool = Pool::new(
            upstream.clone(),
            channels.queue.clone(),
            stats.clone(),
            config.retries,
            config.backoff,
        );
        let mut threads = pool
            .spawn(config.workers, &channels.inbox)
            .map_err(io("starting the workers"))?;
        threads.push(channels.scheduler);
        let api = Arc::new(Api {
            stats: stats.clone(),
            queue: channels.queue,
            max_body: config.max_body,
            max_tokens: config.max_tokens,
            has_canonical_ids: upstream.has_canonical_ids(),
        });
        let http = HttpServer::start(
            config.listen,
            config.client_timeout,
            config.http_threads,
            api,
        )?;
        log::info!(
            "gocm listening on http://{} ({} upstream, {} workers)",
            http.addr(),
            upstream.name(),
            config.workers
        );
        Ok(Relay {
            http: Some(http),
            stats,
            stop: Some(channels.stop),
            threads,
        })
    }

    /// Where the API listens (the real port when started with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.http.as_ref().expect("running").addr()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stops accepting, then stops the workers after their current call.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        if let Some(http) = self.http.take() {
            http.stop();
        }
        drop(self.stop.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop_all();
    }
}
