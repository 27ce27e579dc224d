use std::io::Error as IoError;
use std::io::{self, Cursor, ErrorKind, Read, Write};

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use std::sync::Arc;

use crate::util::{Abandon, EqualReader, FusedReader, InFlight};
use crate::{HTTPVersion, Header, Method, Response, StatusCode};
use chunked_transfer::Decoder;

/// Represents an HTTP request made by a client.
///
/// A `Request` object is what is produced by the server, and is your what
/// your code must analyse and answer.
///
/// This object implements the `Send` trait, therefore you can dispatch your requests to
/// worker threads.
///
/// # Pipelining
///
/// If a client sends multiple requests in a row (without waiting for the response), then you will
/// get multiple `Request` objects simultaneously. This is called *requests pipelining*.
/// Tiny-http automatically reorders the responses so that you don't need to worry about the order
/// in which you call `respond` or `into_writer`.
///
/// This mechanic is disabled if:
///
///  - The body of a request is large enough (handling requires pipelining requires storing the
///    body of the request in a buffer ; if the body is too big, tiny-http will avoid doing that)
///  - A request sends a `Expect: 100-continue` header (which means that the client waits to
///    know whether its body will be processed before sending it)
///  - A request sends a `Connection: close` header or `Connection: upgrade` header (used for
///    websockets), which indicates that this is the last request that will be received on this
///    connection
///
/// # Automatic cleanup
///
/// If a `Request` object is destroyed without `into_writer` or `respond` being called,
/// an empty response with a 500 status code (internal server error) will automatically be
/// sent back to the client.
/// This means that if your code fails during the handling of a request, this "internal server
/// error" response will automatically be sent during the stack unwinding.
///
/// # Testing
///
/// If you want to build fake requests to test your server, use [`TestRequest`](crate::test::TestRequest).
pub struct Request {
    // where to read the body from
    data_reader: Option<Box<dyn Read + Send + 'static>>,

    // if this writer is empty, then the request has been answered
    response_writer: Option<Box<dyn Write + Send + 'static>>,

    remote_addr: Option<SocketAddr>,

    // true if HTTPS, false if HTTP
    secure: bool,

    method: Method,

    path: String,

    http_version: HTTPVersion,

    headers: Vec<Header>,

    body_length: Option<usize>,

    // true if a `100 Continue` response must be sent when `as_reader()` is called
    must_send_continue: bool,

    // If Some, a message must be sent after responding
    /// gocm patch: told when the request is answered, and whether the
    /// answer was written, so the connection bounds its requests in flight
    /// and stops reading those it could not answer.
    in_flight: Option<Arc<InFlight>>,
}

struct LeaveOnDrop<R> {
    gate: Arc<InFlight>,
    inner: R,
}

impl<R: Read> Read for LeaveOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}
impl<R: Write> Write for LeaveOnDrop<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
impl<R> Drop for LeaveOnDrop<R> {
    fn drop(&mut self) {
        self.gate.leave(true);
    }
}

/// Error that can happen when building a `Request` object.
#[derive(Debug)]
pub enum RequestCreationError {
    /// The client sent an `Expect` header that was not recognized by tiny-http.
    ExpectationFailed,

    /// gocm patch: the body's length is ambiguous (see `body_framing`).
    BadFraming,

    /// Error while reading data from the socket during the creation of the `Request`.
    CreationIoError(IoError),
}

impl From<IoError> for RequestCreationError {
    fn from(err: IoError) -> RequestCreationError {
        RequestCreationError::CreationIoError(err)
    }
}

/// Builds a new request.
///
/// After the request line and headers have been read from the socket, a new `Request` object
/// is built.
///
/// You must pass a `Read` that will allow the `Request` object to read from the incoming data.
/// It is the responsibility of the `Request` to read only the data of the request and not further.
///
/// The `Write` object will be used by the `Request` to write the response.
#[allow(clippy::too_many_arguments)]
/// gocm patch: bodies up to this size (gocm's default --max-body), with a
/// `Content-Length`, chunked, or after `Expect: 100-continue`, are read by
/// the connection's own thread before the request is queued, within the
/// request deadline: a slow client holds its own connection thread, never a
/// handler. Upstream buffered 1 KiB, and only with a `Content-Length`.
const BUFFERED_BODY: usize = 1024 * 1024;

/// gocm patch: hands on, after the buffered part of a body, the error that
/// ended its reading (a malformed chunk), so the handler sees it as upstream
/// did; the connection closes, since the body was not read to its end.
struct ReadFailure(Option<IoError>);

