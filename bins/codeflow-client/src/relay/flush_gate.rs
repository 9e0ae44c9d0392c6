//! Read-your-writes without stalling the relay loop: a `tools/call` is held until a watcher
//! flush that started after it arrived has completed, so every change on disk before the call
//! reaches the server first. Messages after a held call wait behind it, in arrival order.
//! Pipelined calls share flushes; the loop keeps serving meanwhile.
//!
//! Bounded: at most [`HELD_LIMIT`] messages are held. When the gate is full the relay stops
//! reading the agent's stdin until a flush releases some ([`FlushGate::is_full`]): the agent
//! waits, nothing is dropped or reordered. A flush does not depend on the agent, so the gate
//! always drains.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use codeflow_transport::Message;

/// Agent messages held for flushes at most.
pub const HELD_LIMIT: usize = 1024;

/// A running watcher flush.
pub type Flush = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Default)]
pub struct FlushGate {
    /// Each message with the number of the flush that must have completed before it goes.
    held: VecDeque<(u64, Message)>,
    started: u64,
    done: u64,
    flushing: Option<Flush>,
}

impl FlushGate {
    /// Holds a call until a flush that starts now (or after the one running, which may have
    /// started before the call's writes) has completed. `start` starts a flush.
    pub fn hold_call(&mut self, message: Message, start: impl FnOnce() -> Flush) {
        let needed = if self.flushing.is_some() {
            self.started + 1
        } else {
            self.start(start);
            self.started
        };
        self.held.push_back((needed, message));
    }

    /// Holds a message behind the held ones, to keep the agent's order.
    pub fn hold_behind(&mut self, message: Message) {
        let needed = self.held.back().map_or(0, |(n, _)| *n);
        self.held.push_back((needed, message));
    }

    /// Whether messages are held (then later ones must wait behind them).
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Whether the gate holds as much as it may: stop taking messages from the agent.
    pub fn is_full(&self) -> bool {
        self.held.len() >= HELD_LIMIT
    }

    /// Resolves when the running flush completes (then call [`Self::release`]); pending while
    /// none runs.
    pub async fn flushed(&mut self) {
        match self.flushing.as_mut() {
            Some(flush) => {
                flush.await;
                self.flushing = None;
            }
            None => std::future::pending().await,
        }
    }

    /// After [`Self::flushed`]: the messages whose flush has now completed, in order. Starts
    /// the next flush when messages still wait.
    pub fn release(&mut self, start: impl FnOnce() -> Flush) -> Vec<Message> {
        self.done = self.started;
        let mut out = Vec::new();
        while let Some((needed, _)) = self.held.front() {
            if *needed > self.done {
                break;
            }
            if let Some((_, message)) = self.held.pop_front() {
                out.push(message);
            }
        }
        if !self.held.is_empty() && self.flushing.is_none() {
            self.start(start);
        }
        out
    }

    fn start(&mut self, start: impl FnOnce() -> Flush) {
        self.started += 1;
        self.flushing = Some(start());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::FutureExt;
    use parking_lot::Mutex;
    use serde_json::json;
    use tokio::sync::oneshot;

    use super::*;

    /// Flushes the test completes by hand, in the order started.
    #[derive(Default, Clone)]
    struct Flushes(Arc<Mutex<Vec<oneshot::Sender<()>>>>);

    impl Flushes {
        fn starter(&self) -> impl FnOnce() -> Flush + use<> {
            let all = self.0.clone();
            move || {
                let (tx, rx) = oneshot::channel();
                all.lock().push(tx);
                async move {
                    let _ = rx.await;
                }
                .boxed()
            }
        }
        fn started(&self) -> usize {
            self.0.lock().len()
        }
        fn complete_all(&self) {
            for tx in self.0.lock().drain(..) {
                let _ = tx.send(());
            }
        }
    }

    fn call(id: i64) -> Message {
        Message::request(json!(id), "tools/call", json!({}))
    }

    async fn flushed(gate: &mut FlushGate) -> bool {
        tokio::time::timeout(Duration::from_millis(50), gate.flushed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_call_waits_for_a_flush_started_after_it_arrived() {
        let flushes = Flushes::default();
        let mut gate = FlushGate::default();
        assert!(!flushed(&mut gate).await, "no flush, nothing to wait for");

        gate.hold_call(call(1), flushes.starter());
        assert_eq!(flushes.started(), 1);
        // A second call while the first flush runs: that flush may predate its writes.
        gate.hold_call(call(2), flushes.starter());
        gate.hold_behind(Message::notification("n", json!({})));
        assert_eq!(flushes.started(), 1, "shared, not started per call");
        assert!(gate.is_holding());

        flushes.complete_all();
        assert!(flushed(&mut gate).await);
        assert_eq!(gate.release(flushes.starter()), vec![call(1)]);
        assert_eq!(flushes.started(), 1, "the next flush for call 2 started");
        assert!(!flushed(&mut gate).await);

        flushes.complete_all();
        assert!(flushed(&mut gate).await);
        assert_eq!(
            gate.release(flushes.starter()),
            vec![call(2), Message::notification("n", json!({}))]
        );
        assert!(!gate.is_holding());
        assert!(!flushed(&mut gate).await, "nothing left to flush for");
    }

    #[tokio::test]
    async fn bounded() {
        let flushes = Flushes::default();
        let mut gate = FlushGate::default();
        for id in 0..HELD_LIMIT {
            assert!(!gate.is_full());
            gate.hold_call(call(id as i64), flushes.starter());
        }
        assert!(gate.is_full());
        flushes.complete_all();
        assert!(flushed(&mut gate).await);
        assert_eq!(gate.release(flushes.starter()).len(), 1);
        assert!(!gate.is_full());
    }
}
