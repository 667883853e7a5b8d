#!/usr/bin/env bash
# Run a protocol's own test suite (Node/mocha) against our server:
#
#   tools/conformance/protocol_suite.sh engineio PATH_TO_ENGINE_IO_PROTOCOL_CHECKOUT [SERVER...]
#   tools/conformance/protocol_suite.sh socketio PATH_TO_SOCKET_IO_PROTOCOL_CHECKOUT [SERVER...]
#
# (engineio.sh and socketio.sh beside this script are shorthands.)
# engineio runs tools.conformance.engineio_echo, socketio runs examples.socketio_echo
# with the settings the suite's README gives the reference server (pingInterval
# 300 ms, pingTimeout 200 ms, connectTimeout 1000 ms).
# SERVER: wsgiref, cherrypy, gevent, gunicorn-gevent (gunicorn, one
# ws4py_integrations.gevent.GunicornWorker; default: all four). The suite is
# copied to a temporary directory (its dependencies installed there with npm,
# nothing written to the checkout or to this repository), pointed at a free
# port instead of its fixed 3000, and run once per server.
# NO_KEEPALIVE=1 turns Node's keep-alive agent off (a diagnostic switch: the
# suite passes either way).
# Exit status: the number of servers with failures.
set -euo pipefail
usage="usage: $0 engineio|socketio PATH_TO_PROTOCOL_CHECKOUT [SERVER...]"
kind=${1:?$usage}
checkout=${2:?$usage}
shift 2
case "$kind" in
  engineio)
    server_cmd=(-m tools.conformance.engineio_echo)
    gunicorn_app="tools.conformance.engineio_echo:make_app()"
    ready="engineio echo on"
    ;;
  socketio)
    server_cmd=(-m examples.socketio_echo --ping-interval 0.3 --ping-timeout 0.2 --connect-timeout 1)
    gunicorn_app="examples.socketio_echo:make_app(ping_interval=0.3, ping_timeout=0.2, connect_timeout=1)"
    ready="socketio_echo example on"
    ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(wsgiref cherrypy gevent gunicorn-gevent)
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
gunicorn_opts=()
# gunicorn 25.1+ has one control socket path per user: parallel runs would clash.
if "$py" -m gunicorn --help 2>/dev/null | grep -q -- --no-control-socket; then gunicorn_opts=(--no-control-socket); fi
failed=0
for server in "${servers[@]}"; do
  port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  sed "s#http://localhost:3000#http://localhost:$port#" "$checkout/test-suite/test-suite.js" >"$work/suite/test-suite.js"
  if [ "$server" = gunicorn-gevent ]; then
    # The arbiter listens before the worker boots; requests wait for it.
    (cd "$root" && exec "$py" -m gunicorn -k ws4py_integrations.gevent.GunicornWorker --workers 1 \
      "${gunicorn_opts[@]}" --bind "127.0.0.1:$port" "$gunicorn_app") >"$work/$server.log" 2>&1 &
    server_ready="Booting worker"
  else
    (cd "$root" && exec "$py" "${server_cmd[@]}" --server "$server" --host 127.0.0.1 --port "$port") \
      >"$work/$server.log" 2>&1 &
    server_ready=$ready
  fi
  server_pid=$!
  for _ in $(seq 100); do
    grep -qs "$server_ready" "$work/$server.log" && break
    sleep 0.1
  done
  echo "== $server (port $port)"
  if (cd "$work/suite" && npx mocha --reporter dot test-suite.js); then :; else failed=$((failed + 1)); fi
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
done
exit "$failed"
