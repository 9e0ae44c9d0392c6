//! The agent's requests sent upstream and not answered yet, kept whole so they can be sent
//! again after a resume: their answers may have died with the old socket, and the server
//! answers a re-send from its request memory (or once the original finishes), never running it
//! twice. Answers that then arrive twice are recognised here and dropped by the relay.
//!
//! Bounded: at most [`MAX_IN_FLIGHT`] requests, as many as one session may have running on the
//! server; past that the relay refuses the request itself.

use std::collections::HashMap;

use codeflow_transport::Message;
use serde_json::Value;

/// Agent requests one relay keeps in flight (the server's limit per session).
pub const MAX_IN_FLIGHT: usize = 4096;

#[derive(Default)]
pub struct InFlight {
    calls: HashMap<Value, Call>,
    /// Numbers requests in sending order, so re-sends keep the agent's order.
    sent: u64,
}

struct Call {
    method: String,
    message: Message,
    order: u64,
}

impl InFlight {
    /// Whether another request may go out.
    pub fn has_room(&self) -> bool {
        self.calls.len() < MAX_IN_FLIGHT
    }

    /// Records a request going upstream (anything else is not tracked).
    pub fn sent(&mut self, message: &Message) {
        if let Message::Request { id, method, .. } = message {
            self.sent += 1;
            self.calls.insert(
                id.clone(),
                Call {
                    method: method.clone(),
                    message: message.clone(),
                    order: self.sent,
                },
            );
        }
    }

    /// The request `id` is answered (or will not be, see [`Self::forget`]): its method, or
    /// `None` when it was not in flight — a second answer.
    pub fn answered(&mut self, id: &Value) -> Option<String> {
        self.calls.remove(id).map(|c| c.method)
    }

    /// Stops tracking `id` without an answer (it never got out, or goes out again another
    /// way). True when it was in flight.
    pub fn forget(&mut self, id: &Value) -> bool {
        self.calls.remove(id).is_some()
    }

    pub fn contains(&self, id: &Value) -> bool {
        self.calls.contains_key(id)
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Every request still unanswered, in the order first sent, to send again after a resume.
    pub fn replay(&self) -> Vec<Message> {
        let mut again: Vec<(u64, &Message)> =
            self.calls.values().map(|c| (c.order, &c.message)).collect();
        again.sort_by_key(|(order, _)| *order);
        again.into_iter().map(|(_, m)| m.clone()).collect()
    }

    /// Gives up on every request (their outcome is unknown), in the order first sent:
    /// `(id, method)` of each.
    pub fn give_up(&mut self) -> Vec<(Value, String)> {
        let mut lost: Vec<(Value, Call)> = self.calls.drain().collect();
        lost.sort_by_key(|(_, c)| c.order);
        lost.into_iter().map(|(id, c)| (id, c.method)).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(id: i64, method: &str) -> Message {
        Message::request(json!(id), method, json!({"n": id}))
    }

    #[test]
    fn replays_unanswered_requests_in_the_order_sent() {
        let mut f = InFlight::default();
        for id in [3, 1, 2] {
            f.sent(&request(id, "tools/call"));
        }
        f.sent(&Message::notification(
            "notifications/initialized",
            json!({}),
        ));
        assert_eq!(f.answered(&json!(1)), Some("tools/call".into()));
        assert_eq!(
            f.replay(),
            vec![request(3, "tools/call"), request(2, "tools/call")]
        );
        // A second answer to the same id: not in flight any more.
        assert_eq!(f.answered(&json!(1)), None);
        assert!(f.contains(&json!(2)));
        assert!(f.forget(&json!(2)));
        assert!(!f.forget(&json!(2)));
        assert_eq!(f.replay(), vec![request(3, "tools/call")]);
    }

    #[test]
    fn giving_up_returns_every_call_in_order_and_empties() {
        let mut f = InFlight::default();
        f.sent(&request(9, "tools/call"));
        f.sent(&request(4, "tools/list"));
        assert_eq!(
            f.give_up(),
            vec![
                (json!(9), "tools/call".into()),
                (json!(4), "tools/list".into())
            ]
        );
        assert!(f.is_empty());
    }

    #[test]
    fn bounded() {
        let mut f = InFlight::default();
        for id in 0..MAX_IN_FLIGHT {
            assert!(f.has_room());
            f.sent(&request(id as i64, "tools/call"));
        }
        assert!(!f.has_room());
        f.answered(&json!(0));
        assert!(f.has_room());
    }
}
