#!/usr/bin/env bash
# Install the language servers CodeFlow's default table uses (see shared/design/toolchain.md).
#
# Idempotent: each server is checked by running it (not by `which`: rustup installs a
# `rust-analyzer` proxy even when the component is missing) and installed only when missing.
# `apt-get update` runs at most once, and only when an apt install is actually needed.
# Meant for Debian as root (dev machines, CI, the server's container image).
set -euo pipefail

log() { printf '[install-language-servers] %s\n' "$*" >&2; }

have() { command -v "$1" >/dev/null 2>&1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if have sudo; then SUDO="sudo"; else
        log "not root and no sudo: apt installs will fail"
    fi
fi

APT_UPDATED=0
apt_install() {
    if ! have apt-get; then
        log "apt-get not found; install $* by hand"
        return 1
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# Does running this command succeed? Output is discarded; a broken proxy exits non-zero.
runs() { "$@" >/dev/null 2>&1; }

PIP="pip3"
have pip3 || PIP="python3 -m pip"

# --- Python: pylsp --------------------------------------------------------------------------
# With its pyflakes plugin: without a linter plugin pylsp reports no diagnostics at all, not
# even a syntax error. (pycodestyle is left out: style warnings on every line bury the errors.)
if runs pylsp --version && python3 -c "import pyflakes" >/dev/null 2>&1; then
    log "pylsp (with pyflakes) present"
else
    log "installing python-lsp-server[pyflakes]"
    $PIP install --quiet "python-lsp-server[pyflakes]"
    # pyenv keeps shims that only appear after a rehash.
    if have pyenv; then pyenv rehash || true; fi
fi

# --- Python: basedpyright, asked for references, renames, call hierarchy, implementations and
# workspace symbols beside pylsp (it found every use pylsp's jedi missed on flask: see
# docs/benchmarks.md, "Accuracy"). The wheel brings its own Node.js.
BASEDPYRIGHT_VERSION="1.40.0"
if runs basedpyright --version && have basedpyright-langserver; then
    log "basedpyright present"
else
    log "installing basedpyright==$BASEDPYRIGHT_VERSION"
    $PIP install --quiet "basedpyright==$BASEDPYRIGHT_VERSION"
    if have pyenv; then pyenv rehash || true; fi
fi

# --- Fortran: fortls ----------------------------------------------------------------------------
if runs fortls --version; then
    log "fortls present"
else
    log "installing fortls"
    $PIP install --quiet "fortls==3.2.2"
    if have pyenv; then pyenv rehash || true; fi
fi

# --- npm servers ------------------------------------------------------------------------------
NPM_PKGS=()
if runs typescript-language-server --version; then
    log "typescript-language-server present"
else
    NPM_PKGS+=(typescript-language-server)
fi
# typescript-language-server needs the `typescript` package; 7.x never answers, so pin 6.
TSC_MAJOR="$(tsc --version 2>/dev/null | sed -n 's/^Version \([0-9]*\)\..*/\1/p' || true)"
if [ "${TSC_MAJOR:-}" = "6" ]; then
    log "typescript 6 present"
else
    NPM_PKGS+=("typescript@6")
fi
# Pinned: the pool waits for its "BackgroundAnalysis: Completed" log line (5.x wording).
if runs bash-language-server --version; then
    log "bash-language-server present"
else
    NPM_PKGS+=(bash-language-server@5.8.1)
fi
# The rest of the default table's npm servers, pinned (CI installs the same versions). Each is
# checked by its command; `--version` is not answered by all of them, so presence is `have`.
# yaml-language-server 2.x needs Node 22: pin 1.25.0 (Node 20 here).
for pair in \
    "vscode-json-language-server vscode-langservers-extracted@4.10.0" \
    "yaml-language-server yaml-language-server@1.25.0" \
    "docker-langserver dockerfile-language-server-nodejs@0.15.0" \
    "intelephense intelephense@1.18.5" \
    "vim-language-server vim-language-server@2.3.1" \
    "svelteserver svelte-language-server@0.18.4" \
    "prisma-language-server @prisma/language-server@31.12.10"; do
    cmd="${pair%% *}"
    pkg="${pair#* }"
    if have "$cmd"; then log "$cmd present"; else NPM_PKGS+=("$pkg"); fi
done
if [ "${#NPM_PKGS[@]}" -gt 0 ]; then
    if ! have npm; then
        apt_install nodejs npm
    fi
    log "npm install -g ${NPM_PKGS[*]}"
    npm install -g --no-fund --no-audit --loglevel=error "${NPM_PKGS[@]}"
fi

# --- apt servers: clangd, gopls -----------------------------------------------------------------
APT_PKGS=()
if runs clangd --version; then log "clangd present"; else APT_PKGS+=(clangd); fi
if runs go version; then log "go present"; else APT_PKGS+=(golang-go); fi
if runs gopls version; then log "gopls present"; else APT_PKGS+=(gopls); fi
if [ "${#APT_PKGS[@]}" -gt 0 ]; then
    apt_install "${APT_PKGS[@]}"
fi

# --- rust-analyzer ------------------------------------------------------------------------------
if runs rust-analyzer --version; then
    log "rust-analyzer present"
else
    if have rustup; then
        log "rustup component add rust-analyzer rust-src"
        rustup component add rust-analyzer rust-src
    else
        log "rustup not found; cannot install rust-analyzer"
        exit 1
    fi
fi

log "done:"
for cmd in "pylsp --version" "basedpyright --version" "typescript-language-server --version" "tsc --version" \
    "clangd --version" "gopls version" "rust-analyzer --version" "bash-language-server --version" \
    "fortls --version" "yaml-language-server --version"; do
    # shellcheck disable=SC2086
    printf '  %-40s %s\n' "$cmd" "$($cmd 2>/dev/null | head -n1 || echo MISSING)" >&2
done
