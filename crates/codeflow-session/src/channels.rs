//! Per-project event channels with a bounded history, so a client that was away can catch up.
//!
//! Every project has six channels ([`Channel`]). A publication gets the next offset of its
//! channel; the last [`ChannelConfig::history`] publications are kept. Offsets only grow within
//! an *epoch* (one server process): a client that remembers `{epoch, offset}` can ask for what
//! it missed (`channels/subscribe` with `since`), and gets either every missed publication in
//! order (`recovered: true`) or, when the gap is older than the history or the server restarted,
//! `recovered: false` and the current position, so it knows to resynchronise.
//!
//! Delivery to sessions is in offset order without gaps or repeats: each subscription remembers
//! the last offset it handed to a socket, and fills any gap from the history (see
//! `Session::deliver_event`). While a session has no socket nothing is queued for it: the
//! history is the queue, replayed when the session resumes.
//!
//! Lock order: a session's state lock may be held while taking a channel's lock, never the
//! other way round. [`Channels::publish`] releases the channel before it touches any session.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use codeflow_transport::Message;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::session::Session;
use codeflow_types::ProjectId;

/// The channels every project has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// File changes seen by the server (created, changed, deleted).
    Files,
    /// Language-server diagnostics (`textDocument/publishDiagnostics`).
    Diagnostics,
    /// Output of Claude runs.
    AiResponse,
    /// Search results streamed to subscribers.
    Search,
    /// Validation (build, lint, test) results.
    Validation,
    /// Repository state changes.
    Git,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 6] = [
        Channel::Files,
        Channel::Diagnostics,
        Channel::AiResponse,
        Channel::Search,
        Channel::Validation,
        Channel::Git,
    ];

    /// The channel of a wire name (`ai-response`, …).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "files" => Self::Files,
            "diagnostics" => Self::Diagnostics,
            "ai-response" => Self::AiResponse,
            "search" => Self::Search,
            "validation" => Self::Validation,
            "git" => Self::Git,
            _ => return None,
        })
    }

    /// The channel's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Files => "files",
            Self::Diagnostics => "diagnostics",
            Self::AiResponse => "ai-response",
            Self::Search => "search",
            Self::Validation => "validation",
            Self::Git => "git",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Channel settings.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// Publications kept per channel for recovery. A client away for longer than this many
    /// publications gets `recovered: false`.
    pub history: usize,
    /// Accept `channels/publish` from clients. Off in production: only server components
    /// publish. Tests and benchmarks turn it on (`CODEFLOW_TEST_TOOLS`).
    pub client_publish: bool,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            history: 1024,
            client_publish: false,
        }
    }
}

/// A position in a channel: the epoch (one per server process) and the offset of the last
/// publication (0 before the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The epoch: one per server process; offsets restart with a new one.
    pub epoch: Arc<str>,
    /// The offset of the last publication (0 before the first).
    pub offset: u64,
}

/// One publication, serialised once for every subscriber.
#[derive(Debug)]
pub struct Publication {
    /// The channel it was published on.
    pub channel: Channel,
    /// Its offset in the channel.
    pub offset: u64,
    /// Milliseconds since the Unix epoch, at publication.
    pub timestamp: u64,
    /// The event's payload.
    pub data: Value,
    /// The `channels/event` notification, as sent to every subscriber.
    pub(crate) event_text: String,
}

impl Publication {
    fn new(channel: Channel, epoch: &str, offset: u64, data: Value) -> Self {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let event_text = Message::notification(
            "channels/event",
            json!({
                "channel": channel.as_str(),
                "epoch": epoch,
                "offset": offset,
                "data": data,
                "timestamp": timestamp,
            }),
        )
        .to_text();
        Self {
            channel,
            offset,
            timestamp,
            data,
            event_text,
        }
    }

    /// The publication as listed in a `channels/subscribe` result.
    pub fn to_value(&self) -> Value {
        json!({"offset": self.offset, "data": self.data, "timestamp": self.timestamp})
    }
}

