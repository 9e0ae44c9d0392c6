//! Answers the server's `client/*` file requests from this container's disk.

use codeflow_transport::{ErrorObject, Message, Outbound, codes};
use serde_json::Value;

/// Serves one `client/*` request and sends the answer upstream.
pub fn serve_file_request(outbound: Outbound, id: Value, method: String, _params: Option<Value>) {
    tokio::spawn(async move {
        let error = ErrorObject::new(
            codes::NOT_IMPLEMENTED,
            format!("`{method}` is not implemented by this relay yet"),
        );
        let _ = outbound.send(&Message::error(id, error));
    });
}
