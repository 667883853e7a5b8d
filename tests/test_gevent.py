"""gevent-specific behaviour: the greenlet backend, stock pywsgi, stop, the example, gunicorn.

The shared behaviour suite (tests/test_behaviour.py) runs on gevent with the
default ``handlers="auto"``, which is ``"threads"`` in this unpatched test
process. Here it runs again with ``handlers="greenlets"`` (the mode of a
patched process), plus what only gevent has.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import pytest
from gevent import pywsgi
from gevent.pool import Pool
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from tests import test_behaviour as behaviour
from tests.support import app as apps
from tests.support.client import RawClient
from tests.support.process import echo_example, gunicorn_worker
from tests.support.servers import RunningServer, TLSFiles
from tests.support.servers.gevent import serve
from ws4py_integrations import Message, WebSocket, WebSocketMiddleware
from ws4py_integrations.gevent import GeventManager, WebSocketHandler, WSGIServer

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def client(server: RunningServer, path: str, **kwargs: Any) -> Iterator[ClientConnection]:
    kwargs.setdefault("open_timeout", 10)
    kwargs.setdefault("close_timeout", 10)
    with connect(server.ws_url(path), ssl=server.extra.get("client_ssl"), **kwargs) as ws:
        yield ws


# -- the behaviour suite again, handlers on greenlets ------------------------------------


@pytest.fixture(scope="module", params=["ws", "wss"], ids=["gevent-greenlets-ws", "gevent-greenlets-wss"])
def server(request: pytest.FixtureRequest, tls_files: TLSFiles) -> Iterator[RunningServer]:
    """Overrides conftest's ``server`` in this module: gevent with handlers on greenlets."""
    tls = tls_files if request.param == "wss" else None
    with serve(apps.make_app(), tls, handlers="greenlets") as running:
        running.extra["client_ssl"] = tls_files.client_context if tls else None
        yield running


# Every behaviour test but one: apps.Commands sleeps with time.sleep, which in
# this unpatched process blocks the hub's thread, hence every connection of
# that hub (documented; test_greenlet_handlers_that_yield_do_not_delay_others
# is the same check with a cooperative sleep).
_SKIP = {"test_sleeping_handler_does_not_delay_other_connections"}
for _name in dir(behaviour):
    if _name.startswith("test_") and _name not in _SKIP:
        globals()[_name] = getattr(behaviour, _name)


# -- a hub thread for stock pywsgi servers ---------------------------------------------------


class HubThread:
    """A gevent hub on its own OS thread; :meth:`call` runs a function in a greenlet there."""

    def __init__(self) -> None:
        started = threading.Event()
        self._stop: gevent.event.Event | None = None

        def run() -> None:
            self.loop = gevent.get_hub().loop
            self._stop = gevent.event.Event()
            started.set()
            # With a timeout: a hub with nothing to watch would raise LoopExit.
            while not self._stop.wait(0.5):
                pass
            gevent.get_hub().destroy(destroy_loop=True)

        self.thread = threading.Thread(target=run, name="test-hub", daemon=True)
        self.thread.start()
        assert started.wait(10)

    def call(self, func: Callable[..., Any], *args: Any, timeout: float = 20) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def task() -> None:
            try:
                future.set_result(func(*args))
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.run_callback_threadsafe(gevent.spawn, task)
        return future.result(timeout)

    def close(self) -> None:
        assert self._stop is not None
        self.loop.run_callback_threadsafe(self._stop.set)
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def hub() -> Iterator[HubThread]:
    thread = HubThread()
    try:
        yield thread
    finally:
        thread.close()


# -- gevent specifics --------------------------------------------------------------------------


def test_importing_the_package_does_not_import_gevent() -> None:
    code = (
        "import sys, ws4py_integrations\n"
        "assert 'gevent' not in sys.modules\n"
        "import ws4py_integrations.gevent as g\n"
        "assert 'gunicorn' not in sys.modules, 'gunicorn is needed only for the worker'\n"
        "from gevent import monkey\n"
        "assert not monkey.is_anything_patched(), 'importing the adapter patches nothing'\n"
        "g.GunicornWorker\n"
        "assert 'gunicorn' in sys.modules\n"
    )
    # A pristine interpreter: coverage, when it measures subprocesses, imports gevent itself.
    env = {key: value for key, value in os.environ.items() if not key.startswith("COVERAGE")}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=ROOT, env=env)


