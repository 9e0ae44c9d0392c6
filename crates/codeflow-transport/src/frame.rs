//! One WebSocket frame, independent of which WebSocket library produced it.
//!
//! The server side uses axum's WebSocket and the relay uses tokio-tungstenite; both carry the
//! same frames, so the connection driver is written once against [`Frame`] and each library's
//! message type converts through [`WsFrame`].

use bytes::Bytes;

/// A WebSocket frame as the connection driver sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A text frame: one JSON-RPC message.
    Text(String),
    /// A binary frame (refused by CodeFlow with -32600).
    Binary(Bytes),
    /// A ping, with its payload.
    Ping(Bytes),
    /// A pong, with the payload of the ping it answers.
    Pong(Bytes),
    /// A close frame: its code and reason, when it had them.
    Close(Option<(u16, String)>),
}

/// Conversion between a WebSocket library's message type and [`Frame`].
pub trait WsFrame: Sized + Send + 'static {
    /// The frame this library message is; `None` for messages without a frame of their own
    /// (raw frames the driver does not see).
    fn into_frame(self) -> Option<Frame>;
    /// The library message for a frame.
    fn from_frame(frame: Frame) -> Self;
}

impl WsFrame for axum::extract::ws::Message {
    fn into_frame(self) -> Option<Frame> {
        use axum::extract::ws::Message as M;
        Some(match self {
            M::Text(t) => Frame::Text(t.as_str().to_owned()),
            M::Binary(b) => Frame::Binary(b),
            M::Ping(b) => Frame::Ping(b),
            M::Pong(b) => Frame::Pong(b),
            M::Close(c) => Frame::Close(c.map(|c| (c.code, c.reason.as_str().to_owned()))),
        })
    }

    fn from_frame(frame: Frame) -> Self {
        use axum::extract::ws::{CloseFrame, Message as M};
        match frame {
            Frame::Text(t) => M::Text(t.into()),
            Frame::Binary(b) => M::Binary(b),
            Frame::Ping(b) => M::Ping(b),
            Frame::Pong(b) => M::Pong(b),
            Frame::Close(c) => M::Close(c.map(|(code, reason)| CloseFrame {
                code,
                reason: reason.into(),
            })),
        }
    }
}

impl WsFrame for tokio_tungstenite::tungstenite::Message {
    fn into_frame(self) -> Option<Frame> {
        use tokio_tungstenite::tungstenite::Message as M;
        Some(match self {
            M::Text(t) => Frame::Text(t.as_str().to_owned()),
            M::Binary(b) => Frame::Binary(b),
            M::Ping(b) => Frame::Ping(b),
            M::Pong(b) => Frame::Pong(b),
            M::Close(c) => {
                Frame::Close(c.map(|c| (u16::from(c.code), c.reason.as_str().to_owned())))
            }
            // Raw frames only appear when writing; a reader never yields them.
            M::Frame(_) => return None,
        })
    }

    fn from_frame(frame: Frame) -> Self {
        use tokio_tungstenite::tungstenite::Message as M;
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        match frame {
            Frame::Text(t) => M::Text(t.into()),
            Frame::Binary(b) => M::Binary(b),
            Frame::Ping(b) => M::Ping(b),
            Frame::Pong(b) => M::Pong(b),
            Frame::Close(c) => M::Close(c.map(|(code, reason)| CloseFrame {
                code: code.into(),
                reason: reason.into(),
            })),
        }
    }
}
