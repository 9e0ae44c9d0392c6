//! `docs/configuration.md` checked against the config types, so the page cannot drift: every
//! key of [`Config`] (from its serialized default) has one row with its env name, flag and
//! default, every documented key exists; the `[lsp]` example parses as the pool's config and
//! shows every pool key with its default; every server-table key is named; the Go aliases
//! table is exactly what `aliases.rs` reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use clap::CommandFactory;
use figment::Figment;
use figment::providers::{Format, Toml};
use serde_json::Value;

use crate::config::{Cli, Config};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
    std::fs::read_to_string(path).expect("docs/configuration.md")
}

/// The lines under `heading` up to the next heading (code blocks included, their `#` comments
/// are not headings).
fn section(doc: &str, heading: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut fenced = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if !fenced && line.starts_with('#') {
            if inside {
                break;
            }
            inside = line.trim() == heading;
            continue;
        }
        if inside {
            out.push(line.to_owned());
        }
    }
    assert!(
        !out.is_empty(),
        "configuration.md has a section {heading:?}"
    );
    out
}

/// Rows of the first table in `lines`, cells trimmed (the header and rule left out).
fn table(lines: &[String]) -> Vec<Vec<String>> {
    lines
        .iter()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

/// The backticked words of a cell: "`a`, `b`" → [a, b].
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// A default as the page writes it: strings bare, `none` for unset, whole floats without `.0`.
fn render(value: &Value) -> String {
    match value {
        Value::Null => "none".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Keys whose documented default is not their serialized value, with what the page says.
const COMPUTED_DEFAULTS: &[(&str, &str)] = &[
    // unset in the file, `<data_dir>/workspaces` when used
    ("projects_root", "`<data_dir>/workspaces`"),
    // a table of its own, documented in the `[lsp]` section
    ("lsp", "see below"),
];

#[test]
fn every_server_key_is_documented_with_its_env_name_flag_and_default() {
    let doc = doc();
    let defaults_value = serde_json::to_value(Config::default()).unwrap();
    let defaults = defaults_value.as_object().unwrap();
    let flags: BTreeSet<String> = Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();

    let mut documented = BTreeMap::new();
    for row in table(&section(&doc, "## Server keys")) {
        assert_eq!(
            row.len(),
            5,
            "key | env | flag | default | meaning: {row:?}"
        );
        // `auth.authorized_keys` is a key of a table; `[[auth.client_certs]]` an array of
        // tables, written as TOML writes it.
        let keys: Vec<String> = ticked(&row[0])
            .iter()
            .map(|k| k.trim_start_matches("[[").trim_end_matches("]]").to_owned())
            .collect();
        assert!(!keys.is_empty(), "a key in backticks: {row:?}");
        let envs = ticked(&row[1]);
        let row_flags = ticked(&row[2]);
        let row_defaults: Vec<&str> = row[3].split(", ").collect();
        for (i, key) in keys.iter().enumerate() {
            assert!(
                documented.insert(key.clone(), ()).is_none(),
                "`{key}` is documented twice"
            );
            let default = key
                .split('.')
                .try_fold(&defaults_value, |v, k| v.get(k))
                .unwrap_or_else(|| {
                    panic!("configuration.md documents `{key}`, which the server does not have")
                });
            // env: CODEFLOW_<KEY>, a table's keys below it with `__`.
            let env_key = key.replace('.', "__").to_uppercase();
            let env = if key == "lsp" {
                format!("CODEFLOW_{env_key}__<KEY>")
            } else {
                format!("CODEFLOW_{env_key}")
            };
            assert_eq!(
                envs.get(i),
                Some(&env),
                "`{key}`'s env name in configuration.md"
            );
            // flag: --key-with-dashes when the server has that flag, else `—`.
            let flag = format!("--{}", key.replace('_', "-"));
            if flags.contains(&flag) {
                assert_eq!(
                    row_flags.get(i),
                    Some(&flag),
                    "`{key}` has the flag {flag}; configuration.md should say so"
                );
            } else {
                assert!(
                    row[2] == "—",
                    "`{key}` has no flag {flag}, configuration.md names {:?}",
                    row[2]
                );
            }
            // default: the serialized default (one value for the row, or one per key).
            let written = if row_defaults.len() == keys.len() {
                row_defaults[i]
            } else {
                row[3].as_str()
            };
            // Lists and tables: the page's JSON, compared as values (spacing is free).
            if (default.is_array() || default.is_object()) && key != "lsp" {
                let json = written.trim_matches('`');
                let parsed: Value = serde_json::from_str(json).unwrap_or_else(|e| {
                    panic!(
                        "the default of `{key}` in configuration.md is not JSON: {written} ({e})"
                    )
                });
                assert_eq!(
                    &parsed, default,
                    "the default of `{key}` in configuration.md"
                );
                continue;
            }
            let expected = match COMPUTED_DEFAULTS.iter().find(|(k, _)| k == key) {
                Some((_, text)) => (*text).to_owned(),
                None => match render(default).as_str() {
                    "none" => "none".to_owned(),
                    text => format!("`{text}`"),
                },
            };
            assert_eq!(
                written, expected,
                "the default of `{key}` in configuration.md"
            );
        }
    }
    // A key is documented by its own row, or (a table) by a row for each of its keys.
    let missing: Vec<String> = defaults
        .iter()
        .flat_map(|(k, v)| match v.as_object() {
            Some(table) if !documented.contains_key(k) => {
                table.keys().map(|sub| format!("{k}.{sub}")).collect()
            }
            _ => vec![k.clone()],
        })
        .filter(|k| !documented.contains_key(k))
        .collect();
    assert!(
        missing.is_empty(),
        "keys missing from configuration.md's \"Server keys\" table: {missing:?}"
    );
}

#[test]
fn the_lsp_example_is_valid_and_shows_every_pool_key_with_its_default() {
    let doc = doc();
    let lines = section(&doc, "## Language servers: `[lsp]`");
    let block: String = lines
        .iter()
        .skip_while(|l| !l.starts_with("```toml"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!block.is_empty(), "a ```toml block in the [lsp] section");

    // The example is a config the server accepts (unknown keys are refused by the pool).
    let config: Config = Figment::from(figment::providers::Serialized::defaults(Config::default()))
        .merge(Toml::string(&block))
        .extract()
        .unwrap_or_else(|e| panic!("the [lsp] example does not load: {e}"));
    let example = serde_json::to_value(&config.lsp).unwrap();
    let defaults = serde_json::to_value(codeflow_lsp_pool::PoolConfig::default()).unwrap();

    // Every pool key is written in the example, with its default value.
    let written: BTreeSet<String> = block
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
        .collect();
    for (key, default) in defaults.as_object().unwrap() {
        if key == "servers" {
            continue;
        }
        assert!(
            written.contains(key),
            "lsp.{key} is missing from configuration.md's [lsp] example"
        );
        assert_eq!(
            &example[key], default,
            "lsp.{key} in configuration.md's example is not its default"
        );
    }

    // Every key of a server entry is named in the section.
    let section_text = lines.join("\n");
    let server = serde_json::to_value(
        codeflow_lsp_pool::default_servers()
            .into_values()
            .next()
            .unwrap(),
    )
    .unwrap();
    for key in server.as_object().unwrap().keys() {
        assert!(
            written.contains(key) || section_text.contains(&format!("`{key}`")),
            "the server key `{key}` is not named in configuration.md's [lsp] section"
        );
    }
}

#[test]
fn the_go_alias_table_is_what_aliases_rs_reads() {
    // The names aliases.rs asks for, and the key each sets.
    let asked = std::cell::RefCell::new(Vec::new());
    crate::aliases::from_vars(|name| {
        asked.borrow_mut().push(name.to_owned());
        None
    })
    .unwrap();
    let mut actual = BTreeMap::new();
    for name in asked.into_inner() {
        let map = crate::aliases::from_vars(|n| (n == name).then(|| "1".to_owned())).unwrap();
        let keys: Vec<&String> = map.keys().collect();
        assert_eq!(keys.len(), 1, "{name} sets one key");
        actual.insert(name.clone(), keys[0].clone());
    }

    let doc = doc();
    let mut documented = BTreeMap::new();
    let defaults = serde_json::to_value(Config::default()).unwrap();
    for row in table(&section(&doc, "### The original Go server's variables")) {
        assert_eq!(row.len(), 3, "variable | key | value: {row:?}");
        let (var, key) = (ticked(&row[0]), ticked(&row[1]));
        assert_eq!(
            (var.len(), key.len()),
            (1, 1),
            "one variable, one key: {row:?}"
        );
        assert!(defaults.get(&key[0]).is_some(), "`{}` is a key", key[0]);
        documented.insert(var[0].clone(), key[0].clone());
    }
    assert_eq!(
        documented, actual,
        "configuration.md's Go alias table (left) and aliases.rs (right)"
    );
}

#[test]
fn the_file_limit_variables_are_what_limits_reads_with_their_defaults() {
    use codeflow_file_stream::Limits;
    use codeflow_file_stream::limits::parse_size;

    // The names Limits::from_vars asks for.
    let asked = std::cell::RefCell::new(Vec::new());
    Limits::from_vars(|name| {
        asked.borrow_mut().push(name.to_owned());
        None
    })
    .unwrap();
    let asked: BTreeSet<String> = asked.into_inner().into_iter().collect();

    let doc = doc();
    let defaults = Limits::default();
    let mut documented = BTreeSet::new();
    for row in table(&section(
        &doc,
        "## File limits (environment, both server and relay)",
    )) {
        assert_eq!(row.len(), 3, "variable | default | meaning: {row:?}");
        let var = ticked(&row[0]).remove(0);
        let written = ticked(&row[1]).remove(0);
        // What the variable sets: set it alone to a recognisable value.
        let set = Limits::from_vars(|n| (n == var).then(|| "7".to_owned())).unwrap();
        let (field, default) = if set.max_file_size == 7 {
            ("max_file_size", defaults.max_file_size)
        } else if set.max_files == 7 {
            ("max_files", defaults.max_files)
        } else if set.max_total_bytes == 7 {
            ("max_total_bytes", defaults.max_total_bytes)
        } else {
            panic!("configuration.md documents {var}, which sets no limit")
        };
        assert_eq!(
            parse_size(&var, &written).unwrap(),
            default,
            "the default of {var} ({field}) in configuration.md"
        );
        documented.insert(var);
    }
    assert_eq!(
        documented, asked,
        "configuration.md's file limits (left) and Limits::from_vars (right)"
    );
}
