"""Test a WSGI application's WebSocket routes without a server or a port.

:func:`websocket_connect` calls the application (or a WebTest ``TestApp``'s
application) with a WebSocket upgrade request, through the real middleware
and manager. The connection is one end of a socket pair: the middleware
detaches the other end through :class:`SocketPairHandover` as it would a
server's socket, writes its 101 there and hands it to the manager; this end
becomes a connected :class:`~ws4py_integrations.client.WebSocketClient`.
A refused handshake comes back as a response (WebTest's ``TestResponse``
when WebTest is installed) inside :class:`HandshakeRefused`, or, with
:func:`websocket_request`, as the return value.

Example, beside WebTest's HTTP tests::

    from webtest import TestApp
    from ws4py_integrations.testing import websocket_connect

    app = TestApp(make_app())
    assert app.get("/").status_int == 200
    with websocket_connect(app, "/ws") as ws:
        ws.send("hello")
        assert ws.receive(timeout=5).data == "hello"
"""

from __future__ import annotations

import io
import socket
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.uri import parse_uri

from .adapter import HANDOVER_KEY, Handover
from .client import (
    InvalidStatus,
    WebSocketClient,
    _check_101,
    _Deadline,
    _Opened,
    _parse_head,
    _read_head,
)
from .manager import Manager

__all__ = [
    "HandshakeRefused",
    "RefusedResponse",
    "SocketPairHandover",
    "websocket_connect",
    "websocket_request",
]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SocketPairHandover(Handover):
    """A :class:`~ws4py_integrations.adapter.Handover` over one end of a socket pair.

    :meth:`detach` gives the middleware ``sock`` and ``buffered`` (bytes "the
    server" had read past the request head); the test holds the other end.
    :attr:`detached` counts the calls.
    """

    def __init__(
        self,
        sock: socket.socket,
        buffered: bytes = b"",
        manager: Manager | None = None,
        raw_headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.sock = sock
        self.buffered = buffered
        self.manager = manager
        self.raw_headers = raw_headers
        self.detached = 0

    def detach(self) -> tuple[socket.socket, bytes]:
        self.detached += 1
        return self.sock, self.buffered


@dataclass
class RefusedResponse:
    """A refused handshake's response, for when WebTest is not installed
    (with the attributes of WebTest's ``TestResponse`` that matter here)."""

    status: str
    headerlist: list[tuple[str, str]]
    body: bytes
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.headers = {name.title(): value for name, value in self.headerlist}

    @property
    def status_int(self) -> int:
        return int(self.status.split(" ", 1)[0])

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class HandshakeRefused(InvalidStatus):
    """The application refused the upgrade; ``response`` is its answer."""

    def __init__(self, response: Any) -> None:
        super().__init__(
            f"the application refused the WebSocket upgrade: {response.status}",
            response.status_int,
            list(response.headerlist),
            response.body,
        )
        self.response = response


def _response(status: str, headers: list[tuple[str, str]], body: bytes) -> Any:
    try:
        from webtest import TestResponse  # type: ignore[import-untyped]
    except ImportError:
        return RefusedResponse(status, headers, body)
    return TestResponse(body=body, status=status, headerlist=headers)


def _environ(
    path: str,
    headers: Sequence[tuple[str, str]],
    extra_environ: Mapping[str, Any],
    handover: Handover,
) -> dict[str, Any]:
    path_info, _, query = path.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": urllib.parse.unquote(path_info) or "/",
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            key = "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ.update(extra_environ)
    environ[HANDOVER_KEY] = handover
    return environ


def websocket_request(
    app: Any,
    path: str = "/",
    *,
    protocols: Sequence[str] | None = None,
    headers: Sequence[tuple[str, str]] = (),
    compression: bool = True,
    extra_environ: Mapping[str, Any] | None = None,
    manager: Manager | None = None,
    client_cls: type[WebSocketClient] = WebSocketClient,
    timeout: float = 5.0,
    **options: Any,
) -> Any:
    """Send an upgrade request for ``path`` to ``app`` (a WSGI application or a
    WebTest ``TestApp``, whose ``extra_environ`` applies too).

    Returns a connected ``client_cls`` instance when the application accepts
    it, else the response (WebTest's ``TestResponse`` if installed, else a
    :class:`RefusedResponse`). ``manager`` runs both ends (by default the
    application's own or the process default for its end, the client
    manager for ours); ``options`` go to the client
    (:class:`~ws4py_integrations.WebSocketOptions` fields).
    """
    wsgi_app: WSGIApp = getattr(app, "app", app)
    environ_base: dict[str, Any] = dict(getattr(app, "extra_environ", None) or {})
    environ_base.update(extra_environ or {})
    protocol = ClientProtocol(
        parse_uri("ws://localhost" + (path if path.startswith("/") else "/" + path)),
        extensions=[ClientPerMessageDeflateFactory()] if compression else None,
        subprotocols=list(protocols) if protocols else None,  # type: ignore[arg-type]
    )
    request = protocol.connect()
    for name, value in headers:
        request.headers[name] = value
    raw_headers = list(request.headers.raw_items())
    ours, theirs = socket.socketpair()
    handover = SocketPairHandover(theirs, manager=manager, raw_headers=raw_headers)
    environ = _environ(path, raw_headers, environ_base, handover)
    captured: list[Any] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured[:] = [status, list(response_headers)]
        return lambda data: None

    try:
        result = wsgi_app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except BaseException:
        ours.close()
        if not handover.detached:
            theirs.close()
        raise
    if not handover.detached:
        ours.close()
        theirs.close()
        status, response_headers = captured if captured else ("500 Internal Server Error", [])
        return _response(status, response_headers, body)
    try:
        deadline = _Deadline(timeout, f"the opening handshake with {path}")
        head, rest = _read_head(ours, deadline)
        status_code, reason, answer = _parse_head(head)
        if status_code != 101:
            # The handler could not be created: the middleware answered on the socket.
            return _response(f"{status_code} {reason}", answer, rest)
        _check_101(protocol, status_code, reason, answer)
    except BaseException:
        ours.close()
        raise
    client = client_cls(f"ws://localhost{path}", protocols, headers, manager=manager, **options)
    client._attach(_Opened(ours, rest, list(protocol.extensions), protocol.subprotocol, answer, client.url))
    return client


def websocket_connect(app: Any, path: str = "/", **kwargs: Any) -> WebSocketClient:
    """:func:`websocket_request`, for an upgrade that must succeed: returns the
    connected client, raises :class:`HandshakeRefused` (with ``response``) if refused."""
    result = websocket_request(app, path, **kwargs)
    if isinstance(result, WebSocketClient):
        return result
    raise HandshakeRefused(result)
