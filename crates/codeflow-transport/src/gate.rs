//! Polling a source only when it has signalled something.
//!
//! A connection task waits on several sources at once (the socket's reads, its outbound queue,
//! the close slot, the heartbeat) and `select!` polls every one of them whenever the task runs.
//! During a channel fan-out the task runs once per event only because its queue has a message,
//! yet polling the socket's read side each time costs the WebSocket reader's buffer preparation
//! (tungstenite zeroes its 4 KiB read buffer on every read attempt) and a readiness check: for
//! 10,000 subscribers that is tens of megabytes of memory touched per event for nothing.
//!
//! A [`Gate`] sits between a source and the task: the source is polled with the gate's own
//! waker, and polled again only once that waker has fired (or after it produced a value, when
//! more may be ready). Otherwise the gate only records the task's waker and answers `Pending`,
//! which is exactly what the source would have answered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// What the gate's waker shares with the gate.
#[derive(Default)]
struct Signal {
    /// The source woke (or may have more) since it was last polled.
    woken: AtomicBool,
    /// The task waiting on the source.
    task: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Remembers whether one source has woken since it was last polled.
pub(crate) struct Gate {
    signal: Arc<Signal>,
    waker: Waker,
}

impl Gate {
    /// A gate that lets the first poll through.
    pub(crate) fn new() -> Self {
        let signal = Arc::new(Signal::default());
        signal.woken.store(true, Ordering::Relaxed);
        Self {
            waker: Waker::from(signal.clone()),
            signal,
        }
    }

    /// `source` as a future polled only when the gate is open. `source` must register its
    /// wake-up with the waker it is polled with, as every future does.
    pub(crate) fn pass<F: Future + Unpin>(&self, source: F) -> Gated<'_, F> {
        Gated { gate: self, source }
    }
}

/// A source behind a [`Gate`].
pub(crate) struct Gated<'a, F> {
    gate: &'a Gate,
    source: F,
}

impl<F: Future + Unpin> Future for Gated<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let signal = &self.gate.signal;
        // Registered before the flag is read: a wake in between is seen either way.
        signal.task.register(cx.waker());
        if !signal.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = self.gate.waker.clone();
        let mut inner = Context::from_waker(&waker);
        match Pin::new(&mut self.source).poll(&mut inner) {
            Poll::Ready(value) => {
                // More may be ready behind this one: the next poll goes through.
                signal.woken.store(true, Ordering::Release);
                Poll::Ready(value)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A source that counts how often it is polled and is ready once `ready` is set.
    struct Source<'a> {
        polls: &'a Cell<u32>,
        ready: &'a Cell<bool>,
        waker: &'a std::cell::RefCell<Option<Waker>>,
    }

    impl Future for Source<'_> {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.set(self.polls.get() + 1);
            if self.ready.get() {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn polls_the_source_only_after_it_woke() {
        let (polls, ready, waker) = (Cell::new(0), Cell::new(false), Default::default());
        let source = || Source {
            polls: &polls,
            ready: &ready,
            waker: &waker,
        };
        let gate = Gate::new();
        // The first poll goes through and finds nothing.
        assert!(futures::poll!(gate.pass(source())).is_pending());
        assert_eq!(polls.get(), 1);
        // Not woken since: the source is not asked again.
        assert!(futures::poll!(gate.pass(source())).is_pending());
        assert!(futures::poll!(gate.pass(source())).is_pending());
        assert_eq!(polls.get(), 1);
        // Woken: asked again, and again after a value (more may be there).
        ready.set(true);
        if let Some(w) = waker.borrow_mut().take() {
            w.wake();
        }
        assert!(futures::poll!(gate.pass(source())).is_ready());
        assert!(futures::poll!(gate.pass(source())).is_ready());
        assert_eq!(polls.get(), 3);
        // Nothing more: asked once, then not until the next wake.
        ready.set(false);
        assert!(futures::poll!(gate.pass(source())).is_pending());
        assert!(futures::poll!(gate.pass(source())).is_pending());
        assert_eq!(polls.get(), 4);
    }

    #[tokio::test]
    async fn wakes_the_task_when_the_source_wakes() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
        let waiter = tokio::spawn(async move {
            let gate = Gate::new();
            let first = gate.pass(std::future::poll_fn(|cx| rx.poll_recv(cx))).await;
            let second = gate.pass(std::future::poll_fn(|cx| rx.poll_recv(cx))).await;
            (first, second)
        });
        tokio::task::yield_now().await;
        for n in [1, 2] {
            tx.send(n).await.unwrap_or_else(|e| panic!("{e}"));
            tokio::task::yield_now().await;
        }
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(matches!(got, Ok(Ok((Some(1), Some(2))))), "{got:?}");
    }
}
