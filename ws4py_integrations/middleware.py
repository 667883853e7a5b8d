"""The WSGI side: the upgrade application and the routing middleware.

The flow is one way::

    server adapter ──Handover──▶ WebSocketWSGIApplication ──Connection──▶ Manager
                                 (handshake, 101 or refusal)              (runs it)

:meth:`WebSocketWSGIApplication.__call__` validates the handshake
(:func:`~ws4py_integrations.handshake.negotiate`); a refusal is an ordinary
WSGI response. An accepted upgrade takes the connection from the server
(:meth:`Handover.detach <ws4py_integrations.adapter.Handover.detach>`),
builds the handler, writes the 101 itself (so no server adds
Content-Length or Transfer-Encoding to it) and hands the connection, with
every byte the server had already read, to :meth:`Manager.run
<ws4py_integrations.Manager.run>`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, cast

from .adapter import HANDOVER_KEY, NO_HANDOVER_KEY, Handover
from .blocking import FunctionWebSocket, HandlerFunction, HandlerPool, as_handler_class
from .connection import Connection
from .handshake import Accept, Reject, negotiate
from .manager import Manager, ThreadedManager
from .options import WebSocketOptions
from .websocket import WebSocket

__all__ = ["WebSocketMiddleware", "WebSocketWSGIApplication", "default_manager"]

logger = logging.getLogger("ws4py_integrations.middleware")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Keys other servers use to expose the raw client socket, and what to do about each:
#: a module whose ``handover_from_environ(environ)`` returns a :class:`Handover`
#: (or why not), or the fix to name in the 501.
_RAW_SOCKET_KEYS: dict[str, tuple[str, str]] = {
    "werkzeug.socket": ("module", "ws4py_integrations.werkzeug"),
    "gunicorn.socket": (
        "fix",
        "gunicorn's stock workers cannot hand over connections; run gunicorn with "
        "-k ws4py_integrations.gunicorn.ThreadWorker (sync and gthread apps) "
        "or -k ws4py_integrations.gunicorn.GeventWorker (gevent apps)",
    ),
}

#: The 501's fix for a server that offers nothing at all.
_NO_ADAPTER = (
    "this server cannot hand over connections for WebSocket; run the application on werkzeug's "
    "server (flask run), a ws4py_integrations adapter (wsgiref, cherrypy, gevent), or gunicorn with "
    "-k ws4py_integrations.gunicorn.ThreadWorker"
)

_default_manager: Manager | None = None
_default_lock = threading.Lock()


def default_manager() -> Manager:
    """The process-wide :class:`ThreadedManager`, created on first use."""
    global _default_manager
    with _default_lock:
        if _default_manager is None:
            _default_manager = ThreadedManager(name="ws4py-default")
        return _default_manager


def _find_handover(environ: Mapping[str, Any]) -> Handover | str:
    """The request's :class:`Handover`, or the reason (with the fix) why it has none.

    A handover found from a raw socket key is stored in the environ, where
    :meth:`WebSocketWSGIApplication.upgrade` looks for it.
    """
    handover = environ.get(HANDOVER_KEY)
    if handover is not None:
        return cast(Handover, handover)
    refused = environ.get(NO_HANDOVER_KEY)
    if refused is not None:
        return str(refused)
    for key, (kind, value) in _RAW_SOCKET_KEYS.items():
        if key not in environ:
            continue
        if kind == "fix":
            return value
        found: Handover | str = importlib.import_module(value).handover_from_environ(environ)
        if isinstance(found, Handover) and isinstance(environ, MutableMapping):
            environ[HANDOVER_KEY] = found
        return found
    return _NO_ADAPTER


def _respond(result: Reject, start_response: StartResponse) -> list[bytes]:
    start_response(result.status_line, result.wsgi_headers())
    return [result.body]


def _refuse_detached(sock: socket.socket, result: Reject) -> None:
    """Answer a connection already taken from its server, and close it."""
    # OSError: the client is gone; closing is all that is left.
    with contextlib.suppress(OSError):
        sock.settimeout(5.0)
        sock.sendall(result.response)
    sock.close()


def _send_response(sock: socket.socket, response: bytes) -> None:
    """Send the 101; the managers make the socket non-blocking afterwards."""
    if type(sock) is socket.socket and sock.gettimeout() == 0.0:
        # Left non-blocking by the handover (take_buffered): the small head
        # nearly always fits in the send buffer, sparing two mode switches.
        try:
            sent = sock.send(response)
        except BlockingIOError:
            sent = 0
        if sent == len(response):
            return
        response = response[sent:]
    sock.setblocking(True)
    sock.sendall(response)


Handler = type[WebSocket] | HandlerFunction


class WebSocketWSGIApplication:
    """A WSGI application that upgrades every request to a ``handler`` WebSocket.

    ``handler`` is a :class:`WebSocket` subclass (callbacks) or a function
    ``handler(ws)`` of a :class:`~ws4py_integrations.BlockingWebSocket` (a
    loop; see :mod:`ws4py_integrations.blocking`), run on ``pool``
    (:func:`~ws4py_integrations.blocking.default_pool` if ``None``).
    ``handler_cls`` is another name for ``handler`` (ws4py's).

    Keyword options are those of :class:`~ws4py_integrations.WebSocketOptions`
    (limits, keepalive, ``protocols``, ``origins``, ``authorize``...).
    ``manager`` overrides the manager the server adapter offers.
    """

    def __init__(
        self,
        handler: Handler = WebSocket,
        *,
        handler_cls: Handler | None = None,
        pool: HandlerPool | None = None,
        manager: Manager | None = None,
        options: WebSocketOptions | None = None,
        **kwargs: Any,
    ) -> None:
        self.pool = pool
        #: The WebSocket class of every connection (a function is wrapped once, here).
        self.handler_cls = as_handler_class(handler_cls if handler_cls is not None else handler, pool)
        self.manager = manager
        self.options = WebSocketOptions.from_kwargs(options, **kwargs)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        result = self.check(environ)
        if isinstance(result, Reject):
            return _respond(result, start_response)
        self.upgrade(environ, result)
        # The adapter ignores the response of a detached connection; this
        # status is only what the server's access log shows.
        start_response("101 Switching Protocols", [])
        return []

    def check(self, environ: Mapping[str, Any]) -> Accept | Reject:
        """Everything decided before the connection is taken: the handshake, and
        whether this server and manager can take it (501, 503). Logs refusals."""
        result = negotiate(environ, self.options, getattr(environ.get(HANDOVER_KEY), "raw_headers", None))
        if isinstance(result, Accept):
            result = self._check_server(environ, result)
        if isinstance(result, Reject):
            logger.info(
                "refused WebSocket upgrade from %s to %s: %d %s",
                environ.get("REMOTE_ADDR"),
                environ.get("PATH_INFO"),
                result.status,
                result.reason,
            )
        return result

    def _check_server(self, environ: Mapping[str, Any], accept: Accept) -> Accept | Reject:
        handover = _find_handover(environ)
        if isinstance(handover, str):
            logger.error("cannot upgrade %s: %s", environ.get("PATH_INFO"), handover)
            return Reject(501, handover)
        if not self._manager_for(handover).accepting:
            return Reject(503, "server shutting down")
        return accept

    def _manager_for(self, handover: Handover) -> Manager:
        if self.manager is not None:
            return self.manager
        return handover.manager if handover.manager is not None else default_manager()

    def upgrade(self, environ: Mapping[str, Any], accept: Accept, handler: Handler | None = None) -> WebSocket | None:
        """Take the connection of an accepted handshake (see :meth:`check`), send
        the 101 and hand it to the manager.

        ``handler`` (a WebSocket subclass or a function) replaces the
        application's for this connection: how a framework's view passes the
        handler of its route (a function gets no class of its own per request).

        Returns the new WebSocket, or ``None`` when none came of it: the
        handler's constructor raised (the client gets a 500) or the client
        left during the handshake.
        """
        func: HandlerFunction | None = None
        if handler is None:
            handler_cls = self.handler_cls
        elif isinstance(handler, type):
            handler_cls = as_handler_class(handler, self.pool)
        elif callable(handler):
            handler_cls, func = FunctionWebSocket, handler
        else:
            raise TypeError(f"a handler must be a WebSocket subclass or a function, not {handler!r}")
        handover: Handover = environ[HANDOVER_KEY]
        manager = self._manager_for(handover)
        sock, buffered = handover.detach()
        try:
            conn = Connection(sock, accept, self.options, environ, manager, handler_cls, handover.peer_address)
            if func is not None:
                assert isinstance(conn.websocket, FunctionWebSocket)
                conn.websocket.bind(func, self.pool)
        except Exception:
            logger.exception("%s() raised; refusing the upgrade", handler_cls.__name__)
            _refuse_detached(sock, Reject(500, "the WebSocket handler could not be created"))
            return None
        try:
            _send_response(sock, accept.response)
        except OSError as exc:
            logger.info("%s: client %s left during the handshake: %s", conn.id, environ.get("REMOTE_ADDR"), exc)
            sock.close()
            return None
        logger.debug("%s: upgraded %s for %s", conn.id, environ.get("PATH_INFO"), environ.get("REMOTE_ADDR"))
        manager.run(conn, buffered)
        handover.upgraded(conn.websocket)
        return conn.websocket

    def handshake(self, environ: Mapping[str, Any], handler: Handler | None = None) -> Reject | None:
        """:meth:`check`, then :meth:`upgrade` with ``handler`` if accepted: for a
        framework's view. Returns the refusal, for the view to answer as its
        framework does, or ``None`` once upgraded (the view's response is then
        ignored by the server adapter)."""
        result = self.check(environ)
        if isinstance(result, Reject):
            return result
        self.upgrade(environ, result, handler)
        return None


class WebSocketMiddleware:
    """Routes WebSocket endpoints by path; passes every other request to ``app``.

    ``routes`` maps a ``PATH_INFO`` to a :class:`WebSocket` subclass, a
    function handler (see :mod:`ws4py_integrations.blocking`) or a ready
    :class:`WebSocketWSGIApplication` (for per-endpoint options). Keyword
    options apply to routes given as classes or functions.
    """

    def __init__(
        self,
        app: WSGIApp,
        routes: Mapping[str, Handler | WebSocketWSGIApplication],
        *,
        manager: Manager | None = None,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.routes: dict[str, WebSocketWSGIApplication] = {
            path: target
            if isinstance(target, WebSocketWSGIApplication)
            else WebSocketWSGIApplication(target, manager=manager, **kwargs)
            for path, target in routes.items()
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        endpoint = self.routes.get(environ.get("PATH_INFO") or "/")
        if endpoint is None:
            return self.app(environ, start_response)
        return endpoint(environ, start_response)
