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

    /// The method of the request `id`, while it is in flight.
    pub fn method(&self, id: &Value) -> Option<&str> {
        self.calls.get(id).map(|c| c.method.as_str())
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

    /// After the session was lost (its instance died or it expired): keeps the calls that
    /// `safe_again` says may run again on a new session (reads), to be re-sent, and gives up
    /// the others, whose outcome is unknown: `(id, what)` of each, in the order first sent,
    /// `what` being the method, or `tools/call <tool>`.
    pub fn keep_rerunnable(
        &mut self,
        safe_again: impl Fn(&Message) -> bool,
    ) -> Vec<(Value, String)> {
        let unsafe_ids: Vec<Value> = self
            .calls
            .iter()
            .filter(|(_, c)| !safe_again(&c.message))
            .map(|(id, _)| id.clone())
            .collect();
        let mut lost: Vec<(Value, Call)> = unsafe_ids
            .into_iter()
            .filter_map(|id| self.calls.remove(&id).map(|c| (id, c)))
            .collect();
        lost.sort_by_key(|(_, c)| c.order);
        lost.into_iter()
            .map(|(id, c)| (id, describe(&c.method, &c.message)))
            .collect()
    }

    /// Gives up on every request (their outcome is unknown), in the order first sent:
    /// `(id, method)` of each.
    pub fn give_up(&mut self) -> Vec<(Value, String)> {
        let mut lost: Vec<(Value, Call)> = self.calls.drain().collect();
        lost.sort_by_key(|(_, c)| c.order);
        lost.into_iter().map(|(id, c)| (id, c.method)).collect()
    }
}

/// `tools/call <tool>` for a tool call, the method otherwise.
fn describe(method: &str, message: &Message) -> String {
    match message {
        Message::Request {
            params: Some(params),
            ..
        } if method == "tools/call" => match params.get("name").and_then(Value::as_str) {
            Some(tool) => format!("tools/call {tool}"),
            None => method.to_owned(),
        },
        _ => method.to_owned(),
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
    fn after_a_lost_session_reads_stay_and_the_rest_is_given_up_in_order() {
        let mut f = InFlight::default();
        let call = |id: i64, tool: &str| {
            Message::request(
                json!(id),
                "tools/call",
                json!({"name": tool, "arguments": {}}),
            )
        };
        f.sent(&call(1, "create_file"));
        f.sent(&call(2, "find_definition"));
        f.sent(&request(3, "tools/list"));
        f.sent(&call(4, "rename_file"));
        let lost = f.keep_rerunnable(|m| match m {
            Message::Request { method, params, .. } => {
                method == "tools/list"
                    || params.as_ref().and_then(|p| p.get("name"))
                        == Some(&json!("find_definition"))
            }
            _ => false,
        });
        assert_eq!(
            lost,
            vec![
                (json!(1), "tools/call create_file".into()),
                (json!(4), "tools/call rename_file".into())
            ]
        );
        assert_eq!(
            f.replay(),
            vec![call(2, "find_definition"), request(3, "tools/list")]
        );
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
