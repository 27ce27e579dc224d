//! The one error type of starting gocm. Each message says what to do.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// A flag or environment variable is missing, malformed or contradicts
    /// another one.
    Config(String),
    /// The same, for `gocm send`: the hint names its own `--help`.
    SendUsage(String),
    /// The service-account key file is unusable (never holds key material).
    Credentials(String),
    /// The listening socket could not be opened.
    Bind {
        addr: String,
        source: std::io::Error,
    },
    /// The `--unix-socket` path cannot be listened on.
    UnixSocket { path: PathBuf, problem: String },
    /// The durable queue cannot be opened or read.
    Store(String),
    /// Any other I/O failure at startup (thread spawn, file access).
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(msg) => write!(f, "{msg} (see `gocm --help`)"),
            Error::SendUsage(msg) => write!(f, "{msg} (see `gocm send --help`)"),
            Error::Credentials(msg) => write!(f, "credentials: {msg}"),
            Error::Bind { addr, source } => write!(
                f,
                "cannot listen on {addr}: {source} (is another gocm running? choose another --port)"
            ),
            Error::UnixSocket { path, problem } => {
                write!(
                    f,
                    "cannot listen on --unix-socket {}: {problem}",
                    path.display()
                )
            }
            Error::Store(msg) => write!(f, "queue store: {msg}"),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
