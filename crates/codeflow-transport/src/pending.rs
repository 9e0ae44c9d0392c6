//! Correlates requests we send with the responses that come back.
//!
//! Both ends originate requests: the relay sends the agent's requests to the server, and the
//! server sends `client/*` requests to the relay. Ids we allocate are strings with a prefix of
//! our own (`"s:17"`), so they can never collide with the numeric ids MCP clients use on the same
//! socket, and a response we did not ask for is handed back to the caller to route elsewhere.

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

/// Requests awaiting their response. Cheap to clone.
#[derive(Clone)]
pub struct PendingRequests {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
    waiting: Arc<Mutex<HashMap<String, Waiter>>>,
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
        self.waiting.lock().insert(key.clone(), tx);
        PendingRequest {
            message: Message::request(Value::String(key.clone()), method, params),
            receiver: rx,
            key,
            owner: self.clone(),
        }
    }

    /// Delivers a response to its waiter. Returns the message back when it is not a response
    /// to one of our requests, so the caller can route it elsewhere.
    pub fn resolve(&self, message: Message) -> Option<Message> {
        let key = match message.id() {
            Some(RequestId::String(s)) if message.is_response() => s.clone(),
            _ => return Some(message),
        };
        let Some(waiter) = self.waiting.lock().remove(&key) else {
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
        for (_, waiter) in self.waiting.lock().drain() {
            let _ = waiter.send(Err(error.clone()));
        }
    }

    /// How many requests are waiting.
    pub fn len(&self) -> usize {
        self.waiting.lock().len()
    }

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
    async fn timeout_frees_the_slot() {
        let pending = PendingRequests::new("s");
        let req = pending.register("x", json!({}));
        let err = req.response(Duration::from_millis(10)).await.unwrap_err();
        assert_eq!(err.code, codes::TIMEOUT);
        assert!(pending.is_empty());
    }
}
