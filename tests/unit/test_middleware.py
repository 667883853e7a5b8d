"""The upgrade path with a fake Handover over a socket pair, and the adapter helpers."""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from ws4py_integrations import HANDOVER_KEY, Handover, ThreadedManager, WebSocket, WebSocketWSGIApplication
from ws4py_integrations._extras import missing_extra
from ws4py_integrations._signals import stop_on_signals
from ws4py_integrations.adapter import take_buffered
from ws4py_integrations.handshake import Accept, Reject
from ws4py_integrations.middleware import default_manager
from ws4py_integrations.testing import SocketPairHandover as FakeHandover

from .helpers import ENVIRON, OP_TEXT, client_frame, recv_exactly, server_frame

TIMEOUT = 5.0


class Echo(WebSocket):
    def received_message(self, message: Any) -> None:
        self.send(message.data)


@pytest.fixture
def manager() -> Iterator[ThreadedManager]:
    mgr = ThreadedManager(name="unit-mw")
    yield mgr
    mgr.stop(timeout=1.0)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    client.settimeout(TIMEOUT)
    yield server, client
    server.close()
    client.close()


def environ_with(handover: Handover | None, **extra: Any) -> dict[str, Any]:
    environ = dict(ENVIRON, **extra)
    if handover is not None:
        environ[HANDOVER_KEY] = handover
    return environ