/// What a subscription with `since` got back.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The channel's position now.
    pub position: Position,
    /// Every publication after `since` is in `publications`.
    pub recovered: bool,
    /// The publications after `since`, oldest first.
    pub publications: Vec<Arc<Publication>>,
}

/// The part of the history after an offset is gone (too old, or another epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap;

/// One channel of one project.
pub(crate) struct ChannelState {
    pub(crate) channel: Channel,
    epoch: Arc<str>,
    top: u64,
    history: VecDeque<Arc<Publication>>,
    capacity: usize,
    subscribers: HashMap<String, Weak<Session>>,
}

/// A shared handle to one channel; sessions keep one per subscription.
pub(crate) type ChannelHandle = Arc<Mutex<ChannelState>>;

impl ChannelState {
    pub(crate) fn position(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            offset: self.top,
        }
    }

    /// Publications with offsets in `(after, upto]`, or [`Gap`] when some are no longer kept.
    pub(crate) fn between(&self, after: u64, upto: u64) -> Result<Vec<Arc<Publication>>, Gap> {
        let upto = upto.min(self.top);
        if after >= upto {
            return Ok(Vec::new());
        }
        let oldest = self.history.front().map_or(self.top + 1, |p| p.offset);
        if after + 1 < oldest {
            return Err(Gap);
        }
        let skip = usize::try_from(after + 1 - oldest).unwrap_or(usize::MAX);
        let take = usize::try_from(upto - after).unwrap_or(usize::MAX);
        Ok(self.history.iter().skip(skip).take(take).cloned().collect())
    }

    /// Publications in `(after, upto]` that are still kept, and the range that is not (with
    /// the channel and epoch, for the notice), if any.
    #[allow(clippy::type_complexity)]
    pub(crate) fn catch_up(
        &self,
        after: u64,
        upto: u64,
    ) -> (Option<(u64, u64, Channel, Arc<str>)>, Vec<Arc<Publication>>) {
        match self.between(after, upto) {
            Ok(kept) => (None, kept),
            Err(Gap) => {
                let oldest = self.history.front().map_or(self.top + 1, |p| p.offset);
                let gap = (after + 1, oldest - 1, self.channel, self.epoch.clone());
                (
                    Some(gap),
                    self.between(oldest - 1, upto).unwrap_or_default(),
                )
            }
        }
    }

    /// What a client that has seen up to `since` missed.
    pub(crate) fn recover(&self, since: Option<(&str, u64)>) -> Recovery {
        let position = self.position();
        let found = match since {
            Some((epoch, offset)) if *epoch == *self.epoch && offset <= self.top => {
                self.between(offset, self.top).ok()
            }
            _ => None,
        };
        Recovery {
            position,
            recovered: found.is_some(),
            publications: found.unwrap_or_default(),
        }
    }

    pub(crate) fn add_subscriber(&mut self, session: &Arc<Session>) {
        self.subscribers
            .insert(session.id.clone(), Arc::downgrade(session));
    }

    pub(crate) fn remove_subscriber(&mut self, session_id: &str) {
        self.subscribers.remove(session_id);
    }
}

/// Every channel of every project on this server. Reach it through
/// [`crate::SessionRegistry::channels`].
pub struct Channels {
    config: ChannelConfig,
    epoch: Arc<str>,
    channels: Mutex<HashMap<(ProjectId, Channel), ChannelHandle>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("epoch", &self.epoch)
            .field("channels", &self.channels.lock().len())
            .finish()
    }
}

