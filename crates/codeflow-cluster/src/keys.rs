//! The Redis names CodeFlow uses. A deployment has the Redis (or at least its pub/sub
//! namespace) to itself: pub/sub channels are not per database.
//!
//! - `codeflow:epoch` — the shared epoch (a string, set once);
//! - `codeflow:{<project>/<channel>}:top` — the channel's newest offset (a counter);
//! - `codeflow:{<project>/<channel>}:log` — its history, a stream whose entry ids are
//!   `<offset>-0` with fields `t` (timestamp, ms) and `d` (the JSON payload), trimmed to about
//!   `channel_history` entries;
//! - `codeflow:{<project>/<channel>}:senders` — each sender's last sequence number and the
//!   offset it got (`<seq>:<offset>`), so a retried append is not stored twice;
//! - `codeflow:ev:<project>:<channel>` — the pub/sub channel announcing each publication as
//!   `<offset> <timestamp> <json>`.
//!
//! The braces are a Redis Cluster hash tag: a channel's keys share a slot, as the script needs.

use codeflow_session::{Channel, ProjectId};

/// The epoch key.
pub const EPOCH: &str = "codeflow:epoch";

/// The pattern every instance subscribes to.
pub const EVENTS_PATTERN: &str = "codeflow:ev:*";

const EVENTS_PREFIX: &str = "codeflow:ev:";

/// The counter of a channel's newest offset.
pub fn top(project: &ProjectId, channel: Channel) -> String {
    format!("codeflow:{{{project}/{channel}}}:top")
}

/// The stream holding a channel's history.
pub fn log(project: &ProjectId, channel: Channel) -> String {
    format!("codeflow:{{{project}/{channel}}}:log")
}

/// The hash of the senders' last appends to a channel.
pub fn senders(project: &ProjectId, channel: Channel) -> String {
    format!("codeflow:{{{project}/{channel}}}:senders")
}

/// The pub/sub channel announcing a channel's publications.
pub fn events(project: &ProjectId, channel: Channel) -> String {
    format!("{EVENTS_PREFIX}{project}:{channel}")
}

/// The project and channel of an announcement's pub/sub channel.
pub fn parse_events(name: &str) -> Option<(ProjectId, Channel)> {
    let rest = name.strip_prefix(EVENTS_PREFIX)?;
    let (project, channel) = rest.rsplit_once(':')?;
    Some((ProjectId::parse(project).ok()?, Channel::parse(channel)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_names_round_trip() {
        let p = ProjectId::parse("my-app.v2_x").unwrap_or_else(|e| panic!("{e}"));
        for c in Channel::ALL {
            assert_eq!(parse_events(&events(&p, c)), Some((p.clone(), c)));
        }
        assert_eq!(parse_events("codeflow:ev:p:nope"), None);
        assert_eq!(parse_events("codeflow:ev:bad id:files"), None);
        assert_eq!(parse_events("other:p:files"), None);
        assert_eq!(log(&p, Channel::Git), "codeflow:{my-app.v2_x/git}:log");
    }
}
