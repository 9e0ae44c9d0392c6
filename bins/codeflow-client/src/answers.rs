//! Exactly-once `client/*` requests: what the relay remembers of the server's recent requests.
//!
//! The mirror image of the session's request memory (`codeflow_session::memory`): when the
//! session is resumed on a new connection, the server sends every `client/*` request it has not
//! had an answer to again — the old socket may have lost the request, or the relay's answer.
//! The relay answers those re-sent ids from here instead of acting twice:
//! - a request still being served is not served again; its one answer goes to whichever
//!   connection is up when it is ready;
//! - a request that changes files (`client/writeFile`, `writeDelta`, `deleteFile`,
//!   `renameFile`) and was already answered gets the remembered answer again;
//! - a read already answered is simply served again: reading twice changes nothing, and
//!   keeping file contents would cost far more memory than it saves.
//!
//! Server ids are unique within one session (`"s:17"`), so an id and its method identify a
//! request; when the relay gets a fresh session the memory starts over.
//!
//! Bounds: at most [`MAX_RUNNING`] requests are served at once (more are refused); at most
//! [`MAX_ANSWERS`] answers are kept, none longer than [`ANSWER_TTL`], oldest forgotten first. A
//! write's answer is a few hundred bytes, so the memory stays well under 1 MB.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use codeflow_file_stream::protocol::{DELETE_FILE, RENAME_FILE, WRITE_DELTA, WRITE_FILE};
use serde_json::Value;

/// `client/*` requests served at once.
pub const MAX_RUNNING: usize = 1024;
/// Answers to writes remembered.
pub const MAX_ANSWERS: usize = 1024;
/// How long an answer is remembered. The server re-sends a request at the latest when the
/// session is resumed, and gives up on it 60 s after it first sent it.
pub const ANSWER_TTL: Duration = Duration::from_secs(120);

/// What to do with a `client/*` request from the server.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// New: serve it.
    Serve,
    /// A re-send of a request still being served: its answer will follow.
    Running,
    /// A re-send of a write already answered: send this text again.
    Answered(String),
    /// Too many requests being served.
    TooMany,
}

enum Entry {
    Running {
        method: String,
    },
    Answered {
        method: String,
        text: String,
        at: Instant,
    },
}

#[derive(Default)]
pub struct AnswerMemory {
    entries: HashMap<String, Entry>,
    /// Answered keys, oldest first.
    answered: VecDeque<String>,
    running: usize,
}

/// The key of a request id: its JSON text, so `1` and `"1"` differ.
pub fn key(id: &Value) -> String {
    id.to_string()
}

/// Whether serving `method` changes the client's files (so serving it twice is not harmless).
pub fn changes_files(method: &str) -> bool {
    matches!(method, WRITE_FILE | WRITE_DELTA | DELETE_FILE | RENAME_FILE)
}

impl AnswerMemory {
    /// Decides what to do with a request; a [`Admission::Serve`] is counted as running until
    /// [`Self::answered`].
    pub fn admit(&mut self, key: String, method: &str) -> Admission {
        match self.entries.get(&key) {
            Some(Entry::Running { method: m }) if m == method => return Admission::Running,
            Some(Entry::Answered {
                method: m,
                text,
                at,
            }) if m == method && at.elapsed() < ANSWER_TTL => {
                return Admission::Answered(text.clone());
            }
            // The same id for another method while the first is served: not a re-send (a
            // server bug). Serve it without remembering; the first one's entry stays.
            Some(Entry::Running { .. }) => return Admission::Serve,
            _ => {}
        }
        if self.running >= MAX_RUNNING {
            return Admission::TooMany;
        }
        self.entries.insert(
            key,
            Entry::Running {
                method: method.to_owned(),
            },
        );
        self.running += 1;
        Admission::Serve
    }

