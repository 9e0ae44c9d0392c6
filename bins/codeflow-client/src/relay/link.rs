//! The relay's link to the server: up (a connection) or down (dialling, with backoff, since
//! some moment). Exactly one of the two at any time, and a dial is running while down — unless
//! the link rests ([`Link::rest`]): nothing needs the server until the agent speaks, and the
//! next message dials ([`Link::redial`]). A dial waiting out its backoff while the agent has a
//! call waiting is hurried ([`Link::hurry`]): it tries again at once, at most once a second.

use std::sync::Arc;
use std::time::Instant;

use codeflow_transport::{Inbound, Incoming, Message, Outbound, RawMessage, close};
use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::upstream::Established;

/// Starts one dial: connects (retrying with backoff until it succeeds, cutting a backoff short
/// when the [`Notify`] it is given is notified) and re-runs the handshake. In the relay,
/// [`crate::upstream::establish`].
pub type Dial = Arc<dyn Fn(Arc<Notify>) -> BoxFuture<'static, Established> + Send + Sync>;

/// What [`Link::next`] saw.
pub enum Event {
    Message(Message),
    /// A plain message kept as its text (the relay's connections keep text).
    Raw(RawMessage),
    /// The connection ended.
    Ended,
    /// The dial finished: a connection, or `None` when its task died.
    Dialed(Option<Established>),
}

pub struct Link {
    dial: Dial,
    /// Hurries the running dial (see [`Self::hurry`]).
    hurry: Arc<Notify>,
    state: State,
}

enum State {
    /// No connection since `since`; `dialing` runs until it has one (taken while its outcome
    /// is handed over).
    Down {
        dialing: Option<JoinHandle<Established>>,
        since: Instant,
    },
    Up {
        outbound: Outbound,
        inbound: Inbound,
    },
}

impl Link {
    /// Down, and dialling.
    pub fn dial(dial: Dial) -> Self {
        let hurry = Arc::new(Notify::new());
        let dialing = tokio::spawn(dial(Arc::clone(&hurry)));
        Self {
            dial,
            hurry,
            state: State::Down {
                dialing: Some(dialing),
                since: Instant::now(),
            },
        }
    }

    /// The connection's sending side, when up.
    pub fn outbound(&self) -> Option<&Outbound> {
        match &self.state {
            State::Up { outbound, .. } => Some(outbound),
            State::Down { .. } => None,
        }
    }

    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// Since when the server has been unreachable, when down.
    pub fn down_since(&self) -> Option<Instant> {
        match self.state {
            State::Down { since, .. } => Some(since),
            State::Up { .. } => None,
        }
    }

    /// What happens next on the link: a message from the server, the connection's end (then
    /// call [`Self::lost`]), or, while down, the dial's outcome — a connection (then call
    /// [`Self::up`]) or `None` when the dialling task died (then call [`Self::redial`]).
    pub async fn next(&mut self) -> Event {
        match &mut self.state {
            State::Up { inbound, .. } => match inbound.recv_incoming().await {
                Some(Incoming::Message(message)) => Event::Message(message),
                Some(Incoming::Raw(raw)) => Event::Raw(raw),
                None => Event::Ended,
            },
            State::Down { dialing, .. } => {
                let Some(handle) = dialing.as_mut() else {
                    return std::future::pending().await;
                };
                let outcome = handle.await.ok();
                *dialing = None;
                Event::Dialed(outcome)
            }
        }
    }

    /// Takes a connection [`Self::next`] handed over.
    pub fn up(&mut self, outbound: Outbound, inbound: Inbound) {
        self.state = State::Up { outbound, inbound };
    }

    /// Dials again while down (after a dial failed), keeping when the link went down.
    pub fn redial(&mut self) {
        if let State::Down { dialing, .. } = &mut self.state
            && dialing.is_none()
        {
            *dialing = Some(tokio::spawn((self.dial)(Arc::clone(&self.hurry))));
        }
    }

    /// Something waits for the server: a dial sleeping out its backoff tries again now (no
    /// sooner than a second after its last attempt). Without it, a call made just after the
    /// server came back would wait out a backoff grown during the outage (up to 20 s).
    pub fn hurry(&self) {
        if let State::Down {
            dialing: Some(_), ..
        } = &self.state
        {
            self.hurry.notify_one();
        }
    }

    /// The connection ended: down from now, dialling.
    pub fn lost(&mut self) {
        self.state = State::Down {
            dialing: Some(tokio::spawn((self.dial)(Arc::clone(&self.hurry)))),
            since: Instant::now(),
        };
    }

    /// The connection ended and nothing needs one now (the agent has not initialized): down,
    /// without dialling, until [`Self::redial`]. A server closes sockets that stay
    /// un-initialized, so dialling again at once would only repeat that every few seconds.
    pub fn rest(&mut self) {
        self.state = State::Down {
            dialing: None,
            since: Instant::now(),
        };
    }

