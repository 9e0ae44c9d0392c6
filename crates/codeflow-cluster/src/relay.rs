//! The relay task: hears every instance's announcements on one pub/sub pattern and hands them
//! to the channels, reconnecting (with a resync) whenever the connection drops.

use std::time::Duration;

use codeflow_session::{BrokerEvent, StoredPublication};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::keys;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Runs until the channels stop listening (`events` closed).
pub(crate) async fn run(client: redis::Client, events: mpsc::Sender<BrokerEvent>) {
    let mut backoff = Duration::from_millis(50);
    let mut first = true;
    loop {
        match listen(&client, &events, &mut first, &mut backoff).await {
            Listen::ChannelsGone => return,
            Listen::Dropped(why) => {
                tracing::warn!("the broker's pub/sub connection dropped ({why}); reconnecting");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if events.is_closed() {
            return;
        }
    }
}

enum Listen {
    ChannelsGone,
    Dropped(String),
}

async fn listen(
    client: &redis::Client,
    events: &mpsc::Sender<BrokerEvent>,
    first: &mut bool,
    backoff: &mut Duration,
) -> Listen {
    let mut pubsub = match client.get_async_pubsub().await {
        Ok(p) => p,
        Err(e) => return Listen::Dropped(e.to_string()),
    };
    if let Err(e) = pubsub.psubscribe(keys::EVENTS_PATTERN).await {
        return Listen::Dropped(e.to_string());
    }
    *backoff = Duration::from_millis(50);
    // Whatever was announced while no connection listened is read back from the histories.
    if !std::mem::take(first) && events.send(BrokerEvent::Resync).await.is_err() {
        return Listen::ChannelsGone;
    }
    let mut messages = pubsub.into_on_message();
    while let Some(message) = messages.next().await {
        let Some((project, channel)) = keys::parse_events(message.get_channel_name()) else {
            continue;
        };
        let Ok(payload) = message.get_payload::<String>() else {
            continue;
        };
        let Some(publication) = parse_announcement(&payload) else {
            tracing::warn!(%project, %channel, "ignoring an announcement that does not parse");
            continue;
        };
        let event = BrokerEvent::Published {
            project,
            channel,
            publication,
        };
        if events.send(event).await.is_err() {
            return Listen::ChannelsGone;
        }
    }
    Listen::Dropped("the stream ended".into())
}

/// `<offset> <timestamp> <json>`.
fn parse_announcement(payload: &str) -> Option<StoredPublication> {
    let (offset, rest) = payload.split_once(' ')?;
    let (timestamp, data) = rest.split_once(' ')?;
    Some(StoredPublication {
        offset: offset.parse().ok()?,
        timestamp: timestamp.parse().ok()?,
        data: serde_json::from_str(data).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_parse() {
        let p = parse_announcement("7 1700 {\"x\": \"a b\"}").unwrap_or_else(|| panic!());
        assert_eq!(p.offset, 7);
        assert_eq!(p.timestamp, 1700);
        assert_eq!(p.data, serde_json::json!({"x": "a b"}));
        assert!(parse_announcement("7 1700").is_none());
        assert!(parse_announcement("x 1 2").is_none());
    }
}
