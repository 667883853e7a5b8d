"""The client side: ws4py's ``WebSocketClient``, run by the same managers as servers.

The opening handshake is done in :meth:`WebSocketClient.connect`, blocking,
within ``connect_timeout`` and ``handshake_timeout``; then the socket is
handed to a manager (:class:`~ws4py_integrations.ThreadedManager`, or
:class:`~ws4py_integrations.gevent.GeventManager` under gevent), which runs
every client connection of the process on its I/O loop: no thread per
connection.

Every way the handshake can fail raises an :class:`InvalidHandshake`
subclass, with the server's ``status``, ``headers`` and ``body`` when it
answered at all.
"""

from __future__ import annotations

import base64
import collections
import logging
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake as _WsInvalidHandshake
from websockets.exceptions import InvalidHeader, InvalidUpgrade, NegotiationError
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from .connection import Connection
from .events import Message
from .exceptions import WebSocketError
from .handshake import Accept
from .manager import Manager, ThreadedManager
from .options import WebSocketOptions
from .protocol import ClientMessageProtocol
from .websocket import WebSocket

if TYPE_CHECKING:
    from .manager.base import Manager as _Manager

__all__ = [
    "ClientConnection",
    "ConnectionClosedDuringHandshake",
    "ConnectionFailed",
    "HandshakeTimeout",
    "InvalidAccept",
    "InvalidHandshake",
    "InvalidResponse",
    "InvalidStatus",
    "NegotiationFailed",
    "ProxyError",
    "RedirectRefused",
    "TLSVerificationFailed",
    "TooManyRedirects",
    "WebSocketClient",
    "client_manager",
    "open_connection",
]

logger = logging.getLogger("ws4py_integrations.client")

#: Largest response head (status line and headers) accepted from a server.
MAX_HEAD = 64 * 1024
#: Largest body kept from a refusal (the rest is not read).
MAX_BODY = 64 * 1024
# How long a refusal's body without Content-Length may take to end.
_BODY_GRACE = 0.5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


# -- exceptions ---------------------------------------------------------------------


class InvalidHandshake(WebSocketError):
    """The connection could not be opened; every :meth:`WebSocketClient.connect` failure.

    ``status``, ``headers`` and ``body`` are the server's answer when it gave
    one (``None``, ``[]`` and ``b""`` otherwise).
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = list(headers)
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` in the answer (any case), or ``None``."""
        lower = name.lower()
        return next((value for key, value in self.headers if key.lower() == lower), None)


class ConnectionFailed(InvalidHandshake):
    """TCP, DNS or TLS failed before a handshake could start (``__cause__`` says why)."""


class TLSVerificationFailed(ConnectionFailed):
    """The server's certificate is not trusted or does not name the host."""


class HandshakeTimeout(InvalidHandshake, TimeoutError):
    """``connect_timeout`` or ``handshake_timeout`` elapsed."""


class ProxyError(InvalidHandshake):
    """The HTTP proxy refused the ``CONNECT`` (``status`` is its answer) or broke off."""


class InvalidResponse(InvalidHandshake):
    """The answer is not HTTP (or not a valid WebSocket 101): probably not a WebSocket server."""


class ConnectionClosedDuringHandshake(InvalidResponse):
    """The server closed the connection before its answer was complete."""


class InvalidStatus(InvalidHandshake):
    """The server answered with another status than 101 (it refused, or is no WebSocket server)."""


class RedirectRefused(InvalidStatus):
    """A 3xx redirect, refused (``follow_redirects=False``); ``location`` is where it points."""

    @property
    def location(self) -> str | None:
        return self.header("Location")


class TooManyRedirects(InvalidStatus):
    """More than ``max_redirects`` redirects in a row."""


class InvalidAccept(InvalidResponse):
    """The 101's ``Sec-WebSocket-Accept`` does not match our key (a cache or broken server)."""


class NegotiationFailed(InvalidResponse):
    """The 101 selects an extension or subprotocol we did not offer, or invalid parameters."""


# -- the engine ----------------------------------------------------------------------


