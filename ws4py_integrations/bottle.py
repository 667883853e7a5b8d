"""WebSocket routes in a Bottle application's own router.

::

    import bottle
    from ws4py_integrations.bottle import WebSocketPlugin

    app = bottle.Bottle()
    app.install(WebSocketPlugin())

    @app.route("/ws/<room>", websocket=True)
    def chat(ws, room):
        for message in ws:
            ws.manager.broadcast(message, room)

A route with ``websocket=True`` (or a dict of per-route options) is a
WebSocket endpoint: its handshake is an ordinary Bottle request (wildcards,
``before_request`` hooks and other plugins, which refuse it by raising
:func:`bottle.abort` or an :class:`~bottle.HTTPResponse`), and refusals are
Bottle responses. The callback is a blocking handler (see
:mod:`ws4py_integrations.blocking`): ``callback(ws, **url_args)``, run later
on a pool worker, where ``bottle.request`` is bound to a request rebuilt from
the handshake's environ (URL, headers, cookies; an empty body).
"""

from __future__ import annotations

import functools
import io
import sys
from collections.abc import Callable
from typing import Any

from .blocking import BlockingWebSocket, HandlerPool
from .manager import Manager
from .middleware import WebSocketWSGIApplication

try:
    import bottle
except ImportError as exc:  # pragma: no cover - checked in a fresh interpreter (tests/test_blocking.py)
    raise ImportError(
        f"ws4py_integrations.bottle needs bottle, which is not installed: pip install bottle ({exc})"
    ) from exc

__all__ = ["WebSocketPlugin"]


class WebSocketPlugin:
    """A Bottle plugin (API 2) turning routes with ``websocket=...`` into WebSocket endpoints.

    Keyword options apply to every WebSocket route: those of
    :class:`~ws4py_integrations.WebSocketOptions`, ``manager`` and ``pool``
    (the :class:`~ws4py_integrations.HandlerPool` handlers run on). A route's
    ``websocket={...}`` dict overrides them for that route.
    """

    name = "ws4py_integrations"
    api = 2

    def __init__(self, *, manager: Manager | None = None, pool: HandlerPool | None = None, **options: Any) -> None:
        self.options: dict[str, Any] = {"manager": manager, "pool": pool, **options}

    def setup(self, app: bottle.Bottle) -> None:
        for other in app.plugins:
            if getattr(other, "name", None) == self.name and other is not self:
                raise bottle.PluginError("a WebSocketPlugin is installed already")

    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        config = route.config.get("websocket")
        # Bottle flattens a dict given as route config into "websocket.<key>" entries
        # (0.12 also keeps a namespace object under "websocket" itself).
        prefix = "websocket."
        route_options = {key[len(prefix) :]: value for key, value in route.config.items() if key.startswith(prefix)}
        if not config and not route_options:
            return callback
        if config is not None and config is not True and not route_options:
            raise TypeError(f"websocket= takes True or a dict of options, not {config!r}")
        options = {**self.options, **route_options}
        # Each handshake passes its own handler: the endpoint's own is never used.
        endpoint = WebSocketWSGIApplication(**options)

        @functools.wraps(callback)
        def websocket_view(*args: Any, **kwargs: Any) -> bottle.HTTPResponse:
            def run(ws: BlockingWebSocket) -> None:
                environ = dict(ws.environ)
                environ["wsgi.input"] = io.BytesIO()
                environ["wsgi.errors"] = sys.stderr
                bottle.request.bind(environ)
                callback(ws, *args, **kwargs)

            result = endpoint.handshake(bottle.request.environ, run)
            if result is not None:
                raise bottle.HTTPResponse(result.body, result.status, dict(result.wsgi_headers()))
            # The 101 is on the wire already; the server ignores this response.
            return bottle.HTTPResponse(status=101)

        return websocket_view
