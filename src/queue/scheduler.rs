//! The retry scheduler: holds deliveries until they are due, then puts them
//! back on the ready channel. Workers hand their back-offs here instead of
//! sleeping through them, so a retry storm never idles the pool.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{select, Receiver, Sender};

use super::job::Delivery;

struct Due {
    at: Instant,
    seq: u64,
    delivery: Delivery,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// Reversed: `BinaryHeap` is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Starts the scheduler thread. It exits when `stop` is dropped or every
/// sender of `incoming` is gone; what it still holds is dropped with it.
/// `waiting` counts the deliveries sent to it and not yet due (the sender
/// adds, the scheduler subtracts when it releases one).
pub fn spawn(
    incoming: Receiver<(Instant, Delivery)>,
    ready: Sender<Delivery>,
    stop: Receiver<()>,
    waiting: Arc<AtomicUsize>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("gocm-scheduler".into())
        .spawn(move || run(incoming, ready, stop, &waiting))
}

fn run(
    incoming: Receiver<(Instant, Delivery)>,
    ready: Sender<Delivery>,
    stop: Receiver<()>,
    waiting: &AtomicUsize,
) {
    let mut heap = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|d: &Due| d.at <= now) {
            let due = heap.pop().expect("peeked");
            waiting.fetch_sub(1, AtomicOrdering::Relaxed);
            if ready.send(due.delivery).is_err() {
                return;
            }
        }
        let timeout = heap
            .peek()
            .map(|d| d.at.saturating_duration_since(now))
            .unwrap_or(std::time::Duration::from_secs(3600));
        select! {
            recv(incoming) -> msg => match msg {
                Ok((at, delivery)) => {
                    seq += 1;
                    heap.push(Due { at, seq, delivery });
                }
                Err(_) => return,
            },
            recv(stop) -> _ => return,
            default(timeout) => {}
        }
    }
}
