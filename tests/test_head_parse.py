"""The gevent handler's fast path for request heads answers exactly as pywsgi's own parser.

``ws4py_integrations._head`` reads the header lines itself and builds the
message without the email package when every line is plain; every other
head goes to pywsgi's parser on the same bytes. These tests hold both to the
stock ``pywsgi.WSGIHandler``: byte for byte on the parsed fields, the
exceptions, the bytes left unread, the WSGI environ, and, through real
servers, the status and environ each answers with.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

pytest.importorskip("gevent")

from gevent import pywsgi

from ws4py_integrations._head import PLAIN_LINE, ReplayReader, plain_fields, read_header_lines
from ws4py_integrations.adapter import raw_header_fields
from ws4py_integrations.gevent import WebSocketHandler, WSGIServer

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE = b"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + KEY
UPGRADE += b"\r\nSec-WebSocket-Version: 13\r\n"

HEADS = {
    "upgrade": UPGRADE + b"\r\n",
    "lf-only": UPGRADE.replace(b"\r\n", b"\n") + b"\n",
    "spaces-around-value": b"Host: \t 127.0.0.1 \t\r\nX-A:\r\nX-B:   \r\n\r\n",
    "two-content-length": b"Host: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n",
    "two-hosts": b"Host: a\r\nHost: b\r\n\r\n",
    "obs-fold": b"Host: x\r\nX-Folded: a\r\n b\r\n\tc\r\n\r\n",
    "fold-first": b" Host: x\r\n\r\n",
    "space-before-colon": b"Host : x\r\n\r\n",
    "no-colon": b"Host: x\r\nnot a header\r\nX-After: y\r\n\r\n",
    "empty-name": b": x\r\nHost: x\r\n\r\n",
    "invalid-name": b"Ho(st: x\r\nX/Y: z\r\n\r\n",
    "underscore-name": b"X_Forwarded_Host: evil\r\nHost: x\r\n\r\n",
    "bare-cr": b"Host: x\rX-Injected: y\r\n\r\n",
    "nul": b"Host: x\x00y\r\n\r\n",
    "del": b"Host: x\x7fy\r\n\r\n",
    "latin-1": b"Host: x\r\nX-Name: caf\xe9\r\n\r\n",
    "from-line": b"From nobody\r\nHost: x\r\n\r\n",
    "eof-without-blank-line": b"Host: x\r\nX-A: b\r\n",
    "no-headers": b"\r\n",
    "long-line": b"Host: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    "line-at-limit": b"X-Big: " + b"a" * (65536 - 9) + b"\r\n\r\n",
    "100-headers": b"".join(b"X-H%d: v\r\n" % i for i in range(99)) + b"\r\n",
    "101-headers": b"".join(b"X-H%d: v\r\n" % i for i in range(100)) + b"\r\n",
    "500-headers": b"".join(b"X-H%d: v\r\n" % i for i in range(500)) + b"\r\n",
    "chunked-and-length": b"Host: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    "content-type": b"Content-Type: multipart/form-data\r\nHost: x\r\n\r\n",
    "cookies": b"Cookie: a=1\r\nCookie: b=2\r\nHost: x\r\n\r\n",
}
BODY = b"trailing body bytes"


def _stock() -> Any:
    return pywsgi.WSGIHandler.__new__(pywsgi.WSGIHandler)


def _ours() -> Any:
    return WebSocketHandler.__new__(WebSocketHandler)


def _parse(handler: Any, data: bytes) -> tuple[Any, Any, int]:
    """``MessageClass(rfile, 0)`` as pywsgi's read_request calls it: (message or exception type, fields, bytes read)."""
    rfile = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
    try:
        message = handler.MessageClass(rfile, 0)
    except Exception as exc:
        return type(exc), None, -1
    return message.status, list(message._headers), len(data) - len(rfile.read())


def _environ_headers(handler: Any, data: bytes) -> list[tuple[str, str]]:
    handler.headers = handler.MessageClass(io.BufferedReader(io.BytesIO(data)), 0)  # type: ignore[arg-type]
    return list(handler._headers())


@pytest.mark.parametrize("head", HEADS.values(), ids=HEADS.keys())
def test_same_message_as_pywsgi(head: bytes) -> None:
    assert _parse(_ours(), head + BODY) == _parse(_stock(), head + BODY)


@pytest.mark.parametrize("head", HEADS.values(), ids=HEADS.keys())
def test_same_environ_headers_as_pywsgi(head: bytes) -> None:
    status, fields, _ = _parse(_stock(), head)
    if fields is None or status:
        pytest.skip("pywsgi refuses this head before building an environ")
    assert _environ_headers(_ours(), head) == _environ_headers(_stock(), head)


