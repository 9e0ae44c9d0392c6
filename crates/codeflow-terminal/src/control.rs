//! The JSON control messages of a terminal socket's text frames.

use serde::{Deserialize, Serialize};

/// A control message from a viewer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Control {
    /// The viewer's window size changed.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Send a signal to the terminal's foreground process group (`SIGINT`, `INT`, …).
    Signal {
        /// The signal's name.
        name: String,
    },
}

/// A control message to a viewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerControl {
    /// The shell exited with this code (128 + N when killed by signal N).
    Exit {
        /// The exit code.
        code: i32,
    },
    /// A control message was refused; the terminal goes on.
    Error {
        /// Why, in words.
        message: String,
    },
}

impl Control {
    /// Parses a text frame.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| {
            format!(
                "not a control message ({e}): expected {{\"type\":\"resize\",\"cols\":N,\"rows\":N}} or {{\"type\":\"signal\",\"name\":\"SIGINT\"}}"
            )
        })
    }
}

impl ServerControl {
    /// The text frame.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The signals a viewer may send, by name (with or without `SIG`).
pub(crate) fn signal(name: &str) -> Option<nix::sys::signal::Signal> {
    use nix::sys::signal::Signal;
    let name = name.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    Some(match name {
        "INT" => Signal::SIGINT,
        "TERM" => Signal::SIGTERM,
        "HUP" => Signal::SIGHUP,
        "KILL" => Signal::SIGKILL,
        "QUIT" => Signal::SIGQUIT,
        "TSTP" => Signal::SIGTSTP,
        "CONT" => Signal::SIGCONT,
        "USR1" => Signal::SIGUSR1,
        "USR2" => Signal::SIGUSR2,
        "WINCH" => Signal::SIGWINCH,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_control_messages() {
        assert_eq!(
            Control::parse(r#"{"type":"resize","cols":100,"rows":40}"#),
            Ok(Control::Resize {
                cols: 100,
                rows: 40
            })
        );
        assert_eq!(
            Control::parse(r#"{"type":"signal","name":"SIGINT"}"#),
            Ok(Control::Signal {
                name: "SIGINT".into()
            })
        );
        assert!(Control::parse(r#"{"type":"resize","cols":-1,"rows":2}"#).is_err());
        assert!(Control::parse("nope").is_err());
        assert_eq!(signal("int"), Some(nix::sys::signal::Signal::SIGINT));
        assert_eq!(signal("SIGSEGV"), None);
        assert_eq!(
            ServerControl::Exit { code: 3 }.to_text(),
            r#"{"type":"exit","code":3}"#
        );
    }
}
