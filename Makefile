# The two Quick start commands:  make chat  /  make test
.PHONY: setup chat echo test test-min-versions dist test-fast lint typecheck docs autobahn autobahn-quick autobahn-client bench bench-quick bench-gthread bench-socketio bench-guard profile load soak fuzz probes clean

PY := .venv/bin/python
SERVER ?= wsgiref
HOST ?= 127.0.0.1
PORT ?= 8080

setup:
	@bash scripts/setup.sh

chat: setup
	$(PY) -m examples.chat --server $(SERVER) --host $(HOST) --port $(PORT)

echo: setup
	$(PY) -m examples.echo --server $(SERVER) --host $(HOST) --port $(PORT)

# Coverage (>= 95% line and branch, pyproject.toml) is measured on the tests that
# exercise the package's code paths; the load, soak, memory, browser, benchmark
# and conformance tests run after them without it (tracing would triple their time).
COVERED_TESTS := tests/unit tests/test_behaviour.py tests/test_handshake_wsgi.py tests/test_handshake_hardening.py \
	tests/test_hostile_handshake.py tests/test_hostile_frames.py tests/test_wsgiref.py tests/test_cherrypy.py \
	tests/test_gevent.py tests/test_rooms.py tests/test_redis.py tests/test_user_failures.py tests/test_shutdown.py \
	tests/test_slow_clients.py tests/test_silent_sockets.py tests/test_extras.py tests/test_chat_protocol.py \
	tests/test_logging.py tests/test_adapter_edges.py
# One line per feature branch keeps merges simple.
COVERED_TESTS += tests/test_trusted_proxies.py tests/test_nginx.py
COVERED_TESTS += tests/test_werkzeug.py tests/test_gunicorn_threads.py
COVERED_TESTS += tests/test_head_parse.py tests/test_reference_cycles.py
COVERED_TESTS += tests/test_engineio.py tests/test_engineio_api.py tests/test_engineio_load.py tests/test_engineio_node.py
COVERED_TESTS += tests/test_engineio_keepalive.py
COVERED_TESTS += tests/test_blocking.py tests/test_behaviour_blocking.py
COVERED_TESTS += tests/test_django.py tests/test_django_views.py
COVERED_TESTS += tests/test_flask.py tests/test_bottle.py tests/test_pyramid.py tests/test_flask_run.py
COVERED_TESTS += tests/test_socketio_packets.py tests/test_socketio_server.py tests/test_socketio_redis.py tests/test_socketio_api.py \
	tests/test_socketio_clients.py
COVERED_TESTS += tests/test_client.py tests/test_client_edges.py tests/test_testing.py tests/test_testing_plugin.py

# The whole test suite, as CI runs it: lint, types, tests, the guard, the floors, the dist, docs
# (scripts/test.sh; it installs the floors and checks the dist in the background meanwhile).
test:
	@COVERED_TESTS="$(COVERED_TESTS)" bash scripts/test.sh

# The behaviour suite at the oldest versions pyproject.toml allows (.venv-min).
test-min-versions:
	@bash scripts/min-versions.sh

# sdist and wheel into dist/, checked with twine; each extra installed from the wheel
# alone into a clean virtualenv and started (scripts/check-dist.sh).
dist: setup
	@bash scripts/check-dist.sh --out dist

test-fast: setup
	$(PY) -m pytest -x -q -p no:cacheprovider

lint: setup
	$(PY) -m ruff check ws4py_integrations examples tests tools
	$(PY) -m ruff format --check ws4py_integrations examples tests tools

typecheck: setup
	$(PY) -m mypy

# Conformance: the full Autobahn testsuite (cases 1-13) on every server (~40 min),
# and the reduced run CI does (also part of `make test`).
autobahn: setup
	$(PY) -m tools.conformance.run --docs

autobahn-quick: setup
	$(PY) -m tools.conformance.run --quick

# The client's conformance: the testsuite's fuzzingserver against WebSocketClient
# (every case 1-13, a few minutes); writes its section of docs/conformance.rst.
autobahn-client: setup
	$(PY) -m tools.conformance.client --docs

# Benchmarks (tools/bench/README.md): writes docs/benchmarks.rst and its charts (docs/_static/bench/);
# every server pinned to CPU 0, the load client to CPU 1; ~15 min per server on 2 cores.
bench: setup
	$(PY) -m tools.bench --servers wsgiref cherrypy gevent gunicorn-gevent

# The regression guard `make test` runs: ours / websockets on echo-16 must stay >= 0.5x.
# Our gunicorn ThreadWorker and werkzeug handover vs Flask-Sock, side by side (tools/bench/gthread.py).
bench-gthread: setup
	$(PY) -m tools.bench.gthread

# Our Socket.IO server vs python-socketio (gevent + gevent-websocket, threading on gunicorn gthread), side by
# side (tools/bench/socketio.py); writes the Socket.IO section of docs/benchmarks.rst. ~10 min; FULL=1: 5,000 idle.
bench-socketio: setup
	$(PY) -m tools.bench.socketio --docs $(if $(FULL),--full)

bench-guard: setup
	$(PY) -m tools.bench guard

bench-quick: setup
	$(PY) -m tools.bench --quick --servers $(SERVER) --competitors raw

profile: setup
	$(PY) -m tools.bench profile --server $(SERVER) --scenarios echo-16 bulk-1m

# Hardening at full size (the test suite runs reduced versions).
load: setup
	$(PY) -m tools.hardening.load --connections 10000

soak: setup
	$(PY) -m tools.hardening.soak --cycles 10000

fuzz: setup
	WS4PY_THOROUGH=1 $(PY) -m pytest -p no:cacheprovider -q tests/unit/test_fast_path.py tests/test_hostile_handshake.py tests/test_fuzz.py
	$(PY) -m tools.hardening.fuzz --seconds 600

# The security review's hostile-client probes at full size, every server (~15 min).
probes: setup
	$(PY) -m tools.hardening.probes --server all --probe all

docs: setup
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

clean:
	rm -rf .venv docs/_build .pytest_cache .mypy_cache .ruff_cache tools/conformance/reports
