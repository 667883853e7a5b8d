"""WebSocket routes in a Pyramid application's own router.

::

    from pyramid.config import Configurator

    def chat(ws, request):
        room = request.matchdict["room"]
        ws.join(room)
        for message in ws:
            ws.manager.broadcast(f"{request.authenticated_userid}: {message}", room)

    with Configurator() as config:
        config.include("ws4py_integrations.pyramid")
        config.add_websocket_route("chat", "/ws/{room}", chat, permission="chat")
        app = config.make_wsgi_app()

The handshake is an ordinary Pyramid request: route matching, the security
policy and the view's ``permission`` (a refusal is Pyramid's forbidden view),
tweens. Refusals of the WebSocket handshake itself are Pyramid responses.

The handler is a blocking function (see :mod:`ws4py_integrations.blocking`):
``handler(ws, request)``, run later on a pool worker. ``request`` is built
again from the handshake's environ by the application's request factory,
with the handshake's ``matchdict``, ``matched_route`` and ``context``, and is
current (``get_current_request()``) while the handler runs; its finished
callbacks run when the handler returns, as at the end of a request.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any

from .blocking import BlockingWebSocket
from .middleware import WebSocketWSGIApplication

try:
    from pyramid.config import Configurator
    from pyramid.interfaces import IRequestFactory
    from pyramid.request import Request
    from pyramid.response import Response
    from pyramid.scripting import prepare
except ImportError as exc:  # pragma: no cover - checked in a fresh interpreter (tests/test_blocking.py)
    raise ImportError(
        f"ws4py_integrations.pyramid needs pyramid, which is not installed: pip install pyramid ({exc})"
    ) from exc

__all__ = ["add_websocket_route", "includeme", "websocket_view"]

#: ``handler(ws, request)``: a route's handler.
RouteHandler = Callable[[BlockingWebSocket, Any], object]


def websocket_view(handler: RouteHandler, **options: Any) -> Callable[[Request], Response]:
    """A Pyramid view callable whose requests are WebSocket handshakes for ``handler``.

    ``options``: those of :class:`~ws4py_integrations.WebSocketOptions`,
    ``manager`` and ``pool``. Register it like any view, e.g.
    ``config.add_view(websocket_view(chat), route_name="chat")``.
    """
    # Each handshake passes its own handler: the endpoint's own is never used.
    endpoint = WebSocketWSGIApplication(**options)

    def view(request: Request) -> Response:
        registry = request.registry
        matchdict = request.matchdict
        matched_route = request.matched_route
        context = getattr(request, "context", None)

        def run(ws: BlockingWebSocket) -> None:
            environ = dict(ws.environ)
            environ["wsgi.input"] = io.BytesIO()
            environ["wsgi.errors"] = sys.stderr
            factory = registry.queryUtility(IRequestFactory, default=Request)
            again = factory(environ)
            again.matchdict = matchdict
            again.matched_route = matched_route
            again.context = context
            with prepare(request=again, registry=registry) as env:
                handler(ws, env["request"])

        result = endpoint.handshake(request.environ, run)
        if result is not None:
            return Response(body=result.body, status=result.status_line, headerlist=result.wsgi_headers())
        # The 101 is on the wire already; the server ignores this response.
        return Response(status=101)

    view.__name__ = getattr(handler, "__name__", "websocket_view")
    view.__doc__ = handler.__doc__
    return view


def add_websocket_route(
    config: Configurator,
    name: str,
    pattern: str,
    handler: RouteHandler,
    *,
    permission: str | None = None,
    route_options: dict[str, Any] | None = None,
    **options: Any,
) -> None:
    """``config.add_websocket_route(name, pattern, handler, **options)``: a route and
    its WebSocket view (GET only) in one call.

    ``permission`` is the view's (checked on the handshake); ``route_options``
    go to :meth:`~pyramid.config.Configurator.add_route`; ``options`` to
    :func:`websocket_view`.
    """
    config.add_route(name, pattern, **(route_options or {}))
    config.add_view(websocket_view(handler, **options), route_name=name, request_method="GET", permission=permission)


def includeme(config: Configurator) -> None:
    """``config.include("ws4py_integrations.pyramid")``: adds the
    ``add_websocket_route`` directive."""
    config.add_directive("add_websocket_route", add_websocket_route)
