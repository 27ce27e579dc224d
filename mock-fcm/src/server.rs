//! The HTTP side: listener, handler threads, routing.
//!
//! tiny_http reads each connection on its own thread and queues complete
//! requests; a few handler threads (`HANDLER_THREADS`) take them with
//! `recv()`, compute the answer at once and pass it to the delay queue
//! (`delay.rs`), so added latency never occupies a handler.

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tiny_http::{Method, Request, Server};

use crate::delay::Delayer;
use crate::ids::IdGen;
use crate::reply::Reply;
use crate::script::ScriptQueue;
use crate::stats::Counters;
use crate::token::TokenEndpoint;
use crate::{legacy, v1};

/// Handler threads. They only parse JSON and update counters, so a few are
/// plenty even for benchmarks; waiting happens in the delay thread.
const HANDLER_THREADS: usize = 8;

/// Largest request body read (a full 1000-token legacy request is ~200 KiB).
const MAX_BODY: u64 = 16 << 20;

/// State shared by all handler threads and the `MockFcm` handle.
pub(crate) struct Shared {
    latency_micros: AtomicU64,
    pub api_key: Option<String>,
    pub project_id: String,
    pub counters: Counters,
    pub scripts: ScriptQueue,
    pub tokens: TokenEndpoint,
    pub ids: IdGen,
}

impl Shared {
    pub fn new(
        latency: Duration,
        api_key: Option<String>,
        project_id: String,
        tokens: TokenEndpoint,
    ) -> Shared {
        let shared = Shared {
            latency_micros: AtomicU64::new(0),
            api_key,
            project_id,
            counters: Counters::default(),
            scripts: ScriptQueue::default(),
            tokens,
            ids: IdGen::new(),
        };
        shared.set_latency(latency);
        shared
    }

    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_micros.load(Ordering::Relaxed))
    }

    pub fn set_latency(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros.store(micros, Ordering::Relaxed);
    }
}

/// Pending-connection queue length. std's default (128) overflows when a
/// test or benchmark opens ~1000 connections at once, and overflowing SYNs
/// are retried only after a second, which would show up as fake latency.
const LISTEN_BACKLOG: i32 = 1024;

/// A bound listener, not yet served.
pub(crate) struct Bound {
    pub addr: SocketAddr,
    server: Server,
    /// A second handle on the listening socket, used only to shut it down
    /// (see `Running::drop`).
    control: TcpListener,
}

/// Binds `addr` the way `std::net::TcpListener::bind` does (SO_REUSEADDR, so
/// a test can restart a mock on the port it just used), plus TCP_NODELAY
/// (accepted sockets inherit it, so small answers are not held back by
/// Nagle's algorithm and benchmark latencies mean what they say) and a
/// longer backlog.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<Bound> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    let listener = TcpListener::from(socket);
    let addr = listener.local_addr()?;
    let control = listener.try_clone()?;
    // From a named thread: tiny_http's accept and connection threads are
    // unnamed and so take their creator's name, which keeps the mock's
    // CPU apart from the relay's when both run in one process (the bench
    // counts CPU by thread name).
    let server = thread::Builder::new()
        .name("mock-fcm-conn".into())
        .spawn(move || Server::from_listener(listener, None).map_err(io::Error::other))?
        .join()
        .map_err(|_| io::Error::other("tiny_http panicked while starting"))??;
    Ok(Bound {
        addr,
        server,
        control,
    })
}

/// The running threads; dropping it stops them.
pub(crate) struct Running {
    server: Option<Arc<Server>>,
    control: Option<TcpListener>,
    handlers: Vec<JoinHandle<()>>,
    delay: Option<JoinHandle<()>>,
}

impl Running {
    pub fn start(bound: Bound, shared: Arc<Shared>) -> io::Result<Running> {
        let server = Arc::new(bound.server);
        let (delayer, delay) = Delayer::spawn()?;
        let mut running = Running {
            server: Some(Arc::clone(&server)),
            control: Some(bound.control),
            handlers: Vec::with_capacity(HANDLER_THREADS),
            delay: Some(delay),
        };
        for i in 0..HANDLER_THREADS {
            let server = Arc::clone(&server);
            let shared = Arc::clone(&shared);
            let delayer = delayer.clone();
            let handle = thread::Builder::new()
                .name(format!("mock-fcm-http-{i}"))
                .spawn(move || {
                    // recv() fails only after unblock(): time to stop.
                    while let Ok(request) = server.recv() {
                        handle(&shared, &delayer, request);
                    }
                })?;
            running.handlers.push(handle);
        }
        Ok(running)
    }
}

