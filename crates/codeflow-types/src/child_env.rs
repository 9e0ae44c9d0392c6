//! The clean environment CodeFlow's children start with (language servers, the `claude` CLI):
//! never the server's own environment — which holds its secrets, such as
//! `CODEFLOW_JWT_SECRET` — only what a child needs to find its tools and caches. Each kind of
//! child adds what its configuration names.

/// Variables a child inherits from the CodeFlow server, when set: where programs, toolchains
/// and caches are, and the locale. Anything else — tokens, keys, `CODEFLOW_*` — is not passed;
/// a child that needs more gets it from its own configuration.
pub const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
    "SHELL",
    // Trust roots for servers that fetch modules (gopls)
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    // Rust
    "CARGO",
    "CARGO_HOME",
    "RUSTC",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "RUSTUP_TOOLCHAIN_SOURCE",
    "RUSTUP_AUTO_INSTALL",
    // Go
    "GOPATH",
    "GOROOT",
    "GOCACHE",
    "GOMODCACHE",
    "GOFLAGS",
    "GOPROXY",
    "GOTOOLCHAIN",
    "GOPRIVATE",
    // Node, Python, Java
    "NODE_PATH",
    "NVM_DIR",
    "VIRTUAL_ENV",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "PYTHONPATH",
    "PYTHONHOME",
    "JAVA_HOME",
];

/// The inherited part of a child's environment, read from this process.
pub fn inherited() -> impl Iterator<Item = (&'static str, std::ffi::OsString)> {
    INHERITED
        .iter()
        .filter_map(|name| std::env::var_os(name).map(|value| (*name, value)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn nothing_of_codeflow_is_inherited() {
        assert!(super::INHERITED.iter().all(|n| !n.starts_with("CODEFLOW")));
        assert!(super::INHERITED.contains(&"PATH"));
    }
}
