//! gocm patch: bounds the requests of one connection that are queued or
//! being answered.

use std::net::Shutdown;
use std::sync::{Condvar, Mutex};

use crate::connection::Connection;

/// How many requests of one connection may be queued or being answered at
/// once. Two lets a client that waits for each answer (nearly every
/// client) never make its connection thread wait here: its next request
/// is read while the previous answer is written. One would cost a thread
/// wake-up per request.
pub const MAX_IN_FLIGHT: usize = 2;

/// Shared by a connection's thread and the requests it queued.
#[derive(Default)]
pub struct InFlight {
    state: Mutex<State>,
    freed: Condvar,
    /// The connection's socket, to shut down when an answer cannot be
    /// written: the failed writer's flush on drop and the next answer
    /// waiting its turn then fail at once instead of each waiting out the
    /// write timeout (a client that reads nothing held two handler threads
    /// for several timeouts).
    socket: Option<Connection>,
}

#[derive(Default)]
struct State {
    count: usize,
    /// An answer could not be written: read no more requests.
    broken: bool,
    /// The connection's thread sleeps in `wait_below`.
    waiting: bool,
}

impl InFlight {
    pub(crate) fn new(socket: Option<Connection>) -> InFlight {
        InFlight {
            socket,
            ..InFlight::default()
        }
    }

    /// An answer could not be written: end the connection now.
    pub fn kill(&self) {
        if let Some(s) = &self.socket {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// A request was queued.
    pub fn enter(&self) {
        self.state.lock().unwrap().count += 1;
    }

    /// A request was answered (`written`: its answer reached the socket).
    /// Wakes the connection's thread only if it waits.
    pub fn leave(&self, written: bool) {
        let mut st = self.state.lock().unwrap();
        st.count = st.count.saturating_sub(1);
        st.broken |= !written;
        if st.waiting {
            self.freed.notify_one();
        }
    }

    /// Waits until fewer than `max` requests are in flight; false when an
    /// answer could not be written, so the connection should close.
    pub fn wait_below(&self, max: usize) -> bool {
        let mut st = self.state.lock().unwrap();
        while st.count >= max && !st.broken {
            st.waiting = true;
            st = self.freed.wait(st).unwrap();
        }
        st.waiting = false;
        !st.broken
    }
}
