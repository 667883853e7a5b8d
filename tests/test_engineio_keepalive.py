"""HTTP connection reuse around Engine.IO's polling, on every server (and
gunicorn's gevent worker), over raw sockets: a response says ``Connection:
close`` exactly when the server closes the connection after it, and a
connection it keeps answers the next request. Also the order of a second
WebSocket's refusal and the probe's answer (the engine.io-protocol suite's
"ignores WebSocket connection with same sid after upgrade")."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.process import gunicorn_worker
from tests.support.servers import available, serve
from ws4py_integrations.engineio import EchoHandler, EngineIOServer
from ws4py_integrations.engineio import session as session_module

TIMEOUT = 5.0
SERVERS = [*available(), "gunicorn-gevent"]
# Servers that keep an HTTP/1.1 connection unless asked to close it (wsgiref
# answers HTTP/1.0 and closes after every response).
KEEPS_ALIVE = {"cherrypy", "gevent", "gunicorn-gevent"}


def plain_page(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
    return [b"plain\n"]


class Response:
    def __init__(self, head: bytes, body: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.version, status, _ = (lines[0] + " ").split(" ", 2)
        self.status = int(status)
        self.headers = {
            name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])
        }
        self.body = body

    @property
    def announces_close(self) -> bool:
        """Whether the response tells the client the connection ends after it (RFC 9112 §9.3)."""
        tokens = {token.strip().lower() for token in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


class Client:
    """One raw HTTP/1.1 connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self._buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, method: str, target: str, body: bytes = b"", connection: str | None = None) -> None:
        head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        if connection is not None:
            head += f"Connection: {connection}\r\n"
        if method == "POST":
            head += f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + body)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self._buffer += data
        return bool(data)

    def response(self) -> Response:
        while b"\r\n\r\n" not in self._buffer:
            assert self._fill(), f"the connection closed before a response: {self._buffer!r}"
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        response = Response(head, b"")
        length = int(response.headers["content-length"])
        while len(self._buffer) < length:
            assert self._fill(), "the connection closed inside a body"
        response.body, self._buffer = self._buffer[:length], self._buffer[length:]
        return response

    def request(self, method: str, target: str, body: bytes = b"", connection: str | None = None) -> Response:
        self.send(method, target, body, connection)
        return self.response()

    def assert_eof(self) -> None:
        assert not self._buffer and not self._fill(), "a connection announced as closing stayed open"

    def follow(self, response: Response) -> None:
        """The connection does what ``response`` said: EOF after a close, or it answers another request."""
        if response.announces_close:
            self.assert_eof()
        else:
            again = self.request("GET", "/plain")
            assert again.status == 200 and again.body.startswith(b"plain")


class Target:
    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port

    def client(self) -> Client:
        return Client(self.port)

    def handshake(self, client: Client, connection: str | None = None) -> tuple[str, Response]:
        response = client.request("GET", "/engine.io/?EIO=4&transport=polling", connection=connection)
        assert response.status == 200, response.body
        sid: str = json.loads(response.body[1:])["sid"]
        return sid, response


def _session_on(target: Target) -> tuple[str, Response]:
    client = target.client()
    try:
        return target.handshake(client, "close")
    finally:
        client.close()


