"""Exceptions in user callbacks: logged with a traceback, 1011 for that connection, all else goes on."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import app
from tests.support.hardening import LogWatcher, assert_serving, hardening_server, raw, ws_client
from tests.support.servers import RunningServer, available


@pytest.fixture(scope="module", params=available())
def hserver(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with hardening_server(request.param) as running:
        yield running


@pytest.fixture
def logs() -> Iterator[LogWatcher]:
    with LogWatcher() as watcher:
        yield watcher


def traceback_of(logs: LogWatcher, text: str) -> logging.LogRecord:
    """The error record whose traceback carries ``text``."""

    def match(record: logging.LogRecord) -> bool:
        return (
            record.levelno >= logging.ERROR
            and record.exc_info is not None
            and record.exc_info[1] is not None
            and text in str(record.exc_info[1])
        )

    return logs.wait_for(match)


def closed_by_server(ws: object) -> int | None:
    try:
        ws.recv(timeout=10)  # type: ignore[attr-defined]
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None
    raise AssertionError("the connection stayed open")


@pytest.mark.parametrize(
    ("path", "trigger", "text"),
    [
        ("/fail-opened", None, "opened() failed"),
        ("/fail-message", "raise", "received_message() failed"),
        ("/fail-ponged", "ping", "ponged() failed"),
    ],
    ids=["opened", "received_message", "ponged"],
)
def test_callback_exception_is_logged_and_closes_with_1011(
    hserver: RunningServer, logs: LogWatcher, path: str, trigger: str | None, text: str
) -> None:
    with ws_client(hserver) as bystander, ws_client(hserver, path) as ws:
        if trigger == "raise":
            ws.send("raise")
        elif trigger == "ping":
            ws.pong(b"unsolicited")  # the server calls ponged() for any pong
        assert closed_by_server(ws) == 1011
        record = traceback_of(logs, text)
        assert record.exc_info is not None and record.exc_info[2] is not None  # with its traceback
        assert_serving(hserver, bystander)


def test_exception_in_closed_is_logged_and_the_connection_forgotten(hserver: RunningServer, logs: LogWatcher) -> None:
    app.drain_events()
    with ws_client(hserver) as bystander:
        with ws_client(hserver, "/fail-closed") as ws:
            websocket: app.Commands = app.wait_event("opened", "/fail-closed")
            ws.send("hello")
            assert ws.recv(timeout=10) == "hello"
        # The client closed normally (1000); closed() then raised on the server.
        assert app.wait_event("closed", "/fail-closed") == (1000, "")
        traceback_of(logs, "closed() failed")
        assert websocket.terminated
        assert websocket not in websocket.manager.websockets
        assert_serving(hserver, bystander)


def test_many_failing_connections_at_once_do_not_starve_the_others(hserver: RunningServer, logs: LogWatcher) -> None:
    with ws_client(hserver) as bystander:
        clients = [ws_client(hserver, "/fail-message") for _ in range(40)]
        opened = [client.__enter__() for client in clients]
        try:
            for ws in opened:
                ws.send("raise")
            assert all(closed_by_server(ws) == 1011 for ws in opened)
        finally:
            for client in clients:
                client.__exit__(None, None, None)
        assert_serving(hserver, bystander)


def test_exception_in_the_handler_constructor_closes_the_connection(hserver: RunningServer, logs: LogWatcher) -> None:
    peer = raw(hserver)
    try:
        status = peer.upgrade("/fail-init")
        if status == 101:
            # The 101 went out before the handler existed: the server must still end
            # this connection (a 1011 close, or at least TCP), not leave it hanging.
            try:
                frame = peer.recv_frame(timeout=3)
            except ConnectionError:
                frame = None
            assert frame is None or frame.data[:2] == b"\x03\xf3"  # EOF, or a 1011 close
        else:
            assert status == 500
        traceback_of(logs, "__init__() failed")
    finally:
        peer.close()
    assert_serving(hserver)