    /// Records the answer to a request being served. Answers to writes are kept; others are
    /// forgotten with the request.
    pub fn answered(&mut self, key: &str, text: &str) {
        let Some(Entry::Running { method }) = self.entries.remove(key) else {
            return;
        };
        self.running -= 1;
        if !changes_files(&method) {
            return;
        }
        let now = Instant::now();
        self.forget_old(now);
        while self.answered.len() >= MAX_ANSWERS {
            self.forget_oldest();
        }
        self.entries.insert(
            key.to_owned(),
            Entry::Answered {
                method,
                text: text.to_owned(),
                at: now,
            },
        );
        self.answered.push_back(key.to_owned());
    }

    /// Forgets everything: the relay has a new session, whose ids start over.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Requests being served now.
    #[cfg(test)]
    pub fn running(&self) -> usize {
        self.running
    }

    /// Answers remembered now.
    #[cfg(test)]
    pub fn remembered(&self) -> usize {
        self.answered.len()
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some(key) = self.answered.front() {
            match self.entries.get(key) {
                Some(Entry::Answered { at, .. }) if now.duration_since(*at) < ANSWER_TTL => break,
                _ => {
                    self.forget_oldest();
                }
            }
        }
    }

    fn forget_oldest(&mut self) {
        if let Some(key) = self.answered.pop_front()
            && let Some(Entry::Answered { .. }) = self.entries.get(&key)
        {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_resent_write_is_served_once_and_answered_again_from_memory() {
        let mut m = AnswerMemory::default();
        let k = key(&json!("s:1"));
        assert_eq!(m.admit(k.clone(), WRITE_FILE), Admission::Serve);
        // Re-sent while being served: not served again.
        assert_eq!(m.admit(k.clone(), WRITE_FILE), Admission::Running);
        assert_eq!(m.running(), 1);
        m.answered(&k, r#"{"id":"s:1","result":{}}"#);
        assert_eq!(m.running(), 0);
        // Re-sent after the answer: the same answer, byte for byte.
        assert_eq!(
            m.admit(k.clone(), WRITE_FILE),
            Admission::Answered(r#"{"id":"s:1","result":{}}"#.into())
        );
        // The same id for another method is another request.
        assert_eq!(m.admit(k, DELETE_FILE), Admission::Serve);
    }

    #[test]
    fn reads_are_served_again_and_their_answers_not_kept() {
        let mut m = AnswerMemory::default();
        let k = key(&json!("s:2"));
        assert_eq!(m.admit(k.clone(), "client/readFile"), Admission::Serve);
        assert_eq!(m.admit(k.clone(), "client/readFile"), Admission::Running);
        m.answered(&k, "a large file");
        assert_eq!(m.remembered(), 0);
        assert_eq!(m.admit(k, "client/readFile"), Admission::Serve);
    }

    #[test]
    fn a_new_session_starts_over() {
        let mut m = AnswerMemory::default();
        let k = key(&json!("s:1"));
        m.admit(k.clone(), WRITE_FILE);
        m.answered(&k, "old session");
        m.clear();
        assert_eq!(m.admit(k.clone(), WRITE_FILE), Admission::Serve);
        // An answer for a request of the old session finds nothing to record.
        m.clear();
        m.answered(&k, "late");
        assert_eq!((m.running(), m.remembered()), (0, 0));
    }

    #[test]
    fn bounded() {
        let mut m = AnswerMemory::default();
        for i in 0..(MAX_ANSWERS + 10) {
            let k = key(&json!(format!("s:{i}")));
            assert_eq!(m.admit(k.clone(), WRITE_FILE), Admission::Serve);
            m.answered(&k, "x");
        }
        assert_eq!(m.remembered(), MAX_ANSWERS);
        // The oldest were forgotten: a re-send is served again.
        assert_eq!(m.admit(key(&json!("s:0")), WRITE_FILE), Admission::Serve);
        let newest = key(&json!(format!("s:{}", MAX_ANSWERS + 9)));
        assert_eq!(m.admit(newest, WRITE_FILE), Admission::Answered("x".into()));

        let mut full = AnswerMemory::default();
        for i in 0..MAX_RUNNING {
            assert_eq!(full.admit(key(&json!(i)), WRITE_FILE), Admission::Serve);
        }
        assert_eq!(full.admit(key(&json!(-1)), WRITE_FILE), Admission::TooMany);
    }
}
