//! The store writer's answer to one caller: "your write is committed", or
//! why not.
//!
//! A crossbeam (or std) channel would do, but a blocked `recv` there spins
//! and calls `sched_yield` for a while before it sleeps. Every `/gcm/send`
//! waits for a commit, and with dozens of handler threads waiting at once
//! that spinning was a fifth of the CPU of a durable intake. This waits on
//! a condition variable: asleep until answered.

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

/// What a commit tells its waiters.
pub type Outcome = Result<(), String>;

struct Slot {
    value: Mutex<Option<Outcome>>,
    ready: Condvar,
}

/// The writer's half: answers once; if dropped unanswered (the writer
/// stopped or panicked), the waiter hears that the store is closed.
pub struct Ack(Option<Arc<Slot>>);

/// The caller's half.
pub struct Wait(Arc<Slot>);

pub fn pair() -> (Ack, Wait) {
    let slot = Arc::new(Slot {
        value: Mutex::new(None),
        ready: Condvar::new(),
    });
    (Ack(Some(slot.clone())), Wait(slot))
}

impl Ack {
    pub fn send(mut self, outcome: Outcome) {
        if let Some(slot) = self.0.take() {
            *slot.value.lock() = Some(outcome);
            slot.ready.notify_one();
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            *slot.value.lock() = Some(Err("the store is closed".into()));
            slot.ready.notify_one();
        }
    }
}

impl Wait {
    /// Blocks until the writer answers.
    pub fn wait(self) -> Outcome {
        let mut value = self.0.value.lock();
        loop {
            if let Some(outcome) = value.take() {
                return outcome;
            }
            self.0.ready.wait(&mut value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_reaches_the_waiter_across_threads() {
        let (ack, wait) = pair();
        let t = std::thread::spawn(move || wait.wait());
        ack.send(Err("disk full".into()));
        assert_eq!(t.join().unwrap(), Err("disk full".to_string()));
        let (ack, wait) = pair();
        ack.send(Ok(()));
        assert_eq!(wait.wait(), Ok(()));
    }

    #[test]
    fn an_unanswered_ack_says_the_store_is_closed() {
        let (ack, wait) = pair();
        let t = std::thread::spawn(move || wait.wait());
        drop(ack);
        assert_eq!(t.join().unwrap(), Err("the store is closed".to_string()));
    }
}
