//! What one line of the CLI's `--output-format stream-json` output is: a message to publish
//! (noting the conversation id of `system/init` and whether it is the final `result`), or a
//! line that is not a JSON object, reported as an error event with a short excerpt. Pure, so
//! the fuzzer can feed it anything.

use serde_json::Value;

/// Characters of a bad line kept in its error event.
const EXCERPT_CHARS: usize = 200;

/// One interpreted line.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamLine {
    /// A JSON object line: a stream-json message.
    Message {
        /// The line as parsed.
        message: Value,
        /// `system/init`'s `session_id`: the conversation a later run resumes.
        conversation: Option<String>,
        /// The final `result` line (cost, duration, outcome).
        is_result: bool,
    },
    /// A line that is not a JSON object: reported as an error event, not a crash.
    NotAnObject {
        /// The start of the line, for the error event.
        excerpt: String,
    },
}

/// Interprets one line (without its newline).
pub fn interpret(bytes: &[u8]) -> StreamLine {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(message) if message.is_object() => {
            let conversation = (message["type"] == "system" && message["subtype"] == "init")
                .then(|| message["session_id"].as_str().map(str::to_owned))
                .flatten();
            let is_result = message["type"] == "result";
            StreamLine::Message {
                message,
                conversation,
                is_result,
            }
        }
        _ => StreamLine::NotAnObject {
            excerpt: String::from_utf8_lossy(bytes)
                .chars()
                .take(EXCERPT_CHARS)
                .collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_result_and_garbage() {
        let init = interpret(br#"{"type":"system","subtype":"init","session_id":"abc"}"#);
        assert!(
            matches!(init, StreamLine::Message { conversation: Some(ref c), is_result: false, .. } if c == "abc")
        );
        let result = interpret(br#"{"type":"result","total_cost_usd":0.1}"#);
        assert!(matches!(
            result,
            StreamLine::Message {
                is_result: true,
                conversation: None,
                ..
            }
        ));
        assert!(matches!(
            interpret(b"[1,2]"),
            StreamLine::NotAnObject { .. }
        ));
        assert!(matches!(
            interpret(b"\xff\xfe not json"),
            StreamLine::NotAnObject { .. }
        ));
    }
}
