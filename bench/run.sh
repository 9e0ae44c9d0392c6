#!/usr/bin/env bash
# One command for CodeFlow's benchmarks: builds the release binaries, installs the P1 peer
# (supergateway) only if it is missing, raises the open-file limit for P3, and runs
# codeflow-bench. Usage: bench/run.sh [p1|p3|p5|p6|p7|p9|p10|all] [codeflow-bench flags…]
# (other modes may be listed by `codeflow-bench --help`)
# Results: a table on stdout and target/bench/results.json (see docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."

which="${1:-all}"
shift || true

cargo build --release -p codeflow-server -p codeflow-client -p codeflow-bench

if [[ "$which" == "p1" || "$which" == "all" ]] && ! command -v supergateway >/dev/null 2>&1; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing the P1 peer: npm i -g supergateway" >&2
    npm i -g supergateway >&2 || echo "could not install supergateway: P1 will report CodeFlow only" >&2
  else
    echo "npm is missing: P1 will report CodeFlow only" >&2
  fi
fi

# P10's per-session side is cclsp (the ancestor's LSP-MCP server); without it P10 reports that
# side missing, by name.
if [[ "$which" == "p10" ]] && ! command -v cclsp >/dev/null 2>&1; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing the P10 peer: npm i -g cclsp@0.7.0" >&2
    npm i -g cclsp@0.7.0 >&2 || echo "could not install cclsp: P10 will report CodeFlow only" >&2
  else
    echo "npm is missing: P10 will report CodeFlow only" >&2
  fi
fi

# P3 holds 10,000 sockets in the bench and 10,000 in the server (the server inherits this).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/codeflow-bench" "$which" "$@"
