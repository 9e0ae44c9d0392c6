//! The environment a language server starts with: the clean base every CodeFlow child gets
//! ([`codeflow_types::child_env`]: where programs, toolchains and caches are, and the locale),
//! plus the server table's `env`. Never the server's own environment (its secrets live there).

pub(crate) use codeflow_types::child_env::inherited;
