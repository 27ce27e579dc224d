//! The queue between the HTTP handlers and the workers.
//!
//! Two channels feed the workers: `intake`, bounded, where `/gcm/send` puts
//! accepted requests, and `ready`, where split-off chunks, recovered work and
//! due retries go. Workers prefer `ready`, so work already accepted finishes
//! before new work starts. The scheduler thread holds retries until they are
//! due. A handler reserves an intake slot *before* it commits a request to
//! the store, so a full queue answers 503 without having stored anything,
//! and a stored request always finds its slot.

pub mod ack;
pub mod job;
pub mod scheduler;
pub mod store;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
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
    /// Intake slots reserved or filled; never above the channel's bound.
    reserved: Arc<AtomicUsize>,
    bound: usize,
    /// Deliveries handed to the scheduler and not yet due (for metrics).
    waiting: Arc<AtomicUsize>,
}

/// The consuming side, cloned into each worker.
#[derive(Clone)]
pub struct Inbox {
    intake: Receiver<Delivery>,
    ready: Receiver<Delivery>,
    stop: Receiver<()>,
    stopping: Arc<AtomicBool>,
    reserved: Arc<AtomicUsize>,
}

/// A free intake slot, held between the store commit and the push. Dropped
/// unused, it frees the slot.
pub struct Slot<'a> {
    reserved: &'a AtomicUsize,
    used: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.used {
            self.reserved.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Queue {
    /// A slot in the intake, or `None` when it is full.
    pub fn reserve(&self) -> Option<Slot<'_>> {
        let taken = self.reserved.fetch_add(1, Ordering::AcqRel);
        let slot = Slot {
            reserved: &self.reserved,
            used: false,
        };
        (taken < self.bound).then_some(slot)
    }

    /// Puts a new request in its reserved slot.
    pub fn submit(&self, mut slot: Slot<'_>, delivery: Delivery) {
        match self.intake.try_send(delivery) {
            Ok(()) => slot.used = true,
            // Cannot be full (the slot is ours); disconnected only while
            // shutting down, when the request stays in the store.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
        }
    }

    /// Puts already-accepted work back for the next free worker.
    pub fn ready(&self, delivery: Delivery) {
        // Fails only while shutting down, when the work is dropped anyway.
        let _ = self.ready.send(delivery);
    }

    /// Hands work to the scheduler until `at`.
    pub fn retry_at(&self, at: Instant, delivery: Delivery) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        if self.delayed.send((at, delivery)).is_err() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Requests waiting in the intake.
    pub fn intake_len(&self) -> usize {
        self.intake.len()
    }

    /// Deliveries waiting: (new requests in the intake, work on the ready
    /// channel, retries held by the scheduler).
    pub fn depths(&self) -> (usize, usize, usize) {
        (
            self.intake.len(),
            self.ready.len(),
            self.waiting.load(Ordering::Relaxed),
        )
    }
}

impl Inbox {
    /// The next delivery, preferring `ready`; `None` once stopped.
    pub fn next(&self) -> Option<Delivery> {
        if self.stopping.load(Ordering::Acquire) {
            return None;
        }
        if let Ok(d) = self.ready.try_recv() {
            return Some(d);
        }
        let d = select! {
            recv(self.ready) -> d => d.ok(),
            recv(self.intake) -> d => d.ok().inspect(|_| {
                self.reserved.fetch_sub(1, Ordering::AcqRel);
            }),
            recv(self.stop) -> _ => None,
        };
        if self.stopping.load(Ordering::Acquire) {
            // Taken while stopping: it stays in the store (or, in memory
            // mode, is dropped with the rest of the queue).
            return None;
        }
        d
    }

    /// Makes every worker stop taking work; the ones waiting wake up when
    /// `Channels::stop` is dropped.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
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
    let waiting = Arc::new(AtomicUsize::new(0));
    let scheduler = scheduler::spawn(
        delayed_rx,
        ready_tx.clone(),
        stop_rx.clone(),
        waiting.clone(),
    )?;
    let reserved = Arc::new(AtomicUsize::new(0));
    Ok(Channels {
        queue: Queue {
            intake: intake_tx,
            ready: ready_tx,
            delayed: delayed_tx,
            reserved: reserved.clone(),
            bound: intake_bound,
            waiting,
        },
        inbox: Inbox {
            intake: intake_rx,
            ready: ready_rx,
            stop: stop_rx,
            stopping: Arc::new(AtomicBool::new(false)),
            reserved,
        },
        stop: stop_tx,
        scheduler,
    })
}
