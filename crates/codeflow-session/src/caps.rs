//! The cap on concurrent connections (`--max-clients`) and the `codeflow_connections` gauge.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Admits at most `max` connections at once; a connection holds its [`Admission`] until it
/// closes.
#[derive(Debug, Clone)]
pub struct ConnectionCap {
    permits: Arc<Semaphore>,
    max: usize,
}

/// One admitted connection: its permit and its share of the `codeflow_connections` gauge.
///
/// Both are given back on drop, and drops run while a panic unwinds, so a connection task that
/// panics still releases its slot and leaves the gauge right.
#[derive(Debug)]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        metrics::gauge!("codeflow_connections").increment(1.0);
        metrics::counter!("codeflow_connections_total").increment(1);
        Self { _permit: permit }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        metrics::gauge!("codeflow_connections").decrement(1.0);
    }
}

impl ConnectionCap {
    /// A cap of `max` connections at once.
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// An admission, or `None` when the server is full.
    pub fn try_admit(&self) -> Option<Admission> {
        self.permits
            .clone()
            .try_acquire_owned()
            .ok()
            .map(Admission::new)
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections admitted now.
    pub fn in_use(&self) -> usize {
        self.max - self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_holder_gives_its_slot_back() {
        let cap = ConnectionCap::new(1);
        let held = cap.try_admit();
        assert!(held.is_some());
        assert!(cap.try_admit().is_none());
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _admission = held;
            panic!("connection task bug");
        }));
        assert!(outcome.is_err());
        assert_eq!(cap.in_use(), 0);
        assert!(cap.try_admit().is_some());
    }
}
