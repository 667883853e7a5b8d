"""pytest fixtures: serve a WSGI application on a real server, connect clients, catch leaks.

Registered through the ``pytest11`` entry point ``ws4py_integrations``, so the
fixtures are there once the package is installed:

``ws_server``
    ``ws_server(app, server="wsgiref")`` serves ``app`` in this process on
    ``server`` (``"wsgiref"``, ``"cherrypy"`` or ``"gevent"``) on 127.0.0.1,
    port 0, and returns a :class:`ServedApp` (``url``, ``http_url``,
    ``manager``). Stopped at teardown.
``ws_client``
    ``ws_client(url_or_served, path="/", **options)`` returns a connected
    :class:`~ws4py_integrations.client.WebSocketClient` (options as for the
    client); closed at teardown.
``ws_leak_check``
    Used by both: at teardown it waits (``ws4py_leak_wait`` seconds in the
    pytest configuration, 5 by default) for threads, file
    descriptors and connections to go back to what they were before the
    test, and fails the test if they do not.

Example::

    def test_echo(ws_server, ws_client):
        served = ws_server(make_app(), server="cherrypy")
        ws = ws_client(served, "/ws")
        ws.send("hi")
        assert ws.receive(timeout=5).data == "hi"
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from .client import WebSocketClient
from .manager import Manager, ThreadedManager

__all__ = ["LeakCheck", "ServedApp", "serve_app"]

SERVERS = ("wsgiref", "cherrypy", "gevent")
#: How long teardown waits for threads and descriptors to go.
LEAK_WAIT = 5.0


@dataclass
class ServedApp:
    """An application served by :func:`serve_app`."""

    #: ``"wsgiref"``, ``"cherrypy"`` or ``"gevent"``.
    server: str
    host: str
    port: int
    #: The manager running the server's WebSockets.
    manager: Manager
    stop: Callable[[], None] = field(repr=False)

    @property
    def url(self) -> str:
        """``ws://host:port`` (append the route's path)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _serve_wsgiref(app: Any) -> ServedApp:
    from .wsgiref import make_server

    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="ws4py-test-wsgiref")
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(LEAK_WAIT)

    host, port = server.server_address[:2]
    return ServedApp("wsgiref", str(host), int(port), server.manager, stop)


def _serve_cherrypy(app: Any) -> ServedApp:
    from .cherrypy.server import WSGIServer

    server = WSGIServer(("127.0.0.1", 0), app, numthreads=4)
    server.shutdown_timeout = 1
    server.prepare()
    thread = threading.Thread(target=server.serve, name="ws4py-test-cheroot")
    thread.start()

    def stop() -> None:
        server.stop()
        thread.join(LEAK_WAIT)

    host, port = server.bind_addr
    return ServedApp("cherrypy", str(host), int(port), server.manager, stop)


def _serve_gevent(app: Any) -> ServedApp:
    # A thread with a gevent hub of its own: works without monkey patching.
    import queue

    started: queue.Queue[Any] = queue.Queue()

    def run() -> None:
        import gevent

        from .gevent import WSGIServer

        try:
            server = WSGIServer(("127.0.0.1", 0), app, log=None)
            server.start()
        except BaseException as exc:
            started.put(exc)
            raise
        started.put((server, gevent.get_hub()))
        server.serve_forever()
        gevent.get_hub().destroy(destroy_loop=True)

    thread = threading.Thread(target=run, name="ws4py-test-gevent")
    thread.start()
    result = started.get(timeout=LEAK_WAIT)
    if isinstance(result, BaseException):
        thread.join(LEAK_WAIT)
        raise result
    server, hub = result

    def stop() -> None:
        hub.loop.run_callback_threadsafe(server.stop)
        thread.join(LEAK_WAIT + 10)

    host, port = server.address[:2]
    return ServedApp("gevent", str(host), int(port), server.manager, stop)


_SERVE = {"wsgiref": _serve_wsgiref, "cherrypy": _serve_cherrypy, "gevent": _serve_gevent}


@contextlib.contextmanager
def serve_app(app: Any, server: str = "wsgiref") -> Iterator[ServedApp]:
    """Serve ``app`` on ``server`` at 127.0.0.1, port 0, in this process, until the block ends."""
    if server not in _SERVE:
        raise ValueError(f"server must be one of {', '.join(SERVERS)}, not {server!r}")
    served = _SERVE[server](app)
    try:
        yield served
    finally:
        served.stop()


def _fd_count() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # pragma: no cover - not Linux: descriptors are not checked
        return None


class LeakCheck:
    """Threads and file descriptors before a test, compared after it (with a bounded wait)."""

    def __init__(self) -> None:
        self.threads = set(threading.enumerate())
        self.fds = _fd_count()
        self.managers: list[Manager] = []

    def problems(self) -> list[str]:
        found: list[str] = []
        for manager in self.managers:
            if len(manager):
                found.append(f"{len(manager)} WebSocket connection(s) still open on {manager!r}")
        extra = [t for t in threading.enumerate() if t not in self.threads and t.is_alive()]
        if extra:
            found.append(f"threads left running: {', '.join(sorted(t.name for t in extra))}")
        fds = _fd_count()
        if self.fds is not None and fds is not None and fds > self.fds:
            found.append(f"{fds - self.fds} file descriptor(s) left open")
        return found

    def verify(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (LEAK_WAIT if timeout is None else timeout)
        while True:
            found = self.problems()
            if not found or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if found:
            pytest.fail("leak after the test: " + "; ".join(found), pytrace=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("ws4py_leak_wait", f"seconds teardown waits for leaks to clear (default {LEAK_WAIT})", default=None)


@pytest.fixture
def ws_leak_check(request: pytest.FixtureRequest) -> Iterator[LeakCheck]:
    """Fails the test if connections, threads or descriptors outlive it."""
    check = LeakCheck()
    yield check
    wait = request.config.getini("ws4py_leak_wait")
    check.verify(float(wait) if wait else None)


@pytest.fixture
def ws_server(ws_leak_check: LeakCheck) -> Iterator[Callable[..., ServedApp]]:
    """``ws_server(app, server="wsgiref")``: serve ``app``; stopped at teardown."""
    stack = contextlib.ExitStack()

    def start(app: Any, server: str = "wsgiref") -> ServedApp:
        served = stack.enter_context(serve_app(app, server))
        ws_leak_check.managers.append(served.manager)
        return served

    with stack:
        yield start


@pytest.fixture
def ws_client(ws_leak_check: LeakCheck) -> Iterator[Callable[..., WebSocketClient]]:
    """``ws_client(url_or_served, path="/", **options)``: a connected client; closed at teardown."""
    manager = ThreadedManager(name="ws4py-test-client")
    ws_leak_check.managers.append(manager)
    clients: list[WebSocketClient] = []

    def connect(target: str | ServedApp, path: str = "/", **options: Any) -> WebSocketClient:
        base = target.url if isinstance(target, ServedApp) else target
        cls: type[WebSocketClient] = options.pop("client_cls", WebSocketClient)
        client = cls(base.rstrip("/") + path if isinstance(target, ServedApp) else base, manager=manager, **options)
        client.connect()
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()
    for client in clients:
        client.run_forever(client.options.close_timeout + 1.0)
    manager.stop(LEAK_WAIT)
