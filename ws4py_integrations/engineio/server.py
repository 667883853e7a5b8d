"""The Engine.IO v4 server: a WSGI application."""

from __future__ import annotations

import enum
import functools
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from ..adapter import HANDOVER_KEY, Handover
from ..connection import connection_environ
from ..handshake import Reject, _check_host, _origin_allowed, is_upgrade_request
from ..manager import Manager
from ..middleware import StartResponse, WebSocketWSGIApplication, WSGIApp, default_manager
from ..options import OriginPolicy
from .packets import PacketError, decode_payload
from .session import (
    BAD_REQUEST,
    SESSION_KEY,
    BlockingPoll,
    EngineIOHandler,
    EngineIOSocket,
    HeldPoll,
    Refuse,
    _EngineWebSocket,
    open_packet,
)

__all__ = ["EchoHandler", "EngineIOServer", "ErrorCode"]

logger = logging.getLogger("ws4py_integrations.engineio")

TRANSPORTS = ("polling", "websocket")
# Seconds a GET sent before its client's close packet may still arrive.
_LATE_GET_GRACE = 2.0


class ErrorCode(enum.IntEnum):
    """The reference server's error codes (the ``code`` of an error answer)."""

    UNKNOWN_TRANSPORT = 0
    UNKNOWN_SID = 1
    BAD_HANDSHAKE_METHOD = 2
    BAD_REQUEST = 3
    FORBIDDEN = 4
    UNSUPPORTED_PROTOCOL_VERSION = 5


_MESSAGES = {
    ErrorCode.UNKNOWN_TRANSPORT: "Transport unknown",
    ErrorCode.UNKNOWN_SID: "Session ID unknown",
    ErrorCode.BAD_HANDSHAKE_METHOD: "Bad handshake method",
    ErrorCode.BAD_REQUEST: "Bad request",
    ErrorCode.FORBIDDEN: "Forbidden",
    ErrorCode.UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}

_TEXT = "text/plain; charset=UTF-8"

# A response: status line, headers, body. _DETACHED: the connection was taken
# from the server (a held GET, a WebSocket) and is answered elsewhere.
_Response = tuple[str, list[tuple[str, str]], bytes]
_DETACHED: _Response = ("200 OK", [], b"")


