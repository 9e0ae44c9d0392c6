//! One WebSocket frame, independent of which WebSocket library produced it.
//!
//! The server side uses axum's WebSocket and the relay uses tokio-tungstenite; both carry the
//! same frames, so the connection driver is written once against [`Frame`] and each library's
//! message type converts through [`WsFrame`].
//!
//! Text travels as [`Utf8Bytes`] (a reference-counted `Bytes` known to be UTF-8): a channel
//! event serialised once is queued to every subscriber's connection without a copy each, and
//! a received frame is handed on without copying its text.

use bytes::Bytes;
pub use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A WebSocket frame as the connection driver sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A text frame: one JSON-RPC message (shared, cheap to clone).
    Text(Utf8Bytes),
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
            M::Text(t) => Frame::Text(shared_text(Bytes::from(t))),
            M::Binary(b) => Frame::Binary(b),
            M::Ping(b) => Frame::Ping(b),
            M::Pong(b) => Frame::Pong(b),
            M::Close(c) => Frame::Close(c.map(|c| (c.code, c.reason.as_str().to_owned()))),
        })
    }

    fn from_frame(frame: Frame) -> Self {
        use axum::extract::ws::{CloseFrame, Message as M};
        match frame {
            Frame::Text(t) => M::Text(axum_text(t)),
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
            M::Text(t) => Frame::Text(t),
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
            Frame::Text(t) => M::Text(t),
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

/// Text axum handed over as bytes, kept without a copy. axum's text is UTF-8 by construction,
/// so the check cannot fail (it is one pass over the bytes, no allocation).
fn shared_text(bytes: Bytes) -> Utf8Bytes {
    let text = Utf8Bytes::try_from(bytes);
    debug_assert!(text.is_ok(), "axum text that is not UTF-8");
    text.unwrap_or_default()
}

/// axum's text type for shared text: the same bytes, not copied. axum takes bytes only
/// through a UTF-8 check, which cannot fail here (a pass over a few hundred bytes for an
/// event, no allocation).
fn axum_text(text: Utf8Bytes) -> axum::extract::ws::Utf8Bytes {
    let text = axum::extract::ws::Utf8Bytes::try_from(Bytes::from(text));
    debug_assert!(text.is_ok(), "Utf8Bytes that is not UTF-8");
    text.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_crosses_both_libraries_without_a_copy() {
        let shared = Utf8Bytes::from("{\"jsonrpc\":\"2.0\",\"method\":\"x\"}".to_owned());
        let at = shared.as_str().as_ptr();
        let axum = <axum::extract::ws::Message as WsFrame>::from_frame(Frame::Text(shared.clone()));
        let axum::extract::ws::Message::Text(t) = &axum else {
            panic!("not text: {axum:?}");
        };
        assert_eq!(t.as_str().as_ptr(), at);
        assert_eq!(axum.into_frame(), Some(Frame::Text(shared.clone())));
        let ts = <tokio_tungstenite::tungstenite::Message as WsFrame>::from_frame(Frame::Text(
            shared.clone(),
        ));
        assert_eq!(ts.into_frame(), Some(Frame::Text(shared)));
    }
}
