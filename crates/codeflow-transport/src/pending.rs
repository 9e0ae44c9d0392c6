//! Correlates requests we send with the responses that come back.
//!
//! Both ends originate requests: the relay sends the agent's requests to the server, and the
//! server sends `client/*` requests to the relay. Ids we allocate are strings with a prefix of
//! our own (`"s:17"`), so they can never collide with the numeric ids MCP clients use on the same
//! socket, and a response we did not ask for is handed back to the caller to route elsewhere.
//!
//! Each waiting request keeps its message, so a side whose connection was replaced can send
//! every unanswered one again ([`PendingRequests::unanswered`]); the peer answers a re-sent id
//! once, and a second answer to an id of ours that nobody waits for any more is dropped here.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::message::{ErrorObject, Message, RequestId, codes};

/// Where the answer to one request goes.
type Waiter = oneshot::Sender<Result<Value, ErrorObject>>;

/// A request awaiting its response.
struct Waiting {
    /// Registration order, for re-sending in the order first sent.
    order: u64,
    message: Message,
    waiter: Waiter,
}

/// Requests awaiting their response. Cheap to clone.
#[derive(Clone)]
pub struct PendingRequests {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
    waiting: Arc<Mutex<HashMap<String, Waiting>>>,
}

impl std::fmt::Debug for PendingRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRequests")
            .field("prefix", &self.prefix)
            .field("waiting", &self.waiting.lock().len())
            .finish()
    }
}

/// A request registered with [`PendingRequests::register`], to send and then await.
#[derive(Debug)]
pub struct PendingRequest {
    /// The request to send (its id is the one the answer will carry).
    pub message: Message,
    receiver: oneshot::Receiver<Result<Value, ErrorObject>>,
    key: String,
    owner: PendingRequests,
}

impl PendingRequest {
    /// Waits for the response, at most `timeout`.
    pub async fn response(mut self, timeout: Duration) -> Result<Value, ErrorObject> {
        let outcome = tokio::time::timeout(timeout, &mut self.receiver).await;
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ErrorObject::new(
                codes::UNREACHABLE,
                "the connection closed before the peer answered",
            )),
            Err(_) => Err(ErrorObject::new(
                codes::TIMEOUT,
                format!("the peer did not answer within {} s", timeout.as_secs_f32()),
            )),
        }
    }
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        // A caller that gave up (timeout, cancellation) must not leave its slot behind.
        self.owner.waiting.lock().remove(&self.key);
    }
}

impl PendingRequests {
    /// `prefix` marks ids as ours; pick one per side (`"s"` on the server, `"r"` on the relay).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
            next: Arc::new(AtomicU64::new(1)),
            waiting: Arc::default(),
        }
    }

    /// Allocates an id and builds the request; send `message`, then await `response`.
    pub fn register(&self, method: &str, params: Value) -> PendingRequest {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let key = format!("{}:{n}", self.prefix);
        let (tx, rx) = oneshot::channel();
        let message = Message::request(Value::String(key.clone()), method, params);
        self.waiting.lock().insert(
            key.clone(),
            Waiting {
                order: n,
                message: message.clone(),
                waiter: tx,
            },
        );
        PendingRequest {
            message,
            receiver: rx,
            key,
            owner: self.clone(),
        }
    }

    /// Whether `key` is an id this side allocates (`"<prefix>:<n>"`).
    fn is_ours(&self, key: &str) -> bool {
        key.strip_prefix(&*self.prefix)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }

    /// Delivers a response to its waiter. Returns the message back when it is not a response
    /// to one of our requests, so the caller can route it elsewhere. A response to one of our
    /// ids that nobody waits for any more (a second answer to a re-sent request, or one that
    /// came after its caller gave up) is dropped.
    pub fn resolve(&self, message: Message) -> Option<Message> {
        let key = match message.id() {
            Some(RequestId::String(s)) if message.is_response() => s.clone(),
            _ => return Some(message),
        };
        let Some(Waiting { waiter, .. }) = self.waiting.lock().remove(&key) else {
            if self.is_ours(&key) {
                tracing::debug!(id = %key, "dropping an answer nobody waits for");
                return None;
            }
            return Some(message);
        };
        let outcome = match message {
            Message::Response { result, .. } => Ok(result),
            Message::Error { error, .. } => Err(error),
            _ => return None,
        };
        let _ = waiter.send(outcome);
        None
    }

    /// Fails every waiting request, e.g. when the connection is gone for good.
    pub fn fail_all(&self, error: &ErrorObject) {
        for (_, w) in self.waiting.lock().drain() {
            let _ = w.waiter.send(Err(error.clone()));
        }
    }

    /// Every request still waiting for its answer, in the order registered: what to send again
    /// on a new connection when the old one may have lost them (or their answers).
    pub fn unanswered(&self) -> Vec<Message> {
        let mut again: Vec<(u64, Message)> = self
            .waiting
            .lock()
            .values()
            .map(|w| (w.order, w.message.clone()))
            .collect();
        again.sort_by_key(|(order, _)| *order);
        again.into_iter().map(|(_, m)| m).collect()
    }

    /// How many requests are waiting.
    pub fn len(&self) -> usize {
        self.waiting.lock().len()
    }

    /// Whether no request is waiting for its answer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn resolves_own_responses_and_passes_others_through() {
        let pending = PendingRequests::new("s");
        let req = pending.register("client/readFile", json!({"path": "/a"}));
        let id = req.message.id().cloned().unwrap_or_default();
        assert_eq!(id, json!("s:1"));
        let foreign = Message::response(json!(1), json!({}));
        assert_eq!(pending.resolve(foreign.clone()), Some(foreign));
        assert_eq!(
            pending.resolve(Message::response(id, json!({"ok": true}))),
            None
        );
        assert_eq!(
            req.response(Duration::from_secs(1)).await,
            Ok(json!({"ok": true}))
        );
        assert!(pending.is_empty());
    }

    #[tokio::test]
    async fn unanswered_requests_come_back_in_order_and_late_answers_are_dropped() {
        let pending = PendingRequests::new("s");
        let first = pending.register("client/writeFile", json!({"path": "/a"}));
        let second = pending.register("client/readFile", json!({"path": "/b"}));
        let third = pending.register("client/readFile", json!({"path": "/c"}));
        let ids = |ms: Vec<Message>| {
            ms.iter()
                .filter_map(|m| m.id().cloned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(pending.unanswered()),
            vec![json!("s:1"), json!("s:2"), json!("s:3")]
        );
        assert_eq!(pending.unanswered()[0], first.message);
        // Answered or given up: no longer re-sent.
        assert_eq!(
            pending.resolve(Message::response(json!("s:2"), json!({}))),
            None
        );
        drop(third);
        assert_eq!(ids(pending.unanswered()), vec![json!("s:1")]);
        // A second answer to an id of ours is dropped, not handed on; other ids pass through.
        assert_eq!(
            pending.resolve(Message::response(json!("s:2"), json!({}))),
            None
        );
        let other = Message::response(json!("sx:2"), json!({}));
        assert_eq!(pending.resolve(other.clone()), Some(other));
        assert_eq!(second.response(Duration::from_secs(1)).await, Ok(json!({})));
        assert_eq!(pending.len(), 1);
    }

    #[tokio::test]
    async fn timeout_frees_the_slot() {
        let pending = PendingRequests::new("s");
        let req = pending.register("x", json!({}));
        let err = req.response(Duration::from_millis(10)).await.unwrap_err();
        assert_eq!(err.code, codes::TIMEOUT);
        assert!(pending.is_empty());
    }
}
