#!/usr/bin/env bash
# Install the Node packages the project uses (idempotent): the official
# socket.io-client for the chat_socketio example, its browser test and the
# Node client tests, into examples/chat_socketio/node_modules (not committed).
# Needs node and npm (scripts/setup.sh --test installs them from Debian).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=examples/chat_socketio
if ! command -v npm >/dev/null 2>&1; then
  echo "setup-node: npm is not installed (apt-get install nodejs npm)" >&2
  exit 2
fi
stamp=$dir/node_modules/.installed
if [ ! -f "$stamp" ] || [ $dir/package.json -nt "$stamp" ]; then
  echo "setup-node: installing socket.io-client into $dir/node_modules"
  npm install --prefix "$dir" --no-audit --no-fund --no-package-lock --silent
  touch "$stamp"
fi
