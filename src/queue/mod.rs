//! The queue between the HTTP handlers and the workers.
//!
//! Two channels feed the workers: `intake`, bounded, where `/gcm/send` puts
//! accepted requests (full → 503, never a blocked handler), and `ready`,
//! where split-off chunks and due retries go. Workers prefer `ready`, so
//! work already accepted finishes before new work starts. The scheduler
//! thread holds retries until they are due.

pub mod job;
pub mod scheduler;

use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender, TrySendError};

pub use job::{Delivery, Job};

/// The producing side, cloned into handlers and workers.
#[derive(Clone)]
pub struct Queue {
    intake: Sender<Delivery>,
    ready: Sender<Delivery>,
    delayed: Sender<(Instant, Delivery)>,
}

/// The consuming side, cloned into each worker.
#[derive(Clone)]
pub struct Inbox {
    intake: Receiver<Delivery>,
    ready: Receiver<Delivery>,
    stop: Receiver<()>,
}

/// The intake is at its bound.
#[derive(Debug)]
pub struct Full(pub Delivery);

impl Queue {
    /// Accepts a new request, or hands it back when the intake is full.
    pub fn submit(&self, delivery: Delivery) -> Result<(), Full> {
        self.intake.try_send(delivery).map_err(|e| match e {
            TrySendError::Full(d) | TrySendError::Disconnected(d) => Full(d),
        })
    }

    /// Puts already-accepted work back for the next free worker.
    pub fn ready(&self, delivery: Delivery) {
        // Fails only while shutting down, when the work is dropped anyway.
        let _ = self.ready.send(delivery);
    }

    /// Hands work to the scheduler until `at`.
    pub fn retry_at(&self, at: Instant, delivery: Delivery) {
        let _ = self.delayed.send((at, delivery));
    }

    /// Requests waiting in the intake.
    pub fn intake_len(&self) -> usize {
        self.intake.len()
    }
}

impl Inbox {
    /// The next delivery, preferring `ready`; `None` once stopped.
    pub fn next(&self) -> Option<Delivery> {
        if let Ok(d) = self.ready.try_recv() {
            return Some(d);
        }
        select! {
            recv(self.ready) -> d => d.ok(),
            recv(self.intake) -> d => d.ok(),
            recv(self.stop) -> _ => None,
        }
    }
}

/// The running queue: both sides plus the scheduler thread. Dropping
/// `stop` (the sender) ends the scheduler and makes `Inbox::next` return
/// `None`.
pub struct Channels {
    pub queue: Queue,
    pub inbox: Inbox,
    pub stop: Sender<()>,
    pub scheduler: JoinHandle<()>,
}

pub fn start(intake_bound: usize) -> std::io::Result<Channels> {
    let (intake_tx, intake_rx) = bounded(intake_bound);
    let (ready_tx, ready_rx) = unbounded();
    let (delayed_tx, delayed_rx) = unbounded();
    let (stop_tx, stop_rx) = bounded(0);
    let scheduler = scheduler::spawn(delayed_rx, ready_tx.clone(), stop_rx.clone())?;
    Ok(Channels {
        queue: Queue {
            intake: intake_tx,
            ready: ready_tx,
            delayed: delayed_tx,
        },
        inbox: Inbox {
            intake: intake_rx,
            ready: ready_rx,
            stop: stop_rx,
        },
        stop: stop_tx,
        scheduler,
    })
}
