"""WebSocket routes in a Flask application's own router.

::

    from flask import Flask, g, session
    from flask_login import current_user
    from ws4py_integrations.flask import WebSockets

    app = Flask(__name__)
    sockets = WebSockets(app)

    @sockets.route("/ws/<room>")
    def chat(ws, room):
        ws.send(f"hello {current_user.name}, welcome to {room}")
        for message in ws:
            ws.send(message)

The handshake is an ordinary Flask request: URL converters, blueprints,
``before_request`` hooks (which may refuse it by returning a response or
calling :func:`flask.abort`), Flask-Login, the session. A refused handshake
is a Flask response, through ``after_request`` like any other.

The handler is a blocking function (see :mod:`ws4py_integrations.blocking`)
that runs later, on a pool worker, while the server's request thread is
already free. It runs inside a request context rebuilt from the handshake's
environ: ``request`` (its URL, headers, cookies, ``view_args``), ``session``
(loaded again from the request's cookie), and the handshake's ``g`` (copied
as it was when the view ran, so Flask-Login's ``current_user`` is the user
the handshake authenticated). ``teardown_request`` and
``teardown_appcontext`` run when the handler returns (database sessions are
released as after a request). Changes to ``session`` cannot reach the client
(there is no response left to carry a cookie).

The application runs on a ws4py_integrations server adapter (wsgiref,
CherryPy, gevent; see :doc:`/deployment`).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any

from .blocking import BlockingWebSocket, HandlerPool
from .handshake import Reject
from .manager import Manager
from .middleware import WebSocketWSGIApplication

try:
    import flask
    from flask import Blueprint, Flask
except ImportError as exc:  # pragma: no cover - checked in a fresh interpreter (tests/test_blocking.py)
    raise ImportError(
        f"ws4py_integrations.flask needs Flask, which is not installed: pip install Flask ({exc})"
    ) from exc

__all__ = ["WebSockets"]

#: ``handler(ws, **view_args)``: a route's handler.
RouteHandler = Callable[..., object]


def _refusal(result: Reject) -> flask.Response:
    return flask.Response(result.body, status=result.status_line, headers=result.wsgi_headers())


class WebSockets:
    """A Flask extension: WebSocket routes with :meth:`route`.

    Keyword options apply to every route (per-route options override them):
    those of :class:`~ws4py_integrations.WebSocketOptions`, ``manager`` and
    ``pool`` (the :class:`~ws4py_integrations.HandlerPool` handlers run on).
    Call :meth:`init_app` later for an application factory.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        manager: Manager | None = None,
        pool: HandlerPool | None = None,
        **options: Any,
    ) -> None:
        self.app = app
        self.options: dict[str, Any] = {"manager": manager, "pool": pool, **options}
        # Routes declared before init_app: (rule, endpoint, view).
        self._deferred: list[tuple[str, str, Callable[..., Any]]] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register with ``app`` (and add the routes declared so far)."""
        self.app = app
        app.extensions["ws4py_integrations"] = self
        for rule, endpoint, view in self._deferred:
            app.add_url_rule(rule, endpoint, view, methods=["GET"], websocket=True)
        self._deferred.clear()

    def route(
        self, rule: str, *, bp: Blueprint | None = None, endpoint: str | None = None, **options: Any
    ) -> Callable[[RouteHandler], RouteHandler]:
        """Decorate ``handler(ws, **view_args)`` as the WebSocket endpoint of ``rule``.

        ``ws`` is a :class:`~ws4py_integrations.BlockingWebSocket`; URL
        variables arrive as keyword arguments, as in a view. ``bp`` registers
        the route on a blueprint instead of the application. ``options``
        override the extension's for this route. Returns the handler
        unchanged.
        """

        def decorator(handler: RouteHandler) -> RouteHandler:
            view = self._view(handler, {**self.options, **options})
            name = endpoint or handler.__name__
            if bp is not None:
                bp.add_url_rule(rule, name, view, methods=["GET"], websocket=True)
            elif self.app is not None:
                self.app.add_url_rule(rule, name, view, methods=["GET"], websocket=True)
            else:
                self._deferred.append((rule, name, view))
            return handler

        return decorator

    @staticmethod
    def _view(handler: RouteHandler, options: dict[str, Any]) -> Callable[..., flask.Response]:
        # Each handshake passes its own handler: the endpoint's own is never used.
        endpoint = WebSocketWSGIApplication(**options)

        def websocket_view(**view_args: Any) -> flask.Response:
            app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
            saved_g = dict(vars(flask.g._get_current_object()))

            def run(ws: BlockingWebSocket) -> None:
                environ = dict(ws.environ)
                # The body was the handshake's (empty); a request built again
                # must still find the streams WSGI promises.
                environ["wsgi.input"] = io.BytesIO()
                environ["wsgi.errors"] = sys.stderr
                with app.request_context(environ):
                    for name, value in saved_g.items():
                        setattr(flask.g, name, value)
                    handler(ws, **view_args)

            result = endpoint.handshake(flask.request.environ, run)
            if result is not None:
                return _refusal(result)
            # The 101 is on the wire already; the server ignores this response.
            return flask.Response(status=101)

        websocket_view.__name__ = getattr(handler, "__name__", "websocket_view")
        websocket_view.__doc__ = handler.__doc__
        return websocket_view
