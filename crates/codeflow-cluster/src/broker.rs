//! [`RedisBroker`]: the channel broker on Redis.

use std::sync::Arc;
use std::time::Duration;

use codeflow_session::{
    AppendId, BrokerError, BrokerEvent, Channel, ChannelBroker, ProjectId, StoredChannel,
    StoredPublication,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::keys;

/// Numbers a publication, stores it in the channel's stream (trimmed to about the history
/// size) and announces it, atomically: KEYS = top, log, senders; ARGV = timestamp, payload,
/// history, announcement channel, sender, sequence number, how long a sender is remembered.
/// Returns the offset.
///
/// With a sender (ARGV[5] not empty), the channel's `senders` hash keeps each sender's last
/// `seq:offset`: a number already seen (a retry of an append stored before its answer was
/// lost) returns that offset and stores nothing. Senders send in order, so "seen" is "not
/// above the last".
const APPEND: &str = r"
if ARGV[5] ~= '' then
  local last = redis.call('HGET', KEYS[3], ARGV[5])
  if last then
    local sep = string.find(last, ':', 1, true)
    if tonumber(ARGV[6]) <= tonumber(string.sub(last, 1, sep - 1)) then
      return tonumber(string.sub(last, sep + 1))
    end
  end
end
local n = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], n .. '-0', 't', ARGV[1], 'd', ARGV[2])
redis.call('PUBLISH', ARGV[4], n .. ' ' .. ARGV[1] .. ' ' .. ARGV[2])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[5], ARGV[6] .. ':' .. n)
  redis.call('EXPIRE', KEYS[3], ARGV[7])
end
return n
";

/// How long a channel's `senders` hash lives after its last append: longer than any retry of
/// a publication (a sender retries while its instance runs, so this bounds only the hash of
/// a quiet channel).
const SENDERS_TTL_SECS: u64 = 24 * 3600;

/// Relayed publications waiting for the channels before the relay stops reading (Redis then
/// buffers, and past its pub/sub output limit drops the connection: a resync follows).
const EVENTS_CAPACITY: usize = 16_384;

/// How long a command may take before the broker counts as unreachable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The Redis channel broker (`cluster_url = "redis://…"`). Commands go through one
/// multiplexed connection that reconnects by itself; announcements arrive on a pub/sub
/// connection owned by a relay task, stopped when the broker is dropped.
pub struct RedisBroker {
    connection: ConnectionManager,
    epoch: Arc<str>,
    history: usize,
    append: redis::Script,
    events: Mutex<Option<mpsc::Receiver<BrokerEvent>>>,
    relay: tokio::task::JoinHandle<()>,
    url: String,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("url", &self.url)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

/// A broker error from a Redis one: refused when Redis answered an error that a retry would
/// repeat (`ERR`, a wrong type, a bad script); out of memory, loading, timeouts and lost
/// connections can pass.
fn failed(what: &str, e: redis::RedisError) -> BrokerError {
    let message = format!("{what}: {e}");
    let permanent = matches!(e.retry_method(), redis::RetryMethod::NoRetry)
        && e.code() != Some("OOM")
        && !e.is_io_error();
    if permanent {
        BrokerError::refused(message)
    } else {
        BrokerError::unreachable(message)
    }
}

/// A broker error from a setting that is wrong.
fn misconfigured(what: &str, e: impl std::fmt::Display) -> BrokerError {
    BrokerError::refused(format!("{what}: {e}"))
}

impl RedisBroker {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`, or `rediss://`), reads
    /// or sets the shared epoch, and starts hearing announcements. `history` is the
    /// `channel_history` setting: about that many publications are kept per channel.
    pub async fn connect(url: &str, history: usize) -> Result<Arc<Self>, BrokerError> {
        let client = redis::Client::open(url).map_err(|e| misconfigured("cluster_url", e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(3);
        let mut connection = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| failed("cannot connect", e))?;
        let candidate = uuid::Uuid::new_v4().simple().to_string();
        let _: Option<String> = redis::cmd("SET")
            .arg(keys::EPOCH)
            .arg(&candidate)
            .arg("NX")
            .query_async(&mut connection)
            .await
            .map_err(|e| failed("cannot set the epoch", e))?;
        let epoch: String = redis::cmd("GET")
            .arg(keys::EPOCH)
            .query_async(&mut connection)
            .await
            .map_err(|e| failed("cannot read the epoch", e))?;
        let (tx, rx) = mpsc::channel(EVENTS_CAPACITY);
        let relay = tokio::spawn(crate::relay::run(client, tx));
        tracing::info!(epoch = %epoch, "channels go through the broker");
        Ok(Arc::new(Self {
            connection,
            epoch: epoch.into(),
            history: history.max(1),
            append: redis::Script::new(APPEND),
            events: Mutex::new(Some(rx)),
            relay,
            url: redact(url),
        }))
    }
}

/// `url` without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The offset of a stream entry id `<offset>-0`.
fn offset_of(id: &str) -> Option<u64> {
    id.split_once('-').and_then(|(n, _)| n.parse().ok())
}

/// A stored entry's fields (`t`, `d`, …) as a publication.
fn stored(id: &str, fields: &[String]) -> Option<StoredPublication> {
    let mut timestamp = 0;
    let mut data = None;
    for pair in fields.chunks_exact(2) {
        match pair[0].as_str() {
            "t" => timestamp = pair[1].parse().unwrap_or(0),
            "d" => data = serde_json::from_str(&pair[1]).ok(),
            _ => {}
        }
    }
    Some(StoredPublication {
        offset: offset_of(id)?,
        timestamp,
        data: data?,
    })
}

impl ChannelBroker for RedisBroker {
    fn epoch(&self) -> Arc<str> {
        self.epoch.clone()
    }