impl Channels {
    /// Channels with `config`'s history sizes.
    pub fn new(config: ChannelConfig) -> Self {
        Self {
            config,
            epoch: uuid::Uuid::new_v4().simple().to_string().into(),
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration the channels were made with.
    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    /// This server's epoch: offsets from another epoch cannot be recovered.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub(crate) fn handle(&self, project: &ProjectId, channel: Channel) -> ChannelHandle {
        self.channels
            .lock()
            .entry((project.clone(), channel))
            .or_insert_with(|| {
                Arc::new(Mutex::new(ChannelState {
                    channel,
                    epoch: self.epoch.clone(),
                    top: 0,
                    history: VecDeque::new(),
                    capacity: self.config.history.max(1),
                    subscribers: HashMap::new(),
                }))
            })
            .clone()
    }

    /// Publishes `data` on `project`'s `channel` and delivers it to every subscribed session
    /// that has a socket (the others catch up from the history when they resume). Returns the
    /// publication's position.
    ///
    /// Never waits: a subscriber whose socket queue is full is cut off as a slow reader and
    /// catches up after it resumes. The cost is one serialisation plus one queue push per
    /// subscriber, paid by the caller.
    pub fn publish(&self, project: &ProjectId, channel: Channel, data: Value) -> Position {
        let handle = self.handle(project, channel);
        let (publication, position, subscribers) = {
            let mut state = handle.lock();
            state.top += 1;
            let publication = Arc::new(Publication::new(channel, &state.epoch, state.top, data));
            state.history.push_back(publication.clone());
            while state.history.len() > state.capacity {
                state.history.pop_front();
            }
            let mut subscribers = Vec::with_capacity(state.subscribers.len());
            state.subscribers.retain(|_, weak| match weak.upgrade() {
                Some(s) => {
                    subscribers.push(s);
                    true
                }
                None => false,
            });
            (publication, state.position(), subscribers)
        };
        crate::metrics::published(channel, subscribers.len());
        for session in subscribers {
            session.deliver_event(&handle, &publication);
        }
        position
    }

    /// The current position of a channel (offset 0 when nothing was published yet).
    pub fn position(&self, project: &ProjectId, channel: Channel) -> Position {
        self.handle(project, channel).lock().position()
    }

    /// How many sessions are subscribed to a channel.
    pub fn subscribers(&self, project: &ProjectId, channel: Channel) -> usize {
        self.handle(project, channel).lock().subscribers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> ProjectId {
        ProjectId::parse("p").unwrap_or_else(|e| panic!("{e}"))
    }

    fn channels(history: usize) -> Channels {
        Channels::new(ChannelConfig {
            history,
            client_publish: false,
        })
    }

    #[test]
    fn names_round_trip() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        assert_eq!(Channel::parse("other"), None);
    }

    #[test]
    fn recovers_within_history_and_reports_gaps() {
        let hub = channels(10);
        let p = project();
        for i in 0..25 {
            let pos = hub.publish(&p, Channel::Files, json!(i));
            assert_eq!(pos.offset, i + 1);
        }
        let handle = hub.handle(&p, Channel::Files);
        let state = handle.lock();
        let epoch = hub.epoch().to_owned();
        // Seen up to 20: 21..=25 are kept.
        let r = state.recover(Some((&epoch, 20)));
        assert!(r.recovered);
        let offsets: Vec<u64> = r.publications.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, vec![21, 22, 23, 24, 25]);
        assert_eq!(r.publications[0].data, json!(20));
        // Oldest kept is 16, so a client at 15 can still be served, one at 14 cannot.
        assert_eq!(state.recover(Some((&epoch, 15))).publications.len(), 10);
        let gap = state.recover(Some((&epoch, 14)));
        assert!(!gap.recovered);
        assert!(gap.publications.is_empty());
        assert_eq!(gap.position.offset, 25);
        // Up to date, another epoch, from the future.
        assert!(state.recover(Some((&epoch, 25))).recovered);
        assert!(!state.recover(Some(("other", 20))).recovered);
        assert!(!state.recover(Some((&epoch, 26))).recovered);
        assert!(!state.recover(None).recovered);
    }

    #[test]
    fn projects_do_not_share_channels() {
        let hub = channels(10);
        let a = project();
        let b = ProjectId::parse("b").unwrap_or_else(|e| panic!("{e}"));
        hub.publish(&a, Channel::Git, json!(1));
        assert_eq!(hub.position(&a, Channel::Git).offset, 1);
        assert_eq!(hub.position(&b, Channel::Git).offset, 0);
        assert_eq!(hub.position(&a, Channel::Files).offset, 0);
    }
}
