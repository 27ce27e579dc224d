//! Answering later without holding a thread per waiting request.
//!
//! The mock must keep ~1000 requests in flight at 100 ms latency on a
//! 2-core machine. Sleeping in the handler threads would need 1000 of them;
//! instead a handler computes the answer at once and hands
//! `(due, request, reply)` to one delay thread, which keeps them in a
//! min-heap ordered by due time and writes each answer when it is due. The
//! requests themselves (and their sockets) just wait in the heap.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tiny_http::Request;

use crate::reply::Reply;

/// Where handlers send their answers. Cloned into every handler thread; when
/// all clones are gone the delay thread answers what is left and exits.
#[derive(Clone)]
pub(crate) struct Delayer {
    tx: Sender<Pending>,
}

struct Pending {
    due: Instant,
    /// Arrival order, so answers due at the same instant keep their order
    /// and the heap order is total.
    seq: u64,
    request: Request,
    reply: Reply,
}

// BinaryHeap is a max-heap; order by (due, seq) reversed so the earliest
// answer is on top.
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.seq == other.seq
    }
}

impl Eq for Pending {}

impl Delayer {
    /// Starts the delay thread.
    pub fn spawn() -> std::io::Result<(Delayer, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel();
        let handle = thread::Builder::new()
            .name("mock-fcm-delay".into())
            .spawn(move || run(rx))?;
        Ok((Delayer { tx }, handle))
    }

    /// Answers `request` with `reply` after `delay`: at once, on the calling
    /// thread, when `delay` is zero (no hop through the queue on the fast
    /// path benchmarks use); otherwise through the delay thread.
    pub fn answer(&self, request: Request, reply: Reply, delay: Duration) {
        if delay.is_zero() {
            respond(request, reply);
            return;
        }
        // An absurd delay (a `slow99999999999-` token) must not overflow
        // the clock: a year is "never" for a test.
        let now = Instant::now();
        let due = now
            .checked_add(delay)
            .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
        let pending = Pending {
            due,
            seq: 0,
            request,
            reply,
        };
        if let Err(mpsc::SendError(pending)) = self.tx.send(pending) {
            // The delay thread is gone (shutting down): answer now rather
            // than leave the client hanging.
            respond(pending.request, pending.reply);
        }
    }
}

fn run(rx: Receiver<Pending>) {
    let mut heap: BinaryHeap<Pending> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let next = match heap.peek() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(first) => rx.recv_timeout(first.due.saturating_duration_since(Instant::now())),
        };
        match next {
            Ok(mut pending) => {
                seq += 1;
                pending.seq = seq;
                heap.push(pending);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // Shutting down: answer everything still waiting now, so no
                // client is left without an answer.
                for pending in heap.into_sorted_vec().into_iter().rev() {
                    respond(pending.request, pending.reply);
                }
                return;
            }
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|p| p.due <= now) {
            let pending = heap.pop().expect("peeked");
            respond(pending.request, pending.reply);
        }
    }
}

fn respond(request: Request, reply: Reply) {
    if let Err(e) = request.respond(reply.into_response()) {
        log::debug!("mock-fcm: writing an answer failed: {e}");
    }
}
