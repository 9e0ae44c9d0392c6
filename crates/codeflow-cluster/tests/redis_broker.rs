//! The Redis broker against a real `redis-server` (started on a free loopback port by the test;
//! `scripts/test.sh` installs the Debian package): offsets shared by instances, mirrors kept
//! current by the announcements, a dropped pub/sub connection resynced from the streams, and
//! the history surviving the instance that published it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use codeflow_cluster::RedisBroker;
use codeflow_e2e::cluster::RedisServer;
use codeflow_session::{Channel, ChannelBroker, ChannelConfig, Channels, ProjectId};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn instance(url: &str) -> Channels {
    let broker = RedisBroker::connect(url, 100).await.unwrap();
    Channels::new(ChannelConfig {
        history: 100,
        broker: Some(broker as Arc<dyn ChannelBroker>),
        ..ChannelConfig::default()
    })
}

async fn until_offset(channels: &Channels, project: &ProjectId, offset: u64) {
    for _ in 0..500 {
        if channels.position(project, Channel::Files).offset == offset {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the mirror stayed at {} instead of {offset}",
        channels.position(project, Channel::Files).offset
    );
}

/// Sends one inline command to Redis and returns the first line of the reply.
async fn redis_command(port: u16, command: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 256];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn instances_share_offsets_mirrors_follow_and_history_outlives_its_publisher() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let project = ProjectId::parse("alpha").unwrap();

    let a = instance(&url).await;
    let b = instance(&url).await;
    assert_eq!(a.epoch(), b.epoch(), "one epoch per broker");

    for i in 1..=3u64 {
        let p = a
            .publish_confirmed(&project, Channel::Files, json!({"n": i}))
            .await
            .unwrap();
        assert_eq!(p.offset, i);
    }
    // B mirrors the channel from the broker's history, then follows it live.
    b.prepare(&project, Channel::Files).await.unwrap();
    assert_eq!(b.position(&project, Channel::Files).offset, 3);
    a.publish(&project, Channel::Files, json!({"n": 4}));
    until_offset(&b, &project, 4).await;

    // B's pub/sub connection is cut: what is published meanwhile is read back from the stream
    // once it listens again.
    let killed = redis_command(redis.port, "CLIENT KILL TYPE pubsub").await;
    assert!(killed.starts_with(':'), "{killed}");
    for n in 5..=6 {
        a.publish_confirmed(&project, Channel::Files, json!({"n": n}))
            .await
            .unwrap();
    }
    until_offset(&b, &project, 6).await;

    // The publishing instance goes away; a new one finds the whole history.
    drop(a);
    let c = instance(&url).await;
    c.prepare(&project, Channel::Files).await.unwrap();
    assert_eq!(c.position(&project, Channel::Files).offset, 6);
    assert_eq!(c.epoch(), b.epoch());
    // And it publishes after it, in the same numbering.
    let next = c
        .publish_confirmed(&project, Channel::Files, json!({"n": 7}))
        .await
        .unwrap();
    assert_eq!(next.offset, 7);
    until_offset(&b, &project, 7).await;

    // Another project's channel is its own.
    let beta = ProjectId::parse("beta").unwrap();
    b.prepare(&beta, Channel::Files).await.unwrap();
    assert_eq!(b.position(&beta, Channel::Files).offset, 0);
}

#[tokio::test]
async fn an_unreachable_broker_is_a_clear_error() {
    let port = codeflow_e2e::free_port();
    let e = RedisBroker::connect(&format!("redis://127.0.0.1:{port}"), 10)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot connect"), "{e}");
    let e = RedisBroker::connect("http://nope", 10).await.unwrap_err();
    assert!(e.to_string().contains("cluster_url"), "{e}");
}
