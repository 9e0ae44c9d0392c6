//! Exactly-once calls: what a session remembers of its client's recent requests.
//!
//! A relay that lost its connection cannot know which of its requests the server received or
//! answered, so after a resume it sends every unanswered one again. The session answers those
//! re-sent requests from here instead of running them twice:
//! - a request still running is not forwarded again; its one answer goes to whichever socket is
//!   attached when it is ready;
//! - a request already answered gets the remembered answer again.
//!
//! A request counts as a re-send when its id *and* its content (method and params) match and it
//! arrives on a later connection than the original. The same id with other content, or on the
//! same connection after its answer, is a new request (clients that reuse ids keep working).
//!
//! Bounds: at most [`MAX_RUNNING`] requests run at once per session (more are refused); answers
//! are kept for [`ANSWER_TTL`] past the resume grace, at most [`MAX_ANSWERS`] of them and
//! [`MAX_ANSWER_BYTES`] in total, oldest forgotten first.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Requests one session may have running at once.
pub const MAX_RUNNING: usize = 4096;
/// Answers remembered per session.
pub const MAX_ANSWERS: usize = 1024;
/// Bytes of answers remembered per session.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// How long past the resume grace an answer is remembered. A re-send comes at the latest right
/// after a resume, which happens within the grace.
pub const ANSWER_TTL: Duration = Duration::from_secs(30);

/// What to do with a request from the client.
#[derive(Debug, PartialEq)]
pub(crate) enum Admission {
    /// New: hand it to the service.
    Run,
    /// A re-send of a request still running: its answer will come.
    AlreadyRunning,
    /// A re-send of a request already answered: send this text again.
    Answered(String),
    /// Too many requests running.
    TooMany,
}

enum Entry {
    Running {
        fingerprint: u64,
        connection: u64,
    },
    Answered {
        fingerprint: u64,
        connection: u64,
        text: String,
        at: Instant,
    },
}

#[derive(Default)]
pub(crate) struct RequestMemory {
    entries: HashMap<String, Entry>,
    /// Answered ids, oldest first (may name ids since replaced; checked on eviction).
    answered: VecDeque<String>,
    answered_bytes: usize,
    running: usize,
}

/// The key of an id: its JSON text, so `1` and `"1"` differ.
pub(crate) fn key(id: &Value) -> String {
    id.to_string()
}

/// A request's content as one number: its method, and its params serialised straight into the
/// hasher (no string of them is made: a sync's manifest is megabytes of JSON).
pub(crate) fn fingerprint(method: &str, params: Option<&Value>) -> u64 {
    let mut hasher = DefaultHasher::new();
    method.hash(&mut hasher);
    if let Some(p) = params {
        let mut out = std::io::BufWriter::with_capacity(8192, IntoHasher(&mut hasher));
        // Neither serialising a `Value` nor writing into a hasher fails.
        let _ = serde_json::to_writer(&mut out, p);
        let _ = out.flush();
    }
    hasher.finish()
}

/// Bytes written into a hasher.
struct IntoHasher<'a>(&'a mut DefaultHasher);

impl std::io::Write for IntoHasher<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl RequestMemory {
    /// Decides what to do with a request that arrived on `connection`.
    pub(crate) fn admit(&mut self, key: String, fingerprint: u64, connection: u64) -> Admission {
        match self.entries.get(&key) {
            Some(Entry::Running { fingerprint: f, .. }) if *f == fingerprint => {
                return Admission::AlreadyRunning;
            }
            Some(Entry::Answered {
                fingerprint: f,
                connection: c,
                text,
                ..
            }) if *f == fingerprint && *c != connection => {
                return Admission::Answered(text.clone());
            }
            // The same id with other content while the first still runs: a client bug. Run it
            // without remembering; the first one's entry stays.
            Some(Entry::Running { .. }) => return Admission::Run,
            _ => {}
        }
        if self.running >= MAX_RUNNING {
            return Admission::TooMany;
        }
        if let Some(Entry::Answered { text, .. }) = self.entries.remove(&key) {
            self.answered_bytes -= text.len();
        }
        self.entries.insert(
            key,
            Entry::Running {
                fingerprint,
                connection,
            },
        );
        self.running += 1;
        Admission::Run
    }

    /// Records the answer to a running request; `ttl` is how long to keep it.
    pub(crate) fn answered(&mut self, key: &str, text: &str, ttl: Duration) {
        let Some(Entry::Running {
            fingerprint,
            connection,
        }) = self.entries.get(key)
        else {
            return;
        };
        let (fingerprint, connection) = (*fingerprint, *connection);
        self.running -= 1;
        let now = Instant::now();
        self.forget_old(now, ttl);
        if text.len() > MAX_ANSWER_BYTES {
            self.entries.remove(key);
            return;
        }
        while self.answered.len() >= MAX_ANSWERS
            || self.answered_bytes + text.len() > MAX_ANSWER_BYTES
        {
            if !self.forget_oldest() {
                break;
            }
        }
        self.entries.insert(
            key.to_owned(),
            Entry::Answered {
                fingerprint,
                connection,
                text: text.to_owned(),
                at: now,
            },
        );
        self.answered.push_back(key.to_owned());
        self.answered_bytes += text.len();
    }

    /// Forgets a running request that will get no answer (the client cancelled it).
    pub(crate) fn abandon(&mut self, key: &str) {
        if let Some(Entry::Running { .. }) = self.entries.get(key) {
            self.entries.remove(key);
            self.running -= 1;
        }
    }

    /// Requests running now.
    pub(crate) fn running(&self) -> usize {
        self.running
    }

