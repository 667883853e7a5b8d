#!/usr/bin/env bash
# Build the sdist and the wheel, check them, and check that each extra installs
# what it needs: for the bare package and each extra alone, a clean virtualenv
# gets the built wheel with that extra only, and what the extra promises is
# started from outside the checkout, with one WebSocket echo round trip.
#
#   scripts/check-dist.sh              build into a temporary directory, check
#   scripts/check-dist.sh --out dist   also keep the sdist and the wheel in dist/
#   scripts/check-dist.sh --only gevent,bare   check some of: bare cherrypy gevent gunicorn redis django pytest
#
# "django" serves a WebSocket route from django-admin runserver (ours, from the
# app in INSTALLED_APPS); "pytest" checks that the pytest11 entry point loads the
# test kit's fixtures from the installed wheel.
#
# build and twine come from .venv (the test extra; scripts/setup.sh installs
# them), else from a tools virtualenv under /tmp made once. Installs reuse pip's
# cache. The redis check needs redis-server on PATH (skipped with a message
# without it). Everything runs on 127.0.0.1; every wait is bounded; only the
# processes this script started are stopped, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PYTHON=${PYTHON:-python3}
out=""
only="bare cherrypy gevent gunicorn redis django pytest"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --only) only=${2:?--only needs a list}; only=${only//,/ }; shift 2 ;;
    *) echo "check-dist: unknown argument $1 (see the head of $0)" >&2; exit 2 ;;
  esac
done
for extra in $only; do
  case "$extra" in bare | cherrypy | gevent | gunicorn | redis | django | pytest) ;; *)
    echo "check-dist: no check for '$extra' (bare cherrypy gevent gunicorn redis django pytest)" >&2; exit 2 ;;
  esac
done

say() { echo "check-dist: $*"; }
fail() { echo "check-dist: FAILED: $*" >&2; exit 1; }

