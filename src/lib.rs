//! gocm: a push-notification relay.
//!
//! Data flow: [`config`] (flags → validated Config) → [`api`] (routes; parse
//! and validate a send) → [`queue`] (bounded intake, retry scheduler,
//! durable store) → [`worker`] (a fixed pool of OS threads) → [`upstream`]
//! (legacy or v1; one outcome per token) → [`stats`] (counters and the
//! drained report lists) and [`metrics`] (`GET /metrics`).
//!
//! [`Relay::start`] runs the whole service in-process; `main.rs` is a thin
//! shell around it (plus [`oneshot`], `gocm send`), and the tests start it
//! on an ephemeral port or a UNIX socket.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod oneshot;
pub mod queue;
pub mod stats;
pub mod upstream;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;

use crate::api::server::HttpServer;
use crate::api::Api;
use crate::auth::Auth;
use crate::config::{Config, Listen};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::queue::store::{Recovered, Store, Writer};
use crate::queue::{Delivery, Inbox, Job, Queue};
use crate::stats::Stats;
use crate::worker::Pool;

/// A running gocm: HTTP handlers, queue, scheduler, workers and store.
/// [`Relay::shutdown`] (or drop) stops it gracefully.
pub struct Relay {
    http: Option<HttpServer>,
    api: Arc<Api>,
    stats: Arc<Stats>,
    inbox: Inbox,
    stop: Option<Sender<()>>,
    workers: Vec<JoinHandle<()>>,
    scheduler: Option<JoinHandle<()>>,
    store: Option<(Store, Writer)>,
    shutdown_timeout: Duration,
}

