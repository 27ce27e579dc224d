//! The listening socket and the handler threads.
//!
//! tiny_http reads requests on one thread per connection and queues them;
//! `threads` handler threads share the server and call [`Api::handle`].
//! The listener is set up before tiny_http sees it, because accepted sockets
//! inherit its options on Linux: TCP_NODELAY (without it, keep-alive answers
//! over ~1 KB stall 40 ms on Nagle's algorithm) and read/write timeouts (so
//! an idle or silent client cannot hold a thread forever).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::Api;
use crate::error::Error;

pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
    addr: SocketAddr,
}

impl HttpServer {
    pub fn start(
        addr: SocketAddr,
        client_timeout: Duration,
        threads: usize,
        api: Arc<Api>,
    ) -> Result<HttpServer, Error> {
        let listener = bind(addr, client_timeout).map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let server = tiny_http::Server::from_listener(listener, None).map_err(|e| Error::Bind {
            addr: addr.to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let server = Arc::new(server);
        let threads = (0..threads)
            .map(|i| {
                let server = server.clone();
                let api = api.clone();
                std::thread::Builder::new()
                    .name(format!("gocm-http-{i}"))
                    .spawn(move || {
                        while let Ok(rq) = server.recv() {
                            api.handle(rq);
                        }
                    })
                    .map_err(|source| Error::Io {
                        what: "spawning an HTTP thread".into(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(HttpServer {
            server,
            threads,
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the handler threads (requests already read are answered first)
    /// and closes the listener.
    pub fn stop(self) {
        for _ in &self.threads {
            self.server.unblock();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn bind(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    // Inherited by accepted sockets. On the listener itself it makes accept()
    // wake up every `timeout`, which the patched tiny_http accept loop
    // tolerates (see vendor/tiny_http/PATCHES.md).
    socket.set_read_timeout(Some(timeout))?;
    socket.set_write_timeout(Some(timeout))?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
