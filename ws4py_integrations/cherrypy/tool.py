"""``cherrypy.tools.websocket``: turn an exposed page handler into a WebSocket endpoint."""

from __future__ import annotations

import logging
from typing import Any

import cherrypy

from ..handshake import Reject, negotiate
from ..manager import Manager
from ..middleware import CONNECTION_KEY, WebSocketWSGIApplication
from ..options import WebSocketOptions
from ..websocket import WebSocket

__all__ = ["WebSocketTool"]

logger = logging.getLogger("ws4py_integrations.cherrypy")


def _refuse(result: Reject) -> None:
    """Answer the request with the rejection, exactly as the middleware does."""
    request = cherrypy.serving.request
    response = cherrypy.serving.response
    environ = request.wsgi_environ
    logger.info(
        "refused WebSocket upgrade from %s to %s: %d %s",
        environ.get("REMOTE_ADDR"),
        environ.get("PATH_INFO"),
        result.status,
        result.reason,
    )
    response.status = result.status_line
    headers = response.headers
    for name, value in result.wsgi_headers():
        if name.lower() != "content-length":  # CherryPy computes it
            headers[name] = value
    response.body = result.body
    # The page handler does not run for a refused handshake.
    request.handler = None


class WebSocketTool(cherrypy.Tool):  # type: ignore[misc]
    """Upgrades requests to a WebSocket, after the other tools had their say.

    Register it as ``cherrypy.tools.websocket`` (:class:`WebSocketPlugin`'s
    ``subscribe()`` does so when no tool of that name exists) and turn it on
    per path::

        '/ws': {'tools.websocket.on': True,
                'tools.websocket.handler_cls': ChatWebSocket,
                'tools.websocket.protocols': ['chat'],
                'tools.websocket.max_message_size': 65536}

    It runs at ``before_handler`` with priority 90, so tools at earlier points
    (``tools.auth_basic``, ``tools.sessions``...) and ``before_handler`` hooks of
    lower priority run first and can refuse the request. An invalid handshake
    is answered with the status and reason the middleware gives (400, 426,
    403, 401...). A valid one is switched to the WebSocket protocol and the
    connection is handed to the manager; ``cherrypy.request.ws_handler`` is
    the new :class:`~ws4py_integrations.WebSocket` (for later hooks). In both
    cases the page handler does not run: it only has to exist and be exposed
    for CherryPy to route the request.

    Options: ``handler_cls`` (a :class:`~ws4py_integrations.WebSocket`
    subclass), every :class:`~ws4py_integrations.WebSocketOptions` field
    (``protocols``, ``origins``, ``authorize``, ``max_message_size``,
    ``ping_interval``, ``ping_timeout``, ``close_timeout``, ``max_send_buffer``,
    ``compression``, ``extra_headers``), ``manager`` to override the server's
    manager, and ``heartbeat_freq``, ws4py's name for ``ping_interval``.
    """

    def __init__(self, point: str = "before_handler", priority: int = 90) -> None:
        super().__init__(point, self.upgrade, priority=priority)

    def upgrade(
        self,
        handler_cls: type[WebSocket] = WebSocket,
        manager: Manager | None = None,
        heartbeat_freq: float | None = None,
        **options: Any,
    ) -> None:
        """The hook: validate the handshake, then upgrade or refuse."""
        if heartbeat_freq is not None:
            options.setdefault("ping_interval", heartbeat_freq)
        app = WebSocketWSGIApplication(handler_cls, manager=manager, options=WebSocketOptions.from_kwargs(**options))
        request = cherrypy.serving.request
        environ: dict[str, Any] = request.wsgi_environ
        result = negotiate(environ, app.options)
        if isinstance(result, Reject):
            _refuse(result)
            return
        server_conn = environ.get(CONNECTION_KEY)
        if server_conn is None:
            logger.error(
                "cannot upgrade %s: the server publishes no %r; subscribe "
                "ws4py_integrations.cherrypy.WebSocketPlugin before the engine starts, or run "
                "the application on another ws4py_integrations server adapter",
                environ.get("PATH_INFO"),
                CONNECTION_KEY,
            )
            _refuse(Reject(501, "this server cannot hand over connections for WebSocket"))
            return
        websocket = app.upgrade(environ, result, server_conn)
        # The connection is gone from the HTTP server: the page handler does
        # not run, and whatever CherryPy produces from here on is discarded by
        # the adapter (the status only shows in the access log). Later hooks
        # (before_finalize, on_end_request) still run and see the handler.
        request.handler = None
        request.ws_handler = websocket
        cherrypy.serving.response.status = "101 Switching Protocols"