impl Drop for Running {
    /// Stops the handlers after the requests already queued (each
    /// `unblock()` queues one stop marker behind them), then the delay
    /// thread, which answers whatever is still waiting at once, then the
    /// listener.
    ///
    /// Dropping tiny_http's `Server` only asks its accept thread to stop, and
    /// that thread (which we cannot join) owns the listening socket, so the
    /// port could keep accepting for a moment after `drop` returns. Shutting
    /// the socket down through our own handle makes new connections fail at
    /// once, and with SO_REUSEADDR the port can be bound again right away.
    ///
    /// tiny_http offers no way to close connections that are already open:
    /// a request arriving on a kept-alive connection after this point is
    /// never answered, and the client sees its own timeout. Tests that need
    /// an upstream that vanishes should run the `mock-fcm` binary and kill it.
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            for _ in &self.handlers {
                server.unblock();
            }
        }
        for handle in self.handlers.drain(..) {
            let _ = handle.join();
        }
        if let Some(delay) = self.delay.take() {
            let _ = delay.join();
        }
        // The handlers held the other references: this drop runs
        // `Server::drop`, which sets the accept thread's stop flag.
        drop(self.server.take());
        if let Some(control) = self.control.take() {
            let _ = SockRef::from(&control).shutdown(Shutdown::Both);
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Legacy,
    V1 { project: String },
    Token,
    Stats,
    Reset,
    MethodNotAllowed,
    NotFound,
}

impl Route {
    fn of(method: &Method, path: &str) -> Route {
        let wanted = match path {
            // `/gcm/send` is the GCM-era spelling of the same endpoint.
            "/fcm/send" | "/gcm/send" => (Method::Post, Route::Legacy),
            "/token" => (Method::Post, Route::Token),
            "/mock/stats" => (Method::Get, Route::Stats),
            "/mock/reset" => (Method::Post, Route::Reset),
            _ => match v1_project(path) {
                Some(project) => (Method::Post, Route::V1 { project }),
                None => return Route::NotFound,
            },
        };
        if *method == wanted.0 {
            wanted.1
        } else {
            Route::MethodNotAllowed
        }
    }
}

/// `/v1/projects/{project}/messages:send` → `project`.
fn v1_project(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v1/projects/")?;
    let project = rest
        .strip_suffix("/messages:send")
        .or_else(|| rest.strip_suffix("/messages%3Asend"))
        .or_else(|| rest.strip_suffix("/messages%3asend"))?;
    (!project.is_empty() && !project.contains('/')).then(|| project.to_string())
}

fn handle(shared: &Shared, delayer: &Delayer, mut request: Request) {
    let path = request
        .url()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let route = Route::of(request.method(), &path);
    // The control routes are for the test harness; they must not change
    // what they report.
    if !matches!(route, Route::Stats | Route::Reset) {
        shared.counters.count_peer(request.remote_addr());
    }
    match route {
        Route::Legacy | Route::V1 { .. } => {
            shared.counters.count_send_request();
            let Some(body) = read_body(&mut request) else {
                delayer.answer(
                    request,
                    Reply::text(400, "could not read the request body"),
                    Duration::ZERO,
                );
                return;
            };
            let authorization = header(&request, "Authorization");
            let reply = match &route {
                Route::V1 { project } => {
                    v1::handle(shared, project, authorization.as_deref(), &body)
                }
                _ => legacy::handle(shared, authorization.as_deref(), &body),
            };
            let delay = shared.latency().saturating_add(reply.extra_delay);
            delayer.answer(request, reply, delay);
        }
        Route::Token => {
            shared.counters.count_token_request();
            let reply = match read_body(&mut request) {
                Some(body) => shared.tokens.handle(&body),
                None => Reply::text(400, "could not read the request body"),
            };
            delayer.answer(request, reply, Duration::ZERO);
        }
        Route::Stats => {
            let body = serde_json::to_value(shared.counters.snapshot()).unwrap_or_default();
            delayer.answer(request, Reply::json(200, &body), Duration::ZERO);
        }
        Route::Reset => {
            shared.counters.reset();
            delayer.answer(request, Reply::empty(204), Duration::ZERO);
        }
        Route::MethodNotAllowed => delayer.answer(
            request,
            Reply::text(405, "Method Not Allowed"),
            Duration::ZERO,
        ),
        Route::NotFound => delayer.answer(request, Reply::text(404, "Not Found"), Duration::ZERO),
    }
}

fn read_body(request: &mut Request) -> Option<Vec<u8>> {
    let mut body = Vec::with_capacity(request.body_length().unwrap_or(0).min(1 << 20));
    request
        .as_reader()
        .take(MAX_BODY)
        .read_to_end(&mut body)
        .ok()?;
    Some(body)
}

fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::of(&Method::Post, "/fcm/send"), Route::Legacy);
        assert_eq!(
            Route::of(&Method::Get, "/fcm/send"),
            Route::MethodNotAllowed
        );
        assert_eq!(
            Route::of(&Method::Post, "/v1/projects/p-1/messages:send"),
            Route::V1 {
                project: "p-1".into()
            }
        );
        assert_eq!(
            Route::of(&Method::Post, "/v1/projects//messages:send"),
            Route::NotFound
        );
        assert_eq!(
            Route::of(&Method::Post, "/v1/projects/a/b/messages:send"),
            Route::NotFound
        );
        assert_eq!(Route::of(&Method::Post, "/token"), Route::Token);
        assert_eq!(Route::of(&Method::Get, "/mock/stats"), Route::Stats);
        assert_eq!(Route::of(&Method::Post, "/mock/reset"), Route::Reset);
        assert_eq!(Route::of(&Method::Post, "/elsewhere"), Route::NotFound);
    }
}