@pytest.mark.parametrize("head", HEADS.values(), ids=HEADS.keys())
def test_raw_headers_are_the_lines_as_received(head: bytes) -> None:
    status, fields, _ = _parse(_stock(), head)
    if fields is None or status:
        pytest.skip("refused before a handover exists")
    handler = _ours()
    handler.MessageClass(io.BufferedReader(io.BytesIO(head + BODY)), 0)  # type: ignore[arg-type]
    lines = io.BytesIO(head + BODY).readlines()
    fields = (
        handler._ws_raw_headers if handler._ws_raw_headers is not None else raw_header_fields(handler._ws_raw_lines)
    )
    assert fields == raw_header_fields(lines)


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        ("upgrade", True),
        ("lf-only", True),
        ("two-content-length", True),
        ("obs-fold", False),
        ("bare-cr", False),
        ("nul", False),
        ("latin-1", False),
        ("space-before-colon", False),
        ("long-line", False),
        ("101-headers", False),
    ],
)
def test_only_plain_heads_take_the_fast_path(name: str, plain: bool) -> None:
    _, fast = read_header_lines(io.BufferedReader(io.BytesIO(HEADS[name])))  # type: ignore[arg-type]
    assert fast is plain


def test_replay_reader_serves_lines_then_the_stream() -> None:
    reader = ReplayReader([b"a\r\n", b"b\r\n"], io.BytesIO(b"c\r\nd"))
    assert [reader.readline(10) for _ in range(5)] == [b"a\r\n", b"b\r\n", b"c\r\n", b"d", b""]


def test_plain_fields_strip_as_the_email_parser() -> None:
    fields, raw = plain_fields([b"X-A: \t v \t\r\n", b"X-B:\n", b"\r\n", b"X-C: after\r\n"])
    assert fields == [("X-A", "v \t"), ("X-B", "")]
    assert raw == [("X-A", "v"), ("X-B", "")]
    assert PLAIN_LINE.fullmatch(b"X-A: v\r\n") is not None


# Lines built from the bytes that matter to a header parser.
_line = st.lists(
    st.sampled_from([b"a", b"Z", b"-", b"_", b":", b" ", b"\t", b"\r", b"\x00", b"\x7f", b"\xe9", b"(", b"From "]),
    max_size=12,
).map(b"".join)
_heads = st.lists(_line.map(lambda line: line + b"\r\n"), max_size=8).map(lambda lines: b"".join(lines) + b"\r\n")


@settings(max_examples=300, deadline=None)
@given(head=_heads)
def test_fuzzed_heads_parse_as_pywsgi(head: bytes) -> None:
    assert _parse(_ours(), head + BODY) == _parse(_stock(), head + BODY)
    status, fields, _ = _parse(_stock(), head)
    if fields is not None and not status:
        assert _environ_headers(_ours(), head) == _environ_headers(_stock(), head)


# -- through real servers: stock pywsgi and ours answer the same -------------------------------


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    lines = sorted(f"{key}={value!r}" for key, value in environ.items() if key.startswith(("HTTP_", "CONTENT_")))
    body = "\n".join(lines).encode("latin-1", "backslashreplace")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[int, int]]:
    """A stock pywsgi server and ours, on one thread of their own (and its gevent hub)."""
    import gevent

    ports: list[int] = []
    ready, stop = threading.Event(), threading.Event()

    def serve() -> None:
        stock = pywsgi.WSGIServer(("127.0.0.1", 0), _app, log=None)
        ours = WSGIServer(("127.0.0.1", 0), _app, log=None)
        stock.start()
        ours.start()
        ports.extend([stock.server_port, ours.server_port])
        ready.set()
        deadline = 600 / 0.05
        while not stop.is_set() and deadline > 0:  # bounded: the module's tests take seconds
            gevent.sleep(0.05)
            deadline -= 1
        stock.stop(1)
        ours.stop(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield ports[0], ports[1]
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def _exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    # The Date header differs from one answer to the next; our handler says
    # "Connection: close" where pywsgi closes without saying so (RFC 9112 9.6).
    dropped = (b"Date: ", b"Connection: close")
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.startswith(dropped))


@pytest.mark.parametrize("name", [name for name in HEADS if name != "eof-without-blank-line"])
def test_servers_answer_as_stock_pywsgi(servers: tuple[int, int], name: str) -> None:
    request = b"GET /plain HTTP/1.1\r\nConnection: close\r\n" + HEADS[name]
    stock, ours = (_exchange(port, request) for port in servers)
    assert stock.startswith(b"HTTP/1.1 "), stock[:100]
    assert stock.split(b"\r\n", 1)[0] == ours.split(b"\r\n", 1)[0]
    assert ours == stock


# -- wsgiref: our request handler answers as the standard library's ------------------------


