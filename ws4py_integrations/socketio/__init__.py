"""Socket.IO v5 on an Engine.IO v4 transport, on every supported server.

A :class:`Server` is a WSGI application (or :class:`SocketIOMiddleware`
beside yours) whose clients connect to namespaces and exchange named events
with acknowledgements::

    from ws4py_integrations.socketio import Server

    sio = Server()

    @sio.on("chat")
    def chat(sid, text):
        sio.emit("chat", text, room="lobby", skip_sid=sid)
        return "delivered"          # the acknowledgement

    app = sio.wsgi_app(my_wsgi_app)  # Socket.IO at /socket.io/, the rest to my_wsgi_app

See ``docs/socketio.rst``.
"""

from __future__ import annotations

from typing import Any

from .exceptions import ConnectionRefusedError, SocketIOError, SocketIOTimeout
from .namespace import BaseNamespace, BroadcastMixin, Namespace, RoomsMixin
from .packet import Packet, PacketError
from .server import Emitter, Server, SocketIOMiddleware

__all__ = [
    "DEFAULT_PREFIX",
    "BaseNamespace",
    "BroadcastMixin",
    "ConnectionRefusedError",
    "Emitter",
    "Namespace",
    "Packet",
    "PacketError",
    "RedisEmitter",
    "RoomsMixin",
    "Server",
    "SocketIOError",
    "SocketIOMiddleware",
    "SocketIOTimeout",
    "redis_broker",
]

#: The Redis channel prefix of Socket.IO emits (apart from plain WebSocket broadcasts).
DEFAULT_PREFIX = "ws4py-socketio:"


def redis_broker(url: str = "redis://localhost:6379/0", **options: Any) -> Any:
    """A :class:`~ws4py_integrations.redis_broker.RedisBroker` for one :class:`Server`
    (``Server(broker=redis_broker(url))``); the ``redis`` extra is needed."""
    from ..redis_broker import RedisBroker

    options.setdefault("prefix", DEFAULT_PREFIX)
    return RedisBroker(url, **options)


def RedisEmitter(url: str = "redis://localhost:6379/0", **options: Any) -> Emitter:
    """An :class:`Emitter` that publishes to the servers on the Redis at ``url``."""
    return Emitter(redis_broker(url, **options))
