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
//!
//! With a broker ([`ChannelConfig::broker`], several instances) the broker numbers and keeps
//! the publications and the epoch is the broker's, shared by every instance: a publication
//! goes to the broker, which relays it to every instance, and each instance's channel state is
//! a *mirror* of a channel, loaded from the broker's history when a session of this instance
//! first subscribes ([`Channels::prepare`]) and kept current by the relayed publications
//! (a missed one is read back from the history). Delivery to sessions works on the mirror
//! exactly as on an embedded channel.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use codeflow_transport::Message;
use codeflow_transport::frame::Utf8Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::broker::{AppendId, BrokerError, BrokerEvent, ChannelBroker, StoredPublication};
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
    /// The broker several instances share (`cluster_url`); `None` keeps channels embedded in
    /// this process.
    pub broker: Option<Arc<dyn ChannelBroker>>,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            history: 1024,
            client_publish: false,
            broker: None,
        }
    }
}

/// A position in a channel: the epoch (one per server process, or one per broker) and the
/// offset of the last publication (0 before the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The epoch: one per server process (embedded) or per broker; offsets restart with a
    /// new one.
    pub epoch: Arc<str>,
    /// The offset of the last publication (0 before the first).
    pub offset: u64,
}

/// One publication, serialised once for every subscriber: each subscriber's connection gets a
/// reference to the same bytes, not a copy.
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
    /// The `channels/event` notification, as sent to every subscriber (shared bytes).
    pub(crate) event_text: Utf8Bytes,
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Publication {
    fn new(channel: Channel, epoch: &str, offset: u64, timestamp: u64, data: Value) -> Self {
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
        .to_text()
        .into();
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

/// Whether a channel's state is current.
enum Mirror {
    /// Current: embedded channels always are; a broker's mirror once loaded.
    Live,
    /// A broker's channel no session of this instance has subscribed to: relayed
    /// publications are ignored.
    Unloaded,
    /// Being loaded from the broker: relayed publications wait here (at most the history
    /// size) and are applied after what the load read.
    Loading(Vec<StoredPublication>),
}

/// One channel of one project.
pub(crate) struct ChannelState {
    pub(crate) channel: Channel,
    epoch: Arc<str>,
    top: u64,
    history: VecDeque<Arc<Publication>>,
    capacity: usize,
    subscribers: HashMap<String, Weak<Session>>,
    mirror: Mirror,
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

    /// Appends the publication with offset `offset`, the next one or a later one (the ones
    /// between are then gone: the history restarts after the gap). Older ones are ignored.
    fn push(&mut self, offset: u64, timestamp: u64, data: Value) -> Option<Arc<Publication>> {
        if offset <= self.top {
            return None;
        }
        if offset != self.top + 1 {
            self.history.clear();
        }
        let publication = Arc::new(Publication::new(
            self.channel,
            &self.epoch,
            offset,
            timestamp,
            data,
        ));
        self.top = offset;
        self.history.push_back(publication.clone());
        while self.history.len() > self.capacity {
            self.history.pop_front();
        }
        Some(publication)
    }

    /// The sessions subscribed now (forgetting the ones that are gone).
    fn live_subscribers(&mut self) -> Vec<Arc<Session>> {
        let mut subscribers = Vec::with_capacity(self.subscribers.len());
        self.subscribers.retain(|_, weak| match weak.upgrade() {
            Some(s) => {
                subscribers.push(s);
                true
            }
            None => false,
        });
        subscribers
    }
}

/// Hands publications of one channel to its subscribers (no channel lock held).
fn deliver(
    handle: &ChannelHandle,
    publications: &[Arc<Publication>],
    subscribers: &[Arc<Session>],
) {
    for publication in publications {
        crate::metrics::published(publication.channel, subscribers.len());
        for session in subscribers {
            session.deliver_event(handle, publication);
        }
    }
}

/// A publication on its way to the broker.
struct Outgoing {
    project: ProjectId,
    channel: Channel,
    timestamp: u64,
    data: Value,
}

/// Publications waiting for the broker before `publish` drops new ones.
const OUTGOING_CAPACITY: usize = 65_536;

/// What the channels and their broker tasks share.
struct Shared {
    config: ChannelConfig,
    epoch: Arc<str>,
    channels: Mutex<HashMap<(ProjectId, Channel), ChannelHandle>>,
    /// One load from the broker at a time (loads are rare: first subscription per channel).
    loading: tokio::sync::Mutex<()>,
}

impl Shared {
    fn handle(&self, project: &ProjectId, channel: Channel) -> ChannelHandle {
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
                    mirror: if self.config.broker.is_some() {
                        Mirror::Unloaded
                    } else {
                        Mirror::Live
                    },
                }))
            })
            .clone()
    }

    /// A publication the broker relayed: applied to the channel's mirror when it is loaded,
    /// after reading any publications missed before it.
    async fn receive(&self, project: ProjectId, channel: Channel, stored: StoredPublication) {
        let Some(handle) = self
            .channels
            .lock()
            .get(&(project.clone(), channel))
            .cloned()
        else {
            return;
        };
        let after = {
            let mut state = handle.lock();
            let capacity = state.capacity;
            match &mut state.mirror {
                Mirror::Unloaded => return,
                Mirror::Loading(waiting) => {
                    if waiting.len() < capacity {
                        waiting.push(stored);
                    }
                    return;
                }
                Mirror::Live => {}
            }
            if stored.offset <= state.top {
                return;
            }
            if stored.offset == state.top + 1 {
                let published = state.push(stored.offset, stored.timestamp, stored.data);
                let subscribers = state.live_subscribers();
                drop(state);
                deliver(&handle, published.as_slice(), &subscribers);
                return;
            }
            state.top
        };
        self.fill(&project, channel, &handle, after).await;
    }

    /// Reads what a live mirror lacks after `after` from the broker and delivers it.
    async fn fill(
        &self,
        project: &ProjectId,
        channel: Channel,
        handle: &ChannelHandle,
        after: u64,
    ) {
        let Some(broker) = &self.config.broker else {
            return;
        };
        let capacity = handle.lock().capacity;
        let stored = match broker.read(project.clone(), channel, after, capacity).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%project, %channel, error = %e, "cannot read missed publications from the broker; the next one retries");
                crate::metrics::error_sent("broker_read");
                return;
            }
        };
        let (published, subscribers) = {
            let mut state = handle.lock();
            let published: Vec<Arc<Publication>> = stored
                .publications
                .into_iter()
                .filter_map(|p| state.push(p.offset, p.timestamp, p.data))
                .collect();
            (published, state.live_subscribers())
        };
        deliver(handle, &published, &subscribers);
    }

    /// After the broker's relay was interrupted: every live mirror reads what it missed.
    async fn resync(&self) {
        let live: Vec<((ProjectId, Channel), ChannelHandle, u64)> = self
            .channels
            .lock()
            .iter()
            .filter_map(|(key, handle)| {
                let state = handle.lock();
                matches!(state.mirror, Mirror::Live)
                    .then(|| (key.clone(), handle.clone(), state.top))
            })
            .collect();
        for ((project, channel), handle, after) in live {
            self.fill(&project, channel, &handle, after).await;
        }
    }
}

