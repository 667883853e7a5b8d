#!/usr/bin/env bash
# Run the socket.io-protocol test suite (Node/mocha) against examples.socketio_echo.
#
#   tools/conformance/socketio.sh PATH_TO_SOCKET_IO_PROTOCOL_CHECKOUT [SERVER...]
#
# SERVER: wsgiref, cherrypy, gevent (default: all three). The suite is copied
# to a temporary directory (its dependencies installed there with npm, nothing
# written to the checkout or to this repository), pointed at a free port
# instead of its fixed 3000, and run once per server with the settings its
# README gives the reference server (pingInterval 300 ms, pingTimeout 200 ms,
# connectTimeout 1000 ms). NO_KEEPALIVE=1 turns Node's keep-alive agent off
# (see tools/conformance/engineio.sh: gevent's pywsgi closes connections the
# client asked to close, which Node 20's agent would reuse).
# Exit status: the number of servers with failures.
set -euo pipefail
checkout=${1:?usage: $0 PATH_TO_SOCKET_IO_PROTOCOL_CHECKOUT [SERVER...]}
shift
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(wsgiref cherrypy gevent)
root=$(cd "$(dirname "$0")/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cp -r "$checkout/test-suite" "$work/suite"
(cd "$work/suite" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
if [ "${NO_KEEPALIVE:-}" = 1 ]; then
  echo 'const http = require("http"); http.globalAgent = new http.Agent({ keepAlive: false });' >"$work/no-keepalive.cjs"
  export NODE_OPTIONS="--require $work/no-keepalive.cjs"
fi
failed=0
for server in "${servers[@]}"; do
  port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  sed "s#http://localhost:3000#http://localhost:$port#" "$checkout/test-suite/test-suite.js" >"$work/suite/test-suite.js"
  (cd "$root" && exec "$py" -m examples.socketio_echo --server "$server" --host 127.0.0.1 --port "$port" \
    --ping-interval 0.3 --ping-timeout 0.2 --connect-timeout 1) >"$work/$server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    grep -q "socketio_echo example on" "$work/$server.log" && break
    sleep 0.1
  done
  echo "== $server (port $port)"
  if (cd "$work/suite" && npx mocha --reporter dot test-suite.js); then :; else failed=$((failed + 1)); fi
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
done
exit "$failed"
