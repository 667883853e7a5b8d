"""``cherrypy.tools.websocket``: turn an exposed page handler into a WebSocket endpoint."""

from __future__ import annotations

import threading
from dataclasses import fields
from typing import Any

from .._extras import missing_extra
from ..handshake import Reject
from ..manager import Manager
from ..middleware import WebSocketWSGIApplication
from ..options import WebSocketOptions
from ..websocket import WebSocket

try:
    import cherrypy
except ImportError as exc:
    raise missing_extra("ws4py_integrations.cherrypy.WebSocketTool", "cherrypy", exc) from exc

__all__ = ["WebSocketTool"]

#: Tool options that are not WebSocketOptions fields.
_TOOL_OPTIONS = ("handler_cls", "manager", "heartbeat_freq")


def _respond(result: Reject) -> None:
    """Answer the request with the refusal, as the middleware would."""
    request = cherrypy.serving.request
    response = cherrypy.serving.response
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
    lower priority run first and can refuse the request. The handshake is the
    middleware's (:class:`~ws4py_integrations.WebSocketWSGIApplication`): an
    invalid one is answered with the status and reason it gives (400, 426,
    403, 401...), a valid one is switched to the WebSocket protocol and the
    connection handed to the manager; ``cherrypy.request.ws_handler`` is the
    new :class:`~ws4py_integrations.WebSocket` (for later hooks). In both
    cases the page handler does not run: it only has to exist and be exposed
    for CherryPy to route the request.

    Options: ``handler_cls`` (a :class:`~ws4py_integrations.WebSocket`
    subclass), every :class:`~ws4py_integrations.WebSocketOptions` field
    (``protocols``, ``origins``, ``authorize``, ``max_message_size``,
    ``ping_interval``, ``ping_timeout``, ``read_timeout``, ``close_timeout``,
    ``max_send_buffer``, ``compression``, ``extra_headers``), ``manager`` to
    override the server's manager, and ``heartbeat_freq``, ws4py's name for
    ``ping_interval``.
    """

    def __init__(self, point: str = "before_handler", priority: int = 90) -> None:
        super().__init__(point, self.upgrade, priority=priority)
        # One application per distinct configuration: CherryPy passes the same
        # config objects on every request, so their identities are the key
        # (the values are kept with it, so an id is never reused meanwhile).
        self._apps: dict[tuple[tuple[str, int], ...], tuple[tuple[Any, ...], WebSocketWSGIApplication]] = {}
        self._apps_lock = threading.Lock()

    def _application(self, config: dict[str, Any]) -> WebSocketWSGIApplication:
        key = tuple(sorted((name, id(value)) for name, value in config.items()))
        with self._apps_lock:
            cached = self._apps.get(key)
        if cached is not None:
            return cached[1]
        app = self._build(**config)
        with self._apps_lock:
            self._apps[key] = (tuple(config.values()), app)
        return app

    @staticmethod
    def _build(
        handler_cls: type[WebSocket] = WebSocket,
        manager: Manager | None = None,
        heartbeat_freq: float | None = None,
        **options: Any,
    ) -> WebSocketWSGIApplication:
        known = {f.name for f in fields(WebSocketOptions)}
        unknown = sorted(set(options) - known)
        if unknown:
            expected = ", ".join(sorted(known | set(_TOOL_OPTIONS)))
            raise TypeError(f"unknown tools.websocket option(s): {', '.join(unknown)}; expected any of {expected}")
        if heartbeat_freq is not None:
            options.setdefault("ping_interval", heartbeat_freq)
        return WebSocketWSGIApplication(handler_cls, manager=manager, **options)

    def upgrade(self, **config: Any) -> None:
        """The hook: validate the handshake, then upgrade or refuse."""
        app = self._application(config)
        request = cherrypy.serving.request
        environ: dict[str, Any] = request.wsgi_environ
        result = app.check(environ)
        if isinstance(result, Reject):
            if result.status == 501:
                result = Reject(
                    501,
                    "this server cannot hand over connections for WebSocket: subscribe "
                    "ws4py_integrations.cherrypy.WebSocketPlugin before the engine starts",
                )
            _respond(result)
            return
        websocket = app.upgrade(environ, result)
        # The connection is gone from the HTTP server: the page handler does
        # not run, and whatever CherryPy produces from here on is discarded by
        # the adapter (the status only shows in the access log). Later hooks
        # (before_finalize, on_end_request) still run and see the handler.
        request.handler = None
        request.ws_handler = websocket
        cherrypy.serving.response.status = "101 Switching Protocols"