/// Every channel of every project on this server. Reach it through
/// [`crate::SessionRegistry::channels`].
pub struct Channels {
    shared: Arc<Shared>,
    /// Publications for the broker (cluster mode only).
    outgoing: Option<mpsc::Sender<Outgoing>>,
    /// The broker tasks: sending publications, receiving relayed ones. Stopped on drop.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("epoch", &self.shared.epoch)
            .field("channels", &self.shared.channels.lock().len())
            .field("broker", &self.shared.config.broker)
            .finish()
    }
}

impl Drop for Channels {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Channels {
    /// Channels with `config`'s history sizes. With a broker this starts the tasks that talk
    /// to it, so it must be called inside a Tokio runtime.
    pub fn new(config: ChannelConfig) -> Self {
        let epoch: Arc<str> = match &config.broker {
            Some(broker) => broker.epoch(),
            None => uuid::Uuid::new_v4().simple().to_string().into(),
        };
        let broker = config.broker.clone();
        let shared = Arc::new(Shared {
            config,
            epoch,
            channels: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
        });
        let mut tasks = Vec::new();
        let mut outgoing = None;
        if let Some(broker) = broker {
            let (tx, rx) = mpsc::channel(OUTGOING_CAPACITY);
            outgoing = Some(tx);
            tasks.push(tokio::spawn(send_to_broker(broker.clone(), rx)));
            if let Some(events) = broker.events() {
                tasks.push(tokio::spawn(receive_from_broker(
                    Arc::downgrade(&shared),
                    events,
                )));
            }
        }
        Self {
            shared,
            outgoing,
            tasks,
        }
    }