impl Relay {
    pub fn start(config: Config) -> Result<Relay, Error> {
        let metrics = Arc::new(Metrics::default());
        let upstream = upstream::build_with_metrics(&config, &metrics)?;
        let io = |what: &str| {
            let what = what.to_string();
            move |source| Error::Io { what, source }
        };
        let (stats, store, recovered) = match &config.data_dir {
            Some(dir) => {
                let (store, writer, mut recovered) = Store::open(dir)?;
                let stats = Stats::with_store(store.clone(), &mut recovered);
                (stats, Some((store, writer)), recovered)
            }
            None => (Stats::default(), None, Recovered::default()),
        };
        let stats = Arc::new(stats);
        let channels = queue::start(config.queue_size).map_err(io("starting the scheduler"))?;
        let store_handle = store.as_ref().map(|(s, _)| s.clone());
        let next_id = recovered.next_id.max(1);
        requeue(&recovered, &channels.queue, &stats, store_handle.as_ref());
        let pool = Pool::new(
            upstream.clone(),
            channels.queue.clone(),
            stats.clone(),
            config.retries,
            config.backoff,
            store_handle.clone(),
            metrics.clone(),
        );
        let workers = pool
            .spawn(config.workers, &channels.inbox)
            .map_err(io("starting the workers"))?;
        let warming = upstream.clone();
        std::thread::Builder::new()
            .name("gocm-warm-up".into())
            .spawn(move || warming.warm_up())
            .map_err(io("starting the credentials check"))?;
        let api = Arc::new(Api {
            stats: stats.clone(),
            queue: channels.queue,
            max_body: config.max_body,
            client_timeout: config.client_timeout,
            max_tokens: config.max_tokens,
            max_pending: config.max_pending,
            has_canonical_ids: upstream.has_canonical_ids(),
            store: store_handle,
            next_id: AtomicU64::new(next_id),
            draining: AtomicBool::new(false),
            metrics,
            auth: Auth::new(config.auth_token.as_ref()),
            upstream: upstream.clone(),
            workers: config.workers,
        });
        let http = HttpServer::start(
            &config.listen,
            config.client_timeout,
            config.http_threads,
            api.clone(),
        )?;
        warn_if_exposed(&config.listen, api.auth.enabled());
        log::info!(
            "gocm listening on {} ({} upstream, {} workers, {}, {})",
            http.listen(),
            upstream.name(),
            config.workers,
            match &config.data_dir {
                Some(dir) => format!(
                    "queue in {}, {} unfinished request(s) recovered",
                    dir.display(),
                    recovered.requests.len()
                ),
                None => "queue in memory only".to_string(),
            },
            if api.auth.enabled() {
                "bearer token required"
            } else {
                "no API authentication"
            }
        );
        Ok(Relay {
            http: Some(http),
            api,
            stats,
            inbox: channels.inbox,
            stop: Some(channels.stop),
            workers,
            scheduler: Some(channels.scheduler),
            store,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    /// Where the API listens: a TCP address (the real port when started
    /// with port 0) or a UNIX socket path.
    pub fn listen_addr(&self) -> &Listen {
        self.http.as_ref().expect("running").listen()
    }

    /// The TCP address the API listens on (the real port when started with
    /// port 0). Panics on a UNIX socket: use [`Relay::listen_addr`] there.
    pub fn addr(&self) -> SocketAddr {
        match self.listen_addr() {
            Listen::Tcp(addr) => *addr,
            Listen::Unix(path) => panic!(
                "Relay::addr: listening on the UNIX socket {}, not TCP (use listen_addr)",
                path.display()
            ),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Graceful stop: new sends get 503, workers take no new work, in-flight
    /// upstream calls get `--shutdown-timeout-ms` to finish, and everything
    /// unfinished stays in the store for the next start.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        if self.http.is_none() {
            return;
        }
        self.api.draining.store(true, Ordering::Release);
        self.inbox.stop();
        drop(self.stop.take());
        let deadline = Instant::now() + self.shutdown_timeout;
        while self.workers.iter().any(|w| !w.is_finished()) && Instant::now() < deadline {
            std::thread::park_timeout(Duration::from_millis(5));
        }
        let busy = self.workers.iter().filter(|w| !w.is_finished()).count();
        if busy > 0 {
            log::warn!("{busy} upstream call(s) still running at the shutdown timeout; their tokens stay queued");
        }
        for w in self.workers.drain(..).filter(|w| w.is_finished()) {
            let _ = w.join();
        }
        if let Some(s) = self.scheduler.take() {
            let _ = s.join();
        }
        if let Some(http) = self.http.take() {
            // Handlers answer what they hold; one stuck on a slow client is
            // left behind once the shutdown deadline has passed.
            http.stop(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(200)),
            );
        }
        if let Some((store, writer)) = self.store.take() {
            writer.close(&store);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// An open API on a non-loopback address lets anyone who can reach it send
/// pushes to your users and drain your reports: say so, loudly, at every
/// start. A UNIX socket is guarded by its file permissions instead.
fn warn_if_exposed(listen: &Listen, authenticated: bool) {
    if let Listen::Tcp(addr) = listen {
        if !addr.ip().is_loopback() && !authenticated {
            log::warn!(
                "SECURITY: listening on {addr}, beyond loopback, WITHOUT API authentication: \
                 anyone who can reach this port can send pushes and drain the reports. \
                 Set --auth-token-file (or GOCM_AUTH_TOKEN), listen on 127.0.0.1 or a \
                 --unix-socket behind a proxy, or firewall the port"
            );
        }
    }
}

/// Puts a previous run's unfinished requests back, oldest first, before any
/// new request is served: due tokens on the ready channel, the others with
/// the scheduler until their retry time.
fn requeue(recovered: &Recovered, queue: &Queue, stats: &Stats, store: Option<&Store>) {
    let now_wall = SystemTime::now();
    let now = Instant::now();
    for r in &recovered.requests {
        if r.groups.is_empty() {
            // Every token was finished; only the request's end was not
            // recorded.
            stats.finished(r.id);
            if let Some(store) = store {
                store.request_done(r.id);
            }
            continue;
        }
        let job = Job::with_chunks(r.id, r.groups.len());
        let message = Arc::new(r.message.clone());
        for g in &r.groups {
            let d = Delivery {
                job: job.clone(),
                message: message.clone(),
                ids: g.tokens.iter().map(|(i, _)| *i).collect(),
                tokens: g.tokens.iter().map(|(_, t)| t.clone()).collect(),
                tries: g.tries,
            };
            match g.due.duration_since(now_wall) {
                Ok(wait) if !wait.is_zero() => queue.retry_at(now + wait, d),
                _ => queue.ready(d),
            }
        }
    }
}
