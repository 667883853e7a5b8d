"""wsgiref-specific behaviour: stock plain HTTP, shutdown, resources."""

from __future__ import annotations

import contextlib
import http.server
import logging
import os
import socket
import threading
import time
import wsgiref.util
from contextlib import ExitStack
from typing import Any
from wsgiref.simple_server import make_server as stock_make_server

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support import app as apps
from tests.support.servers.wsgiref import serve
from ws4py_integrations import ThreadedManager
from ws4py_integrations.wsgiref import WebSocketWSGIRequestHandler, make_server


def http_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def without_date(response: bytes) -> list[bytes]:
    return [line for line in response.split(b"\r\n") if not line.lower().startswith(b"date:")]


def test_plain_http_is_byte_for_byte_stock_wsgiref() -> None:
    request = b"GET /some/path?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    results = []
    for factory in (stock_make_server, make_server):
        server = factory("127.0.0.1", 0, apps.plain_app)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            results.append(http_exchange(server.server_address[1], request))
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
    assert without_date(results[0]) == without_date(results[1])
    assert b"plain GET /some/path" in results[1]


def test_access_lines_go_to_the_access_logger_not_stderr(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    def access_lines() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "ws4py_integrations.wsgiref.access"]

    with caplog.at_level(logging.INFO, logger="ws4py_integrations.wsgiref.access"), serve(apps.plain_app) as running:
        http_exchange(running.port, b"GET /logged HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        deadline = time.monotonic() + 10
        while not access_lines() and time.monotonic() < deadline:
            time.sleep(0.01)
    [record] = access_lines()
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith("127.0.0.1 - ")
    assert '"GET /logged HTTP/1.1" 200' in record.getMessage()
    assert "/logged" not in capfd.readouterr().err


def test_access_lines_are_formatted_only_when_info_is_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(http.server.BaseHTTPRequestHandler, "log_request", lambda self, *args: calls.append(args))
    handler = WebSocketWSGIRequestHandler.__new__(WebSocketWSGIRequestHandler)
    handler.client_address = ("127.0.0.1", 1)
    with caplog.at_level(logging.WARNING, logger="ws4py_integrations.wsgiref.access"):
        handler.log_request(200, 5)
        handler.log_message("code %d, message %s", 400, "Bad request")
    assert calls == [] and caplog.records == []
    with caplog.at_level(logging.INFO, logger="ws4py_integrations.wsgiref.access"):
        handler.log_request(200, 5)
        handler.log_message("code %d, message %s", 400, "Bad request")
    assert calls == [(200, 5)]
    assert [r.getMessage() for r in caplog.records] == ["127.0.0.1 - code 400, message Bad request"]


def test_no_process_wide_patching() -> None:
    import ws4py_integrations.wsgiref  # noqa: F401

    # ws4py patched wsgiref.util._hoppish globally; the stock rule must hold.
    assert wsgiref.util.is_hop_by_hop("Upgrade")
    assert wsgiref.util.is_hop_by_hop("Connection")


def test_stopping_the_server_sends_1001_to_every_connection() -> None:
    with serve(apps.make_app()) as running, ExitStack() as stack:
        clients = [stack.enter_context(connect(running.ws_url("/record"), open_timeout=10)) for _ in range(5)]
        for _ in clients:
            apps.wait_event("opened", "/record")
        started = time.monotonic()
        running.stop()
        assert time.monotonic() - started < 10
        for ws in clients:
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        # Every handler heard about it before stop() returned.
        codes = [apps.wait_event("closed", "/record", timeout=0.5)[0] for _ in clients]
        assert codes == [1001] * 5


def test_a_stop_between_the_101_and_the_manager_still_sends_1001() -> None:
    """The window the upgrade and a shutdown can race in: the client has its 101,
    the manager stops before it takes the connection; the client gets 1001, not 1006."""
    handed_over, stopped = threading.Event(), threading.Event()

    class Late(ThreadedManager):
        def run(self, conn: Any, buffered: bytes = b"") -> None:
            handed_over.set()
            assert stopped.wait(10)
            super().run(conn, buffered)

    manager = Late(name="late")
    apps.drain_events()
    with serve(apps.make_app(), manager=manager) as running:
        with connect(running.ws_url("/record"), open_timeout=10) as ws:
            assert handed_over.wait(10)
            manager.stop()
            stopped.set()
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (1001, "server shutting down")
        with pytest.raises(TimeoutError):
            apps.wait_event("opened", "/record", timeout=0.2)  # the handler never opened


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_connect_close_cycles_return_fds_and_threads_to_baseline() -> None:
    fds, threads = _fds(), threading.active_count()
    manager = ThreadedManager(name="cycles")
    with serve(apps.make_app(), manager=manager) as running:
        assert manager is not None

        def cycle(n: int) -> None:
            with connect(running.ws_url("/echo"), open_timeout=10, compression=None) as ws:
                ws.send(f"cycle {n}")
                assert ws.recv(timeout=10) == f"cycle {n}"

        def settle(expected_fds: int | None = None) -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if len(manager) == 0 and manager.wait_closed(0.1) and (expected_fds is None or _fds() <= expected_fds):
                    return
                time.sleep(0.05)

        for n in range(50):  # let the server reach its steady state
            cycle(n)
        settle()
        server_fds = _fds()
        for n in range(1000):
            cycle(n)
        settle(server_fds)
        assert _fds() <= server_fds
        stats = manager.stats()
        assert stats["accepted"] == 1050 and stats["connections"] == 0
        assert stats["messages_in"] == 1050 and stats["messages_out"] == 1050
    # Stopped: the loop thread, request threads and idle workers are all gone.
    deadline = time.monotonic() + 10
    while (threading.active_count() > threads or _fds() > fds) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads
    assert _fds() <= fds


def test_blocked_callback_hands_the_loop_over_and_its_thread_ends() -> None:
    manager = ThreadedManager(name="handoff")
    with serve(apps.make_app(), manager=manager) as running:
        with (
            connect(running.ws_url("/echo"), open_timeout=10) as sleeper,
            connect(running.ws_url("/echo"), open_timeout=10) as other,
        ):
            sleeper.send("block:1")
            assert sleeper.recv(timeout=10) == "blocking"
            other.send("meanwhile")
            assert other.recv(timeout=10) == "meanwhile"
            # The sleeping callback keeps its thread; a second thread leads the loop.
            loop_threads = [t for t in threading.enumerate() if t.name.startswith("handoff-io")]
            assert len(loop_threads) == 2
            assert sleeper.recv(timeout=10) == "unblocked"
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
            and len([t for t in threading.enumerate() if t.name.startswith("handoff-io")]) > 1
        ):
            time.sleep(0.05)
        assert len([t for t in threading.enumerate() if t.name.startswith("handoff-io")]) == 1


