//! The original Go server's environment variables, accepted as aliases of CodeFlow's keys.
//! They rank below `CODEFLOW_*` variables and flags, above the config file.
//!
//! | Go variable | key | value |
//! |---|---|---|
//! | `WS_PORT` | `port` | number |
//! | `CLAUDE_CMD` | `claude_cmd` | command |
//! | `EXEC_TIMEOUT` | `exec_timeout_secs` | seconds, or a duration such as `5m` |
//! | `HEARTBEAT` | `ping_interval_secs` | seconds, or a duration such as `30s` |
//! | `MAX_CONN` | `max_clients` | number |
//! | `MAX_PROJECTS` | `max_projects` | number |
//! | `MSG_ROTATE_SIZE` | `msg_rotate_bytes` | bytes, or a size such as `100MB`, `1GB` |
//! | `MSG_ROTATE_DAYS` | `msg_rotate_days` | days |
//! | `LOG_LEVEL` | `log_level` | tracing filter |

use anyhow::{Context, bail};
use serde_json::{Map, Value};

/// The aliases set in the environment, as config keys.
pub fn from_env() -> anyhow::Result<Map<String, Value>> {
    from_vars(|name| std::env::var(name).ok())
}

pub(crate) fn from_vars(
    get: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    let mut set = |name: &str, key: &str, parse: &dyn Fn(&str) -> anyhow::Result<Value>| {
        if let Some(raw) = get(name).filter(|v| !v.trim().is_empty()) {
            let value = parse(raw.trim()).with_context(|| format!("invalid {name}={raw:?}"))?;
            out.insert(key.into(), value);
        }
        anyhow::Ok(())
    };
    set("WS_PORT", "port", &|v| Ok(v.parse::<u16>()?.into()))?;
    set("CLAUDE_CMD", "claude_cmd", &|v| Ok(v.into()))?;
    set("EXEC_TIMEOUT", "exec_timeout_secs", &|v| {
        Ok(seconds(v)?.into())
    })?;
    set("HEARTBEAT", "ping_interval_secs", &|v| {
        Ok(seconds(v)?.into())
    })?;
    set("MAX_CONN", "max_clients", &|v| Ok(v.parse::<u64>()?.into()))?;
    set("MAX_PROJECTS", "max_projects", &|v| {
        Ok(v.parse::<u64>()?.into())
    })?;
    set("MSG_ROTATE_SIZE", "msg_rotate_bytes", &|v| {
        Ok(bytes(v)?.into())
    })?;
    set("MSG_ROTATE_DAYS", "msg_rotate_days", &|v| {
        Ok(v.parse::<f64>()?.into())
    })?;
    set("LOG_LEVEL", "log_level", &|v| Ok(v.into()))?;
    Ok(out)
}

/// `300`, `300s`, `5m`, `1h`, `1h30m` → whole seconds.
fn seconds(text: &str) -> anyhow::Result<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return Ok(n);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(split);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let n: f64 = num
            .parse()
            .context("expected a number of seconds or e.g. 5m")?;
        total += n * match unit {
            "ms" => 0.001,
            "s" | "" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => bail!("unknown unit {other:?}"),
        };
        rest = next;
    }
    Ok(total.round() as u64)
}

/// `1048576`, `100MB`, `1GB`, `512KiB` → bytes.
fn bytes(text: &str) -> anyhow::Result<u64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num
        .parse()
        .context("expected a number of bytes or e.g. 100MB")?;
    let factor: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" | "KIB" => 1024.0,
        "M" | "MB" | "MIB" => 1024.0 * 1024.0,
        "G" | "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        other => bail!("unknown unit {other:?}"),
    };
    Ok((n * factor).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_names_map_to_keys() {
        let vars = |name: &str| {
            Some(
                match name {
                    "WS_PORT" => "8080",
                    "CLAUDE_CMD" => "/opt/claude",
                    "EXEC_TIMEOUT" => "5m",
                    "HEARTBEAT" => "30s",
                    "MAX_CONN" => "50",
                    "MAX_PROJECTS" => "7",
                    "MSG_ROTATE_SIZE" => "100MB",
                    "MSG_ROTATE_DAYS" => "2",
                    "LOG_LEVEL" => "debug",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let map = from_vars(vars).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(map["port"], 8080);
        assert_eq!(map["claude_cmd"], "/opt/claude");
        assert_eq!(map["exec_timeout_secs"], 300);
        assert_eq!(map["ping_interval_secs"], 30);
        assert_eq!(map["max_clients"], 50);
        assert_eq!(map["max_projects"], 7);
        assert_eq!(map["msg_rotate_bytes"], 100 * 1024 * 1024);
        assert_eq!(map["msg_rotate_days"], 2.0);
        assert_eq!(map["log_level"], "debug");
        assert_eq!(seconds("1h30m").ok(), Some(5400));
        assert!(from_vars(|n| (n == "EXEC_TIMEOUT").then(|| "soon".to_owned())).is_err());
    }
}