class ClientConnection(Connection):
    """A :class:`~ws4py_integrations.connection.Connection` on the client side:
    frames it sends are masked, frames it receives must not be."""

    __slots__ = ()

    def __init__(
        self,
        sock: socket.socket,
        client: WebSocket,
        options: WebSocketOptions,
        manager: _Manager,
        extensions: list[Extension],
        subprotocol: str | None,
        environ: dict[str, Any] | None = None,
    ) -> None:
        def bind(connection: Connection, manager: _Manager) -> WebSocket:
            client._connection = connection
            client.manager = manager
            return client

        accept = Accept(headers=[], subprotocol=subprotocol, extensions=list(extensions))
        super().__init__(sock, accept, options, environ or {}, manager, cast("type[WebSocket]", bind))
        # The server-side protocol built above has not seen a byte: swap it.
        self.protocol = ClientMessageProtocol.connected(
            list(extensions), subprotocol, options.max_message_size, self.protocol.logger
        )

    def send_message(self, payload: bytes, text: bool) -> None:
        self.send_frames([Frame(Opcode.TEXT if text else Opcode.BINARY, payload)])

    def send_frames(self, frames: list[Frame]) -> None:
        with self.lock:
            if self._close_queued or self.finalized or self._over_send_limit():
                raise self._closed_error()
            extensions = self.protocol.extensions
            for frame in frames:
                self._queue(frame.serialize(mask=True, extensions=extensions))
            self.messages_out += 1
            self._flush()

    def send_encoded(self, frame: bytes) -> bool:
        # A broadcast is encoded unmasked, for server connections: not for us.
        return False

    def _dispatch(self, callback: Any, *args: Any) -> None:
        try:
            super()._dispatch(callback, *args)
        finally:
            if getattr(callback, "__name__", None) == "closed":
                # After closed(), even one a subclass overrode: wake run_forever() and receive().
                finish = getattr(self.websocket, "_finish", None)
                if finish is not None:
                    finish()


_client_manager: Manager | None = None
_client_manager_lock = threading.Lock()


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


def client_manager() -> Manager:
    """The process-wide manager of client connections, created on first use: a
    :class:`~ws4py_integrations.gevent.GeventManager` when gevent patched the
    socket module, else a :class:`~ws4py_integrations.ThreadedManager`."""
    global _client_manager
    with _client_manager_lock:
        if _client_manager is None or not _client_manager.accepting:
            if _gevent_patched():
                from .manager.gevent import GeventManager

                _client_manager = GeventManager(name="ws4py-client")
            else:
                _client_manager = ThreadedManager(name="ws4py-client")
        return _client_manager


# -- the handshake -------------------------------------------------------------------


class _Deadline:
    def __init__(self, seconds: float | None, what: str) -> None:
        self.end = None if seconds is None else time.monotonic() + seconds
        self.what = what
        self.seconds = seconds

    def remaining(self) -> float | None:
        if self.end is None:
            return None
        left = self.end - time.monotonic()
        if left <= 0:
            raise HandshakeTimeout(f"{self.what} timed out after {self.seconds}s")
        return left


def _recv(sock: socket.socket, deadline: _Deadline) -> bytes:
    sock.settimeout(deadline.remaining())
    try:
        return sock.recv(65536)
    except TimeoutError:
        raise HandshakeTimeout(f"{deadline.what} timed out after {deadline.seconds}s") from None


def _read_head(sock: socket.socket, deadline: _Deadline, first: bytes = b"") -> tuple[bytes, bytes]:
    """Read an HTTP response head; returns it (without the blank line) and the bytes after it."""
    data = first
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            return data[:end], data[end + 4 :]
        if len(data) > MAX_HEAD:
            raise InvalidResponse(f"the response head is larger than {MAX_HEAD} bytes: not a WebSocket server")
        try:
            chunk = _recv(sock, deadline)
        except OSError as exc:
            if isinstance(exc, HandshakeTimeout):
                raise
            raise ConnectionClosedDuringHandshake(f"the connection failed during the handshake: {exc}") from exc
        if not chunk:
            if not data:
                raise ConnectionClosedDuringHandshake("the server closed the connection without answering")
            raise ConnectionClosedDuringHandshake(
                f"the server closed the connection in the middle of its answer ({len(data)} bytes)"
            )
        data += chunk


