"""WebSocket endpoints (RFC 6455, RFC 7692) inside WSGI applications.

Subclass :class:`WebSocket` (or write a function of a
:class:`BlockingWebSocket`, see :mod:`ws4py_integrations.blocking`), mount it with :class:`WebSocketWSGIApplication`
or :class:`WebSocketMiddleware`, and run the application on a server adapter:
``ws4py_integrations.wsgiref``, ``ws4py_integrations.cherrypy`` or
``ws4py_integrations.gevent``. How an adapter hands a connection over is
:mod:`ws4py_integrations.adapter`.
"""

from .adapter import HANDOVER_KEY, NO_HANDOVER_KEY, Handover
from .blocking import BlockingWebSocket, HandlerPool, function_handler
from .broker import Broker, BrokerError, BrokerUnavailable, InProcessBroker
from .events import Message, Pong
from .exceptions import HandshakeRejected, WebSocketClosed, WebSocketError
from .handshake import Accept, Reject, negotiate
from .manager import Manager, ThreadedManager
from .middleware import WebSocketMiddleware, WebSocketWSGIApplication, default_manager
from .options import WebSocketOptions
from .websocket import WebSocket

__version__ = "0.1.0"

__all__ = [
    "HANDOVER_KEY",
    "NO_HANDOVER_KEY",
    "Accept",
    "BlockingWebSocket",
    "Broker",
    "BrokerError",
    "BrokerUnavailable",
    "HandlerPool",
    "Handover",
    "HandshakeRejected",
    "InProcessBroker",
    "Manager",
    "Message",
    "Pong",
    "Reject",
    "ThreadedManager",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketError",
    "WebSocketMiddleware",
    "WebSocketOptions",
    "WebSocketWSGIApplication",
    "default_manager",
    "function_handler",
    "negotiate",
]
