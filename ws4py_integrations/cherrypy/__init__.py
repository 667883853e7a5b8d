"""WebSocket on CherryPy and on its HTTP server, cheroot.

CherryPy::

    import cherrypy
    from ws4py_integrations.cherrypy import WebSocketPlugin, WebSocketTool

    WebSocketPlugin(cherrypy.engine).subscribe()
    cherrypy.tools.websocket = WebSocketTool()

    class Root:
        @cherrypy.expose
        @cherrypy.tools.websocket(handler_cls=EchoWebSocket)
        def ws(self):
            pass

A bare cheroot server running a WSGI application (for example
:class:`~ws4py_integrations.WebSocketMiddleware`)::

    from ws4py_integrations.cherrypy import WSGIServer

    server = WSGIServer(("127.0.0.1", 8080), app)
    server.start()

:class:`WebSocketPlugin` and :class:`WebSocketTool` import CherryPy on first
use; the cheroot part (:class:`WSGIServer`, :func:`install_gateway`,
:func:`websocket_gateway`) needs only cheroot.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .server import WebSocketGatewayMixin, WSGIServer, install_gateway, websocket_gateway

if TYPE_CHECKING:
    from .plugin import WebSocketPlugin
    from .tool import WebSocketTool

__all__ = [
    "WSGIServer",
    "WebSocketGatewayMixin",
    "WebSocketPlugin",
    "WebSocketTool",
    "install_gateway",
    "websocket_gateway",
]

_LAZY = {"WebSocketPlugin": ".plugin", "WebSocketTool": ".tool"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