def _parse_head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not (parts[1].isdigit() and len(parts[1]) == 3):
        raise InvalidResponse(f"not an HTTP response: {lines[0][:80]!r} (is this a WebSocket server?)")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise InvalidResponse(f"invalid header line in the response: {line[:80]!r}")
        headers.append((name, value.strip(" \t")))
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


def _read_body(sock: socket.socket, headers: list[tuple[str, str]], rest: bytes, deadline: _Deadline) -> bytes:
    """The body of a refusal, as much as arrives within the deadline and MAX_BODY."""
    length_value = next((v for k, v in headers if k.lower() == "content-length"), None)
    length = int(length_value) if length_value is not None and length_value.isdigit() else None
    chunked = any(k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in headers)
    want = min(length, MAX_BODY) if length is not None and not chunked else MAX_BODY
    if length is None or chunked:
        # Delimited by the end of the connection or the last chunk: wait a moment for it, no more.
        deadline = _Deadline(min(deadline.remaining() or _BODY_GRACE, _BODY_GRACE), deadline.what)
    body = rest
    while len(body) < want and not (chunked and b"0\r\n\r\n" in body):
        try:
            chunk = _recv(sock, deadline)
        except (HandshakeTimeout, OSError):
            break  # the status is what matters; the body is a courtesy
        if not chunk:
            break
        body += chunk
    return _dechunk(body)[:want] if chunked else body[:want]


def _dechunk(data: bytes) -> bytes:
    """The payload of chunked ``data`` (as much as is complete)."""
    out, pos = bytearray(), 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            break
        try:
            size = int(data[pos:end].split(b";")[0], 16)
        except ValueError:
            break
        if size == 0 or end + 2 + size > len(data):
            break
        out += data[end + 2 : end + 2 + size]
        pos = end + 4 + size
    return bytes(out)


def _header_value(headers: list[tuple[str, str]], name: str) -> str | None:
    lower = name.lower()
    return next((v for k, v in headers if k.lower() == lower), None)


def _open_socket(
    host: str,
    port: int,
    proxy: str | None,
    connect_timeout: float | None,
    proxy_headers: Sequence[tuple[str, str]] = (),
) -> socket.socket:
    """A TCP connection to ``host:port``, through ``proxy`` (HTTP CONNECT) if given."""
    target = (host, port)
    proxy_url = urllib.parse.urlsplit(proxy) if proxy is not None else None
    if proxy_url is not None:
        if proxy_url.scheme != "http" or not proxy_url.hostname:
            raise ValueError(f"proxy must be an http://host:port URL, not {proxy!r}")
        target = (proxy_url.hostname, proxy_url.port or 80)
    deadline = _Deadline(
        connect_timeout, "connecting to " + ("the proxy " if proxy else "") + f"{target[0]}:{target[1]}"
    )
    try:
        sock = socket.create_connection(target, timeout=deadline.remaining())
    except TimeoutError as exc:
        raise HandshakeTimeout(f"{deadline.what} timed out after {connect_timeout}s") from exc
    except OSError as exc:
        raise ConnectionFailed(f"cannot connect to {target[0]}:{target[1]}: {exc}") from exc
    if proxy_url is None:
        return sock
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if proxy_url.username is not None:
            credentials = f"{urllib.parse.unquote(proxy_url.username)}:{urllib.parse.unquote(proxy_url.password or '')}"
            lines.append(f"Proxy-Authorization: Basic {base64.b64encode(credentials.encode()).decode()}")
        lines.extend(f"{name}: {value}" for name, value in proxy_headers)
        sock.settimeout(deadline.remaining())
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head, rest = _read_head(sock, deadline)
        status, reason, headers = _parse_head(head)
        if not 200 <= status < 300:
            body = _read_body(sock, headers, rest, deadline)
            raise ProxyError(f"the proxy refused CONNECT {authority}: {status} {reason}", status, headers, body)
        if rest:
            raise ProxyError("the proxy sent bytes before the tunnel was used")
    except InvalidHandshake as exc:
        sock.close()
        if isinstance(exc, (ProxyError, HandshakeTimeout)):
            raise
        raise ProxyError(f"the proxy broke off the CONNECT: {exc}") from exc
    except OSError as exc:
        sock.close()
        raise ProxyError(f"the proxy broke off the CONNECT: {exc}") from exc
    return sock


