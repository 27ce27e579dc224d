use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read};

use std::net::SocketAddr;
use std::str::FromStr;

use crate::common::{HTTPVersion, Method};
use crate::util::refined_tcp_stream::Deadline;
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// gocm patch: most header lines in one request.
const MAX_HEADERS: usize = 100;

/// gocm patch: the answers tiny_http gives itself carry a JSON error naming
/// the problem, as gocm's own do (upstream's were empty).
fn json_error(status: u16, message: &str) -> crate::Response<std::io::Cursor<Vec<u8>>> {
    let mut body = String::from("{\"error\":\"");
    for c in message.chars() {
        match c {
            '"' => body.push_str("\\\""),
            '\\' => body.push_str("\\\\"),
            c if c.is_control() => {}
            c => body.push(c),
        }
    }
    body.push_str("\"}");
    crate::Response::from_data(body.into_bytes())
        .with_status_code(crate::StatusCode(status))
        .with_header(crate::Header {
            field: "Content-Type".parse().unwrap(),
            value: "application/json".parse().unwrap(),
        })
}

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    /// gocm patch: bounds a whole request header and its buffered body,
    /// counted from the request's first byte (the socket's read timeout).
    deadline: Deadline,
    request_timeout: Option<std::time::Duration>,
    /// gocm patch: a byte of the current request has arrived (so a timeout
    /// is answered 408, while an idle keep-alive connection closes quietly).
    partial: bool,
    /// gocm patch: for `InFlight`, to shut the socket from a handler.
    shutdown: Option<crate::connection::Connection>,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    /// gocm patch: with what is wrong, for the 400's JSON error.
    WrongHeader(HTTPVersion, &'static str),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
    /// gocm patch: the client stopped sending its (small) body.
    BodyTimeout(HTTPVersion),
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();
        let deadline = read_socket.deadline();
        let shutdown = read_socket.shutdown_handle();
        let request_timeout = read_socket.read_timeout();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            deadline,
            request_timeout,
            partial: false,
            shutdown,
        }
    }

    /// gocm patch: a handle to shut the connection's socket (once).
    pub(crate) fn take_shutdown(&mut self) -> Option<crate::connection::Connection> {
        self.shutdown.take()
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    fn read_next_line(&mut self) -> IoResult<AsciiString> {
        const MAX_LINE: usize = 16 * 1024;
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;

        loop {
            let byte = self.next_header_source.by_ref().bytes().next();

            let byte = match byte {
                Some(b) => b?,
                None => return Err(IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF")),
            };
            if !self.partial {
                self.partial = true;
                if let Some(t) = self.request_timeout {
                    self.deadline.set(t);
                }
            }

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf)
                    .map_err(|_| IoError::new(ErrorKind::InvalidInput, "Header is not in ASCII"));
            }

            prev_byte_was_cr = byte == b'\r';

            // gocm patch: upstream had no cap, so one endless header line
            // grew memory without bound.
            if buf.len() >= MAX_LINE {
                return Err(IoError::new(ErrorKind::InvalidInput, "header line too long"));
            }
            buf.push(byte);
        }
    }

    /// Reads a request from the stream.
    ///
    /// gocm patch: at most `MAX_HEADERS` header lines.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        self.partial = false;
        let request = self.read_within_deadline();
        self.deadline.clear();
        request
    }

    fn read_within_deadline(&mut self) -> Result<Request, ReadError> {
        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let mut line = self.read_next_line().map_err(ReadError::ReadIoError)?;
                // gocm patch: empty lines before a request line are
                // ignored (RFC 9112 §2.2); a few, not an endless stream.
                for _ in 0..4 {
                    if !line.is_empty() {
                        break;
                    }
                    line = self.read_next_line().map_err(ReadError::ReadIoError)?;
                }

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self.read_next_line().map_err(ReadError::ReadIoError)?;

                    if line.is_empty() {
                        break;
                    };
                    // gocm patch: upstream had no cap on the header count.
                    if headers.len() >= MAX_HEADERS {
                        return Err(ReadError::WrongHeader(
                            version,
                            "more than 100 header lines",
                        ));
                    }
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => {
                            return Err(ReadError::WrongHeader(
                                version,
                                "malformed header line (expected `Name: value`)",
                            ))
                        }
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e)
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    ReadError::BodyTimeout(version)
                }
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
                request::RequestCreationError::BadFraming => ReadError::WrongHeader(
                    version,
                    "ambiguous body length: send one Content-Length (digits only) \
                     or Transfer-Encoding: chunked alone",
                ),
            }
        })?;

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        use crate::{Response, StatusCode};

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        loop {
            let rq = match self.read() {
                Err(ReadError::WrongRequestLine) => {
                    let writer = self.sink.next().unwrap();
                    let response = json_error(
                        400,
                        "malformed request line (expected `METHOD /path HTTP/1.1`)",
                    );
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                Err(ReadError::WrongHeader(ver, what)) => {
                    let writer = self.sink.next().unwrap();
                    let response = json_error(400, what);
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                // gocm patch: Linux reports a socket timeout as WouldBlock,
                // so this 408 was never sent; and an idle keep-alive
                // connection (no byte of a request yet) closes quietly, so a
                // client never reads a 408 as the answer to its next request.
                Err(ReadError::ReadIoError(ref err))
                    if matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock)
                        && self.partial =>
                {
                    // request timeout
                    let writer = self.sink.next().unwrap();
                    let response = json_error(
                        408,
                        "the request header did not arrive within the client timeout \
                         (--client-timeout-ms)",
                    );
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // closing the connection
                }

                Err(ReadError::ExpectationFailed(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = json_error(417, "unsupported Expect header (only 100-continue)");
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None; // TODO: should be recoverable, but needs handling in case of body
                }

                // gocm patch: a body that stopped arriving gets a 408, not
                // a silent close.
                Err(ReadError::BodyTimeout(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = json_error(
                        408,
                        "the request body did not arrive within the client timeout \
                         (--client-timeout-ms)",
                    );
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None;
                }

                // gocm patch: an over-long or non-ASCII header line was a
                // silent close.
                Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::InvalidInput => {
                    let (status, what) = if err.to_string().contains("too long") {
                        (431, "a request or header line is over 16 KiB")
                    } else {
                        (400, "a request or header line is not ASCII")
                    };
                    let writer = self.sink.next().unwrap();
                    json_error(status, what)
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None;
                }

                Err(ReadError::ReadIoError(_)) => return None,

                Ok(rq) => rq,
            };

            // checking HTTP version
            // gocm patch: upstream wrote this answer through a new writer
            // while `rq` still held the previous one, so the write waited for
            // ever, leaking a thread and a socket per request. Answer through
            // the request's own writer, then close.
            if *rq.http_version() > (1, 1) {
                let response = json_error(505, "this server speaks HTTP/1.0 and HTTP/1.1 only");
                let writer = rq.into_writer();
                response
                    .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                    .ok();
                return None;
            }

            // updating the status of the connection
            let connection_header = rq
                .headers()
                .iter()
                .find(|h| h.field.equiv("Connection"))
                .map(|h| h.value.as_str());

            let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

            match lowercase {
                Some(ref val) if val.contains("close") => self.no_more_requests = true,
                Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
                Some(ref val)
                    if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
                {
                    self.no_more_requests = true
                }
                None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
                _ => (),
            };

            // returning the request
            return Some(rq);
        }
    }
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        // gocm patch: HTTP/0.9 (no headers, no status line) is refused as a
        // malformed request line; it was answered `HTTP/0.9 200 OK`.
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