impl Read for ReadFailure {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| IoError::new(ErrorKind::InvalidData, "unreadable body")))
    }
}

fn is_timeout(e: &IoError) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// gocm patch: most raw bytes (framing included) read for a chunked body;
/// past this the body ends in an error. The chunk-size line is buffered
/// without limit by `chunked_transfer`, so this also bounds that.
const MAX_CHUNKED_RAW: u64 = 16 * 1024 * 1024;

/// gocm patch: how the body is delimited: (chunked, content length).
/// Upstream took the first `Content-Length`, ignored one it could not parse,
/// and decoded any `Transfer-Encoding` value as chunked, even beside a
/// `Content-Length`: each a request-smuggling shape. Now a body is either
/// `Transfer-Encoding: chunked` alone, or one or more `Content-Length`
/// headers that agree and are plain digits; anything else is refused.
fn body_framing(headers: &[Header]) -> Result<(bool, Option<usize>), RequestCreationError> {
    let te: Vec<&str> = headers
        .iter()
        .filter(|h| h.field.equiv("Transfer-Encoding"))
        .map(|h| h.value.as_str())
        .collect();
    let cl: Vec<&str> = headers
        .iter()
        .filter(|h| h.field.equiv("Content-Length"))
        .map(|h| h.value.as_str().trim())
        .collect();
    if !te.is_empty() {
        if !cl.is_empty() || te.len() > 1 || !te[0].trim().eq_ignore_ascii_case("chunked") {
            return Err(RequestCreationError::BadFraming);
        }
        return Ok((true, None));
    }
    let mut length = None;
    for v in cl {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RequestCreationError::BadFraming);
        }
        let n: usize = v.parse().map_err(|_| RequestCreationError::BadFraming)?;
        if length.is_some_and(|l| l != n) {
            return Err(RequestCreationError::BadFraming);
        }
        length = Some(n);
    }
    Ok((false, length))
}

/// gocm patch: a chunked body that abandons the connection when dropped
/// before its end, like `EqualReader`, so unread chunks are never taken
/// for the next request.
struct ChunkedBody<R: Read + Abandon> {
    decoder: Option<Decoder<io::Take<R>>>,
    finished: bool,
}

impl<R: Read + Abandon> ChunkedBody<R> {
    fn new(source: R) -> ChunkedBody<R> {
        ChunkedBody {
            decoder: Some(Decoder::new(source.take(MAX_CHUNKED_RAW))),
            finished: false,
        }
    }
}

impl<R: Read + Abandon> Read for ChunkedBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let decoder = self.decoder.as_mut().expect("present until drop");
        let n = decoder.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.finished = true;
        }
        Ok(n)
    }
}

impl<R: Read + Abandon> Drop for ChunkedBody<R> {
    fn drop(&mut self) {
        if !self.finished {
            if let Some(decoder) = self.decoder.take() {
                decoder.into_inner().into_inner().abandon();
            }
        }
    }
}