class _Opened:
    """What a successful handshake leaves: the socket and what was negotiated."""

    def __init__(
        self,
        sock: socket.socket,
        buffered: bytes,
        extensions: list[Extension],
        subprotocol: str | None,
        headers: list[tuple[str, str]],
        url: str,
    ) -> None:
        self.sock = sock
        self.buffered = buffered
        self.extensions = extensions
        self.subprotocol = subprotocol
        self.headers = headers
        self.url = url


def _check_101(protocol: ClientProtocol, status: int, reason: str, answer: list[tuple[str, str]]) -> None:
    """Validate a 101 answer (Upgrade, Sec-WebSocket-Accept, the negotiation) with websockets'
    rules; ``protocol.extensions`` and ``.subprotocol`` hold the outcome."""
    response_headers = Headers()
    for name, value in answer:
        response_headers[name] = value
    try:
        protocol.process_response(Response(status, reason, response_headers))
    except InvalidUpgrade as exc:
        raise InvalidResponse(f"invalid 101: {exc}", status, answer) from exc
    except InvalidHeader as exc:
        if "Accept" in str(exc):
            raise InvalidAccept(
                f"missing or wrong Sec-WebSocket-Accept in the 101 ({exc}): the answer is not for our request",
                status,
                answer,
            ) from exc
        raise NegotiationFailed(f"invalid 101: {exc}", status, answer) from exc
    except (NegotiationError, _WsInvalidHandshake) as exc:
        raise NegotiationFailed(f"the server's choice is not one we offered: {exc}", status, answer) from exc


def _handshake(
    url: str,
    *,
    protocols: Sequence[str] | None,
    headers: Sequence[tuple[str, str]],
    origin: str | None,
    compression: bool,
    max_message_size: int | None,
    ssl_context: ssl.SSLContext | None,
    proxy: str | None,
    connect_timeout: float | None,
    handshake_timeout: float | None,
) -> _Opened | tuple[int, str]:
    """One handshake; a redirect comes back as ``(status, location)``."""
    try:
        uri = parse_uri(url)
    except Exception as exc:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r} ({exc})") from None
    sock = _open_socket(uri.host, uri.port, proxy, connect_timeout)
    try:
        deadline = _Deadline(handshake_timeout, f"the opening handshake with {url}")
        if uri.secure:
            context = ssl_context if ssl_context is not None else ssl.create_default_context()
            sock.settimeout(deadline.remaining())
            try:
                sock = context.wrap_socket(sock, server_hostname=uri.host)
            except ssl.SSLCertVerificationError as exc:
                raise TLSVerificationFailed(
                    f"TLS: the certificate of {uri.host} is not valid: {exc.verify_message}"
                ) from exc
            except TimeoutError as exc:
                raise HandshakeTimeout(f"{deadline.what} timed out during TLS after {handshake_timeout}s") from exc
            except (ssl.SSLError, OSError) as exc:
                raise ConnectionFailed(f"TLS with {uri.host}:{uri.port} failed: {exc}") from exc
        factories = [ClientPerMessageDeflateFactory()] if compression else None
        protocol = ClientProtocol(
            uri,
            origin=origin,  # type: ignore[arg-type]
            extensions=factories,
            subprotocols=list(protocols) if protocols else None,  # type: ignore[arg-type]
            max_size=max_message_size,
        )
        request = protocol.connect()
        for name, value in headers:
            request.headers[name] = value
        sock.settimeout(deadline.remaining())
        try:
            sock.sendall(request.serialize())
        except OSError as exc:
            # The request is small: the socket takes it at once unless the peer is gone.
            raise ConnectionClosedDuringHandshake(f"the server closed the connection: {exc}") from exc
        head, rest = _read_head(sock, deadline)
        status, reason, answer = _parse_head(head)
        if status != 101:
            location = _header_value(answer, "Location")
            if status in _REDIRECTS and location is not None:
                sock.close()
                return status, urllib.parse.urljoin(url.replace("ws", "http", 1), location)
            body = _read_body(sock, answer, rest, deadline)
            raise InvalidStatus(
                f"the server refused the WebSocket handshake: {status} {reason}"
                + ("" if 400 <= status < 600 else " (is this a WebSocket server?)"),
                status,
                answer,
                body,
            )
        _check_101(protocol, status, reason, answer)
        return _Opened(sock, rest, list(protocol.extensions), protocol.subprotocol, answer, url)
    except BaseException:
        sock.close()
        raise