WORK=$(mktemp -d /tmp/ws4py-check-dist.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# A free TCP port on 127.0.0.1 (bind to port 0, read the port, release it).
free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# -- build and twine --------------------------------------------------------------------
TOOLS_PY=${TOOLS_PY:-.venv/bin/python}
if ! { [ -x "$TOOLS_PY" ] && "$TOOLS_PY" -c 'import build, twine' 2>/dev/null; }; then
  tools=/tmp/ws4py_integrations-dist-tools
  if ! { [ -x "$tools/bin/python" ] && "$tools/bin/python" -c 'import build, twine' 2>/dev/null; }; then
    say "making the tools virtualenv $tools (build, twine)"
    rm -rf "$tools"
    "$PYTHON" -m venv "$tools"
    timeout 300 "$tools/bin/python" -m pip install -q --disable-pip-version-check build twine 2>"$WORK/tools.log" \
      || { cat "$WORK/tools.log" >&2; fail "installing build and twine"; }
  fi
  TOOLS_PY=$tools/bin/python
fi

say "building the sdist and the wheel (the wheel from the sdist)"
timeout 300 "$TOOLS_PY" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 \
  || { tail -n 40 "$WORK/build.log" >&2; fail "python -m build"; }
shopt -s nullglob
wheels=("$WORK"/dist/*.whl)
sdists=("$WORK"/dist/*.tar.gz)
[ ${#wheels[@]} -eq 1 ] && [ ${#sdists[@]} -eq 1 ] || fail "expected one wheel and one sdist, got: $(ls "$WORK/dist")"
WHEEL=${wheels[0]}
say "built $(basename "${sdists[0]}") and $(basename "$WHEEL")"
timeout 120 "$TOOLS_PY" -m twine check --strict "$WORK"/dist/* || fail "twine check"
"$TOOLS_PY" - "$WHEEL" <<'PY' || fail "the wheel's contents"
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
for required in ("ws4py_integrations/__init__.py", "ws4py_integrations/py.typed"):
    if required not in names:
        sys.exit(f"check-dist: {required} is missing from the wheel")
strays = sorted({n.split("/")[0] for n in names} - {"ws4py_integrations"} - {n.split("/")[0] for n in names if ".dist-info/" in n})
if strays:
    sys.exit(f"check-dist: the wheel ships more than the package: {strays}")
PY
if [ -n "$out" ]; then
  mkdir -p "$out"
  cp "$WORK"/dist/* "$out"/
  say "kept in $out/: $(cd "$WORK/dist" && echo *)"
fi

# -- the checks, run by each virtualenv's Python from $WORK/run (not the checkout) ------
RUN=$WORK/run
mkdir -p "$RUN"

# A WebSocket client on a raw socket: no library, so each check depends on the extra alone.
cat >"$RUN/rawws.py" <<'PY'
import base64
import hashlib
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Client:
    def __init__(self, port: int, path: str, timeout: float = 10.0, connect_for: float = 30.0) -> None:
        deadline = time.monotonic() + connect_for
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1] != "101":
            raise AssertionError(f"no upgrade: {lines[0]}")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise AssertionError(f"bad Sec-WebSocket-Accept: {headers}")

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed (buffered: {self.buf[:200]!r})")
        self.buf += chunk

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self) -> tuple[int, bytes]:
        """The next data or close frame (pings answered); messages here are unfragmented."""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            payload = self._read(n)
            if opcode == 0x9:
                self.send(0xA, payload)
            elif opcode != 0xA:
                if not b0 & 0x80:
                    raise AssertionError("a fragmented message: not expected here")
                return opcode, payload

    def recv_text(self) -> str:
        opcode, payload = self.recv()
        if opcode != 0x1:
            raise AssertionError(f"expected a text frame, got opcode {opcode}: {payload[:100]!r}")
        return payload.decode()

    def echo(self, text: str) -> None:
        self.send(0x1, text.encode())
        got = self.recv_text()
        if got != text:
            raise AssertionError(f"echo: sent {text!r}, got {got!r}")

    def close(self) -> None:
        self.send(0x8, struct.pack("!H", 1000))
        opcode, payload = self.recv()
        if opcode != 0x8 or payload[:2] != struct.pack("!H", 1000):
            raise AssertionError(f"expected a close 1000, got opcode {opcode}: {payload!r}")
        self.sock.close()


def installed_not_checkout() -> None:
    """The package comes from the virtualenv, not from a checkout."""
    import sys

    import ws4py_integrations

    if "site-packages" not in ws4py_integrations.__file__:
        raise AssertionError(f"ws4py_integrations imported from {ws4py_integrations.__file__}")
    print(f"  ws4py_integrations from {ws4py_integrations.__file__} (Python {sys.version.split()[0]})")
PY

cat >"$RUN/echo_app.py" <<'PY'
from ws4py_integrations import Message, WebSocket, WebSocketMiddleware


class Echo(WebSocket):
    def received_message(self, message: Message) -> None:
        self.send(message.data)


class News(WebSocket):
    def opened(self) -> None:
        self.join("news")
        self.send("joined")


def plain(environ, start_response):
    body = b"not a WebSocket"
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


app = WebSocketMiddleware(plain, {"/echo": Echo, "/news": News})
PY

cat >"$RUN/check_bare.py" <<'PY'
import importlib.util
import threading

from echo_app import app
from rawws import Client, installed_not_checkout
from ws4py_integrations.wsgiref import make_server

installed_not_checkout()
server = make_server("127.0.0.1", 0, app)
threading.Thread(target=server.serve_forever, daemon=True).start()
ws = Client(server.server_address[1], "/echo")
ws.echo("hello from the bare package")
ws.close()
server.shutdown()
server.server_close()
absent = [m for m in ("cherrypy", "gevent", "gunicorn", "redis") if importlib.util.find_spec(m) is None]
print(f"  wsgiref echo: OK (not installed, as expected: {', '.join(absent)})")
PY

cat >"$RUN/check_gevent.py" <<'PY'
from gevent import monkey

monkey.patch_all()

from gevent import pywsgi  # noqa: E402

from echo_app import app  # noqa: E402
from rawws import Client, installed_not_checkout  # noqa: E402
from ws4py_integrations.gevent import WebSocketHandler  # noqa: E402

installed_not_checkout()
server = pywsgi.WSGIServer(("127.0.0.1", 0), app, handler_class=WebSocketHandler, log=None)
server.start()
ws = Client(server.server_port, "/echo")
ws.echo("hello from gevent.pywsgi")
ws.close()
server.stop(timeout=5)
print("  gevent.pywsgi + WebSocketHandler echo: OK")
PY

cat >"$RUN/check_cherrypy.py" <<'PY'
import sys

import cherrypy

from echo_app import Echo
from rawws import Client, installed_not_checkout
from ws4py_integrations.cherrypy import WebSocketPlugin, WebSocketTool

installed_not_checkout()
port = int(sys.argv[1])
WebSocketPlugin(cherrypy.engine).subscribe()
cherrypy.tools.websocket = WebSocketTool()


class Root:
    @cherrypy.expose
    def ws(self):
        pass


cherrypy.config.update(
    {"server.socket_host": "127.0.0.1", "server.socket_port": port, "log.screen": False,
     "engine.autoreload.on": False, "checker.on": False}
)
cherrypy.tree.mount(Root(), "/", {"/ws": {"tools.websocket.on": True, "tools.websocket.handler_cls": Echo}})
cherrypy.engine.start()
try:
    ws = Client(port, "/ws")
    ws.echo("hello from CherryPy")
    ws.close()
finally:
    cherrypy.engine.exit()
print("  CherryPy WebSocketPlugin + WebSocketTool echo: OK")
PY

cat >"$RUN/check_gunicorn_client.py" <<'PY'
import sys

from rawws import Client, installed_not_checkout

installed_not_checkout()
ws = Client(int(sys.argv[1]), "/echo")
ws.echo("hello from gunicorn")
ws.close()
print("  gunicorn -k ws4py_integrations.gevent.GunicornWorker echo: OK")
PY

cat >"$RUN/check_redis.py" <<'PY'
import sys
import threading
import time

from echo_app import app
from rawws import Client, installed_not_checkout
from ws4py_integrations import ThreadedManager
from ws4py_integrations.redis_broker import RedisBroker, publish
from ws4py_integrations.wsgiref import make_server

installed_not_checkout()
url = sys.argv[1]
import redis  # noqa: E402

deadline = time.monotonic() + 15
while True:  # redis-server was just started
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
        break
    except redis.ConnectionError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
server = make_server("127.0.0.1", 0, app, manager=ThreadedManager(broker=RedisBroker.from_url(url)))
threading.Thread(target=server.serve_forever, daemon=True).start()
ws = Client(server.server_address[1], "/news")
assert ws.recv_text() == "joined"
# Published from "another process" (no manager): delivered once the broker has subscribed.
deadline = time.monotonic() + 15
while publish(url, "news", "hello through Redis") < 1:
    if time.monotonic() > deadline:
        raise AssertionError("the broker never subscribed")
    time.sleep(0.1)
got = ws.recv_text()
assert got == "hello through Redis", got
ws.close()
server.shutdown()
server.server_close()
print("  RedisBroker: a publish through Redis reached a room member: OK")
PY

# A Django project in one module: settings (DJANGO_SETTINGS_MODULE=djsite) and urls.
cat >"$RUN/djsite.py" <<'PY'
from django.urls import path

from ws4py_integrations.django import websocket

SECRET_KEY = "check-dist, not a secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["ws4py_integrations.django", "django.contrib.contenttypes", "django.contrib.auth"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "djsite"
USE_TZ = True


def echo(request, ws, room):
    for message in ws:
        ws.send(f"{room}: {message}")


urlpatterns = [path("ws/echo/<slug:room>/", websocket(echo))]
PY

cat >"$RUN/check_django_setup.py" <<'PY'
import django
from django.core.management import get_commands

from rawws import installed_not_checkout

installed_not_checkout()
django.setup()
app = get_commands()["runserver"]
if app != "ws4py_integrations.django":
    raise AssertionError(f"runserver comes from {app}, not ws4py_integrations.django")
print(f"  Django {django.get_version()}: runserver is ws4py_integrations.django's")
PY

cat >"$RUN/check_django_client.py" <<'PY'
import sys

from rawws import Client

ws = Client(int(sys.argv[1]), "/ws/echo/lobby/")
ws.send(0x1, b"hello from Django")
got = ws.recv_text()
assert got == "lobby: hello from Django", got
ws.close()
print("  django-admin runserver: a websocket() route echoed: OK")
PY

mkdir -p "$RUN/kit"
cat >"$RUN/kit/test_kit.py" <<'PY'
def test_nothing():
    pass
PY

# -- one clean virtualenv per extra ---------------------------------------------------------
make_venv() {  # make_venv NAME SPEC [MORE...]: a clean virtualenv with the wheel installed as SPEC (and MORE)
  local venv=$WORK/venv-$1
  "$PYTHON" -m venv "$venv"
  if ! timeout 600 "$venv/bin/python" -m pip install --disable-pip-version-check "${@:2}" >"$WORK/install-$1.log" 2>&1; then
    tail -n 30 "$WORK/install-$1.log" >&2
    fail "pip install ${*:2}"
  fi
  "$venv/bin/python" -m pip check >/dev/null || fail "pip check in the $1 virtualenv"
  local versions
  versions=$("$venv/bin/python" -m pip list --format=freeze --disable-pip-version-check 2>/dev/null \
    | grep -iE '^(websockets|cherrypy|cheroot|gevent|gunicorn|packaging|redis|django|pytest)==' | tr '\n' ' ')
  say "[$1] installed: ${versions% }"
}

check_bare() {
  make_venv bare "$WHEEL"
  (cd "$RUN" && timeout 60 "$WORK/venv-bare/bin/python" check_bare.py) || fail "[bare] wsgiref echo"
}

check_gevent() {
  make_venv gevent "$WHEEL[gevent]"
  (cd "$RUN" && timeout 60 "$WORK/venv-gevent/bin/python" check_gevent.py) || fail "[gevent] pywsgi echo"
}

check_cherrypy() {
  make_venv cherrypy "$WHEEL[cherrypy]"
  (cd "$RUN" && timeout 60 "$WORK/venv-cherrypy/bin/python" check_cherrypy.py "$(free_port)") \
    || fail "[cherrypy] plugin + tool echo"
}

check_gunicorn() {
  make_venv gunicorn "$WHEEL[gunicorn]"
  local venv=$WORK/venv-gunicorn port pid log=$WORK/gunicorn.log
  port=$(free_port)
  local flags=()
  if "$venv/bin/gunicorn" --help 2>/dev/null | grep -q -- --no-control-socket; then
    flags+=(--no-control-socket)
  fi
  (cd "$RUN" && exec "$venv/bin/gunicorn" -k ws4py_integrations.gevent.GunicornWorker -w 1 \
    -b "127.0.0.1:$port" "${flags[@]}" --graceful-timeout 5 echo_app:app) >"$log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  local up=0
  for _ in $(seq 300); do  # 30 s for the master to boot its worker
    kill -0 "$pid" 2>/dev/null || break
    if grep -q "Booting worker" "$log"; then up=1; break; fi
    sleep 0.1
  done
  if [ "$up" != 1 ]; then
    cat "$log" >&2
    fail "[gunicorn] the worker did not boot"
  fi
  if ! (cd "$RUN" && timeout 60 "$venv/bin/python" check_gunicorn_client.py "$port"); then
    cat "$log" >&2
    fail "[gunicorn] worker echo"
  fi
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    cat "$log" >&2
    fail "[gunicorn] did not stop within 10 s of SIGTERM"
  fi
  wait "$pid" || fail "[gunicorn] exited with status $?"
  if grep -qE "Traceback|Error" "$log"; then
    cat "$log" >&2
    fail "[gunicorn] errors in its log"
  fi
}

check_redis() {
  make_venv redis "$WHEEL[redis]"
  local venv=$WORK/venv-redis
  if ! command -v redis-server >/dev/null 2>&1; then
    (cd "$RUN" && "$venv/bin/python" -c 'import redis; from ws4py_integrations.redis_broker import RedisBroker')
    say "[redis] redis-server is not on PATH: imported RedisBroker only, no live check (scripts/setup.sh --test installs it)"
    return
  fi
  local port pid
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    >"$WORK/redis.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  if ! (cd "$RUN" && timeout 60 "$venv/bin/python" check_redis.py "redis://127.0.0.1:$port/0"); then
    cat "$WORK/redis.log" >&2
    fail "[redis] RedisBroker"
  fi
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

check_django() {
  make_venv django "$WHEEL[django]"
  local venv=$WORK/venv-django port pid log=$WORK/django.log
  (cd "$RUN" && DJANGO_SETTINGS_MODULE=djsite timeout 60 "$venv/bin/python" check_django_setup.py) \
    || fail "[django] django.setup() and the runserver command"
  port=$(free_port)
  (cd "$RUN" && DJANGO_SETTINGS_MODULE=djsite PYTHONPATH=$RUN PYTHONUNBUFFERED=1 \
    exec "$venv/bin/django-admin" runserver --noreload "127.0.0.1:$port") >"$log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  if ! (cd "$RUN" && timeout 60 "$venv/bin/python" check_django_client.py "$port"); then
    cat "$log" >&2
    fail "[django] runserver echo"
  fi
  # SIGTERM: a background job of a script ignores SIGINT (Ctrl-C), and so would runserver.
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    cat "$log" >&2
    fail "[django] runserver did not stop within 10 s of SIGTERM"
  fi
  if grep -qE "Traceback|Error" "$log"; then
    cat "$log" >&2
    fail "[django] errors in runserver's log"
  fi
}

check_pytest() {
  make_venv pytest "$WHEEL" pytest
  local fixtures
  fixtures=$(cd "$RUN/kit" && timeout 120 "$WORK/venv-pytest/bin/python" -m pytest -p no:cacheprovider --fixtures test_kit.py 2>&1) \
    || { echo "$fixtures" >&2; fail "[pytest] pytest --fixtures"; }
  for fixture in ws_server ws_client ws_leak_check; do
    grep -q "^$fixture\b" <<<"$fixtures" || { echo "$fixtures" >&2; fail "[pytest] no $fixture fixture from the pytest11 entry point"; }
  done
  (cd "$RUN/kit" && timeout 120 "$WORK/venv-pytest/bin/python" -m pytest -p no:cacheprovider -q test_kit.py >/dev/null) \
    || fail "[pytest] a test run with the plugin loaded"
  say "[pytest] the pytest11 entry point loads ws4py_integrations.pytest_plugin: ws_server, ws_client, ws_leak_check listed"
}

for extra in $only; do
  say "[$extra] checking"
  "check_$extra"
done
say "OK: $(basename "$WHEEL") and its sdist; checked: $only"
