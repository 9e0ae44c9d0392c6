#!/usr/bin/env bash
# Vendors the terminal widget of the web console (xterm.js and its fit add-on) from the npm
# registry into bins/codeflow-server/ui/vendor/, where the server embeds it (nothing is fetched at
# run time). Run it again only to change the pinned versions below, then commit the result.
#
#   bash scripts/vendor-xterm.sh
set -euo pipefail
cd "$(dirname "$0")/.."

XTERM_VERSION=6.0.0
FIT_VERSION=0.11.0
out=bins/codeflow-server/ui/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# npm pack checks each tarball against the registry's integrity hash.
(cd "$work" && npm pack --silent "@xterm/xterm@${XTERM_VERSION}" "@xterm/addon-fit@${FIT_VERSION}" >/dev/null)
mkdir -p "$work/xterm" "$work/fit" "$out"
tar -xzf "$work/xterm-xterm-${XTERM_VERSION}.tgz" -C "$work/xterm" --strip-components=1
tar -xzf "$work/xterm-addon-fit-${FIT_VERSION}.tgz" -C "$work/fit" --strip-components=1

# The built UMD files (they define window.Terminal and window.FitAddon), without the
# source-map comment (the maps are not shipped).
sed '/^\/\/# sourceMappingURL=/d' "$work/xterm/lib/xterm.js" >"$out/xterm.js"
sed '/^\/\/# sourceMappingURL=/d' "$work/fit/lib/addon-fit.js" >"$out/addon-fit.js"
cp "$work/xterm/css/xterm.css" "$out/xterm.css"
cp "$work/xterm/LICENSE" "$out/LICENSE.xterm"
printf 'xterm.js %s and @xterm/addon-fit %s from the npm registry (MIT, see LICENSE.xterm);\nmade by scripts/vendor-xterm.sh.\n' \
    "$XTERM_VERSION" "$FIT_VERSION" >"$out/README"
echo "vendored xterm.js ${XTERM_VERSION} and addon-fit ${FIT_VERSION} into $out"