    fn append(
        &self,
        project: ProjectId,
        channel: Channel,
        timestamp: u64,
        data: Value,
        id: Option<AppendId>,
    ) -> BoxFuture<'static, Result<u64, BrokerError>> {
        let mut connection = self.connection.clone();
        let script = self.append.clone();
        let (top, log, senders, events, payload, history) = (
            keys::top(&project, channel),
            keys::log(&project, channel),
            keys::senders(&project, channel),
            keys::events(&project, channel),
            data.to_string(),
            self.history,
        );
        let (sender, seq) = id.map_or((String::new(), 0), |id| (id.sender.to_string(), id.seq));
        async move {
            script
                .key(top)
                .key(log)
                .key(senders)
                .arg(timestamp)
                .arg(payload)
                .arg(history)
                .arg(events)
                .arg(sender)
                .arg(seq)
                .arg(SENDERS_TTL_SECS)
                .invoke_async::<u64>(&mut connection)
                .await
                .map_err(|e| failed("cannot publish", e))
        }
        .boxed()
    }

    fn read(
        &self,
        project: ProjectId,
        channel: Channel,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'static, Result<StoredChannel, BrokerError>> {
        let mut connection = self.connection.clone();
        async move {
            let (top, entries): (Option<u64>, Vec<(String, Vec<String>)>) = redis::pipe()
                .atomic()
                .get(keys::top(&project, channel))
                .cmd("XREVRANGE")
                .arg(keys::log(&project, channel))
                .arg("+")
                .arg(format!("({after}-0"))
                .arg("COUNT")
                .arg(limit.max(1))
                .query_async(&mut connection)
                .await
                .map_err(|e| failed("cannot read a channel's history", e))?;
            let mut publications: Vec<StoredPublication> = entries
                .iter()
                .filter_map(|(id, fields)| stored(id, fields))
                .collect();
            publications.reverse();
            Ok(StoredChannel {
                top: top.unwrap_or(0),
                publications,
            })
        }
        .boxed()
    }

    fn events(&self) -> Option<mpsc::Receiver<BrokerEvent>> {
        self.events.lock().take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_passwords_stay_out_of_logs() {
        let p = stored(
            "12-0",
            &["t".into(), "99".into(), "d".into(), "{\"a\":1}".into()],
        );
        assert_eq!(
            p,
            Some(StoredPublication {
                offset: 12,
                timestamp: 99,
                data: serde_json::json!({"a": 1}),
            })
        );
        assert_eq!(stored("x-0", &["d".into(), "1".into()]), None);
        assert_eq!(stored("3-0", &["d".into(), "not json".into()]), None);
        assert_eq!(
            redact("redis://u:secret@host:6379/2"),
            "redis://***@host:6379/2"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