    /// The configuration the channels were made with.
    pub fn config(&self) -> &ChannelConfig {
        &self.shared.config
    }

    /// Whether channels go through a broker shared with other instances.
    pub fn clustered(&self) -> bool {
        self.shared.config.broker.is_some()
    }

    /// This server's epoch (the broker's, when there is one): offsets from another epoch
    /// cannot be recovered.
    pub fn epoch(&self) -> &str {
        &self.shared.epoch
    }

    pub(crate) fn handle(&self, project: &ProjectId, channel: Channel) -> ChannelHandle {
        self.shared.handle(project, channel)
    }

    /// Makes a channel ready for a subscription on this instance: with a broker, loads the
    /// channel's mirror from the broker's history the first time. Without one, nothing to do.
    pub async fn prepare(&self, project: &ProjectId, channel: Channel) -> Result<(), BrokerError> {
        let Some(broker) = &self.shared.config.broker else {
            return Ok(());
        };
        let handle = self.handle(project, channel);
        if matches!(handle.lock().mirror, Mirror::Live) {
            return Ok(());
        }
        let _one_at_a_time = self.shared.loading.lock().await;
        let capacity = {
            let mut state = handle.lock();
            if matches!(state.mirror, Mirror::Live) {
                return Ok(());
            }
            state.mirror = Mirror::Loading(Vec::new());
            state.capacity
        };
        let stored = broker.read(project.clone(), channel, 0, capacity).await;
        let mut state = handle.lock();
        let stored = match stored {
            Ok(stored) => stored,
            Err(e) => {
                state.mirror = Mirror::Unloaded;
                return Err(e);
            }
        };
        let Mirror::Loading(mut waiting) = std::mem::replace(&mut state.mirror, Mirror::Live)
        else {
            return Ok(());
        };
        for p in stored.publications {
            state.push(p.offset, p.timestamp, p.data);
        }
        if stored.top > state.top {
            // Counted but not kept: nothing before the top can be recovered.
            state.history.clear();
            state.top = stored.top;
        }
        waiting.sort_by_key(|p| p.offset);
        for p in waiting {
            state.push(p.offset, p.timestamp, p.data);
        }
        Ok(())
    }

    /// Publishes `data` on `project`'s `channel` and delivers it to every subscribed session
    /// that has a socket (the others catch up from the history when they resume). Returns the
    /// publication's position.
    ///
    /// Never waits: a subscriber whose socket queue is full is cut off as a slow reader and
    /// catches up after it resumes. The cost is one serialisation plus one queue push per
    /// subscriber, paid by the caller.
    ///
    /// With a broker the publication is queued for it (delivery follows when the broker
    /// relays it back, to every instance) and the position returned is the channel's before
    /// it; [`Self::publish_confirmed`] waits for the broker's offset.
    pub fn publish(&self, project: &ProjectId, channel: Channel, data: Value) -> Position {
        if let Some(outgoing) = &self.outgoing {
            let queued = outgoing.try_send(Outgoing {
                project: project.clone(),
                channel,
                timestamp: now_ms(),
                data,
            });
            if queued.is_err() {
                tracing::warn!(%project, %channel, "the broker is not keeping up: a publication was dropped");
                crate::metrics::error_sent("broker_queue_full");
            }
            return self.position(project, channel);
        }
        let handle = self.handle(project, channel);
        let (published, position, subscribers) = {
            let mut state = handle.lock();
            let next = state.top + 1;
            let published = state.push(next, now_ms(), data);
            (published, state.position(), state.live_subscribers())
        };
        deliver(&handle, published.as_slice(), &subscribers);
        position
    }

