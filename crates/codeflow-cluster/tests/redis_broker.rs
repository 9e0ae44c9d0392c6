//! The Redis broker against a real `redis-server` (started on a free loopback port by the test;
//! `scripts/test.sh` installs the Debian package): offsets shared by instances, mirrors kept
//! current by the announcements, a dropped pub/sub connection resynced from the streams, and
//! the history surviving the instance that published it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use codeflow_cluster::RedisBroker;
use codeflow_e2e::cluster::RedisServer;
use codeflow_session::{AppendId, Channel, ChannelBroker, ChannelConfig, Channels, ProjectId};
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

#[tokio::test]
async fn a_retried_append_is_stored_once() {
    let redis = RedisServer::start().await;
    let broker = RedisBroker::connect(&redis.url(), 100).await.unwrap();
    let project = ProjectId::parse("retries").unwrap();
    let id = |seq| {
        Some(AppendId {
            sender: Arc::from("instance-a"),
            seq,
        })
    };
    let append = |data, id| broker.append(project.clone(), Channel::Files, 1, data, id);

    assert_eq!(append(json!({"n": 1}), id(1)).await.unwrap(), 1);
    // The same sender's number again (its answer was lost): the first offset, nothing stored.
    assert_eq!(append(json!({"n": 1}), id(1)).await.unwrap(), 1);
    assert_eq!(append(json!({"n": 2}), id(2)).await.unwrap(), 2);
    assert_eq!(append(json!({"n": 2}), id(2)).await.unwrap(), 2);
    // Another sender numbers from 1 too, and is its own.
    let other = Some(AppendId {
        sender: Arc::from("instance-b"),
        seq: 1,
    });
    assert_eq!(append(json!({"n": 3}), other).await.unwrap(), 3);
    // Without an id every append is stored.
    assert_eq!(append(json!({"n": 4}), None).await.unwrap(), 4);
    assert_eq!(append(json!({"n": 5}), None).await.unwrap(), 5);

    let stored = broker
        .read(project.clone(), Channel::Files, 0, 100)
        .await
        .unwrap();
    let ns: Vec<u64> = stored
        .publications
        .iter()
        .map(|p| p.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, [1, 2, 3, 4, 5]);
    assert_eq!(stored.top, 5);
}

/// Sends `signal` (`STOP`, `CONT`) to a process.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

#[tokio::test]
async fn publications_made_while_the_broker_is_paused_arrive_once_in_order() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let project = ProjectId::parse("paused").unwrap();
    let a = instance(&url).await;
    let b = instance(&url).await;
    b.prepare(&project, Channel::Files).await.unwrap();
    for n in 1..=3 {
        a.publish(&project, Channel::Files, json!({"n": n}));
    }
    until_offset(&b, &project, 3).await;

    // Redis stops answering for longer than a command may take (5 s): the appends made
    // meanwhile fail at least once — and Redis may still run them when it wakes up.
    let pid = redis.pid().unwrap();
    signal(pid, "STOP");
    for n in 4..=8 {
        a.publish(&project, Channel::Files, json!({"n": n}));
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    signal(pid, "CONT");

    for _ in 0..1500 {
        if b.position(&project, Channel::Files).offset >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        history(&url, &project).await,
        [1, 2, 3, 4, 5, 6, 7, 8],
        "none lost, none twice, in order"
    );
    assert_eq!(b.position(&project, Channel::Files).offset, 8);
}

#[tokio::test]
async fn publications_made_while_the_broker_is_unreachable_arrive_after() {
    let redis = RedisServer::start().await;
    let proxy = codeflow_e2e::TcpProxy::start(redis.port).await;
    let project = ProjectId::parse("cut").unwrap();
    // A reaches Redis through a proxy the test cuts; B directly.
    let a = instance(&format!("redis://127.0.0.1:{}", proxy.port)).await;
    let b = instance(&redis.url()).await;
    b.prepare(&project, Channel::Files).await.unwrap();
    a.publish(&project, Channel::Files, json!({"n": 1}));
    until_offset(&b, &project, 1).await;

    proxy.refuse(true);
    proxy.sever();
    for n in 2..=6 {
        a.publish(&project, Channel::Files, json!({"n": n}));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        b.position(&project, Channel::Files).offset,
        1,
        "nothing reached Redis while A could not"
    );
    proxy.refuse(false);

    for _ in 0..1000 {
        if b.position(&project, Channel::Files).offset >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        history(&redis.url(), &project).await,
        [1, 2, 3, 4, 5, 6],
        "none lost, none twice, in order"
    );
}

/// The `n` of every publication Redis holds for the project's `files` channel.
async fn history(url: &str, project: &ProjectId) -> Vec<u64> {
    RedisBroker::connect(url, 100)
        .await
        .unwrap()
        .read(project.clone(), Channel::Files, 0, 100)
        .await
        .unwrap()
        .publications
        .iter()
        .map(|p| p.data["n"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_publication_redis_refuses_is_dropped_and_the_queue_goes_on() {
    let redis = RedisServer::start().await;
    let project = ProjectId::parse("refused").unwrap();
    // The channel's counter is not a number: Redis answers the append with `ERR`, and would
    // answer a retry the same way.
    let set = redis_command(redis.port, "SET codeflow:{refused/files}:top abc").await;
    assert_eq!(set, "+OK");
    let broker = RedisBroker::connect(&redis.url(), 100).await.unwrap();
    let e = broker
        .append(project.clone(), Channel::Files, 1, json!({"n": 0}), None)
        .await
        .unwrap_err();
    assert!(e.refused, "{e}");

    let a = instance(&redis.url()).await;
    a.publish(&project, Channel::Files, json!({"n": 1}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let del = redis_command(redis.port, "DEL codeflow:{refused/files}:top").await;
    assert_eq!(del, ":1");
    a.publish(&project, Channel::Files, json!({"n": 2}));
    for _ in 0..500 {
        if history(&redis.url(), &project).await == [2] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the publication after a refused one did not arrive: {:?}",
        history(&redis.url(), &project).await
    );
}
