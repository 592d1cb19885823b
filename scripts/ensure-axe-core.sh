#!/bin/sh
# The accessibility tests inject axe-core into headless Chromium; install it from the npm
# registry into the folder given (default .test-tools/axe) when it is not there yet.
set -e
DEST="${1:-.test-tools/axe}"
if [ -f "$DEST/node_modules/axe-core/axe.min.js" ]; then exit 0; fi
if ! command -v npm >/dev/null 2>&1; then
    echo "npm is missing: install Node.js (Debian: npm) for the accessibility tests" >&2
    exit 1
fi
mkdir -p "$DEST"
npm install --silent --no-audit --no-fund --prefix "$DEST" axe-core@4 >/dev/null