def open_connection(
    url: str,
    *,
    protocols: Sequence[str] | None = None,
    headers: Sequence[tuple[str, str]] = (),
    origin: str | None = None,
    compression: bool = True,
    max_message_size: int | None = 2**20,
    ssl_context: ssl.SSLContext | None = None,
    proxy: str | None = None,
    connect_timeout: float | None = 10.0,
    handshake_timeout: float | None = 10.0,
    follow_redirects: bool = False,
    max_redirects: int = 5,
) -> _Opened:
    """Open a TCP (or TLS) connection to ``url`` and do the opening handshake (blocking)."""
    seen = 0
    while True:
        result = _handshake(
            url,
            protocols=protocols,
            headers=headers,
            origin=origin,
            compression=compression,
            max_message_size=max_message_size,
            ssl_context=ssl_context,
            proxy=proxy,
            connect_timeout=connect_timeout,
            handshake_timeout=handshake_timeout,
        )
        if isinstance(result, _Opened):
            return result
        status, location = result
        if not follow_redirects:
            raise RedirectRefused(
                f"the server redirects ({status}) to {location}; pass follow_redirects=True to follow",
                status,
                [("Location", location)],
            )
        seen += 1
        if seen > max_redirects:
            raise TooManyRedirects(
                f"more than {max_redirects} redirects (last: {location})", status, [("Location", location)]
            )
        target = redirect_target(url, status, location)
        logger.info("following a %d redirect from %s to %s", status, url, target)
        url = target


def redirect_target(url: str, status: int, location: str) -> str:
    """The WebSocket URL a redirect from ``url`` to ``location`` (absolute) leads to;
    :class:`InvalidStatus` for another scheme, or from ``wss://`` down to ``ws://``."""
    target = location.replace("http", "ws", 1) if location.startswith("http") else location
    if not target.startswith(("ws://", "wss://")):
        raise InvalidStatus(f"the server redirects ({status}) to a non-WebSocket URL: {location}", status)
    if url.startswith("wss://") and target.startswith("ws://"):
        raise InvalidStatus(f"refusing a redirect from wss:// to plain ws:// ({location})", status)
    return target


# -- the client ----------------------------------------------------------------------

_CLOSED = object()