    /// [`Self::publish`], waiting (with a broker) until the broker has numbered and stored
    /// the publication: its position, or why the broker did not take it.
    pub async fn publish_confirmed(
        &self,
        project: &ProjectId,
        channel: Channel,
        data: Value,
    ) -> Result<Position, BrokerError> {
        let Some(broker) = &self.shared.config.broker else {
            return Ok(self.publish(project, channel, data));
        };
        let offset = broker
            .append(project.clone(), channel, now_ms(), data, None)
            .await?;
        Ok(Position {
            epoch: self.shared.epoch.clone(),
            offset,
        })
    }

    /// The current position of a channel (offset 0 when nothing was published yet; with a
    /// broker, as far as this instance's mirror knows).
    pub fn position(&self, project: &ProjectId, channel: Channel) -> Position {
        self.handle(project, channel).lock().position()
    }

    /// How many sessions of this instance are subscribed to a channel.
    pub fn subscribers(&self, project: &ProjectId, channel: Channel) -> usize {
        self.handle(project, channel).lock().subscribers.len()
    }
}

/// The first wait before a publication the broker did not take is sent again; it doubles up
/// to [`BROKER_RETRY_MAX`].
const BROKER_RETRY_FIRST: Duration = Duration::from_millis(100);
const BROKER_RETRY_MAX: Duration = Duration::from_secs(2);

/// Sends queued publications to the broker, in the order published on this instance. A
/// publication the broker did not take (unreachable, paused, restarting) is sent again until
/// it does — the ones behind it wait, so the order holds, and `publish` drops new ones only
/// when the queue is full. Each carries this task's [`AppendId`], so a retry of an append the
/// broker did store (its answer was lost) is not stored twice.
async fn send_to_broker(broker: Arc<dyn ChannelBroker>, mut queue: mpsc::Receiver<Outgoing>) {
    let sender: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
    let mut seq = 0;
    while let Some(o) = queue.recv().await {
        seq += 1;
        let id = AppendId {
            sender: sender.clone(),
            seq,
        };
        let mut wait = BROKER_RETRY_FIRST;
        let mut failed_since: Option<Instant> = None;
        loop {
            let sent = broker
                .append(
                    o.project.clone(),
                    o.channel,
                    o.timestamp,
                    o.data.clone(),
                    Some(id.clone()),
                )
                .await;
            match sent {
                Ok(_) => {
                    if let Some(since) = failed_since {
                        tracing::info!(
                            project = %o.project, channel = %o.channel,
                            after = ?since.elapsed(), waiting = queue.len(),
                            "the broker took the publication it had refused; the ones queued behind it follow"
                        );
                    }
                    break;
                }
                Err(e) if e.refused => {
                    tracing::error!(
                        project = %o.project, channel = %o.channel, error = %e,
                        "the broker refused a publication; it is dropped (sending it again would be refused too)"
                    );
                    crate::metrics::error_sent("broker_refused");
                    break;
                }
                Err(e) => {
                    if failed_since.is_none() {
                        tracing::warn!(
                            project = %o.project, channel = %o.channel, error = %e,
                            "a publication did not reach the broker; sending it again until it does"
                        );
                        failed_since = Some(Instant::now());
                    }
                    crate::metrics::error_sent("broker_append");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(BROKER_RETRY_MAX);
                }
            }
        }
    }
}

/// Applies what the broker relays to the mirrors, in the order relayed.
async fn receive_from_broker(shared: Weak<Shared>, mut events: mpsc::Receiver<BrokerEvent>) {
    while let Some(event) = events.recv().await {
        let Some(shared) = shared.upgrade() else {
            break;
        };
        match event {
            BrokerEvent::Published {
                project,
                channel,
                publication,
            } => shared.receive(project, channel, publication).await,
            BrokerEvent::Resync => shared.resync().await,
        }
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
            ..ChannelConfig::default()
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