@pytest.fixture(scope="module")
def wsgiref_servers() -> Iterator[tuple[int, int]]:
    """``wsgiref.simple_server`` with its own handler, and ours (``make_server``)."""
    from wsgiref import simple_server

    from ws4py_integrations.wsgiref import make_server

    class QuietStock(simple_server.WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    stock = simple_server.make_server("127.0.0.1", 0, _app, handler_class=QuietStock)
    ours = make_server("127.0.0.1", 0, _app)
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in (stock, ours)]
    for thread in threads:
        thread.start()
    yield stock.server_port, ours.server_port
    for server in (stock, ours):
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join(10)


_WSGIREF_HEADS = {
    **HEADS,
    "expect-continue": b"Host: x\r\nExpect: 100-continue\r\n\r\n",
    "connection-keep-alive": b"Host: x\r\nConnection: keep-alive\r\n\r\n",
    "connection-upgrade-then-close": b"Host: x\r\nConnection: Upgrade\r\nConnection: close\r\n\r\n",
}


def _strip_server_line(answer: bytes) -> bytes:
    # The Server header names each server's class; everything else must match.
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.startswith(b"Server: "))


@pytest.mark.parametrize("name", [name for name in _WSGIREF_HEADS if name != "eof-without-blank-line"])
def test_wsgiref_answers_as_the_standard_library(wsgiref_servers: tuple[int, int], name: str) -> None:
    request = b"GET /plain HTTP/1.1\r\n" + _WSGIREF_HEADS[name]
    stock, ours = (_strip_server_line(_exchange(port, request)) for port in wsgiref_servers)
    assert stock.startswith(b"HTTP/1."), stock[:100]
    assert ours == stock


def _wsgiref_parse(handler_class: type[Any], requestline: bytes, head: bytes) -> tuple[Any, ...]:
    """What ``parse_request`` makes of a request line and head: its result,
    the attributes it sets, the fields, the bytes left and any error status line."""
    handler = handler_class.__new__(handler_class)
    handler.rfile = io.BufferedReader(io.BytesIO(head + BODY))  # type: ignore[arg-type]
    handler.wfile = io.BytesIO()
    handler.client_address = ("127.0.0.1", 1)
    handler.raw_requestline = requestline
    parsed = handler.parse_request()
    state: tuple[Any, ...] = (
        parsed,
        handler.command,
        getattr(handler, "path", None),
        handler.request_version,
        getattr(handler, "requestline", None),
        handler.close_connection,
        handler.wfile.getvalue().split(b"\r\n", 1)[0],
    )
    if parsed:
        # A refused line leaves the head unread by the stock handler (ours reads it
        # first); the connection is closed then, so only a parsed request's rest counts.
        state += (list(handler.headers.items()), handler.rfile.read())
    return state