def test_stock_pywsgi_server_with_handler_class(hub: HubThread) -> None:
    """``pywsgi.WSGIServer(..., handler_class=WebSocketHandler)``: no final read, no close, no pool slot held."""
    pool_size = 10

    def start() -> pywsgi.WSGIServer:
        server = pywsgi.WSGIServer(
            ("127.0.0.1", 0), apps.make_app(), handler_class=WebSocketHandler, spawn=Pool(pool_size), log=None
        )
        server.start()
        return server

    server = hub.call(start)
    port = server.address[1]
    running = RunningServer("gevent-stock", "127.0.0.1", port, False, None, lambda: None)
    running.extra["client_ssl"] = None
    try:
        # A kept-alive plain request, then an upgrade on the same connection with
        # a frame in the same write: the bytes pywsgi's reader buffered are delivered.
        peer = RawClient("127.0.0.1", port)
        try:
            peer.send(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, rest = peer.read_response_head()
            assert status == 200
            while len(rest) < int(headers["content-length"]):
                rest += peer.sock.recv(4096)
            assert rest == b"plain GET /first"
            assert peer.upgrade("/echo", extra=Frame(Opcode.TEXT, b"early").serialize(mask=True)) == 101
            frame = peer.recv_frame()
            assert frame is not None and frame.data == b"early"
        finally:
            peer.close()
        with urllib.request.urlopen(running.http_url("/x"), timeout=10) as response:
            assert response.read() == b"plain GET /x"
        with client(running, "/echo") as ws:
            messages: list[str | bytes] = ["one", b"two", "three" * 1000]
            for message in messages:
                ws.send(message)
                assert ws.recv(timeout=10) == message
            # The request greenlet ended at the upgrade: an open WebSocket holds no pool slot.
            assert _eventually(lambda: hub.call(server.pool.free_count) == pool_size)
        manager = server.ws4py_manager
        assert isinstance(manager, GeventManager)
        assert manager.handlers == "threads"  # auto, in this unpatched process
        with client(running, "/echo") as ws:
            ws.send("before stop")
            assert ws.recv(timeout=10) == "before stop"
            hub.call(manager.stop)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    finally:
        hub.call(server.stop)


def test_our_server_leaves_a_websocket_the_socket_it_accepted(hub: HubThread) -> None:
    """Our WSGIServer does not close a WebSocket's socket when the request ends: the
    WebSocket keeps the socket object pywsgi accepted (a stock server needs a new one)."""
    accepted: list[Any] = []

    class Recording(WSGIServer):  # type: ignore[misc]
        def do_handle(self, sock: Any, address: Any) -> None:
            accepted.append(sock)
            super().do_handle(sock, address)

    def start() -> WSGIServer:
        server = Recording(("127.0.0.1", 0), apps.make_app(), spawn=Pool(10), log=None)
        server.start()
        return server

    server = hub.call(start)
    running = RunningServer("gevent", "127.0.0.1", server.address[1], False, None, lambda: None)
    try:
        with client(running, "/echo") as ws:
            ws.send("during")
            assert ws.recv(timeout=10) == "during"
            [websocket] = server.manager.websockets
            assert websocket._connection.sock is accepted[-1]
            # The request ended (do_close ran) without closing it.
            assert _eventually(lambda: not server._ws_kept)
            ws.send("after the request")
            assert ws.recv(timeout=10) == "after the request"
        # Plain requests' sockets are closed as before.
        with urllib.request.urlopen(running.http_url("/x"), timeout=10) as response:
            assert response.read() == b"plain GET /x"
        assert _eventually(lambda: accepted[-1].closed)
        assert not server._ws_kept
    finally:
        hub.call(server.stop)


def _eventually(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.mark.parametrize("handlers", ["threads", "greenlets"])
def test_server_stop_closes_every_websocket_with_1001(handlers: str) -> None:
    with serve(apps.make_app(), handlers=handlers) as running, ExitStack() as stack:  # type: ignore[arg-type]
        conns = [stack.enter_context(client(running, "/record")) for _ in range(5)]
        for _ in conns:
            apps.wait_event("opened", "/record")
        started = time.monotonic()
        running.stop()
        elapsed = time.monotonic() - started
        for ws in conns:
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        for _ in conns:
            assert apps.wait_event("closed", "/record")[0] == 1001
    assert elapsed < 5, f"stop() took {elapsed:.2f} s"


@pytest.mark.parametrize("handlers", ["threads", "greenlets"])
def test_sends_from_other_os_threads_reach_clients(handlers: str) -> None:
    """broadcast() and send() from threads that are not the hub's wake the hub up."""
    with serve(apps.make_app(), handlers=handlers) as running, ExitStack() as stack:  # type: ignore[arg-type]
        manager = running.manager
        assert manager is not None
        conns = [stack.enter_context(client(running, "/record")) for _ in range(3)]
        for _ in conns:
            apps.wait_event("opened", "/record")
        big = "b" * 300_000  # more than a socket takes at once: the hub's writer finishes it

        def blast(index: int) -> None:
            for n in range(20):
                assert manager.broadcast(f"{index}:{n}") == 3
            manager.broadcast(big)

        threads = [threading.Thread(target=blast, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        for ws in conns:
            got = [ws.recv(timeout=10) for _ in range(4 * 21)]
            assert got.count(big) == 4
            small = [m for m in got if isinstance(m, str) and m != big]
            for index in range(4):
                mine = [int(m.split(":")[1]) for m in small if m.startswith(f"{index}:")]
                assert mine == list(range(20))
        stats = manager.stats()
        assert stats["connections"] == 3 and stats["messages_out"] >= 3 * 84


class Cooperative(WebSocket):
    def received_message(self, message: Message) -> None:
        data = message.data
        if isinstance(data, str) and data.startswith("sleep:"):
            gevent.sleep(float(data[6:]))
            self.send(f"slept:{data[6:]}")
        else:
            self.send(data)


def test_greenlet_handlers_that_yield_do_not_delay_others() -> None:
    app = WebSocketMiddleware(apps.plain_app, {"/co": Cooperative})
    with (
        serve(app, handlers="greenlets") as running,
        client(running, "/co") as sleeper,
        client(running, "/co") as other,
    ):
        sleeper.send("sleep:1")
        for n in range(50):
            sleeper.send(f"m{n}")
        started = time.monotonic()
        for n in range(20):
            other.send(f"quick {n}")
            assert other.recv(timeout=10) == f"quick {n}"
        assert time.monotonic() - started < 0.9
        assert sleeper.recv(timeout=10) == "slept:1"
        # Callbacks of one connection stay in order across the sleep.
        assert [sleeper.recv(timeout=10) for _ in range(50)] == [f"m{n}" for n in range(50)]


def test_pywsgi_classic_keyfile_certfile_arguments(hub: HubThread, tls_files: TLSFiles) -> None:
    def start() -> WSGIServer:
        server = WSGIServer(
            ("127.0.0.1", 0), apps.make_app(), keyfile=tls_files.keyfile, certfile=tls_files.certfile, log=None
        )
        server.start()
        return server

    server = hub.call(start)
    running = RunningServer("gevent", "127.0.0.1", server.address[1], True, None, lambda: None)
    running.extra["client_ssl"] = tls_files.client_context
    # gevent.ssl.wrap_socket warns about its own use of PROTOCOL_TLS, not about ours.
    with pytest.warns(DeprecationWarning), client(running, "/echo") as ws:
        payload = bytes(range(256)) * 1024
        ws.send(payload)
        assert ws.recv(timeout=10) == payload
        hub.call(server.stop)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001


def test_handlers_option_is_checked() -> None:
    with pytest.raises(ValueError, match="handlers"):
        GeventManager(handlers="processes")  # type: ignore[arg-type]


# -- the example -----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["ws", "wss"])
def test_echo_example_on_gevent(transport: str, tls_files: TLSFiles, tmp_path: Path) -> None:
    tls = (tls_files.certfile, tls_files.keyfile) if transport == "wss" else None
    with echo_example("gevent", tls=tls, log_path=tmp_path / "echo.log") as proc:
        running = RunningServer("gevent", "127.0.0.1", proc.port, transport == "wss", None, lambda: None)
        running.extra["client_ssl"] = tls_files.client_context if transport == "wss" else None
        with urllib.request.urlopen(running.http_url("/"), timeout=10, context=running.extra["client_ssl"]) as page:
            assert page.status == 200
        with client(running, "/ws") as ws, client(running, "/broadcast") as b1, client(running, "/broadcast") as b2:
            ws.send("example")
            assert ws.recv(timeout=10) == "example"
            time.sleep(0.1)  # both joined the room (opened() runs right after the handshake)
            b1.send("to all")
            assert b1.recv(timeout=10) == "to all" and b2.recv(timeout=10) == "to all"
            proc.signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=15)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert proc.wait(timeout=20) == 0
        log = proc.log()
        # The runner restarted the example with patch_all() first: handlers ran on greenlets.
        assert "not monkey-patched" not in log and "MonkeyPatchWarning" not in log, log
        # pywsgi's access lines go through logging (--log-level INFO here).
        assert re.search(r'examples\.access INFO .*"GET /ws HTTP/1\.1" 101', log), log


# -- gunicorn -----------------------------------------------------------------------------------


def test_gunicorn_echo_runs_handlers_on_greenlets() -> None:
    with gunicorn_worker() as (_, port):
        running = RunningServer("gunicorn", "127.0.0.1", port, False, None, lambda: None)
        with client(running, "/echo") as sleeper, client(running, "/echo") as other:
            sleeper.send("mode")
            assert sleeper.recv(timeout=10) == "greenlets patched=True"
            messages: list[str | bytes] = ["hello", b"\x00\x01", "x" * 100_000]
            for message in messages:
                other.send(message)
                assert other.recv(timeout=10) == message
            # time.sleep is patched in the worker: a sleeping handler yields.
            sleeper.send("sleep:1")
            started = time.monotonic()
            for n in range(10):
                other.send(f"quick {n}")
                assert other.recv(timeout=10) == f"quick {n}"
            assert time.monotonic() - started < 0.9
            assert sleeper.recv(timeout=10) == "slept:1"


def test_gunicorn_wss_echo(tls_files: TLSFiles) -> None:
    tls = ("--certfile", tls_files.certfile, "--keyfile", tls_files.keyfile)
    with gunicorn_worker(*tls, context=tls_files.client_context) as (_, port):
        running = RunningServer("gunicorn", "127.0.0.1", port, True, None, lambda: None)
        running.extra["client_ssl"] = tls_files.client_context
        with client(running, "/echo") as ws:
            payload = os.urandom(200_000)
            ws.send(payload)
            assert ws.recv(timeout=10) == payload


def test_gunicorn_broadcast_and_graceful_stop_with_1001() -> None:
    with gunicorn_worker() as (proc, port):
        running = RunningServer("gunicorn", "127.0.0.1", port, False, None, lambda: None)
        with ExitStack() as stack:
            conns = [stack.enter_context(client(running, "/broadcast")) for _ in range(4)]
            for ws in conns:
                assert ws.recv(timeout=10) == "joined"
            conns[0].send("hello everyone")
            for ws in conns:
                assert ws.recv(timeout=10) == "hello everyone"
            echo = stack.enter_context(client(running, "/echo"))
            started = time.monotonic()
            proc.signal(signal.SIGTERM)
            for ws in [*conns, echo]:
                with pytest.raises(ConnectionClosed) as info:
                    ws.recv(timeout=10)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1001
            closed_after = time.monotonic() - started
        assert proc.wait(timeout=20) == 0
        stopped_after = time.monotonic() - started
        # The WebSockets close at once; gunicorn's own loop then needs about a second.
        assert closed_after < 1.5, closed_after
        assert stopped_after < 5.0, stopped_after
