#!/usr/bin/env bash
# The behaviour suite at the oldest versions pyproject.toml allows.
#
#   scripts/min-versions.sh            install (if needed) and run
#   scripts/min-versions.sh -k wss     extra arguments go to pytest
#   scripts/min-versions.sh --install-only   install (if needed), run nothing
#                                      (make test does this in the background first)
#
# Every runtime dependency (the base one and those of each extra, not the
# test/docs tools) is pinned to its floor: "websockets>=14,<18" installs
# websockets==14.0; so are the frameworks the integrations support, which the
# test extra lists (TEST_FLOORS below: Django, werkzeug, Flask, Bottle, Pyramid...).
# The pins are read from pyproject.toml, never written here.
# The virtualenv (.venv-min, or $MIN_VENV) is reused while its stamp is newer
# than pyproject.toml and this script.
#
# Needs redis-server on PATH for tests/test_redis.py (scripts/setup.sh --test).
set -euo pipefail
cd "$(dirname "$0")/.."

install_only=0
if [ "${1:-}" = --install-only ]; then install_only=1; shift; fi
PYTHON=${PYTHON:-python3}
VENV=${MIN_VENV:-.venv-min}
# Bounds: installing (fresh pip cache: a few minutes) and the suite (~3 min on 2 cores).
INSTALL_TIMEOUT=${MIN_INSTALL_TIMEOUT:-900}
TEST_TIMEOUT=${MIN_TEST_TIMEOUT:-600}

# The suite that exercises every dependency: websockets (all of them), CherryPy and
# cheroot (test_cherrypy, the cherrypy server of the parametrized suites), gevent
# (test_gevent, the gevent server), gunicorn (test_gevent's gunicorn worker tests,
# test_gunicorn_threads' ThreadWorker), redis (test_redis), Django (test_django*:
# runserver, the routes, the example on gunicorn's ThreadWorker), werkzeug
# (test_werkzeug, test_flask_run), Flask and Flask-Login, Bottle, Pyramid (their
# integrations' tests), and the Engine.IO / Socket.IO peers (python-engineio's and
# python-socketio's clients). tests/test_dependency_floors.py checks, with what the
# floors have, what the tests deselected below check with newer test-side APIs.
SUITE=(
  tests/test_behaviour.py
  tests/test_handshake_wsgi.py
  tests/test_wsgiref.py
  tests/test_cherrypy.py
  tests/test_gevent.py
  tests/test_rooms.py
  tests/test_redis.py
  tests/test_dependency_floors.py
  tests/test_django.py
  tests/test_django_views.py
  tests/test_gunicorn_threads.py
  tests/test_werkzeug.py
  tests/test_flask.py
  tests/test_flask_run.py
  tests/test_bottle.py
  tests/test_pyramid.py
  tests/test_client.py
  # The Engine.IO / Socket.IO tests whose peer is python-engineio's or python-socketio's client
  # (not test_unknown_namespace_refused: python-socketio 5.11's client raises only after
  # its 10 s wait_timeout there, 30 s for what the main run checks).
  tests/test_engineio.py::test_python_engineio_client
  tests/test_socketio_clients.py::test_simple_client_events_acks_and_binary
  tests/test_socketio_clients.py::test_client_namespaces
  tests/test_socketio_clients.py::test_malformed_packet_closes_only_that_session
  tests/test_socketio_clients.py::test_gunicorn_gevent_worker
)
# The test tools (at their current versions: only the runtime dependencies are pinned).
TEST_TOOLS="pytest pytest-timeout websocket-client WebTest trustme psutil hypothesis"
# The frameworks and servers our integrations support, listed in the test extra
# (they are the user's own dependencies, not ours): pinned to their floors there too.
TEST_FLOORS="werkzeug Flask Flask-Login bottle pyramid python-engineio python-socketio Django gunicorn"

"$PYTHON" - <<'PY' || { echo "min-versions: Python >= 3.11 is required (set PYTHON=...)" >&2; exit 2; }
import sys
sys.exit(sys.version_info < (3, 11))
PY

if [ ! -x "$VENV/bin/python" ]; then
  echo "min-versions: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp=$VENV/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/min-versions.sh -nt "$stamp" ]; then
  rm -f "$stamp"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip packaging 2>/dev/null \
    || "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip packaging
  # One requirement a line: the package with its runtime extras, every floor as ==,
  # then the test tools with the specifiers of the test extra.
  "$VENV/bin/python" - "$TEST_TOOLS" "$TEST_FLOORS" >"$VENV/min-requirements.txt" <<'PY'
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
extras = project.get("optional-dependencies", {})
runtime_extras = sorted(name for name in extras if name not in ("test", "docs"))