@pytest.fixture(scope="module", params=SERVERS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    name: str = request.param
    if name == "gunicorn-gevent":
        # tests/support/gunicorn_app.py: Engine.IO at /engine.io/, plain HTTP elsewhere.
        with gunicorn_worker() as (_, port):
            yield Target(name, port)
        return
    eio = EngineIOServer(EchoHandler(), plain_page)
    with serve(name, eio) as running:
        yield Target(name, running.port)
        eio.close()


@pytest.mark.parametrize("connection", [None, "keep-alive", "close"])
def test_plain_request(target: Target, connection: str | None) -> None:
    client = target.client()
    try:
        response = client.request("GET", "/plain", connection=connection)
        assert response.status == 200
        if connection == "close":
            assert response.announces_close
        elif target.name in KEEPS_ALIVE:
            assert not response.announces_close
        client.follow(response)
    finally:
        client.close()


@pytest.mark.parametrize("connection", [None, "close"])
def test_polling_requests(target: Target, connection: str | None) -> None:
    """The handshake, a POST and a GET answered at once: close announced, or the connection reused."""
    client = target.client()
    try:
        sid, response = target.handshake(client, connection)
        assert response.announces_close == (connection == "close" or target.name not in KEEPS_ALIVE)
        client.follow(response)
        query = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
        for method, body, answer in [("POST", b"4hello", b"ok"), ("GET", b"", b"4hello")]:
            client.close()
            client = target.client()
            response = client.request(method, query, body, connection)
            assert (response.status, response.body) == (200, answer)
            assert response.announces_close == (connection == "close" or target.name not in KEEPS_ALIVE)
            client.follow(response)
    finally:
        client.close()


def test_held_get_announces_close(target: Target) -> None:
    """A GET held for later is answered with ``Connection: close`` (it left its server), then EOF."""
    client = target.client()
    poster = target.client()
    try:
        sid, _ = _session_on(target)
        query = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
        client.send("GET", query, connection="keep-alive")
        # Nothing can answer it before the POST below: it is held.
        client.sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            client.sock.recv(1)
        client.sock.settimeout(TIMEOUT)
        posted = poster.request("POST", query, b"4later")
        assert (posted.status, posted.body) == (200, b"ok")
        poster.follow(posted)
        held = client.response()
        assert (held.status, held.body) == (200, b"4later")
        assert held.headers.get("connection") == "close"
        client.assert_eof()
    finally:
        client.close()
        poster.close()


# -- a second WebSocket for a session that is being upgraded ------------------------------------


@pytest.fixture(scope="module")
def wsgiref_port() -> Iterator[int]:
    eio = EngineIOServer(EchoHandler(), plain_page, ping_interval=25, ping_timeout=20)
    with serve("wsgiref", eio) as running:
        yield running.port
        eio.close()


def _session(port: int) -> tuple[str, Response]:
    client = Client(port)
    try:
        return Target("wsgiref", port).handshake(client, "close")
    finally:
        client.close()


def _ws(port: int, sid: str) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket&sid={sid}", open_timeout=TIMEOUT)


def _closed_within(ws: ClientConnection, timeout: float) -> bool:
    try:
        ws.recv(timeout)
    except ConnectionClosed:
        return True
    except TimeoutError:
        return False
    raise AssertionError("a refused WebSocket got a message")


def test_second_websocket_is_refused_after_the_probe_answer(wsgiref_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the probe's answer can close the second one within the test.
    monkeypatch.setattr(session_module, "_REFUSAL_WAIT", 60.0)
    sid, _ = _session(wsgiref_port)
    with _ws(wsgiref_port, sid) as probe, _ws(wsgiref_port, sid) as second:
        # The second waits while the probe has not been answered...
        assert not _closed_within(second, 0.2)
        probe.send("2probe")
        assert probe.recv(TIMEOUT) == "3probe"
        # ...and is closed once it has been (before the client's upgrade packet).
        assert _closed_within(second, TIMEOUT)
        probe.send("5")
        probe.send("4hello")
        assert probe.recv(TIMEOUT) == "4hello"
        # After the upgrade, a further one is closed at once.
        with _ws(wsgiref_port, sid) as third:
            assert _closed_within(third, TIMEOUT)
        probe.send("4still")
        assert probe.recv(TIMEOUT) == "4still"


def test_second_websocket_waits_for_the_probe_answer_a_bounded_time(
    wsgiref_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_module, "_REFUSAL_WAIT", 0.05)
    sid, _ = _session(wsgiref_port)
    with _ws(wsgiref_port, sid) as probe, _ws(wsgiref_port, sid) as second:
        assert _closed_within(second, TIMEOUT)
        # The probe is still the probe.
        probe.send("2probe")
        assert probe.recv(TIMEOUT) == "3probe"


def test_the_first_upgrade_request_is_the_probe() -> None:
    """Which WebSocket probes is decided by the order of the upgrade requests, not by their opened()."""
    eio = EngineIOServer(EchoHandler(), plain_page)
    # A session, without a server: the claims are made on the request threads.
    session = eio._open({"REQUEST_METHOD": "GET", "wsgi.url_scheme": "http"}, "polling")
    assert not isinstance(session, tuple)
    try:
        assert session._claim_probe()
        assert not session._claim_probe()
        session._unclaim_probe()  # the first upgrade failed: another may probe
        assert session._claim_probe()
        stub: Any = object()
        session._refusal_due(stub)  # a timer for a WebSocket closed already: nothing to do
    finally:
        session.close()
    # The claimed probe opens after the session ended: it is refused, and the claim dropped.
    assert not session._start_probe(stub)
    assert not session._probe_claimed


def test_probe_refusals_end_with_the_session(wsgiref_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "_REFUSAL_WAIT", 60.0)
    sid, _ = _session(wsgiref_port)
    with _ws(wsgiref_port, sid) as probe, _ws(wsgiref_port, sid) as second:
        assert not _closed_within(second, 0.2)
        probe.close()  # the probe leaves without an answer: the refused one closes too
        assert _closed_within(second, TIMEOUT)


def test_compression_option(wsgiref_port: int) -> None:
    """permessage-deflate is offered by default; ``compression=False`` (the reference server's default) turns it off."""
    with connect(f"ws://127.0.0.1:{wsgiref_port}/engine.io/?EIO=4&transport=websocket", open_timeout=TIMEOUT) as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
    eio = EngineIOServer(EchoHandler(), plain_page, compression=False)
    with serve("wsgiref", eio) as running:
        with connect(f"ws://127.0.0.1:{running.port}/engine.io/?EIO=4&transport=websocket", open_timeout=TIMEOUT) as ws:
            assert ws.response is not None and "Sec-WebSocket-Extensions" not in ws.response.headers
            assert ws.recv(TIMEOUT)[0] == "0"
        eio.close()


def _upgraded_with_grace(port: int, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ClientConnection]:
    """A session upgraded to WebSocket (probe, ``3probe``, ``5``), refusals held 1 s after the answer."""
    monkeypatch.setattr(session_module, "_ANSWER_GRACE", 1.0)
    sid, _ = _session(port)
    probe = _ws(port, sid)
    try:
        probe.send("2probe")
        assert probe.recv(TIMEOUT) == "3probe"
        probe.send("5")
    except BaseException:
        probe.close()
        raise
    return sid, probe


def test_refusal_right_after_the_answer_waits_a_moment(wsgiref_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A WebSocket refused just after the probe's answer is closed a moment later, not before it."""
    sid, probe = _upgraded_with_grace(wsgiref_port, monkeypatch)
    with probe:
        with _ws(wsgiref_port, sid) as second:
            assert not _closed_within(second, 0.05)
            assert _closed_within(second, TIMEOUT)
        probe.send("4hello")
        assert probe.recv(TIMEOUT) == "4hello"


def _gevent_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    if environ["PATH_INFO"] == "/upgrade":
        # A 101 from the application itself: its Connection header stays as given.
        start_response("101 Switching Protocols", [("Upgrade", "x-test"), ("Connection", "Upgrade")])
        return
    if environ["PATH_INFO"] == "/keep":
        # The application asks for keep-alive; the client asked for close.
        start_response("200 OK", [("Content-Length", "4"), ("Connection", "keep-alive")])
    else:
        start_response("200 OK", [("Content-Type", "text/plain")])  # no length
    yield b"body"


@pytest.mark.skipif("gevent" not in available(), reason="gevent is not installed")
def test_gevent_says_when_it_closes() -> None:
    with serve("gevent", _gevent_app) as running:
        # HTTP/1.0 keep-alive, but a body without a length: it ends with the connection.
        with socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            assert Response(head, body).announces_close and body == b"body"
        # HTTP/1.0 without keep-alive: pywsgi says close itself, once.
        with socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /stream HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            assert data.lower().count(b"connection: close") == 1
        with socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            assert data.startswith(b"HTTP/1.1 101") and data.lower().count(b"connection:") == 1
        client = Client(running.port)
        try:
            response = client.request("GET", "/keep", connection="close")
            assert response.headers["connection"] == "close" and response.body == b"body"
            client.assert_eof()
        finally:
            client.close()
        # HTTP/1.1 without a length: chunked, and the connection is kept.
        with socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT) as sock:
            sock.sendall(
                b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /keep HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            assert data.count(b"HTTP/1.1 200 OK") == 2 and b"Transfer-Encoding: chunked" in data
            assert data.split(b"\r\n\r\n", 1)[0].lower().count(b"connection:") == 0


def test_get_refused_right_after_the_upgrade_waits_a_moment(wsgiref_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A polling GET refused because of an upgrade just done is answered (400) a moment after the probe's answer."""
    sid, probe = _upgraded_with_grace(wsgiref_port, monkeypatch)
    with probe:
        probe.send("4hello")
        assert probe.recv(TIMEOUT) == "4hello"  # upgraded
        client = Client(wsgiref_port)
        try:
            client.send("GET", f"/engine.io/?EIO=4&transport=polling&sid={sid}")
            client.sock.settimeout(0.05)
            with pytest.raises(TimeoutError):
                client.sock.recv(1)
            client.sock.settimeout(TIMEOUT)
            response = client.response()
            assert response.status == 400 and json.loads(response.body) == {"code": 3, "message": "Bad request"}
            assert response.headers["connection"] == "close"
            client.assert_eof()
        finally:
            client.close()