_REQUEST_LINES = st.one_of(
    st.builds(
        lambda method, sep1, target, sep2, version, end: method + sep1 + target + sep2 + version + end,
        st.sampled_from([b"GET", b"POST", b"get", b"M-SEARCH", b"G\xe9T", b"G\x85T", b""]),
        # Mostly the common shape: each part's usual form weighs more.
        st.sampled_from([b" ", b" ", b" ", b"  ", b"\t", b"\x85", b""]),
        st.sampled_from([b"/ws", b"//x", b"/a?b=c", b"*", b"http://h/p", b"/\xa0", b"/a b", b""]),
        st.sampled_from([b" ", b" ", b" ", b"  ", b"\t", b""]),
        st.sampled_from(
            [b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.10", b"http/1.1", b"HTTP/1.1 x", b""]
        ),
        st.sampled_from([b"\r\n", b"\n", b"\r\r\n", b" \r\n", b""]),
    ),
    st.binary(max_size=40),
)


@settings(max_examples=400, deadline=None)
@given(requestline=_REQUEST_LINES, head=st.sampled_from(sorted(_WSGIREF_HEADS.values())))
@example(requestline=b"GET /ws HTTP/1.1\r\n", head=HEADS["upgrade"])
@example(requestline=b"GET /ws HTTP/1.0\r\n", head=HEADS["upgrade"])
@example(requestline=b"GET //x HTTP/1.1\r\n", head=HEADS["upgrade"])
@example(requestline=b"get /a?b=c HTTP/1.1\n", head=_WSGIREF_HEADS["connection-keep-alive"])
def test_wsgiref_request_lines_parse_as_the_standard_library(requestline: bytes, head: bytes) -> None:
    from wsgiref import simple_server

    from ws4py_integrations.wsgiref import WebSocketWSGIRequestHandler

    class QuietStock(simple_server.WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    stock = _wsgiref_parse(QuietStock, requestline, head)
    ours = _wsgiref_parse(WebSocketWSGIRequestHandler, requestline, head)
    assert ours == stock


@pytest.mark.parametrize("name", ["upgrade", "two-content-length", "obs-fold", "no-colon", "underscore-name"])
def test_wsgiref_raw_headers_are_the_lines_as_received(name: str) -> None:
    from ws4py_integrations.wsgiref import WebSocketWSGIRequestHandler

    handler = WebSocketWSGIRequestHandler.__new__(WebSocketWSGIRequestHandler)
    data = b"GET /plain HTTP/1.1\r\n" + HEADS[name] + BODY
    handler.rfile = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
    handler.raw_requestline = handler.rfile.readline(65537)
    handler.request_version = "HTTP/0.9"
    handler.close_connection = True
    handler.head = data
    assert handler.parse_request()
    assert handler.raw_headers() == raw_header_fields(io.BytesIO(HEADS[name] + BODY).readlines())
    assert handler.rfile.read() == BODY


# -- the other cuts of the handshake path ---------------------------------------------------


def test_the_101_goes_out_whole_when_the_socket_buffer_is_full() -> None:
    from ws4py_integrations.middleware import _send_response

    server, client = socket.socketpair()
    with server, client:
        server.setblocking(False)
        # Fill the send buffer so that the non-blocking try sends nothing or part.
        with pytest.raises(BlockingIOError):
            while True:
                server.send(b"x" * 65536)
        # Larger than the send buffer can take in one call even once the
        # reader has emptied it: the non-blocking try never sends it all, so
        # the blocking path always runs (else this depends on the reader's pace).
        sndbuf = server.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        response = b"HTTP/1.1 101 Switching Protocols\r\n\r\n" * (8 * sndbuf // 36 + 1)
        received = bytearray()
        reader = threading.Thread(target=lambda: _drain(client, received, 10))
        reader.start()
        _send_response(server, response)
        server.shutdown(socket.SHUT_WR)
        reader.join(10)
        assert received.endswith(response)
        assert server.gettimeout() is None  # blocking, as the managers expect to find it or set it


def _drain(sock: socket.socket, into: bytearray, timeout: float) -> None:
    sock.settimeout(timeout)
    while chunk := sock.recv(65536):
        into += chunk


def test_the_101_on_a_non_blocking_socket_with_room_is_one_send() -> None:
    from ws4py_integrations.middleware import _send_response

    server, client = socket.socketpair()
    with server, client:
        server.setblocking(False)
        _send_response(server, b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        assert server.gettimeout() == 0.0  # left as it was: the manager makes it non-blocking anyway
        client.settimeout(10)
        assert client.recv(100) == b"HTTP/1.1 101 Switching Protocols\r\n\r\n"


def test_gunicorn_handler_builds_access_records_only_when_gunicorn_logs_them(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gunicorn")
    from types import SimpleNamespace

    from gunicorn.workers.ggevent import PyWSGIHandler

    from ws4py_integrations.gevent.gunicorn import GunicornHandler

    calls: list[object] = []
    monkeypatch.setattr(PyWSGIHandler, "log_request", lambda self: calls.append(self))
    handler = GunicornHandler.__new__(GunicornHandler)
    for log, logged in [
        (SimpleNamespace(access_log_enabled=False), 0),
        (SimpleNamespace(access_log_enabled=True), 1),
        (SimpleNamespace(), 1),  # a gunicorn that does not tell: log as before
    ]:
        calls.clear()
        handler.server = SimpleNamespace(log=log)
        handler.log_request()
        assert len(calls) == logged


def test_pywsgi_access_lines_are_formatted_only_for_a_log_that_writes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    formatted: list[object] = []
    monkeypatch.setattr(pywsgi.WSGIHandler, "format_request", lambda self: formatted.append(self) or "a line")
    quiet = logging.getLogger("tests.access.quiet")
    quiet.setLevel(logging.WARNING)
    loud = logging.getLogger("tests.access.loud")
    loud.setLevel(logging.INFO)
    stream = io.StringIO()
    handler = _ours()
    for log, lines in [(None, 0), (quiet, 0), (loud, 1), (stream, 1)]:
        formatted.clear()
        # Not started: the server only turns ``log`` into what handlers write to.
        handler.server = pywsgi.WSGIServer(("127.0.0.1", 0), None, log=log)
        handler.log_request()
        assert len(formatted) == lines, log
    assert stream.getvalue() == "a line\n"


def test_environ_headers_of_a_foreign_message_use_pywsgi_s_own_code() -> None:
    handler = _ours()
    handler.headers = SimpleHeaders()
    assert list(handler._headers()) == [("HTTP_X_A", "b")]


class SimpleHeaders:
    """A message without the email package's field list (a subclass's own MessageClass)."""

    headers = ["X-A: b\r\n"]
