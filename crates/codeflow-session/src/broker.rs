//! The seam between [`crate::Channels`] and a message broker shared by several server
//! instances.
//!
//! Without a broker (the default) channels are embedded: offsets and history live in this
//! process. With one, the broker is the channel's truth: it numbers publications, keeps the
//! history (so recovery survives the loss of the instance that published), and relays every
//! publication to every instance, whose [`crate::Channels`] keeps a local mirror of the
//! channels its sessions subscribe to and delivers from it. The Redis implementation lives in
//! `codeflow-cluster`.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::channels::Channel;
use codeflow_types::ProjectId;

/// The broker could not be reached or answered something unexpected.
#[derive(Debug, Clone, thiserror::Error)]
#[error("channel broker: {message}")]
pub struct BrokerError {
    /// What happened, for a person.
    pub message: String,
    /// Whether the broker refused this very request (a retry would be refused the same way),
    /// rather than being unreachable, slow or busy (a retry later can succeed).
    pub refused: bool,
}

impl BrokerError {
    /// The broker could not be reached, did not answer in time, or was busy.
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            refused: false,
        }
    }

    /// The broker answered with an error that sending the request again would repeat.
    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            refused: true,
        }
    }
}

/// One stored publication, as the broker keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPublication {
    /// Its offset in the channel (the broker numbers from 1).
    pub offset: u64,
    /// Milliseconds since the Unix epoch, at publication.
    pub timestamp: u64,
    /// The payload.
    pub data: Value,
}

/// A channel as the broker holds it: its newest offset and the newest publications after
/// some offset, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredChannel {
    /// The offset of the channel's newest publication (0 before the first).
    pub top: u64,
    /// Publications after the asked offset that are still kept, oldest first, at most the
    /// history size; the older ones are gone when the first is not right after that offset.
    pub publications: Vec<StoredPublication>,
}

/// What the broker relays to every instance.
#[derive(Debug, Clone)]
pub enum BrokerEvent {
    /// A publication on a project's channel, from any instance.
    Published {
        /// The project.
        project: ProjectId,
        /// The channel.
        channel: Channel,
        /// What was published.
        publication: StoredPublication,
    },
    /// The relay was interrupted (and is back): publications may have been missed, so
    /// mirrors read what they lack from the history.
    Resync,
}

/// Who sent a publication, and its number among that sender's publications (increasing in the
/// order they are sent). A broker that sees a sender's number again — a retry of an append
/// whose answer was lost, though the broker had stored it — answers the offset it gave and
/// stores nothing twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendId {
    /// One sender: an instance's publishing task (a new one per start).
    pub sender: Arc<str>,
    /// 1, 2, 3, … in the order the sender sends.
    pub seq: u64,
}

/// A broker several instances share. Implementations are cheap to call from any task; each
/// future is `'static` so the caller may run it anywhere.
pub trait ChannelBroker: Send + Sync + std::fmt::Debug {
    /// The epoch every instance on this broker shares: offsets of one epoch can be recovered
    /// from any instance.
    fn epoch(&self) -> Arc<str>;

    /// Appends a publication to a channel's history and relays it to every instance;
    /// resolves to the offset the broker gave it. With an `id`, appending the same id again
    /// (a retry) stores and relays nothing and resolves to the first append's offset.
    fn append(
        &self,
        project: ProjectId,
        channel: Channel,
        timestamp: u64,
        data: Value,
        id: Option<AppendId>,
    ) -> BoxFuture<'static, Result<u64, BrokerError>>;

    /// The channel's newest offset and up to `limit` of its newest publications after
    /// `after`.
    fn read(
        &self,
        project: ProjectId,
        channel: Channel,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'static, Result<StoredChannel, BrokerError>>;

    /// The relayed publications of every channel, from every instance (this one included).
    /// Taken once, by the [`crate::Channels`] the broker is given to; `None` afterwards.
    fn events(&self) -> Option<mpsc::Receiver<BrokerEvent>>;
}
