//! CodeFlow channels across server instances, through Redis.
//!
//! [`RedisBroker`] is the [`codeflow_session::ChannelBroker`] of `cluster_url`: every
//! project channel is a Redis stream holding its history (so recovery by `{epoch, offset}`
//! works from any instance, and survives the instance that published), numbered by a counter
//! beside it; a Lua script numbers, stores and announces a publication in one step, and every
//! instance hears the announcements on one pub/sub pattern. The epoch is one key, set by the
//! first instance that connects. Key names are in [`keys`].

#![warn(missing_docs)]

mod broker;
pub mod keys;
mod relay;

pub use broker::RedisBroker;