    /// Ends the link: closes the connection (telling the server why) or stops dialling.
    pub fn close(&mut self, reason: &str) {
        match &mut self.state {
            State::Up { outbound, .. } => outbound.close(close::NORMAL, reason),
            State::Down { dialing, .. } => {
                if let Some(task) = dialing.take() {
                    task.abort();
                }
            }
        }
    }
}

impl Drop for Link {
    /// A dial never outlives the link that started it.
    fn drop(&mut self) {
        if let State::Down {
            dialing: Some(task),
            ..
        } = &self.state
        {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures::FutureExt;
    use serde_json::json;

    use super::*;
    use crate::relay::testing::connection_pair;
    use crate::upstream::Reestablished;

    /// A dial that connects to an in-memory peer at once; the peers' far ends are kept.
    fn instant_dial(
        dials: Arc<AtomicUsize>,
        peers: Arc<parking_lot::Mutex<Vec<Outbound>>>,
    ) -> Dial {
        Arc::new(move |_hurry| {
            let dials = dials.clone();
            let peers = peers.clone();
            async move {
                dials.fetch_add(1, Ordering::SeqCst);
                let ((outbound, inbound), (far, _far_in)) = connection_pair().await;
                peers.lock().push(far);
                Established {
                    outbound,
                    inbound,
                    early: Vec::new(),
                    kind: Reestablished::New,
                    login: None,
                }
            }
            .boxed()
        })
    }

    #[tokio::test]
    async fn down_dialling_then_up_then_down_again() {
        let dials = Arc::new(AtomicUsize::new(0));
        let peers = Arc::default();
        let mut link = Link::dial(instant_dial(dials.clone(), Arc::clone(&peers)));
        assert!(!link.is_up());
        assert!(link.outbound().is_none());
        let went_down = link.down_since().unwrap();

        let Event::Dialed(Some(established)) = link.next().await else {
            panic!("not dialled");
        };
        link.up(established.outbound, established.inbound);
        assert!(link.is_up());
        assert!(link.down_since().is_none());
        assert!(link.outbound().is_some());

        // A message from the server arrives; then the server end goes away.
        let far = peers.lock().remove(0);
        far.send(&Message::notification("x", json!({}))).unwrap();
        assert!(matches!(link.next().await, Event::Message(_)));
        far.close(close::NORMAL, "bye");
        drop(far);
        assert!(matches!(link.next().await, Event::Ended));
        link.lost();
        assert!(!link.is_up());
        assert!(link.down_since().unwrap() > went_down);
        assert!(matches!(link.next().await, Event::Dialed(Some(_))));
        assert_eq!(dials.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_dial_is_dialled_again_keeping_when_the_link_went_down() {
        let dials = Arc::new(AtomicUsize::new(0));
        let counted = dials.clone();
        let peers: Arc<parking_lot::Mutex<Vec<Outbound>>> = Arc::default();
        let fallback = instant_dial(dials.clone(), peers);
        let dial: Dial = Arc::new(move |hurry| {
            if counted.load(Ordering::SeqCst) == 0 {
                counted.fetch_add(1, Ordering::SeqCst);
                async { panic!("the dialling task died") }.boxed()
            } else {
                fallback(hurry)
            }
        });
        let mut link = Link::dial(dial);
        let since = link.down_since();
        assert!(matches!(link.next().await, Event::Dialed(None)));
        // Nothing to wait for until it dials again.
        assert!(
            tokio::time::timeout(Duration::from_millis(20), link.next())
                .await
                .is_err()
        );
        link.redial();
        assert_eq!(link.down_since(), since);
        assert!(matches!(link.next().await, Event::Dialed(Some(_))));
        assert_eq!(dials.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_resting_link_dials_only_when_asked() {
        let dials = Arc::new(AtomicUsize::new(0));
        let peers = Arc::default();
        let mut link = Link::dial(instant_dial(dials.clone(), Arc::clone(&peers)));
        let Event::Dialed(Some(established)) = link.next().await else {
            panic!("not dialled");
        };
        link.up(established.outbound, established.inbound);
        link.rest();
        assert!(!link.is_up());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), link.next())
                .await
                .is_err(),
            "a resting link does not dial"
        );
        assert_eq!(dials.load(Ordering::SeqCst), 1);
        link.redial();
        assert!(matches!(link.next().await, Event::Dialed(Some(_))));
        assert_eq!(dials.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_hurried_link_wakes_its_dial() {
        let dials = Arc::new(AtomicUsize::new(0));
        let peers: Arc<parking_lot::Mutex<Vec<Outbound>>> = Arc::default();
        let connect = instant_dial(dials.clone(), peers);
        // A dial that waits out a "backoff" until it is hurried.
        let dial: Dial = Arc::new(move |hurry| {
            let connect = Arc::clone(&connect);
            async move {
                hurry.notified().await;
                connect(hurry).await
            }
            .boxed()
        });
        let mut link = Link::dial(dial);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), link.next())
                .await
                .is_err(),
            "the dial waits"
        );
        link.hurry();
        assert!(matches!(link.next().await, Event::Dialed(Some(_))));
        assert_eq!(dials.load(Ordering::SeqCst), 1);
    }
}
