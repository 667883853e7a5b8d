"""The WSGI side: an upgrade application and a routing middleware.

Server adapters reach this code through one contract: they put an object
implementing :class:`ServerConnection` in the environ under
:data:`CONNECTION_KEY`. The application validates the handshake, takes the
connection with :meth:`ServerConnection.detach`, writes the 101 itself (so no
server adds Content-Length or Transfer-Encoding to it) and hands the socket,
with every byte the server had already read, to a manager.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from .handshake import Accept, Reject, negotiate
from .manager import Manager, ThreadedManager
from .options import WebSocketOptions
from .websocket import WebSocket

__all__ = [
    "CONNECTION_KEY",
    "ServerConnection",
    "WebSocketMiddleware",
    "WebSocketWSGIApplication",
    "default_manager",
]

logger = logging.getLogger("ws4py_integrations.middleware")

#: Environ key under which a server adapter publishes its :class:`ServerConnection`.
CONNECTION_KEY = "ws4py_integrations.connection"
#: Environ key set on a successful upgrade: the new :class:`WebSocket`.
WEBSOCKET_KEY = "ws4py_integrations.websocket"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@runtime_checkable
class ServerConnection(Protocol):
    """The adapter contract: how the middleware takes a connection from a server.

    ``manager`` is the manager that should run connections of this server
    (``None`` to use the middleware's own or the process default).

    ``detach()`` takes the connection from the server and returns the socket
    plus every byte the server read past the request head. Afterwards the
    server must not read, write, close or reuse that connection, and must
    ignore whatever the application returns for this request.
    """

    manager: Manager | None

    def detach(self) -> tuple[socket.socket, bytes]: ...


#: Keys other servers use to expose the raw client socket (recognized, not used).
_RAW_SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")

_default_manager: Manager | None = None
_default_lock = threading.Lock()


def default_manager() -> Manager:
    """The process-wide :class:`ThreadedManager`, created on first use."""
    global _default_manager
    with _default_lock:
        if _default_manager is None:
            _default_manager = ThreadedManager(name="ws4py-default")
        return _default_manager


def _reject(result: Reject, start_response: StartResponse) -> list[bytes]:
    start_response(result.status_line, result.wsgi_headers())
    return [result.body]


class WebSocketWSGIApplication:
    """A WSGI application that upgrades every request to a ``handler_cls`` WebSocket.

    Keyword options are those of :class:`~ws4py_integrations.WebSocketOptions`
    (limits, keepalive, ``protocols``, ``origins``, ``authorize``...).
    ``manager`` overrides the manager the server adapter offers.
    """

    def __init__(
        self,
        handler_cls: type[WebSocket] = WebSocket,
        *,
        manager: Manager | None = None,
        options: WebSocketOptions | None = None,
        **kwargs: Any,
    ) -> None:
        if not (isinstance(handler_cls, type) and issubclass(handler_cls, WebSocket)):
            raise TypeError(f"handler_cls must be a WebSocket subclass, not {handler_cls!r}")
        self.handler_cls = handler_cls
        self.manager = manager
        self.options = WebSocketOptions.from_kwargs(options, **kwargs)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        result = negotiate(environ, self.options)
        if isinstance(result, Reject):
            logger.info(
                "refused WebSocket upgrade from %s to %s: %d %s",
                environ.get("REMOTE_ADDR"),
                environ.get("PATH_INFO"),
                result.status,
                result.reason,
            )
            return _reject(result, start_response)
        server_conn = environ.get(CONNECTION_KEY)
        if server_conn is None:
            raw_key = next((key for key in _RAW_SOCKET_KEYS if key in environ), None)
            if raw_key is not None:
                # The raw socket alone is not enough: the server's reader may
                # already hold bytes past the request head (the client's first
                # frames), and nothing stops the server from writing its own
                # response or reusing the connection afterwards.
                logger.error(
                    "cannot upgrade %s: the server publishes %r, but not the bytes it already "
                    "buffered nor a way to stop it using the connection; run it with a "
                    "ws4py_integrations adapter (for gunicorn: -k ws4py_integrations.gevent.GunicornWorker)",
                    environ.get("PATH_INFO"),
                    raw_key,
                )
                return _reject(Reject(501, f"{raw_key} is not enough to hand over a connection safely"), start_response)
            logger.error(
                "cannot upgrade %s: the server publishes no %r; run the application on a "
                "ws4py_integrations server adapter (wsgiref, cherrypy, gevent)",
                environ.get("PATH_INFO"),
                CONNECTION_KEY,
            )
            return _reject(Reject(501, "this server cannot hand over connections for WebSocket"), start_response)
        self.upgrade(environ, result, server_conn)
        # The adapter ignores the response of a detached connection; this
        # status is only what the server's access log shows.
        start_response("101 Switching Protocols", [])
        return []

    def upgrade(self, environ: dict[str, Any], accept: Accept, server_conn: ServerConnection) -> WebSocket | None:
        """Detach the connection, send the 101 and hand it to the manager."""
        sock, buffered = server_conn.detach()
        manager = self.manager if self.manager is not None else server_conn.manager
        if manager is None:
            manager = default_manager()
        websocket = manager.add(sock, buffered, accept, self.handler_cls, environ, self.options)
        if websocket is not None:
            environ[WEBSOCKET_KEY] = websocket
        return websocket


class WebSocketMiddleware:
    """Routes WebSocket endpoints by path; passes every other request to ``app``.

    ``routes`` maps a ``PATH_INFO`` to a :class:`WebSocket` subclass or to a
    ready :class:`WebSocketWSGIApplication` (for per-endpoint options).
    Keyword options apply to routes given as classes.
    """

    def __init__(
        self,
        app: WSGIApp,
        routes: Mapping[str, type[WebSocket] | WebSocketWSGIApplication],
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
