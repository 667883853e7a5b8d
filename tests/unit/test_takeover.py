"""Taking a connection from a server that keeps its socket object (werkzeug, gunicorn gthread)."""

from __future__ import annotations

import io
import signal
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from ws4py_integrations import WebSocket, WebSocketWSGIApplication
from ws4py_integrations.adapter import HANDOVER_KEY, NO_HANDOVER_KEY, take_connection, take_connection_unsupported
from ws4py_integrations.handshake import Reject
from ws4py_integrations.werkzeug import WerkzeugHandover, handover_from_environ

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "PATH_INFO": "/ws",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "80",
    "HTTP_HOST": "127.0.0.1",
    "REMOTE_ADDR": "127.0.0.1",
    "wsgi.url_scheme": "http",
    "HTTP_UPGRADE": "websocket",
    "HTTP_CONNECTION": "Upgrade",
    "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
    "HTTP_SEC_WEBSOCKET_VERSION": "13",
}


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def test_take_connection_leaves_the_server_a_dead_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    ours = take_connection(server)
    try:
        # The server's socket object: reads see EOF, writes fail, shutdown and
        # close touch only the dead socket.
        assert server.recv(10) == b""
        with pytest.raises(BrokenPipeError):
            server.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        server.shutdown(socket.SHUT_RDWR)
        server.close()
        # The connection lives on under ours.
        client.sendall(b"frame")
        assert ours.recv(10) == b"frame"
        ours.sendall(b"reply")
        assert client.recv(10) == b"reply"
    finally:
        ours.close()
    assert client.recv(10) == b""  # closing ours ends the connection


def test_take_connection_unsupported_says_why(pair: tuple[socket.socket, socket.socket]) -> None:
    server, _ = pair
    assert take_connection_unsupported(server) is None
    assert take_connection_unsupported(object()) == "the server published no open socket"
    tls = ssl.create_default_context().wrap_socket(socket.socket(), server_hostname="x", do_handshake_on_connect=False)
    with tls:
        assert "TLS" in str(take_connection_unsupported(tls))
    previous = signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        assert "SIGPIPE" in str(take_connection_unsupported(server))
    finally:
        signal.signal(signal.SIGPIPE, previous)


def test_werkzeug_handover_takes_the_buffered_bytes(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    rfile = server.makefile("rb")
    client.sendall(b"GET /ws HTTP/1.1\r\n\r\n\x81\x00")
    assert rfile.readline() == b"GET /ws HTTP/1.1\r\n"
    assert rfile.readline() == b"\r\n"
    handover = handover_from_environ({"werkzeug.socket": server, "wsgi.input": rfile})
    assert isinstance(handover, WerkzeugHandover)
    ours, buffered = handover.detach()
    with ours:
        assert buffered == b"\x81\x00"
        assert rfile.read() == b"\x81\x00"  # what werkzeug's drain sees: then EOF
    rfile.close()


def test_werkzeug_refusals_name_the_fix(pair: tuple[socket.socket, socket.socket]) -> None:
    server, _ = pair
    reason = handover_from_environ({"werkzeug.socket": server, "wsgi.input": io.BytesIO()})
    assert isinstance(reason, str) and "flask run" in reason
    reason = handover_from_environ({"werkzeug.socket": server, "wsgi.input": None, "wsgi.multiprocess": True})
    assert isinstance(reason, str) and "processes > 1" in reason and "threaded" in reason
    tls = ssl.create_default_context().wrap_socket(socket.socket(), server_hostname="x", do_handshake_on_connect=False)
    with tls:
        reason = handover_from_environ({"werkzeug.socket": tls, "wsgi.input": server.makefile("rb")})
    assert isinstance(reason, str) and "ssl_context" in reason and "proxy" in reason


def check(**extra: Any) -> Reject:
    result = WebSocketWSGIApplication(WebSocket).check(dict(ENVIRON, **extra))
    assert isinstance(result, Reject)
    return result


def test_the_middleware_finds_werkzeug_and_stores_the_handover(pair: tuple[socket.socket, socket.socket]) -> None:
    server, _ = pair
    environ: dict[str, Any] = dict(ENVIRON, **{"werkzeug.socket": server, "wsgi.input": server.makefile("rb")})
    result = WebSocketWSGIApplication(WebSocket).check(environ)
    assert not isinstance(result, Reject)
    assert isinstance(environ[HANDOVER_KEY], WerkzeugHandover)
    environ["wsgi.input"].close()


def test_501s_name_the_fix(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("ERROR", "ws4py_integrations.middleware"):
        refused = check(**{NO_HANDOVER_KEY: "no TLS here; use a proxy"})
        assert (refused.status, refused.reason) == (501, "no TLS here; use a proxy")
        stock = check(**{"gunicorn.socket": object()})
        assert stock.status == 501 and "-k ws4py_integrations.gunicorn.ThreadWorker" in stock.reason
        nothing = check()
        assert nothing.status == 501 and "werkzeug's server (flask run)" in nothing.reason
    assert "cannot upgrade /ws: gunicorn's stock workers cannot hand over connections" in caplog.text


def test_gunicorn_module_names_both_workers() -> None:
    from ws4py_integrations import gunicorn
    from ws4py_integrations.gevent.gunicorn import GunicornWorker

    assert gunicorn.GeventWorker is GunicornWorker
    assert gunicorn.ThreadWorker.__mro__[1].__module__ == "gunicorn.workers.gthread"
    with pytest.raises(AttributeError):
        gunicorn.SyncWorker  # noqa: B018