def test_server_manager_stats_and_broadcast() -> None:
    with serve(apps.make_app()) as running:
        manager = running.manager
        assert manager is not None
        with (
            connect(running.ws_url("/record"), open_timeout=10) as a,
            connect(running.ws_url("/record"), open_timeout=10) as b,
        ):
            apps.wait_event("opened", "/record")
            apps.wait_event("opened", "/record")
            assert manager.broadcast("to everyone", exclude=manager.websockets[:1]) == 1
            received = []
            for ws in (a, b):
                with contextlib.suppress(TimeoutError):
                    received.append(ws.recv(timeout=0.5))
            assert received == ["to everyone"]
            assert manager.stats()["connections"] == 2
            assert manager.broadcast(b"binary") == 2
            assert a.recv(timeout=10) == b"binary" and b.recv(timeout=10) == b"binary"


def test_app_with_websocket_endpoint_alone() -> None:
    """``WebSocketWSGIApplication`` as the whole app (no middleware)."""
    from ws4py_integrations import WebSocketWSGIApplication

    app: Any = WebSocketWSGIApplication(apps.Recording)
    with serve(app) as running, connect(running.ws_url("/anything"), open_timeout=10) as ws:
        ws.send("whole app")
        assert ws.recv(timeout=10) == "whole app"