    /// Forgets the answers older than `ttl` now, without waiting for the next answer (the
    /// registry calls it periodically, so an idle session's memory is released too).
    pub(crate) fn tidy(&mut self, ttl: Duration) {
        self.forget_old(Instant::now(), ttl);
        self.give_back_peak();
    }

    /// Returns the tables' spare room once a burst is over: a session that once held thousands
    /// of requests keeps only what its current entries need (plus a small floor), so ten
    /// thousand idle sessions do not each keep their busiest minute's tables.
    fn give_back_peak(&mut self) {
        const FLOOR: usize = 16;
        if self.entries.capacity() > FLOOR && self.entries.len() * 4 < self.entries.capacity() {
            self.entries.shrink_to(FLOOR.max(self.entries.len() * 2));
        }
        if self.answered.capacity() > FLOOR && self.answered.len() * 4 < self.answered.capacity() {
            self.answered.shrink_to(FLOOR.max(self.answered.len() * 2));
        }
    }

    fn forget_old(&mut self, now: Instant, ttl: Duration) {
        while let Some(key) = self.answered.front() {
            match self.entries.get(key) {
                Some(Entry::Answered { at, .. }) if now.duration_since(*at) < ttl => break,
                _ => {
                    self.forget_oldest();
                }
            }
        }
    }

    /// Forgets the oldest answer; false when none is left.
    fn forget_oldest(&mut self) -> bool {
        let Some(key) = self.answered.pop_front() else {
            return false;
        };
        if let Some(Entry::Answered { text, .. }) = self.entries.get(&key) {
            self.answered_bytes -= text.len();
            self.entries.remove(&key);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn resends_are_answered_once() {
        let mut m = RequestMemory::default();
        let f = fingerprint("tools/call", Some(&json!({"name": "w"})));
        let k = key(&json!(1));
        assert_eq!(m.admit(k.clone(), f, 1), Admission::Run);
        // Re-sent while running, on a new connection: not run again.
        assert_eq!(m.admit(k.clone(), f, 2), Admission::AlreadyRunning);
        m.answered(&k, "answer", TTL);
        assert_eq!(m.running(), 0);
        // Re-sent after the answer, on a later connection: the same answer.
        assert_eq!(
            m.admit(k.clone(), f, 2),
            Admission::Answered("answer".into())
        );
        // The same id reused on the connection that got the answer: a new request.
        assert_eq!(m.admit(k.clone(), f, 1), Admission::Run);
        // Another request under an answered id: new.
        m.answered(&k, "second", TTL);
        let other = fingerprint("tools/call", Some(&json!({"name": "x"})));
        assert_eq!(m.admit(k, other, 3), Admission::Run);
    }

    #[test]
    fn large_params_have_a_fingerprint_of_their_whole_content() {
        let files = |last: &str| {
            let mut files: Vec<Value> = (0..2000)
                .map(|i| json!({"path": format!("src/f{i}.py"), "size": i}))
                .collect();
            files.push(json!({"path": last, "size": 0}));
            json!({"files": files})
        };
        let a = fingerprint("server/syncManifest", Some(&files("z.py")));
        assert_eq!(a, fingerprint("server/syncManifest", Some(&files("z.py"))));
        assert_ne!(a, fingerprint("server/syncManifest", Some(&files("y.py"))));
        assert_ne!(a, fingerprint("server/other", Some(&files("z.py"))));
        assert_ne!(a, fingerprint("server/syncManifest", None));
    }

    #[test]
    fn bounded() {
        let mut m = RequestMemory::default();
        for i in 0..(MAX_ANSWERS + 10) {
            let k = key(&json!(i));
            assert_eq!(m.admit(k.clone(), 7, 1), Admission::Run);
            m.answered(&k, "x", TTL);
        }
        assert_eq!(m.answered.len(), MAX_ANSWERS);
        // The oldest were forgotten: a re-send runs again.
        assert_eq!(m.admit(key(&json!(0)), 7, 2), Admission::Run);
        assert!(matches!(
            m.admit(key(&json!(MAX_ANSWERS + 9)), 7, 2),
            Admission::Answered(_)
        ));
        // Expired answers are forgotten at the next answer.
        let k = key(&json!("late"));
        m.admit(k.clone(), 1, 1);
        m.answered(&k, "y", Duration::ZERO);
        assert!(m.answered.len() <= 1);

        let mut full = RequestMemory::default();
        for i in 0..MAX_RUNNING {
            assert_eq!(full.admit(key(&json!(i)), 1, 1), Admission::Run);
        }
        assert_eq!(full.admit(key(&json!(-1)), 1, 1), Admission::TooMany);
    }

    #[test]
    fn an_idle_session_gives_back_its_peak() {
        let mut m = RequestMemory::default();
        for i in 0..MAX_ANSWERS {
            let k = key(&json!(i));
            m.admit(k.clone(), 7, 1);
            m.answered(&k, "an answer", TTL);
        }
        let peak = m.entries.capacity();
        assert!(peak >= MAX_ANSWERS);
        // Still remembered: nothing is given back while the answers are kept.
        m.tidy(TTL);
        assert_eq!(m.entries.capacity(), peak);
        // Once they expire the tables shrink to a small floor.
        m.tidy(Duration::ZERO);
        assert!(m.entries.is_empty());
        assert!(m.entries.capacity() < 64, "{}", m.entries.capacity());
        assert!(m.answered.capacity() < 64, "{}", m.answered.capacity());
        // And it works as before afterwards.
        let k = key(&json!("again"));
        assert_eq!(m.admit(k.clone(), 1, 1), Admission::Run);
        m.answered(&k, "x", TTL);
        assert_eq!(m.admit(k, 1, 2), Admission::Answered("x".into()));
    }
}