def test_upgrade_writes_the_exact_101_and_processes_buffered_bytes_first(manager: ThreadedManager, pair: Any) -> None:
    server, client = pair
    handover = FakeHandover(server, client_frame(OP_TEXT, b"early"), manager=manager)
    app = WebSocketWSGIApplication(Echo, ping_interval=None)
    statuses: list[str] = []
    body = app(environ_with(handover, **{"ws4py_integrations.unit": 1}), lambda s, h: statuses.append(s))
    assert list(body) == [] and statuses == ["101 Switching Protocols"]
    assert handover.detached == 1
    expected = (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    assert recv_exactly(client, len(expected)) == expected
    assert recv_exactly(client, 7) == server_frame(OP_TEXT, b"early")
    assert isinstance(handover.websocket, Echo) and handover.websocket.manager is manager


def test_the_application_manager_wins_over_the_adapters(pair: Any) -> None:
    server, _client = pair
    mine = ThreadedManager(name="unit-mine")
    theirs = ThreadedManager(name="unit-theirs")
    try:
        app = WebSocketWSGIApplication(Echo, manager=mine)
        result = app.check(environ_with(FakeHandover(server, manager=theirs)))
        assert isinstance(result, Accept)
        ws = app.upgrade(environ_with(FakeHandover(server, manager=theirs)), result)
        assert ws is not None and ws.manager is mine
    finally:
        mine.stop(timeout=1.0)
        theirs.stop(timeout=1.0)


class BrokenHandler(WebSocket):
    def __init__(self, connection: Any, manager: Any) -> None:
        raise RuntimeError("constructor bug")


def test_a_failing_handler_constructor_is_an_exact_500(manager: ThreadedManager, pair: Any, caplog: Any) -> None:
    server, client = pair
    app = WebSocketWSGIApplication(BrokenHandler, manager=manager)
    environ = environ_with(FakeHandover(server))
    accept = app.check(environ)
    assert isinstance(accept, Accept)
    with caplog.at_level(logging.ERROR, "ws4py_integrations.middleware"):
        assert app.upgrade(environ, accept) is None
    assert "BrokenHandler() raised; refusing the upgrade" in caplog.text
    body = b"the WebSocket handler could not be created\n"
    expected = (
        b"HTTP/1.1 500 Internal Server Error\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        + f"Content-Length: {len(body)}\r\n".encode()
        + b"Connection: close\r\n\r\n"
        + body
    )
    assert recv_exactly(client, len(expected)) == expected
    assert client.recv(1) == b""
    assert server.fileno() == -1


def test_a_client_gone_during_the_handshake(manager: ThreadedManager, pair: Any, caplog: Any) -> None:
    server, client = pair
    client.close()
    app = WebSocketWSGIApplication(Echo, manager=manager)
    environ = environ_with(FakeHandover(server))
    accept = app.check(environ)
    assert isinstance(accept, Accept)
    with caplog.at_level(logging.INFO, "ws4py_integrations.middleware"):
        assert app.upgrade(environ, accept) is None
    assert "left during the handshake" in caplog.text
    assert manager.stats()["accepted"] == 0


def test_check_is_503_once_the_manager_stops(pair: Any, caplog: Any) -> None:
    server, _ = pair
    mgr = ThreadedManager()
    mgr.stop()
    app = WebSocketWSGIApplication(Echo)
    with caplog.at_level(logging.INFO, "ws4py_integrations.middleware"):
        result = app.check(environ_with(FakeHandover(server, manager=mgr)))
    assert isinstance(result, Reject) and (result.status, result.reason) == (503, "server shutting down")
    assert "refused WebSocket upgrade from 127.0.0.1 to /ws: 503 server shutting down" in caplog.text


def test_check_is_501_without_a_handover() -> None:
    app = WebSocketWSGIApplication(Echo)
    result = app.check(environ_with(None))
    assert isinstance(result, Reject) and result.status == 501
    assert "-k ws4py_integrations.gunicorn.ThreadWorker" in result.reason
    result = app.check(environ_with(None, **{"werkzeug.socket": object()}))
    assert isinstance(result, Reject) and result.reason == (
        "werkzeug: the server published no open socket; use the wsgiref, CherryPy or gevent adapter"
    )


def test_handler_class_must_be_a_websocket() -> None:
    with pytest.raises(TypeError, match="WebSocket subclass"):
        WebSocketWSGIApplication(object)  # type: ignore[arg-type]


def test_default_manager_is_one_per_process(pair: Any) -> None:
    server, _ = pair
    assert default_manager() is default_manager()
    app = WebSocketWSGIApplication(Echo)
    assert app._manager_for(FakeHandover(server)) is default_manager()


def test_reject_status_line_for_an_unknown_status() -> None:
    assert Reject(599, "odd").status_line == "599 Error"


# -- take_buffered ---------------------------------------------------------------------------------------------


def test_take_buffered_from_a_buffered_reader(pair: Any) -> None:
    server, client = pair
    client.sendall(b"GET / HTTP/1.1\r\n\r\nextra bytes")
    reader = io.BufferedReader(socket.SocketIO(server, "rb"))  # type: ignore[arg-type]
    assert reader.readline() == b"GET / HTTP/1.1\r\n"
    assert reader.readline() == b"\r\n"
    assert take_buffered(reader, server) == b"extra bytes"
    assert server.getblocking() is False


def test_take_buffered_never_waits_on_an_empty_socket(pair: Any) -> None:
    server, client = pair
    client.sendall(b"GET / HTTP/1.1\r\n\r\n")
    reader = io.BufferedReader(socket.SocketIO(server, "rb"))  # type: ignore[arg-type]
    reader.readline()
    reader.readline()
    assert take_buffered(reader, server) == b""


class CherootLikeReader:
    """cheroot's reader: ``has_data()`` and ``peek()``, which never touch the socket."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def has_data(self) -> bool:
        return bool(self.data)

    def peek(self, size: int = 0) -> bytes:
        return self.data


def test_take_buffered_from_a_cheroot_like_reader(pair: Any) -> None:
    server, _ = pair
    assert take_buffered(CherootLikeReader(b"frames"), server) == b"frames"
    assert take_buffered(CherootLikeReader(b""), server) == b""
    assert server.getblocking() is True  # not touched


# -- small helpers -------------------------------------------------------------------------------------------------


def test_stop_on_signals_calls_stop_once_on_a_thread_and_restores_handlers(caplog: Any) -> None:
    stopped = threading.Event()
    threads: list[str] = []

    def stop() -> None:
        threads.append(threading.current_thread().name)
        stopped.set()

    previous = signal.getsignal(signal.SIGUSR1)
    with caplog.at_level(logging.INFO, "ws4py_integrations.server"), stop_on_signals(stop, signals=(signal.SIGUSR1,)):
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stopped.wait(TIMEOUT)
        os.kill(os.getpid(), signal.SIGUSR1)  # a second signal does nothing more
    assert threads == ["ws4py-stop"]
    assert "SIGUSR1 received: stopping (WebSockets get 1001)" in caplog.text
    assert signal.getsignal(signal.SIGUSR1) == previous


def test_missing_extra_message() -> None:
    error = missing_extra("ws4py_integrations.gevent", "gevent", ModuleNotFoundError("no", name="gevent"))
    assert str(error) == (
        "ws4py_integrations.gevent needs gevent, which is not installed: pip install 'ws4py_integrations[gevent]'"
    )
    assert error.name == "gevent"
    anonymous = missing_extra("x", "redis", ImportError("no"))
    assert "needs an optional dependency" in str(anonymous) and anonymous.name is None


def test_message_views_and_option_validation() -> None:
    from ws4py_integrations import Message, WebSocketOptions

    text, binary = Message("é"), Message(b"\xc3\xa9\xff")
    assert (text.is_text, text.is_binary, len(text), str(text)) == (True, False, 1, "é")
    assert (binary.is_text, binary.is_binary, len(binary), str(binary)) == (False, True, 3, "é\ufffd")
    with pytest.raises(ValueError, match="ping_interval must be positive"):
        WebSocketOptions.from_kwargs(ping_interval=0)
    with pytest.raises(ValueError, match="close_timeout must be positive"):
        WebSocketOptions.from_kwargs(close_timeout=0)