pub fn new_request<R, W>(
    secure: bool,
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    mut source_data: R,
    mut writer: W,
) -> Result<Request, RequestCreationError>
where
    R: Read + Abandon + Send + 'static,
    W: Write + Send + 'static,
{
    let (transfer_encoding, content_length) = body_framing(&headers)?;

    // true if the client sent a `Expect: 100-continue` header
    let expects_continue = {
        match headers
            .iter()
            .find(|h: &&Header| h.field.equiv("Expect"))
            .map(|h| h.value.as_str())
        {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("100-continue") => true,
            _ => return Err(RequestCreationError::ExpectationFailed),
        }
    };

    // gocm patch: `Connection: upgrade` no longer hands the whole socket to
    // the handler (gocm upgrades nothing, and it let a client hold a handler
    // thread for as long as it liked); the body is framed as any other.
    // gocm patch: a body that will be buffered here gets its `100 Continue`
    // from here too.
    let buffered = match content_length {
        Some(n) => n > 0 && n <= BUFFERED_BODY,
        None => transfer_encoding,
    };
    let mut must_send_continue = expects_continue;
    if expects_continue && buffered {
        // Written by hand: a 1xx has no Content-Length, and an HTTP/1.0
        // client gets none (RFC 9110 §15.2).
        if version >= HTTPVersion(1, 1) {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            writer.flush()?;
        }
        must_send_continue = false;
    }

    let reader = if let Some(content_length) = content_length {
        if content_length == 0 {
            Box::new(io::empty()) as Box<dyn Read + Send + 'static>
        } else if buffered {
            // if the content-length is small enough, we just read everything into a buffer
            // (gocm patch: up to BUFFERED_BODY; memory grows as the bytes
            // arrive, not as the client announces them)
            let mut buffer = Vec::with_capacity(content_length.min(64 * 1024));
            source_data
                .by_ref()
                .take(content_length as u64)
                .read_to_end(&mut buffer)?;
            if buffer.len() != content_length {
                // the socket returned EOF, but we were before the expected content-length
                // aborting
                let info = "Connection has been closed before we received enough data";
                let err = IoError::new(ErrorKind::ConnectionAborted, info);
                return Err(RequestCreationError::CreationIoError(err));
            }

            Box::new(Cursor::new(buffer)) as Box<dyn Read + Send + 'static>
        } else {
            let (data_reader, _) = EqualReader::new(source_data, content_length); // TODO:
            Box::new(FusedReader::new(data_reader)) as Box<dyn Read + Send + 'static>
        }
    } else if transfer_encoding {
        // gocm patch: the first BUFFERED_BODY + 1 decoded bytes are read
        // here; a longer body leaves its rest to the handler (gocm refuses
        // it at --max-body without reading on).
        let mut body = ChunkedBody::new(source_data);
        let mut buffer = Vec::new();
        let read = (&mut body)
            .take(BUFFERED_BODY as u64 + 1)
            .read_to_end(&mut buffer);
        match read {
            Err(e) if is_timeout(&e) => return Err(RequestCreationError::CreationIoError(e)),
            Err(e) => Box::new(Cursor::new(buffer).chain(ReadFailure(Some(e))))
                as Box<dyn Read + Send + 'static>,
            Ok(_) if body.finished => Box::new(Cursor::new(buffer)) as Box<dyn Read + Send + 'static>,
            Ok(_) => Box::new(Cursor::new(buffer).chain(FusedReader::new(body)))
                as Box<dyn Read + Send + 'static>,
        }
    } else {
        // if we have neither a Content-Length nor a Transfer-Encoding,
        // assuming that we have no data
        // TODO: could also be multipart/byteranges
        Box::new(io::empty()) as Box<dyn Read + Send + 'static>
    };

    Ok(Request {
        data_reader: Some(reader),
        response_writer: Some(Box::new(writer) as Box<dyn Write + Send + 'static>),
        remote_addr,
        secure,
        method,
        path,
        http_version: version,
        headers,
        body_length: content_length,
        must_send_continue,
        in_flight: None,
    })
}

impl Request {
    /// Returns true if the request was made through HTTPS.
    #[inline]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        &self.path
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the length of the body in bytes.
    ///
    /// Returns `None` if the length is unknown.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Returns the address of the client that sent this request.
    ///
    /// The address is always `Some` for TCP listeners, but always `None` for UNIX listeners
    /// (as the remote address of a UNIX client is almost always unnamed).
    ///
    /// Note that this is gathered from the socket. If you receive the request from a proxy,
    /// this function will return the address of the proxy and not the address of the actual
    /// user.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// Sends a response with a `Connection: upgrade` header, then turns the `Request` into a `Stream`.
    ///
    /// The main purpose of this function is to support websockets.
    /// If you detect that the request wants to use some kind of protocol upgrade, you can
    ///  call this function to obtain full control of the socket stream.
    ///
    /// If you call this on a non-websocket request, tiny-http will wait until this `Stream` object
    ///  is destroyed before continuing to read or write on the socket. Therefore you should always
    ///  destroy it as soon as possible.
    pub fn upgrade<R: Read>(
        mut self,
        protocol: &str,
        response: Response<R>,
    ) -> Box<dyn ReadWrite + Send> {
        use crate::util::CustomStream;

        response
            .raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                &self.headers,
                false,
                Some(protocol),
            )
            .ok(); // TODO: unused result

        self.response_writer.as_mut().unwrap().flush().ok(); // TODO: unused result

        let stream = CustomStream::new(self.extract_reader_impl(), self.extract_writer_impl());
        if let Some(gate) = self.in_flight.take() {
            let stream = LeaveOnDrop {
                gate,
                inner: stream,
            };
            Box::new(stream) as Box<dyn ReadWrite + Send>
        } else {
            Box::new(stream) as Box<dyn ReadWrite + Send>
        }
    }

    /// Allows to read the body of the request.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # extern crate rustc_serialize;
    /// # extern crate tiny_http;
    /// # use rustc_serialize::json::Json;
    /// # use std::io::Read;
    /// # fn get_content_type(_: &tiny_http::Request) -> &'static str { "" }
    /// # fn main() {
    /// # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
    /// let mut request = server.recv().unwrap();
    ///
    /// if get_content_type(&request) == "application/json" {
    ///     let mut content = String::new();
    ///     request.as_reader().read_to_string(&mut content).unwrap();
    ///     let json: Json = content.parse().unwrap();
    /// }
    /// # }
    /// ```
    ///
    /// If the client sent a `Expect: 100-continue` header with the request, calling this
    ///  function will send back a `100 Continue` response.
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        if self.must_send_continue {
            let msg = Response::new_empty(StatusCode(100));
            msg.raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                &self.headers,
                true,
                None,
            )
            .ok();
            self.response_writer.as_mut().unwrap().flush().ok();
            self.must_send_continue = false;
        }

        self.data_reader.as_mut().unwrap()
    }

    /// Turns the `Request` into a writer.
    ///
    /// The writer has a raw access to the stream to the user.
    /// This function is useful for things like CGI.
    ///
    /// Note that the destruction of the `Writer` object may trigger
    /// some events. For exemple if a client has sent multiple requests and the requests
    /// have been processed in parallel, the destruction of a writer will trigger
    /// the writing of the next response.
    /// Therefore you should always destroy the `Writer` as soon as possible.
    #[inline]
    pub fn into_writer(mut self) -> Box<dyn Write + Send + 'static> {
        let writer = self.extract_writer_impl();
        if let Some(gate) = self.in_flight.take() {
            let writer = LeaveOnDrop {
                gate,
                inner: writer,
            };
            Box::new(writer) as Box<dyn Write + Send + 'static>
        } else {
            writer
        }
    }

    /// Extract the response `Writer` object from the Request, dropping this `Writer` has the same side effects
    /// as the object returned by `into_writer` above.
    ///
    /// This may only be called once on a single request.
    fn extract_writer_impl(&mut self) -> Box<dyn Write + Send + 'static> {
        use std::mem;

        assert!(self.response_writer.is_some());

        let mut writer = None;
        mem::swap(&mut self.response_writer, &mut writer);
        writer.unwrap()
    }

    /// Extract the body `Reader` object from the Request.
    ///
    /// This may only be called once on a single request.
    fn extract_reader_impl(&mut self) -> Box<dyn Read + Send + 'static> {
        use std::mem;

        assert!(self.data_reader.is_some());

        let mut reader = None;
        mem::swap(&mut self.data_reader, &mut reader);
        reader.unwrap()
    }

    /// Sends a response to this request.
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let res = self.respond_impl(response);
        if let Some(gate) = self.in_flight.take() {
            gate.leave(res.is_ok());
        }
        res
    }

    fn respond_impl<R>(&mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let mut writer = self.extract_writer_impl();

        let do_not_send_body = self.method == Method::Head;

        let written = Self::ignore_client_closing_errors(response.raw_print(
            writer.by_ref(),
            self.http_version.clone(),
            &self.headers,
            do_not_send_body,
            None,
        ))
        .and_then(|()| Self::ignore_client_closing_errors(writer.flush()));
        // gocm patch: shut the socket before `writer` is dropped, whose
        // flush would otherwise wait out the write timeout once more.
        if written.is_err() {
            if let Some(gate) = &self.in_flight {
                gate.kill();
            }
        }
        drop(writer);
        written
    }

    fn ignore_client_closing_errors(result: io::Result<()>) -> io::Result<()> {
        result.or_else(|err| match err.kind() {
            ErrorKind::BrokenPipe => Ok(()),
            ErrorKind::ConnectionAborted => Ok(()),
            ErrorKind::ConnectionRefused => Ok(()),
            ErrorKind::ConnectionReset => Ok(()),
            _ => Err(err),
        })
    }

    pub(crate) fn with_in_flight(mut self, gate: Arc<InFlight>) -> Self {
        self.in_flight = Some(gate);
        self
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method, self.path, self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.response_writer.is_some() {
            let response = Response::empty(500);
            let written = self.respond_impl(response).is_ok();
            if let Some(gate) = self.in_flight.take() {
                gate.leave(written);
            }
        }
    }
}

/// Dummy trait that regroups the `Read` and `Write` traits.
///
/// Automatically implemented on all types that implement both `Read` and `Write`.
pub trait ReadWrite: Read + Write {}
impl<T> ReadWrite for T where T: Read + Write {}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}