floors: dict[str, tuple[str, set[str], str]] = {}  # name -> (floor, extras, spelled)
test_floors = {canonicalize_name(n) for n in sys.argv[2].split()}
pinned_tests = [r for r in extras.get("test", []) if canonicalize_name(Requirement(r).name) in test_floors]
if missing := test_floors - {canonicalize_name(Requirement(r).name) for r in pinned_tests}:
    sys.exit(f"min-versions: {sorted(missing)} not in the test extra of pyproject.toml (TEST_FLOORS)")
for line in [*project.get("dependencies", []), *(r for name in runtime_extras for r in extras[name]), *pinned_tests]:
    req = Requirement(line)
    lower = [s.version for s in req.specifier if s.operator in (">=", "==", "~=")]
    if not lower:
        sys.exit(f"min-versions: {line!r} in pyproject.toml has no floor (>=, ~= or ==)")
    floor = max(lower, key=Version)
    key = canonicalize_name(req.name)
    if key in floors:
        old_floor, old_extras, _ = floors[key]
        if old_floor != floor:
            sys.exit(f"min-versions: {req.name} has two floors in pyproject.toml ({old_floor}, {floor}): make them one")
        old_extras |= req.extras
    else:
        floors[key] = (floor, set(req.extras), req.name)

print(f"-e .[{','.join(runtime_extras)}]")
for floor, req_extras, name in floors.values():
    suffix = f"[{','.join(sorted(req_extras))}]" if req_extras else ""
    print(f"{name}{suffix}=={floor}")

wanted = {canonicalize_name(n) for n in sys.argv[1].split()}
for line in extras.get("test", []):
    req = Requirement(line)
    if canonicalize_name(req.name) in wanted:
        print(line)
        wanted.discard(canonicalize_name(req.name))
for name in sorted(wanted):
    print(name)
PY
  echo "min-versions: installing into $VENV:"
  sed 's/^/  /' "$VENV/min-requirements.txt"
  if ! timeout "$INSTALL_TIMEOUT" "$VENV/bin/python" -m pip install --disable-pip-version-check \
      -r "$VENV/min-requirements.txt" >"$VENV/install.log" 2>&1; then
    tail -n 40 "$VENV/install.log" >&2
    echo "min-versions: installing failed (or took over ${INSTALL_TIMEOUT}s): $VENV/install.log" >&2
    exit 1
  fi
  "$VENV/bin/python" -m pip check
  touch "$stamp"
fi
if [ "$install_only" = 1 ]; then
  echo "min-versions: $VENV is ready"
  exit 0
fi

echo "min-versions: installed versions:"
"$VENV/bin/python" - <<'PY'
import platform
from importlib.metadata import version

print(f"  Python {platform.python_version()}")
for name in ("websockets", "CherryPy", "cheroot", "gevent", "gunicorn", "redis", "Django", "Werkzeug", "Flask",
             "Flask-Login", "bottle", "pyramid", "python-engineio", "python-socketio", "pytest"):
    print(f"  {name} {version(name)}")
PY
if ! command -v redis-server >/dev/null 2>&1; then
  echo "min-versions: redis-server is not on PATH: tests/test_redis.py will skip (scripts/setup.sh --test installs it)" >&2
fi

# Tests that need a test-side feature newer than a floor (the library works there):
# deselected, each with its reason; tests/test_dependency_floors.py covers them.
mapfile -t deselect < <("$VENV/bin/python" - <<'PY'
import sys
from importlib.metadata import version

from packaging.version import Version

def say(why: str) -> None:
    print(f"min-versions: deselected: {why}", file=sys.stderr)

if Version(version("websockets")) < Version("15"):
    say("tests using connect(ping_interval=...) / ClientConnection.close_code (websockets client >= 15)")
    for node in (
        "tests/test_behaviour.py::test_peer_that_answers_pings_stays_open_and_latency_is_measured",
        "tests/test_gevent.py::test_peer_that_answers_pings_stays_open_and_latency_is_measured",
        "tests/test_cherrypy.py::test_detached_socket_does_not_keep_cheroots_timeout",
        "tests/test_redis.py::test_gunicorn_workers_share_rooms",
    ):
        print(f"--deselect={node}")
if Version(version("gunicorn")) < Version("25.1"):
    say("test_gevent's gunicorn tests (they pass --no-control-socket, gunicorn >= 25.1)")
    print("--deselect=tests/test_gevent.py::test_gunicorn_")
PY
)

echo "min-versions: running ${SUITE[*]}"
# tests.support.floors_plugin: websockets 15's close_code / close_reason shortcuts on the
# test-side client, where websockets 14 has them on its protocol object only.
timeout "$TEST_TIMEOUT" "$VENV/bin/python" -m pytest -p no:cacheprovider -p tests.support.floors_plugin -q \
  "${deselect[@]}" "${SUITE[@]}" "$@"