class WebSocketClient(WebSocket):
    """A WebSocket client with ws4py's interface, run by a shared manager.

    Subclass it and override :meth:`opened`, :meth:`received_message`,
    :meth:`closed` and :meth:`ponged` (callbacks run on the manager, one at a
    time per connection, as on the server side); or use it from a script
    with :meth:`receive` and iteration, which see every message as long as
    :meth:`received_message` is not overridden (or calls ``super()``).

    ``protocols`` are the subprotocols offered, ``headers`` extra request
    headers. Keyword options of :class:`~ws4py_integrations.WebSocketOptions`
    that apply to a connection's traffic are accepted (``max_message_size``,
    ``ping_interval``, ``ping_timeout``, ``read_timeout``,
    ``close_timeout``, ``max_send_buffer``, ``max_queue``, ``compression``).

    Example::

        ws = WebSocketClient("ws://127.0.0.1:8080/echo")
        ws.connect()
        ws.send("hello")
        print(ws.receive(timeout=5).data)
        ws.close()
    """

    def __init__(
        self,
        url: str,
        protocols: Sequence[str] | None = None,
        headers: Sequence[tuple[str, str]] | None = None,
        *,
        origin: str | None = None,
        manager: Manager | None = None,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = None,
        connect_timeout: float | None = 10.0,
        handshake_timeout: float | None = 10.0,
        follow_redirects: bool = False,
        max_redirects: int = 5,
        options: WebSocketOptions | None = None,
        **kwargs: Any,
    ) -> None:
        self.url = url
        self.protocols = list(protocols) if protocols else None
        self.extra_headers = list(headers or [])
        self.origin = origin
        self.ssl_context = ssl_context
        self.proxy = proxy
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.options = WebSocketOptions.from_kwargs(options, **kwargs)
        self._manager = manager
        #: The 101's headers once connected.
        self.response_headers: list[tuple[str, str]] = []
        self._inbox: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._done = False

    # -- actions -------------------------------------------------------------------

    def connect(self) -> None:
        """Open the connection (blocking, within the timeouts); :meth:`opened` follows.

        Raises an :class:`InvalidHandshake` subclass when it cannot.
        """
        if getattr(self, "_connection", None) is not None:
            raise RuntimeError("this client is already connected; create a new one to reconnect")
        opened = open_connection(
            self.url,
            protocols=self.protocols,
            headers=self.extra_headers,
            origin=self.origin,
            compression=self.options.compression,
            max_message_size=self.options.max_message_size,
            ssl_context=self.ssl_context,
            proxy=self.proxy,
            connect_timeout=self.connect_timeout,
            handshake_timeout=self.handshake_timeout,
            follow_redirects=self.follow_redirects,
            max_redirects=self.max_redirects,
        )
        self._attach(opened)

    def _attach(self, opened: _Opened) -> None:
        """Hand the connection of a completed handshake to the manager; ``opened()`` follows."""
        self.response_headers = opened.headers
        manager = self._manager if self._manager is not None else client_manager()
        conn = ClientConnection(
            opened.sock,
            self,
            self.options,
            manager,
            opened.extensions,
            opened.subprotocol,
            {"ws4py_integrations.url": opened.url},
        )
        manager.run(conn, opened.buffered)

    def run_forever(self, timeout: float | None = None) -> bool:
        """Block until the connection is closed (``closed()`` has run); ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._done:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def receive(self, timeout: float | None = None) -> Message | None:
        """The next message, waiting up to ``timeout`` seconds (``TimeoutError``
        after that); ``None`` once the connection is closed and every message read."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._inbox:
                if self._done:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no message within {timeout}s")
                self._cond.wait(remaining)
            item = self._inbox.popleft()
        return cast("Message", item)

    def __iter__(self) -> Iterator[Message]:
        while True:
            message = self.receive()
            if message is None:
                return
            yield message

    def __enter__(self) -> WebSocketClient:
        if getattr(self, "_connection", None) is None:
            self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
        self.run_forever(self.options.close_timeout + 1.0)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; :meth:`closed` follows. Idempotent."""
        if getattr(self, "_connection", None) is not None:
            self._connection.close(code, reason)

    # -- callbacks (defaults feed receive()) -----------------------------------------

    def received_message(self, message: Message) -> None:
        """A message arrived; by default it waits for :meth:`receive`."""
        with self._cond:
            self._inbox.append(message)
            self._cond.notify()

    def _finish(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()

    # -- state ------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"connecting"`` before :meth:`connect` succeeded, then as :attr:`WebSocket.state`."""
        if getattr(self, "_connection", None) is None:
            return "connecting"
        return super().state

    @property
    def peer_address(self) -> Any:
        return self._connection.peer_address if getattr(self, "_connection", None) is not None else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} {self.state}>"
