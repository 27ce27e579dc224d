//! The listening socket and the handler threads.
//!
//! tiny_http reads requests on one thread per connection and queues them;
//! `threads` handler threads share the server and call [`Api::handle`].
//! The listener is set up before tiny_http sees it, because accepted sockets
//! take its options: TCP_NODELAY (without it, keep-alive answers over ~1 KB
//! stall 40 ms on Nagle's algorithm) and read/write timeouts (so an idle or
//! silent client cannot hold a thread forever). Linux copies them to
//! accepted TCP sockets itself; for UNIX sockets it does not, and the
//! patched tiny_http copies the timeouts (vendor/tiny_http/PATCHES.md).
//!
//! A UNIX socket is created with mode 0660 whatever the umask: the mode is
//! set between `bind` and `listen`, while no client can connect yet, so
//! there is no moment with wider permissions. Who may connect is then
//! decided by the socket's owner and group (run gocm as its own user, and
//! put nginx's user in gocm's group) and by its directory's permissions.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::Api;
use crate::config::Listen;
use crate::error::Error;

/// The mode of a gocm UNIX socket: read and write (= connect) for its owner
/// and group, nothing for others.
pub const UNIX_SOCKET_MODE: u32 = 0o660;

pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
    listen: Listen,
}

impl HttpServer {
    pub fn start(
        listen: &Listen,
        client_timeout: Duration,
        threads: usize,
        api: Arc<Api>,
    ) -> Result<HttpServer, Error> {
        let bind_error = |addr: &SocketAddr| {
            let addr = addr.to_string();
            move |source| Error::Bind { addr, source }
        };
        let (listener, listen): (tiny_http::Listener, Listen) = match listen {
            Listen::Tcp(addr) => {
                let listener = bind_tcp(*addr, client_timeout).map_err(bind_error(addr))?;
                let local = listener.local_addr().map_err(bind_error(addr))?;
                (listener.into(), Listen::Tcp(local))
            }
            Listen::Unix(path) => {
                let listener = bind_unix(path, client_timeout)?;
                (listener.into(), Listen::Unix(path.clone()))
            }
        };
        let server = named_server(listener).map_err(|source| Error::Bind {
            addr: listen.to_string(),
            source,
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
            listen,
        })
    }

    /// Where the server listens (with the real port when started with 0).
    pub fn listen(&self) -> &Listen {
        &self.listen
    }

    /// Stops the handler threads (requests already read are answered first)
    /// and closes the listener; a UNIX socket file is removed.
    /// Handler threads still busy after `grace` (a client trickling a body)
    /// are left behind: the process is about to exit, and a slow client
    /// must not hold up a shutdown.
    pub fn stop(self, grace: Duration) {
        for _ in &self.threads {
            self.server.unblock();
        }
        let deadline = std::time::Instant::now() + grace;
        while self.threads.iter().any(|t| !t.is_finished()) && std::time::Instant::now() < deadline
        {
            std::thread::park_timeout(Duration::from_millis(5));
        }
        for t in self.threads.into_iter().filter(|t| t.is_finished()) {
            let _ = t.join();
        }
        // The last reference: tiny_http's drop closes the listener and
        // removes a UNIX socket file; removing it here too keeps that
        // promise whatever tiny_http does.
        drop(self.server);
        if let Listen::Unix(path) = &self.listen {
            remove_our_socket(path);
        }
    }
}

/// The name tiny_http's own threads (its accept loop and one thread per
/// client connection) show in `top -H`, `ps -L`, perf and /proc.
pub const CONNECTION_THREAD_NAME: &str = "gocm-conn";

/// Creates the tiny_http server from a thread named
/// [`CONNECTION_THREAD_NAME`]. tiny_http spawns its threads unnamed, and on
/// Linux an unnamed thread takes the name of the thread that created it:
/// the accept thread is created here, and the connection threads by the
/// accept thread. Without this they carry whatever name the caller's
/// thread has, which in a test or benchmark is also that of the mock's.
fn named_server(listener: tiny_http::Listener) -> std::io::Result<tiny_http::Server> {
    std::thread::Builder::new()
        .name(CONNECTION_THREAD_NAME.into())
        .spawn(move || {
            tiny_http::Server::from_listener(listener, None)
                .map_err(|e| std::io::Error::other(e.to_string()))
        })?
        .join()
        .map_err(|_| std::io::Error::other("tiny_http panicked while starting"))?
}

/// The longest a write of an answer may wait for the client to read. An
/// answer waits only when the client left earlier answers unread (they fill
/// the socket buffers), so this is about deaf clients, not slow networks: a
/// client still reading frees space on every write. Such a connection holds
/// up to two handler threads until then (and is closed), so it is kept far
/// below `--client-timeout-ms`.
const DEAF_CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

fn bind_tcp(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    // Inherited by accepted sockets. On the listener itself it makes accept()
    // wake up every `timeout`, which the patched tiny_http accept loop
    // tolerates (see vendor/tiny_http/PATCHES.md).
    socket.set_read_timeout(Some(timeout))?;
    socket.set_write_timeout(Some(timeout.min(DEAF_CLIENT_TIMEOUT)))?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Binds a UNIX socket at `path` with [`UNIX_SOCKET_MODE`], after clearing
/// away a stale socket file (one nobody listens on, left by a crash). Any
/// other file at `path`, or a socket someone still listens on, is refused.
fn bind_unix(path: &Path, timeout: Duration) -> Result<UnixListener, Error> {
    let problem = |what: String| Error::UnixSocket {
        path: path.to_path_buf(),
        problem: what,
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(problem(format!("cannot inspect it ({e})"))),
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(problem(
                    "another process is listening on it (is another gocm running?)".into(),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                log::info!(
                    "replacing the stale socket {} (nobody listens on it)",
                    path.display()
                );
                std::fs::remove_file(path)
                    .map_err(|e| problem(format!("cannot remove the stale socket ({e})")))?;
            }
            Err(e) => {
                return Err(problem(format!(
                    "exists, and connecting to it failed ({e})"
                )))
            }
        },
        Ok(meta) => {
            return Err(problem(format!(
                "exists and is {}, not a socket; refusing to replace it \
                 (remove it, or choose another --unix-socket)",
                file_kind(&meta.file_type())
            )))
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(problem(format!(
                "its folder {} does not exist (create it, e.g. systemd's RuntimeDirectory=)",
                dir.display()
            )));
        }
    }
    let addr = SockAddr::unix(path).map_err(|e| problem(format!("unusable path ({e})")))?;
    let io = |what: &'static str| move |e: std::io::Error| problem(format!("{what}: {e}"));
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(io("socket"))?;
    // Copied to each accepted connection by the patched tiny_http; on the
    // listener, accept() wakes up every `timeout`, which it tolerates.
    socket
        .set_read_timeout(Some(timeout))
        .map_err(io("setting the read timeout"))?;
    socket
        .set_write_timeout(Some(timeout.min(DEAF_CLIENT_TIMEOUT)))
        .map_err(io("setting the write timeout"))?;
    socket.bind(&addr).map_err(io("bind"))?;
    let listening =
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(UNIX_SOCKET_MODE))
            .map_err(io("setting its mode to 0660"))
            .and_then(|()| socket.listen(1024).map_err(io("listen")));
    if let Err(e) = listening {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(std::os::fd::OwnedFd::from(socket).into())
}

/// Removes the socket file at `path` if it is still a socket (not a file
/// someone put there since).
fn remove_our_socket(path: &PathBuf) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else {
        "a device or other special file"
    }
}
