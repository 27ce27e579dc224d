//! One write per upstream request instead of two.
//!
//! ureq transmits a request's head and its body separately: two `send`
//! calls, and with Nagle off two TCP segments (two TLS records on HTTPS),
//! each waking the receiver. Every upstream call here is a small POST, so
//! holding the head back until the body follows halves the packets, the
//! syscalls and the wake-ups on both ends. [`Coalescing`] holds the last
//! transmitted bytes until the next transmit (then both go in one write) or
//! until ureq starts reading the answer (then they go alone), so nothing is
//! ever held while ureq waits.

use std::fmt;

use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// Chained after ureq's default connector: wraps the final transport (above
/// TLS, so a request is one TLS record too).
#[derive(Debug, Default)]
pub struct CoalescingConnector;

impl<In: Transport> Connector<In> for CoalescingConnector {
    type Out = Coalescing<In>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Coalescing {
            inner,
            held: Vec::new(),
        }))
    }
}

pub struct Coalescing<T> {
    inner: T,
    /// Transmitted by ureq, not yet written to the connection.
    held: Vec<u8>,
}

impl<T: Transport> Coalescing<T> {
    /// Writes what is held, alone.
    fn flush(&mut self, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if self.held.is_empty() {
            return Ok(());
        }
        // The output buffer is free between transmits: ureq fills it anew
        // before each one, and the held bytes came out of it.
        let n = self.held.len();
        self.inner.buffers().output()[..n].copy_from_slice(&self.held);
        self.held.clear();
        self.inner.transmit_output(n, timeout)
    }
}

impl<T: Transport> Transport for Coalescing<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if self.held.is_empty() {
            let output = self.inner.buffers().output();
            self.held.extend_from_slice(&output[..amount]);
            return Ok(());
        }
        let held = self.held.len();
        let output = self.inner.buffers().output();
        if held + amount > output.len() {
            // No room for both: the held bytes go first, on their own.
            let current = output[..amount].to_vec();
            self.flush(timeout)?;
            self.inner.buffers().output()[..amount].copy_from_slice(&current);
            return self.inner.transmit_output(amount, timeout);
        }
        output.copy_within(..amount, held);
        output[..held].copy_from_slice(&self.held);
        self.held.clear();
        self.inner.transmit_output(held + amount, timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush(timeout)?;
        self.inner.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush(timeout)?;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

impl<T> fmt::Debug for Coalescing<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalescing")
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::unversioned::transport::LazyBuffers;

    /// Records each write; answers reads with nothing.
    #[derive(Debug)]
    struct Recorder {
        buffers: LazyBuffers,
        writes: Vec<Vec<u8>>,
        reads: usize,
    }

    impl Recorder {
        fn new(output: usize) -> Recorder {
            Recorder {
                buffers: LazyBuffers::new(64, output),
                writes: Vec::new(),
                reads: 0,
            }
        }
    }

    impl Transport for Recorder {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }
        fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), ureq::Error> {
            let out = self.buffers.output()[..amount].to_vec();
            self.writes.push(out);
            Ok(())
        }
        fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
            self.reads += 1;
            Ok(false)
        }
        fn is_open(&mut self) -> bool {
            true
        }
    }

    fn timeout() -> NextTimeout {
        NextTimeout {
            after: ureq::unversioned::transport::time::Duration::from_secs(5),
            reason: ureq::Timeout::SendBody,
            per_read: None,
            per_write: None,
        }
    }

    /// What ureq does: fill the output buffer, then transmit part of it.
    fn send(t: &mut Coalescing<Recorder>, bytes: &[u8]) {
        t.buffers().output()[..bytes.len()].copy_from_slice(bytes);
        // ureq leaves stale bytes after `amount`; the wrapper must not send them.
        if let Some(rest) = t.buffers().output().get_mut(bytes.len()..bytes.len() + 3) {
            rest.copy_from_slice(b"XXX");
        }
        t.transmit_output(bytes.len(), timeout()).unwrap();
    }

    fn wrap(output: usize) -> Coalescing<Recorder> {
        Coalescing {
            inner: Recorder::new(output),
            held: Vec::new(),
        }
    }

    #[test]
    fn head_and_body_leave_in_one_write_before_the_answer_is_read() {
        let mut t = wrap(1024);
        send(&mut t, b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n");
        assert!(t.inner.writes.is_empty(), "the head waits for the body");
        send(&mut t, b"{}");
        assert_eq!(
            t.inner.writes,
            vec![b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}".to_vec()]
        );
        t.await_input(timeout()).unwrap();
        assert_eq!(t.inner.writes.len(), 1, "nothing more to write");
        assert_eq!(t.inner.reads, 1);
    }

    #[test]
    fn a_request_without_body_is_written_before_reading() {
        let mut t = wrap(1024);
        send(&mut t, b"GET / HTTP/1.1\r\n\r\n");
        assert!(t.inner.writes.is_empty());
        t.maybe_await_input(timeout()).unwrap();
        assert_eq!(t.inner.writes, vec![b"GET / HTTP/1.1\r\n\r\n".to_vec()]);
    }

    #[test]
    fn long_bodies_keep_their_order_when_they_do_not_fit_together() {
        let mut t = wrap(16);
        send(&mut t, b"HEAD-0123456789");
        send(&mut t, b"body-0123456789");
        send(&mut t, b"more");
        t.await_input(timeout()).unwrap();
        let all: Vec<u8> = t.inner.writes.concat();
        assert_eq!(all, b"HEAD-0123456789body-0123456789more".to_vec());
        assert_eq!(t.inner.writes.len(), 3, "{:?}", t.inner.writes);
    }
}