def _status(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Error"


def _error(code: ErrorCode, message: str | None = None, status: int | None = None) -> _Response:
    body = json.dumps({"code": int(code), "message": message or _MESSAGES[code]}, separators=(",", ":")).encode()
    status = status if status is not None else 403 if code is ErrorCode.FORBIDDEN else 400
    return _status(status), [("Content-Type", "application/json")], body


def _text(body: bytes, content_type: str = _TEXT) -> _Response:
    return "200 OK", [("Content-Type", content_type)], body


class EchoHandler:
    """An :class:`EngineIOHandler` that sends every message back (tests, conformance)."""

    def connect(self, socket: EngineIOSocket) -> None:
        pass

    def message(self, socket: EngineIOSocket, data: str | bytes) -> None:
        socket.send(data)

    def disconnect(self, socket: EngineIOSocket, reason: str) -> None:
        pass


class EngineIOServer:
    """An Engine.IO v4 endpoint, as a WSGI application.

    It answers requests whose path is ``path`` (with or without the final
    slash; ``None``: every request) and passes the others to ``app`` (404
    without one). ``handler`` gets the sessions' events (see
    :class:`EngineIOHandler`).

    Options: ``ping_interval`` and ``ping_timeout`` in seconds (fractions
    allowed; announced in milliseconds), ``max_payload`` (bytes of a POST
    body or WebSocket message; a larger POST gets 413), ``transports``,
    ``cors_allowed_origins`` (``None``: same origin only, as the WebSocket
    endpoints' ``origins``; ``"*"``; or a list), ``cors_credentials``,
    ``allowed_hosts`` (as for WebSocket endpoints), ``max_buffer`` (bytes a
    session may have waiting for its client before it is closed as too
    slow), ``compression`` (offer permessage-deflate on the WebSocket
    transport; ``False`` negotiates none, as the reference server's default),
    ``manager`` (default: the server adapter's, else the process
    default).

    A long-polling GET with nothing to answer yet is taken from the server
    (:class:`~ws4py_integrations.adapter.Handover`) and answered by the
    manager, with ``Connection: close``: it holds no server thread. On a
    server without a handover it holds its request thread instead.
    """

    def __init__(
        self,
        handler: EngineIOHandler,
        app: WSGIApp | None = None,
        *,
        path: str | None = "/engine.io/",
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        max_payload: int = 1_000_000,
        transports: Sequence[str] = TRANSPORTS,
        cors_allowed_origins: OriginPolicy = None,
        cors_credentials: bool = False,
        allowed_hosts: Sequence[str] | None = None,
        max_buffer: int | None = 16 * 2**20,
        compression: bool = True,
        manager: Manager | None = None,
    ) -> None:
        if ping_interval <= 0 or ping_timeout <= 0:
            raise ValueError("ping_interval and ping_timeout must be positive")
        if not isinstance(max_payload, int) or max_payload <= 0:
            raise ValueError(f"max_payload must be a positive int, not {max_payload!r}")
        if isinstance(transports, str) or not transports or any(t not in TRANSPORTS for t in transports):
            raise ValueError(f"transports must be a non-empty list of {TRANSPORTS}, not {transports!r}")
        self.handler = handler
        self.app = app
        self.path = path
        self.ping_interval = float(ping_interval)
        self.ping_timeout = float(ping_timeout)
        self.max_payload = max_payload
        self.transports = tuple(transports)
        self.cors_allowed_origins = cors_allowed_origins
        self.cors_credentials = cors_credentials
        self.max_buffer = max_buffer
        self.manager = manager
        handler_cls = type("EngineIOWebSocket", (_EngineWebSocket,), {})
        # Engine.IO has its own heartbeat: no WebSocket keepalive pings.
        self._ws_app = WebSocketWSGIApplication(
            handler_cls,
            manager=manager,
            origins=cors_allowed_origins,
            allowed_hosts=allowed_hosts,
            ping_interval=None,
            max_message_size=max_payload,
            compression=compression,
        )
        self._sessions: dict[str, EngineIOSocket] = {}
        self._closed_by_client: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- sessions --------------------------------------------------------------------

    @property
    def sockets(self) -> list[EngineIOSocket]:
        """Open sessions (a snapshot)."""
        with self._lock:
            return list(self._sessions.values())

    def get(self, sid: str) -> EngineIOSocket | None:
        """The open session ``sid``, or ``None``."""
        with self._lock:
            return self._sessions.get(sid)

    def close(self) -> None:
        """Close every session (``disconnect`` gets ``"server shutting down"``)."""
        for session in self.sockets:
            session._close("server shutting down")

    def _forget(self, session: EngineIOSocket, expect_get: bool = False) -> None:
        with self._lock:
            if self._sessions.get(session.sid) is session:
                del self._sessions[session.sid]
            if expect_get:
                # The client closed with a POST while no GET was pending: its
                # GET may still be on the way (sent before the close, on
                # another connection). It gets the noop it would have had.
                now = time.monotonic()
                self._closed_by_client = {sid: expiry for sid, expiry in self._closed_by_client.items() if expiry > now}
                self._closed_by_client[session.sid] = now + _LATE_GET_GRACE

    def _late_get(self, sid: str) -> bool:
        """Whether ``sid`` was closed by its client a moment ago (once per session)."""
        with self._lock:
            expiry = self._closed_by_client.pop(sid, None)
        return expiry is not None and expiry > time.monotonic()

    def _manager_for(self, environ: dict[str, Any]) -> Manager:
        if self.manager is not None:
            return self.manager
        handover: Handover | None = environ.get(HANDOVER_KEY)
        if handover is not None and handover.manager is not None:
            return handover.manager
        return default_manager()

    def _open(self, environ: dict[str, Any], transport: str) -> EngineIOSocket | _Response:
        """A new session, accepted by the handler's ``connect`` (or the refusal)."""
        sid = secrets.token_urlsafe(15)
        manager = self._manager_for(environ)
        manager.start()
        session = EngineIOSocket(self, sid, connection_environ(environ), transport, manager)
        try:
            self.handler.connect(session)
        except Refuse as refusal:
            logger.info("handler refused a session from %s: %s", environ.get("REMOTE_ADDR"), refusal.message)
            return _error(ErrorCode.FORBIDDEN, refusal.message, refusal.status)
        except Exception:
            logger.exception("connect() raised; refusing the session")
            return _status(500), [("Content-Type", _TEXT)], b"the session could not be opened"
        with self._lock:
            self._sessions[sid] = session
        with session._lock:
            session._schedule_ping()
        return session

    # -- WSGI --------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self._matches(environ.get("PATH_INFO") or "/"):
            if self.app is not None:
                return self.app(environ, start_response)
            start_response(_status(404), [("Content-Type", _TEXT)])
            return [b"not found"]
        cors = self._cors_headers(environ)
        response = self._dispatch(environ, cors)
        if response is _DETACHED:
            # The server ignores the response of a detached connection; this
            # status is only what its access log shows.
            start_response(_DETACHED[0], [])
            return []
        status, headers, body = response
        start_response(status, [*headers, *cors, ("Content-Length", str(len(body)))])
        return [body]

    def _matches(self, path: str) -> bool:
        if self.path is None:
            return True
        return path.rstrip("/") == self.path.rstrip("/")

    def _cors_headers(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        """CORS headers for an allowed cross-origin request (none without ``Origin``)."""
        origin = environ.get("HTTP_ORIGIN")
        if origin is None or not _origin_allowed(origin, environ, self.cors_allowed_origins):
            return []
        if self.cors_allowed_origins == "*" and not self.cors_credentials:
            headers = [("Access-Control-Allow-Origin", "*")]
        else:
            headers = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        if self.cors_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        return headers

    def _dispatch(self, environ: dict[str, Any], cors: list[tuple[str, str]]) -> _Response:
        method = environ.get("REQUEST_METHOD", "GET")
        refused = _check_host(environ, self._ws_app.options)
        origin = environ.get("HTTP_ORIGIN")
        if refused is not None or not _origin_allowed(origin, environ, self.cors_allowed_origins):
            logger.info(
                "refused an Engine.IO request from %s: %s",
                environ.get("REMOTE_ADDR"),
                refused.reason if refused is not None else f"Origin {str(origin)[:100]!r} is not allowed",
            )
            return _error(ErrorCode.FORBIDDEN)
        if method == "OPTIONS":
            return self._preflight(environ)
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        transport = query.get("transport", [None])[0]
        if transport not in self.transports:
            return _error(ErrorCode.UNKNOWN_TRANSPORT)
        sid = query.get("sid", [None])[0]
        if sid is None:
            if method != "GET":
                return _error(ErrorCode.BAD_HANDSHAKE_METHOD)
            if query.get("EIO", [None])[0] != "4":
                return _error(ErrorCode.UNSUPPORTED_PROTOCOL_VERSION)
            if transport == "websocket":
                return self._websocket(environ, None)
            return self._open_polling(environ)
        session = self.get(sid)
        if session is None:
            if method == "GET" and transport == "polling" and self._late_get(sid):
                return _text(b"6")
            return _error(ErrorCode.UNKNOWN_SID)
        if transport == "websocket":
            return self._websocket(environ, session)
        if session.transport != "polling":
            return (
                self._refuse_after_upgrade(environ, session, cors) if method == "GET" else _error(ErrorCode.BAD_REQUEST)
            )
        if method == "GET":
            return self._poll(environ, session, cors)
        if method == "POST":
            return self._post(environ, session)
        return _error(ErrorCode.BAD_REQUEST)

    def _preflight(self, environ: dict[str, Any]) -> _Response:
        headers = [("Access-Control-Allow-Methods", "GET, POST, OPTIONS"), ("Access-Control-Max-Age", "86400")]
        requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
        if requested:
            headers.append(("Access-Control-Allow-Headers", requested))
        return _status(204), headers, b""

    def _open_polling(self, environ: dict[str, Any]) -> _Response:
        session = self._open(environ, "polling")
        if not isinstance(session, EngineIOSocket):
            return session
        upgrades = ["websocket"] if "websocket" in self.transports else []
        return _text(b"0" + open_packet(self, session.sid, upgrades).encode())

    # -- long polling ------------------------------------------------------------------

    def _poll(self, environ: dict[str, Any], session: EngineIOSocket, cors: list[tuple[str, str]]) -> _Response:
        blocking: BlockingPoll | None = None
        with session._lock:
            if session.closed:
                return _error(ErrorCode.UNKNOWN_SID)
            if session.transport != "polling":
                return self._refuse_after_upgrade(environ, session, cors)  # upgraded meanwhile
            if session._poll is not None:
                # Two GETs at once: the reference server ends the session (the
                # first GET gets a close packet) and refuses the second.
                logger.info("%s: a second GET while one is pending; closing the session", session.id)
                session._close("transport error")
                return _error(ErrorCode.BAD_REQUEST)
            if session._outbox and not session._handling and not session._upgrading:
                return _text(session._take_payload())
            handover: Handover | None = environ.get(HANDOVER_KEY)
            if handover is None or self._must_block(environ, handover):
                blocking = BlockingPoll()
                session._poll = blocking
                if session._upgrading:
                    session._end_poll_soon(blocking)
            else:
                poll = self._hold(environ, session, handover, cors)
                session._poll = poll
                if session._upgrading:
                    # During an upgrade: a noop (or 400 if the upgrade completes first).
                    session._end_poll_soon(poll)
                return _DETACHED
        # No handover: this request thread waits (a ping comes within ping_interval).
        blocking.wait(self.ping_interval + self.ping_timeout)
        session._poll_lost(blocking)
        body = blocking.finish()
        if blocking.error:
            return _status(400), [("Content-Type", "application/json")], body
        return _text(body)

    @staticmethod
    def _hold(
        environ: dict[str, Any], session: EngineIOSocket, handover: Handover, cors: list[tuple[str, str]]
    ) -> HeldPoll:
        """Take a GET from its server, for the manager to answer later."""
        sock, _ = handover.detach()
        version = b"HTTP/1.1" if environ.get("SERVER_PROTOCOL") == "HTTP/1.1" else b"HTTP/1.0"
        head = "".join(f"{name}: {value}\r\n" for name, value in [("Connection", "close"), *cors])
        poll = HeldPoll(session, sock, version, head.encode("latin-1"))
        session.manager.watch_socket(poll)
        return poll

    def _refuse_after_upgrade(
        self, environ: dict[str, Any], session: EngineIOSocket, cors: list[tuple[str, str]]
    ) -> _Response:
        """400 for a GET of an upgraded session, not sooner than the grace after the probe's
        answer (see ``EngineIOSocket._refuse_ws``): the reference server, one event loop,
        answered the probe the client sent before this GET first."""
        delay = session._answer_grace_left()
        handover: Handover | None = environ.get(HANDOVER_KEY)
        if delay <= 0 or handover is None or self._must_block(environ, handover):
            return _error(ErrorCode.BAD_REQUEST)
        poll = self._hold(environ, session, handover, cors)
        session.manager.call_later(delay, functools.partial(poll.respond, BAD_REQUEST, True))
        return _DETACHED

    @staticmethod
    def _must_block(environ: dict[str, Any], handover: Handover) -> bool:
        # gevent's TLS sockets cannot move off their request greenlet (which
        # its server ends by closing the socket unless a WebSocket keeps it).
        return environ.get("wsgi.url_scheme") == "https" and type(handover).__module__.startswith(
            "ws4py_integrations.gevent"
        )

    def _post(self, environ: dict[str, Any], session: EngineIOSocket) -> _Response:
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return _error(ErrorCode.BAD_REQUEST, "Content-Length required")
        if length > self.max_payload:
            return _status(413), [("Content-Type", _TEXT)], b"payload too large"
        with session._lock:
            if session._posting:
                logger.info("%s: a second POST while one is read; closing the session", session.id)
                session._close("transport error")
                return _error(ErrorCode.BAD_REQUEST)
            session._posting = True
        try:
            body = environ["wsgi.input"].read(length) if length > 0 else b""
        finally:
            with session._lock:
                session._posting = False
        if session.closed:
            return _error(ErrorCode.UNKNOWN_SID)
        try:
            packets = decode_payload(body)
        except PacketError as exc:
            logger.info("%s: %s; closing", session.id, exc)
            session._close("parse error")
            return _error(ErrorCode.BAD_REQUEST)
        for kind, data in packets:
            if not session._receive(kind, data):
                return _error(ErrorCode.BAD_REQUEST)
        return _text(b"ok", "text/html")

    # -- WebSocket ------------------------------------------------------------------------

    def _websocket(self, environ: dict[str, Any], session: EngineIOSocket | None) -> _Response:
        if not is_upgrade_request(environ):
            return _error(ErrorCode.BAD_REQUEST)
        result = self._ws_app.check(environ)
        if isinstance(result, Reject):
            headers = [(name, value) for name, value in result.wsgi_headers() if name != "Content-Length"]
            return result.status_line, headers, result.body
        if session is None:
            opened = self._open(environ, "websocket")
            if not isinstance(opened, EngineIOSocket):
                return opened
            environ[SESSION_KEY] = (opened, "main", open_packet(self, opened.sid, []))
            if self._ws_app.upgrade(environ, result) is None:
                opened._close("transport error")
        else:
            # Which WebSocket probes is decided here, in the order the upgrade
            # requests came, not when their opened() runs (on any manager thread).
            claimed = session._claim_probe()
            environ[SESSION_KEY] = (session, "probe" if claimed else "refused", "")
            if self._ws_app.upgrade(environ, result) is None and claimed:
                session._unclaim_probe()
        return _DETACHED
