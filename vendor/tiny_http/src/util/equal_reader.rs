use std::io::Read;

use super::Abandon;
use std::io::Result as IoResult;
use std::sync::mpsc::channel;
use std::sync::mpsc::{Receiver, Sender};

/// A `Reader` that reads exactly the number of bytes from a sub-reader.
///
/// If the limit is reached, it returns EOF. If the limit is not reached
/// when the destructor is called, the remaining bytes will be read and
/// thrown away.
pub struct EqualReader<R>
where
    R: Read + Abandon,
{
    reader: R,
    size: usize,
    last_read_signal: Sender<IoResult<()>>,
}

impl<R> EqualReader<R>
where
    R: Read + Abandon,
{
    pub fn new(reader: R, size: usize) -> (EqualReader<R>, Receiver<IoResult<()>>) {
        let (tx, rx) = channel();

        let r = EqualReader {
            reader,
            size,
            last_read_signal: tx,
        };

        (r, rx)
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read + Abandon,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 {
            return Ok(0);
        }

        let buf = if buf.len() < self.size {
            buf
        } else {
            &mut buf[..self.size]
        };

        match self.reader.read(buf) {
            Ok(len) => {
                self.size -= len;
                Ok(len)
            }
            err @ Err(_) => err,
        }
    }
}

impl<R> Drop for EqualReader<R>
where
    R: Read + Abandon,
{
    fn drop(&mut self) {
        // gocm patch: an unread rest is never drained. Upstream allocated
        // `vec![0; remaining]` here, so `Content-Length: 1000000000000`
        // answered 413 without reading aborted the process (upstream issue
        // #252), and draining made a handler wait on a slow client. The
        // connection is closed instead, so no byte of this body can be read
        // as the next request.
        if self.size > 0 {
            self.reader.abandon();
        }
        self.last_read_signal.send(Ok(())).ok();
    }
}

